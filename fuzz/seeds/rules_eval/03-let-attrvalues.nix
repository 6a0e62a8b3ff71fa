let
  users = {
    alice = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice";
    bob = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob";
  };
  systems = {
    laptop = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALRAR5OrK3CospN77xuOH/lcx7mlE7PHt5pL+wgKeS9 laptop";
    server = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server";
    nas = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas";
  };
  allUsers = builtins.attrValues users;
  allSystems = builtins.attrValues systems;
in
{
  "shared.age".publicKeys = allUsers ++ allSystems;
  "users-only.age".publicKeys = allUsers;
  "nas-smb.age".publicKeys = allUsers ++ [ systems.nas ];
  "names.age".publicKeys = builtins.attrNames systems;
}
