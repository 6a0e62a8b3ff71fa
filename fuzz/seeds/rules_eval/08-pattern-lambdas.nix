let
  admins = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob" ];
  hosts = {
    laptop = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALRAR5OrK3CospN77xuOH/lcx7mlE7PHt5pL+wgKeS9 laptop";
    server = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server";
  };
  mkSecret = { host, users ? admins, armor ? false, ... }@args:
    {
      publicKeys = users ++ [ hosts.${host} ];
      inherit armor;
    } // builtins.removeAttrs args [ "host" "users" "armor" ];
  mkShared = args@{ hostList, ... }: {
    publicKeys = admins ++ map (h: hosts.${h}) hostList;
  };
in
{
  "laptop-wifi.age" = mkSecret { host = "laptop"; };
  "server-db.age" = mkSecret { host = "server"; armor = true; owner = "postgres"; };
  "server-solo.age" = mkSecret { host = "server"; users = [ ]; };
  "shared.age" = mkShared { hostList = [ "laptop" "server" ]; };
}
