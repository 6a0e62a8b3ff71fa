{ "a.age".publicKeys = [ ]; }
}
