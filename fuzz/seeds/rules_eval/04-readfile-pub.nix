let
  readKey = file: builtins.replaceStrings [ "\n" ] [ "" ] (builtins.readFile file);
  people = map readKey [ ./pubkeys/alice.pub ./pubkeys/bob.pub ./pubkeys/carol.pub ];
  server = builtins.readFile ./pubkeys/server.pub;
in
{
  "people.age".publicKeys = people;
  # The trailing newline stays in the string; agefleet drops empty lines.
  "server.age".publicKeys = [ server ] ++ people;
  "raw.age".publicKeys = map builtins.readFile [ ./pubkeys/alice.pub ];
}
