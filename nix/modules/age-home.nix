# agefleet secrets for home-manager, option-compatible with agenix's home-manager module.
#
# Secrets go under the user's runtime directory: `${XDG_RUNTIME_DIR}` (tmpfs) on Linux,
# `$(getconf DARWIN_USER_TEMP_DIR)` on macOS, as with agenix. The option values are
# agenix's strings; the manifest spells the macOS prefix `${XDG_RUNTIME_DIR}`, which
# `agefleet activate` expands itself, and the launchd agent sets XDG_RUNTIME_DIR to the
# per-user temporary directory first. No mount and no chown happen here: the files belong
# to the user running the service.
#
# `age.package` keeps agenix's meaning (the age implementation). agefleet decrypts
# natively, so it is ignored with a warning (an agefleet package given there is used as
# agefleet, as earlier versions of this module meant); agefleet itself is
# `age.agefleetPackage`.
{
  config,
  options,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkIf
    mkMerge
    literalExpression
    types
    ;

  cfg = config.age;
  inherit (pkgs.stdenv.hostPlatform) isDarwin isLinux;

  # agenix's spelling of the per-user directory on macOS (its scripts run it in a shell).
  darwinTempDir = "$(${lib.getExe pkgs.getconf} DARWIN_USER_TEMP_DIR)";
  userDirectory = dir: "${if isDarwin then darwinTempDir else "\${XDG_RUNTIME_DIR}"}/${dir}";
  # What `agefleet activate` expands; the launchd agent sets XDG_RUNTIME_DIR to that directory.
  forManifest = lib.replaceStrings [ darwinTempDir "$(getconf DARWIN_USER_TEMP_DIR)" ] [
    "\${XDG_RUNTIME_DIR}"
    "\${XDG_RUNTIME_DIR}"
  ];

  packageIsAgefleet = (cfg.package.pname or (lib.getName cfg.package)) == "agefleet";
  agefleet = if packageIsAgefleet then cfg.package else cfg.agefleetPackage;

  tpl = import ./templates.nix { inherit lib; };
  withUnits = tpl.withUnits { inherit (cfg) secrets templates; };

  manifestFile = pkgs.writeText "agefleet-home-manifest.json" (
    builtins.toJSON (
      import ../manifest.nix {
        secrets = lib.mapAttrs (_: s: {
          inherit (s)
            name
            file
            mode
            symlink
            ;
          path = forManifest s.path;
        }) cfg.secrets;
        templates = lib.mapAttrs (_: t: t // { path = forManifest t.path; }) (
          tpl.forManifest [
            "name"
            "path"
            "mode"
            "symlink"
          ] cfg.templates
        );
        secretsDir = forManifest cfg.secretsDir;
        secretsMountPoint = forManifest (toString cfg.secretsMountPoint);
        inherit (cfg) identityPaths;
      }
    )
  );

  # age plugins are found on PATH, as age finds them: activation runs with just these.
  pluginPath = lib.optionalString (
    cfg.plugins != [ ]
  ) "${pkgs.coreutils}/bin/env PATH=${lib.makeBinPath cfg.plugins} ";

  activateCommand = "${pluginPath}${agefleet}/bin/agefleet activate --manifest ${manifestFile} --phase install";

  # Always the per-user temporary directory, whatever the login environment says, so
  # that the files land where `config.age.secrets.<n>.path` (agenix's string) points.
  darwinScript = pkgs.writeShellScript "agefleet-home-activate" ''
    XDG_RUNTIME_DIR="$(${lib.getExe pkgs.getconf} DARWIN_USER_TEMP_DIR)"
    export XDG_RUNTIME_DIR
    exec ${activateCommand}
  '';

  userDirectoryText =
    dir:
    literalExpression ''"''${XDG_RUNTIME_DIR}"/''${dir} on linux or "$(getconf DARWIN_USER_TEMP_DIR)"/''${dir} on darwin'';

  secretType = types.submodule (
    { config, name, ... }:
    {
      options =
        tpl.secretOptions {
          inherit config name;
          inherit (cfg) secretsDir;
        }
        // tpl.unitOptions;
    }
  );
in
{
  options.age = {
    package = lib.mkPackageOption pkgs "age" { } // {
      description = ''
        agenix's age implementation, accepted for compatibility and ignored (with a
        warning when set): agefleet decrypts natively. See `age.agefleetPackage`.
      '';
    };
    agefleetPackage = mkOption {
      type = types.package;
      default = pkgs.agefleet or (pkgs.callPackage ../package.nix { });
      defaultText = literalExpression "pkgs.agefleet";
      description = "The agefleet package that activates the secrets.";
    };
    plugins = mkOption {
      type = types.listOf types.package;
      default = [ ];
      example = literalExpression "[ pkgs.age-plugin-yubikey ]";
      description = ''
        age plugins (packages providing `bin/age-plugin-<name>`) that the identities in
        `age.identityPaths` (`AGE-PLUGIN-…` lines) need at activation.
      '';
    };
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      description = "Secrets to decrypt for this user.";
    };
    inherit
      (tpl.templateOptions {
        templateType = tpl.templateType { inherit (cfg) secretsDir; };
        inherit (cfg) secrets;
      })
      templates
      placeholder
      ;
    identityPaths = mkOption {
      type = types.listOf types.path;
      default = [
        "${config.home.homeDirectory}/.ssh/id_ed25519"
        "${config.home.homeDirectory}/.ssh/id_rsa"
      ];
      defaultText = literalExpression ''
        [ "''${config.home.homeDirectory}/.ssh/id_ed25519" "''${config.home.homeDirectory}/.ssh/id_rsa" ]
      '';
      description = "Identities tried when decrypting; unreadable and passphrase-protected ones are skipped.";
    };
    secretsDir = mkOption {
      type = types.str;
      default = userDirectory "agenix";
      defaultText = userDirectoryText "agenix";
      description = "The symlink to the current generation (expanded by agefleet at activation).";
    };
    # Untyped, as in agenix.
    secretsMountPoint = mkOption {
      default = userDirectory "agenix.d";
      defaultText = userDirectoryText "agenix.d";
      description = "The directory holding the generations (expanded by agefleet at activation).";
    };
  };

  config = mkIf (cfg.secrets != { } || cfg.templates != { }) (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.identityPaths != [ ];
          message = "age.identityPaths must be set.";
        }
      ]
      ++ tpl.assertions { inherit (cfg) secrets templates; }
      ++ lib.optional (withUnits != [ ]) {
        assertion = false;
        message = "${lib.head withUnits}: restartUnits and reloadUnits are for NixOS system units; home-manager has no restart list.";
      };
      warnings = lib.optional (
        options.age.package.highestPrio < (lib.mkOptionDefault null).priority && !packageIsAgefleet
      ) "age.package (agenix's age implementation) is ignored: agefleet decrypts secrets itself. agefleet's own package is age.agefleetPackage.";
    }

    (mkIf isLinux {
      systemd.user.services.agenix = {
        Unit.Description = "agenix secrets (agefleet)";
        Service = {
          Type = "oneshot";
          ExecStart = activateCommand;
        };
        Install.WantedBy = [ "default.target" ];
      };
    })

    (mkIf isDarwin {
      launchd.agents.activate-agenix = {
        enable = true;
        config = {
          ProgramArguments = [ "${darwinScript}" ];
          KeepAlive = {
            Crashed = false;
            SuccessfulExit = false;
          };
          RunAtLoad = true;
          ProcessType = "Background";
          StandardOutPath = "${config.home.homeDirectory}/Library/Logs/agenix/stdout";
          StandardErrorPath = "${config.home.homeDirectory}/Library/Logs/agenix/stderr";
        };
      };
    })
  ]);
}
