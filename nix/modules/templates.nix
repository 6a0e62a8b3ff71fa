# What the NixOS/nix-darwin module (./age.nix) and the home-manager module (./age-home.nix)
# share: the `age.secrets.<name>` options both declare, and for `restartUnits`/`reloadUnits`
# and `age.templates` the option declarations, the placeholders, the assertions and what goes
# into the manifest.
{ lib }:
let
  inherit (lib) mkOption literalExpression types;
  placeholder = import ../placeholder.nix;
  marker = "<AGEFLEET:PLACEHOLDER:";
in
rec {
  # The options of `age.secrets.<name>` both modules declare alike (agenix's own, with
  # `symlink` as agenix spells it): the NixOS/nix-darwin module adds `owner` and `group`.
  secretOptions =
    {
      secretsDir,
      config,
      name,
    }:
    {
      name = mkOption {
        type = types.str;
        default = name;
        description = "Name of the file in `age.secretsDir`.";
      };
      file = mkOption {
        type = types.path;
        description = "The age file the secret is decrypted from.";
      };
      path = mkOption {
        type = types.str;
        default = "${secretsDir}/${config.name}";
        defaultText = literalExpression ''"''${config.age.secretsDir}/''${name}"'';
        description = "Where the decrypted secret is available.";
      };
      mode = mkOption {
        type = types.str;
        default = "0400";
        description = ''
          Permissions of the decrypted secret in a format understood by chmod: octal
          (`"0440"`) or symbolic (`"u=r,g=r,o="`). Setuid, setgid and sticky bits are
          refused (that secret fails to install; the others are installed).
        '';
      };
      symlink = mkOption {
        type = types.bool;
        default = true;
        description = ''
          With a custom `path`: make `path` a symlink to `secretsDir/name` (true), or write
          the decrypted file itself at `path`, atomically (false).
        '';
      };
    };

  # `restartUnits` / `reloadUnits`, as sops-nix spells them.
  unitOptions = {
    restartUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "nginx.service" ];
      description = ''
        Units restarted by `switch-to-configuration` when this file's content changes (it
        is new, its bytes differ from the previous generation's, or it is removed). NixOS
        only; nothing is listed on the first activation after boot.
      '';
    };
    reloadUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "nginx.service" ];
      description = "Units reloaded by `switch-to-configuration` when this file's content changes.";
    };
  };

  # `age.templates.<name>`; `extra` adds the options only one module has (owner, group).
  templateType =
    {
      secretsDir,
      extra ? (_: { }),
    }:
    types.submodule (
      { config, name, ... }:
      {
        options = {
          name = mkOption {
            type = types.str;
            default = name;
            description = "Name of the rendered file in `age.secretsDir`.";
          };
          content = mkOption {
            type = types.lines;
            default = "";
            example = literalExpression ''"password = ''${config.age.placeholder.db-password}\n"'';
            description = ''
              The file's text, with `config.age.placeholder.<secret>` where a secret's value
              goes. It is in the Nix store: only placeholders, never secrets.
            '';
          };
          file = mkOption {
            type = types.nullOr types.path;
            default = null;
            example = literalExpression "./app.conf";
            description = "A file holding the template's text, instead of `content`.";
          };
          path = mkOption {
            type = types.str;
            default = "${secretsDir}/${config.name}";
            defaultText = literalExpression ''"''${config.age.secretsDir}/''${name}"'';
            description = "Where the rendered file is available.";
          };
          mode = mkOption {
            type = types.str;
            default = "0400";
            description = "Permissions of the rendered file (octal or symbolic; no setuid, setgid or sticky bits).";
          };
          symlink = mkOption {
            type = types.bool;
            default = true;
            description = ''
              With a custom `path`: make `path` a symlink to `secretsDir/name` (true), or write
              the rendered file itself at `path`, atomically (false).
            '';
          };
        }
        // unitOptions
        // extra config;
      }
    );

  # `age.templates` and `age.placeholder`, declared alike by both modules; `templateType`
  # is the module's own (`templateType` above, with its `extra` options).
  templateOptions =
    { templateType, secrets }:
    {
      templates = mkOption {
        type = types.attrsOf templateType;
        default = { };
        description = ''
          Files rendered at activation from a text with placeholders
          (`config.age.placeholder.<secret>`), each replaced by that secret's plaintext.
        '';
      };
      placeholder = mkOption {
        type = types.attrsOf types.str;
        default = placeholders secrets;
        defaultText = literalExpression "a token per secret, derived from its name";
        readOnly = true;
        description = ''
          The placeholder of each secret in `age.templates.<name>.content`: an opaque string
          derived from the secret's name (never its value).
        '';
      };
    };

  # `config.age.placeholder.<secret>` for every declared secret.
  placeholders = secrets: lib.mapAttrs (_: s: placeholder s.name) secrets;

  # The placeholders in a text: the hashes after each marker.
  usedHashes =
    text:
    map (part: builtins.substring 0 64 part) (lib.tail (lib.splitString marker text));

  text = t: if t.file != null then builtins.readFile t.file else t.content;

  assertions =
    { secrets, templates }:
    let
      known = map (s: builtins.hashString "sha256" s.name) (lib.attrValues secrets);
      names = map (s: s.name) (lib.attrValues secrets);
    in
    lib.concatLists (
      lib.mapAttrsToList (n: t: [
        {
          assertion = t.file == null || t.content == "";
          message = "age.templates.${n}: set `content` or `file`, not both.";
        }
        {
          assertion = lib.all (h: lib.elem h known) (usedHashes (text t));
          message = "age.templates.${n}: uses the placeholder of a secret that is not declared in age.secrets.";
        }
        {
          assertion = !(lib.elem t.name names);
          message = "age.templates.${n}: the secret age.secrets.${t.name} has the same name (both would be secretsDir/${t.name}).";
        }
      ]) templates
    );

  # Every entry with units, as "age.secrets.<n>" / "age.templates.<n>".
  withUnits =
    { secrets, templates }:
    let
      has = e: (e.restartUnits or [ ]) != [ ] || (e.reloadUnits or [ ]) != [ ];
    in
    map (n: "age.secrets.${n}") (lib.attrNames (lib.filterAttrs (_: has) secrets))
    ++ map (n: "age.templates.${n}") (lib.attrNames (lib.filterAttrs (_: has) templates));

  # The manifest's `templates` argument; `fields` picks the options the module has.
  forManifest =
    fields: templates:
    lib.mapAttrs (_: t: lib.getAttrs fields t // { content = text t; }) templates;
}
