{ "a.age".publicKeys = [ (builtins.readFile ./absent.pub) ]; }
