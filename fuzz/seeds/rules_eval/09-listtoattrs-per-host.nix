let
  admins = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice" ];
  hostKeys = {
    laptop = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALRAR5OrK3CospN77xuOH/lcx7mlE7PHt5pL+wgKeS9 laptop";
    server = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server";
    nas = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas";
    router = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDTpal8e4fFl+XNauNP37cGvfZ0Dg7lZiis3U8C5YiZx router";
  };
  perHost = name: {
    name = "hosts/${name}/wireguard.age";
    value.publicKeys = admins ++ [ hostKeys.${name} ];
  };
in
builtins.listToAttrs (map perHost (builtins.attrNames hostKeys))
// { "global.age".publicKeys = admins ++ builtins.attrValues hostKeys; }
