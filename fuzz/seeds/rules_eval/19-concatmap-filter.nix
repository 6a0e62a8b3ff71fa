let
  groups = {
    admins = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob" ];
    ops = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1mW/P0OgkiuEtXDp4miulbDJ23jrE2wx8BTfyRIL0M carol" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob" ];
    machines = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPzUZUmIQFNKKrPqOy8+gZRIIyEoOwUHXAA4eyupiNo8 builder" ];
  };
  members = names: builtins.concatMap (g: groups.${g}) names;
  unique = list: builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] list;
  notBuilder = k: builtins.match ".* builder$" k == null;
in
{
  "ops.age".publicKeys = unique (members [ "admins" "ops" ]);
  "machines.age".publicKeys = builtins.filter notBuilder groups.machines;
  "first.age".publicKeys = [ (builtins.head groups.admins) ] ++ builtins.tail groups.machines;
  "counted.age" = {
    publicKeys = [ (builtins.elemAt groups.machines 2) ];
    count = builtins.length (members [ "admins" "ops" "machines" ]);
    anyOps = builtins.any (k: k == builtins.head groups.ops) groups.admins;
    allMachines = builtins.all (k: builtins.substring 0 11 k == "ssh-ed25519") groups.machines;
  };
}
