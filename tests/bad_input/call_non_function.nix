{
  "a.age".publicKeys = 1 2;
}
