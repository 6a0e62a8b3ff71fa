rec {
  a = b;
  b = a;
  "a.age".publicKeys = a;
}
