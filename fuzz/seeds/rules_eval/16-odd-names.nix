let
  k = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob" ];
in
{
  "with space.age".publicKeys = k;
  "-leading-dash.age".publicKeys = k;
  "--double.age".publicKeys = k;
  "unicodé ✓.age".publicKeys = k;
  "quote\"inside.age".publicKeys = k;
  "dollar$sign.age".publicKeys = k;
  plainIdent.publicKeys = k;
  "or".publicKeys = k;
}
