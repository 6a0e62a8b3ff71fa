{ "a.age".publicKeys = builtins.fromJSON "{ nope"; }
