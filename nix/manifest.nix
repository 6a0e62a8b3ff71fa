# The activation manifest read by `agefleet activate --manifest FILE`.
#
# A pure function (no nixpkgs): the modules call it, and the test suite evaluates it with
# `nix-instantiate --eval --strict --json`. Defaults are agenix's.
#
#   secrets: name -> { file, path ? secretsDir + "/" + name, mode ? "0400", owner ? "0",
#                      group ? "0", symlink ? true, name ? <attr name> }
{
  secrets,
  secretsDir ? "/run/agenix",
  secretsMountPoint ? "/run/agenix.d",
  identityPaths ? [ ],
  fs ? "ramfs",
}:
let
  secret =
    attrName: s:
    let
      name = s.name or attrName;
    in
    {
      inherit name;
      # Interpolation copies a path literal into the store (the file must be readable at
      # boot); a string is kept as it is.
      file = "${s.file}";
      path = s.path or "${secretsDir}/${name}";
      mode = s.mode or "0400";
      owner = s.owner or "0";
      group = s.group or "0";
      symlink = s.symlink or true;
    };
in
assert builtins.elem fs [
  "tmpfs"
  "ramfs"
];
{
  version = 1;
  inherit secretsDir secretsMountPoint fs;
  # toString, never interpolation: a private key must not be copied into the store.
  identityPaths = map toString identityPaths;
  secrets = builtins.attrValues (builtins.mapAttrs secret secrets);
}
