/* A rules file with every comment style
   and identifiers that look like keywords. */
let
  # single-line comment
  or' = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice"; # trailing comment
  in' = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob";
  set = { or = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas"; };
in
{
  "keywords.age".publicKeys = [ or' in' set.or ];
  "default.age".publicKeys = [ (set.missing or or') ];
  "nested-default.age".publicKeys = [ (set.a.b.c or in') ];
}
