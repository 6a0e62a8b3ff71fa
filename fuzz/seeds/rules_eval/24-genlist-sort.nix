let
  keys = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob" ];
  sorted = builtins.sort (a: b: a < b) keys;
  indices = builtins.genList (i: i * i) 5;
in
{
  "sorted.age".publicKeys = sorted;
  "by-index.age".publicKeys = builtins.genList (i: builtins.elemAt keys (3 - i)) 2;
  "numbers.age" = {
    publicKeys = [ (builtins.elemAt sorted 0) ];
    inherit indices;
    desc = builtins.sort (a: b: a > b) indices;
    arith = [ (7 / 2) (7 - 10) (2 * 3 + 1) (builtins.add 1 2) (builtins.div 9 3) (-(4)) ];
  };
}
