let
  lines = s: builtins.filter (l: builtins.isString l && l != "") (builtins.split "\n" s);
  hostKeys = host: lines (builtins.readFile (./hosts + "/${host}.keys"));
  admin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKZ9bTDnYgojQaDda5zsA7SwpCZ3wjBBvElJG7sI/Pg alice";
in
{
  "server/db.age".publicKeys = [ admin ] ++ hostKeys "server";
  "nas/smb.age".publicKeys = [ admin ] ++ hostKeys "nas";
  "both.age".publicKeys = builtins.concatLists (map hostKeys [ "server" "nas" ]);
  "split-raw.age" = {
    publicKeys = [ admin ];
    pieces = builtins.split "(,)|;" "a,b;c";
  };
}
