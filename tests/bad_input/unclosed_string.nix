# expect-parse-error (bad-input corpus: tests/bad_input.rs)
{
  "a.age".publicKeys = [ "ssh-ed25519 AAAA ];
}
