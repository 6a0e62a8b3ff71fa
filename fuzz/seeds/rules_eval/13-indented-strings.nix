let
  server = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server";
  multi = ''
    ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice
    ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjx+k9un0jsH52rjdFGWSuH8Icc5W2Pvt+DKY571hL6 bob

      ${server}
  '';
in
{
  "multi.age".publicKeys = [ multi ];
  "inline.age".publicKeys = [ ''ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1mW/P0OgkiuEtXDp4miulbDJ23jrE2wx8BTfyRIL0M carol'' ];
  "escapes.age" = {
    publicKeys = [ ''
      ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas
    '' ];
    note = ''
      dollar ''${not interpolated} and '''quotes'''
      tab ''\t and $plain
    '';
  };
}
