let
  common = rec {
    alice = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice";
    bob = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob";
    admins = [ alice bob ];
  };
  base = {
    "a.age".publicKeys = common.admins;
    "b.age".publicKeys = common.admins;
  };
  overrides = {
    "b.age" = { publicKeys = [ common.alice ]; armor = true; };
    "c.age".publicKeys = [ common.bob "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server" ];
  };
in
base // overrides // rec {
  server = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server";
  "d.age".publicKeys = [ server ] ++ common.admins;
}
