# The activation manifest read by `agefleet activate --manifest FILE`.
#
# A pure function (no nixpkgs): the modules call it, and the test suite evaluates it with
# `nix-instantiate --eval --strict --json`. Defaults are agenix's.
#
#   secrets: name -> { file, path ? secretsDir + "/" + name, mode ? "0400", owner ? "0",
#                      group ? "0", symlink ? true, name ? <attr name>,
#                      restartUnits ? [ ], reloadUnits ? [ ] }
#   templates: name -> { content, path ? secretsDir + "/" + name, mode ? "0400",
#                        owner ? "0", group ? "0", symlink ? true, name ? <attr name>,
#                        restartUnits ? [ ], reloadUnits ? [ ] }
#
# The units of a secret or template whose content changed are appended to
# `activationRestartList` / `activationReloadList` (NixOS's switch-to-configuration reads
# them). Fields that are empty or unused are left out, so a configuration without units or
# templates gets the manifest it always got.
{
  secrets,
  templates ? { },
  secretsDir ? "/run/agenix",
  secretsMountPoint ? "/run/agenix.d",
  identityPaths ? [ ],
  fs ? "ramfs",
  activationRestartList ? "/run/nixos/activation-restart-list",
  activationReloadList ? "/run/nixos/activation-reload-list",
}:
let
  suffixes = "service|socket|device|mount|automount|swap|target|path|timer|slice|scope";
  # systemd.unit(5): a prefix of [-A-Za-z0-9:_.\], an optional non-empty instance after `@`,
  # a known suffix; at most 255 characters. No `/`, no whitespace, no control characters.
  validUnit =
    u:
    builtins.isString u
    && builtins.stringLength u <= 255
    && builtins.match "[-A-Za-z0-9:_.\\\\]+(@[-A-Za-z0-9:_.\\\\]+)?\\.(${suffixes})" u != null;

  units =
    option: field: list:
    let
      bad = builtins.filter (u: !validUnit u) list;
    in
    if bad == [ ] then
      list
    else
      throw "${option}.${field}: ${builtins.toJSON (builtins.head bad)} is not a valid systemd unit name (NAME.service, NAME@INSTANCE.timer…: no `/`, no whitespace or control characters, at most 255 characters)";

  # The units of one entry, left out when there are none.
  unitFields =
    option: s:
    let
      restart = units option "restartUnits" (s.restartUnits or [ ]);
      reload = units option "reloadUnits" (s.reloadUnits or [ ]);
    in
    (if restart != [ ] then { restartUnits = restart; } else { })
    // (if reload != [ ] then { reloadUnits = reload; } else { });

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
    }
    // unitFields "age.secrets.${attrName}" s;

  # A template's text is public (it holds placeholders, not secrets) and goes into the
  # manifest; its mode is checked here so that a setuid template is an evaluation error.
  templateMode =
    attrName: mode:
    if builtins.match "0?[0-7]{3}" mode != null || builtins.match "[ugoa]*[-+=][rwxX]*(,[ugoa]*[-+=][rwxX]*)*" mode != null then
      mode
    else
      throw "age.templates.${attrName}.mode: ${builtins.toJSON mode} is not an octal mode without setuid, setgid or sticky bits (\"0400\", \"0440\") or a symbolic one (\"u=r,g=r\")";

  template =
    attrName: t:
    let
      name = t.name or attrName;
      f = unitFields "age.templates.${attrName}" t;
    in
    {
      inherit name;
      content = t.content;
      path = t.path or "${secretsDir}/${name}";
      mode = templateMode attrName (t.mode or "0400");
      owner = t.owner or "0";
      group = t.group or "0";
      symlink = t.symlink or true;
      restartUnits = f.restartUnits or [ ];
      reloadUnits = f.reloadUnits or [ ];
    };

  secretList = builtins.attrValues (builtins.mapAttrs secret secrets);
  templateList = builtins.attrValues (builtins.mapAttrs template templates);
  anyUnits = builtins.any (e: (e.restartUnits or [ ]) != [ ] || (e.reloadUnits or [ ]) != [ ]) (
    secretList ++ templateList
  );
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
  secrets = secretList;
}
// (if templateList != [ ] then { templates = templateList; } else { })
// (if anyUnits then { inherit activationRestartList activationReloadList; } else { })
