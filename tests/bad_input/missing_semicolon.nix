{
  "a.age".publicKeys = [ ]
}
