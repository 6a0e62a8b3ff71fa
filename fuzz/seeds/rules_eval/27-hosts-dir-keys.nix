let
  hostNames = [ "laptop" "server" "nas" ];
  readKeys = name:
    let
      text = builtins.readFile (./hosts + "/${name}.keys");
      lines = builtins.filter builtins.isString (builtins.split "\n" text);
    in
    builtins.filter (l: l != "" && builtins.substring 0 1 l != "#") lines;
  admin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice";
  rules = map (name: {
    name = "${name}/host-secret.age";
    value = { publicKeys = [ admin ] ++ readKeys name; };
  }) hostNames;
in
builtins.listToAttrs rules
// {
  "all-hosts.age".publicKeys = [ admin ] ++ builtins.concatMap readKeys hostNames;
  # Whole files as one multi-line string: agefleet splits it into one recipient per line.
  "whole-file.age".publicKeys = [ (builtins.readFile ./hosts/server.keys) ];
}
