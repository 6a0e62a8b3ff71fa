let
  keys = import ./keys;
  lib = import ./lib { inherit keys; };
  again = import ./keys/default.nix;
in
{
  "server.age" = lib.mkRule [ "server" ];
  "nas.age".publicKeys = lib.forHosts [ "nas" "builder" ];
  "same.age".publicKeys = if again == keys then again.admins else [ ];
}
