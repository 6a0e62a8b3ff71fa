{
  "a.age".publicKeys = [ "ssh-ed25519 AAAA ];
}
