let
  k = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice" "age1yr2r9zujd6yyy703kxm8ejxl2w0rskx8ewpff7g6txsujlnu955segzyz0" ];
  armored = [ "ci-token.age" "deploy-key.age" ];
  mk = name: {
    publicKeys = k;
    armor = builtins.elem name armored;
  };
in
{
  "ci-token.age" = mk "ci-token.age";
  "deploy-key.age" = mk "deploy-key.age";
  "plain.age" = mk "plain.age";
  "explicit.age" = { publicKeys = k; armor = true; };
  "explicit-false.age" = { publicKeys = k; armor = false; };
}
