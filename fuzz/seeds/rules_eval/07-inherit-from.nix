let
  keys = import ./keys.nix;
  inherit (keys) alice bob;
  inherit (keys) server nas;
  hosts = { inherit (keys) laptop router; extra = keys.carol; };
in
{
  "a.age".publicKeys = [ alice bob ];
  "b.age".publicKeys = [ server nas ] ++ builtins.attrValues hosts;
  "c.age" = { publicKeys = [ alice ]; inherit (keys) users; };
}
