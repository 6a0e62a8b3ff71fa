let
  key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server";
  env = "prod";
  n = 3;
in
{
  "${env}-db.age".publicKeys = [ key ];
  "${env}/api-${toString n}.age".publicKeys = [ key ];
  ${"plain" + "-concat.age"}.publicKeys = [ key ];
  "shard-${toString (n * 2 + 1)}.age".publicKeys = [ key ];
  "${if n > 2 then "big" else "small"}.age".publicKeys = [ key ];
}
// builtins.listToAttrs (builtins.genList (i: {
  name = "worker-${toString i}.age";
  value.publicKeys = [ key ];
}) n)
