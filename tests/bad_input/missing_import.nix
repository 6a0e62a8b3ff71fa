let keys = import ./keys.nix; in
{ "a.age".publicKeys = keys; }
