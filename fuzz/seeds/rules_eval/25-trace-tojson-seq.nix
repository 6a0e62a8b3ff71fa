let
  key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1mW/P0OgkiuEtXDp4miulbDJ23jrE2wx8BTfyRIL0M carol";
  info = { owner = "root"; mode = "0400"; };
in
builtins.trace "evaluating rules" {
  "traced.age".publicKeys = builtins.trace "one key" [ key ];
  "json.age" = {
    publicKeys = builtins.seq info [ key ];
    meta = builtins.toJSON info;
    deep = builtins.deepSeq info "ok";
    tried = builtins.tryEval (throw "caught");
    triedOk = builtins.tryEval 42;
  };
}
