let
  k = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDI08+yHg9jS5EPWTPKt/8TFpJJ1yMMn5HCDn8p+IrQb nas" ];
in
{
  "dir/x.age".publicKeys = k;
  "dir/sub/y.age".publicKeys = k;
  "a/b/c/d.age".publicKeys = k;
  "./dotted.age".publicKeys = k;
  "hosts/nas/smb.age" = { publicKeys = k; };
  "hosts/nas/smb.age.bak".publicKeys = k;
}
