let
  hosts = {
    laptop = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALRAR5OrK3CospN77xuOH/lcx7mlE7PHt5pL+wgKeS9 laptop";
    server = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server";
    nas = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas";
  };
  admin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice";
  add = acc: host:
    acc // {
      "${host}/backup.age".publicKeys = [ admin hosts.${host} ];
      "${host}/monitoring.age" = { publicKeys = [ hosts.${host} ]; };
    };
in
builtins.foldl' add { } (builtins.attrNames hosts)
