let
  hosts = builtins.fromJSON (builtins.readFile ./hosts.json);
  admin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice";
  withRole = role: builtins.filter (h: builtins.elem role hosts.${h}.roles) (builtins.attrNames hosts);
  keysOf = names: map (h: hosts.${h}.key) names;
in
{
  "db-password.age".publicKeys = [ admin ] ++ keysOf (withRole "db");
  "web-cert.age".publicKeys = [ admin ] ++ keysOf (withRole "web");
  "all.age".publicKeys = [ admin ] ++ map (h: h.key) (builtins.attrValues hosts);
  "meta.age" = {
    publicKeys = [ admin ];
    nasPort = hosts.nas.port;
    roundTrip = builtins.fromJSON (builtins.toJSON hosts.server);
  };
}
