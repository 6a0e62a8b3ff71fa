{
  "a.age".publicKeys = [ admin ];
}
