let
  keys = import ./keys.nix;
  production = true;
  pick = cond: a: b: if cond then a else b;
in
assert builtins.length keys.users == 2;
assert production -> keys ? server;
with keys;
{
  "prod.age".publicKeys = if production then systems else [ laptop ];
  "dev.age".publicKeys = pick (!production) everyone [ laptop ] ++ users;
  "logic.age" = {
    publicKeys = [ alice ];
    flags = [ (true && !false) (false || true) (1 < 2) (2 >= 3) ("a" != "b") (null == null) ];
  };
}
