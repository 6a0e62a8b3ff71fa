# Example fleet rules: which keys may decrypt which secret.
let
  keys = import ./keys.nix;
  inherit (keys) admins hosts;
  allHosts = builtins.attrValues hosts;
in
{
  "wifi.age".publicKeys = admins ++ allHosts;
  "api-token.age".publicKeys = admins ++ [ hosts.server ];
  "nas/smb-credentials.age".publicKeys = admins ++ [ hosts.nas hosts.server ];
  "wireguard/server.conf.age" = {
    publicKeys = admins ++ [ hosts.server ];
    armor = true;
  };
  # Drifted on purpose: the file is still encrypted to a retired laptop key.
  "user password.age".publicKeys = admins ++ [ hosts.laptop ];
}
