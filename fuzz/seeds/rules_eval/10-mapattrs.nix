let
  admin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1mW/P0OgkiuEtXDp4miulbDJ23jrE2wx8BTfyRIL0M carol";
  byFile = {
    "laptop-wifi.age" = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALRAR5OrK3CospN77xuOH/lcx7mlE7PHt5pL+wgKeS9 laptop";
    "nas-backup.age" = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas";
    "router-pppoe.age" = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDTpal8e4fFl+XNauNP37cGvfZ0Dg7lZiis3U8C5YiZx router";
  };
in
builtins.mapAttrs (file: hostKey: {
  publicKeys = [ admin hostKey ];
  armor = builtins.substring 0 3 file == "nas";
}) byFile
