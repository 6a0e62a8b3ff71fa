# agefleet secrets for home-manager, option-compatible with agenix's home-manager module.
#
# Secrets go under the user's runtime directory (tmpfs on Linux). The paths keep the
# literal `${XDG_RUNTIME_DIR}`, which `agefleet activate` expands itself; on macOS the
# launchd agent sets XDG_RUNTIME_DIR to the per-user temporary directory first. No mount
# and no chown happen here: the files belong to the user running the service.
{
  config,
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

  manifestFile = pkgs.writeText "agefleet-home-manifest.json" (
    builtins.toJSON (
      import ../manifest.nix {
        secrets = lib.mapAttrs (_: s: {
          inherit (s)
            name
            file
            path
            mode
            symlink
            ;
        }) cfg.secrets;
        inherit (cfg) secretsDir secretsMountPoint identityPaths;
      }
    )
  );

  # age plugins are found on PATH, as age finds them: activation runs with just these.
  pluginPath = lib.optionalString (
    cfg.plugins != [ ]
  ) "${pkgs.coreutils}/bin/env PATH=${lib.makeBinPath cfg.plugins} ";

  activateCommand = "${pluginPath}${cfg.package}/bin/agefleet activate --manifest ${manifestFile} --phase install";

  darwinScript = pkgs.writeShellScript "agefleet-home-activate" ''
    if [ -z "''${XDG_RUNTIME_DIR:-}" ]; then
      XDG_RUNTIME_DIR="$(/usr/bin/getconf DARWIN_USER_TEMP_DIR)"
      export XDG_RUNTIME_DIR
    fi
    exec ${activateCommand}
  '';

  secretType = types.submodule (
    { config, name, ... }:
    {
      options = {
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
          default = "${cfg.secretsDir}/${config.name}";
          defaultText = literalExpression ''"''${config.age.secretsDir}/''${name}"'';
          description = "Where the decrypted secret is available.";
        };
        mode = mkOption {
          type = types.strMatching "[0-7]{1,4}";
          default = "0400";
          description = "Octal permissions of the decrypted secret.";
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
    }
  );
in
{
  options.age = {
    package = mkOption {
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
      default = "\${XDG_RUNTIME_DIR}/agenix";
      description = "The symlink to the current generation (expanded by agefleet at activation).";
    };
    secretsMountPoint = mkOption {
      type = types.str;
      default = "\${XDG_RUNTIME_DIR}/agenix.d";
      description = "The directory holding the generations (expanded by agefleet at activation).";
    };
  };

  config = mkIf (cfg.secrets != { }) (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.identityPaths != [ ];
          message = "age.identityPaths must be set.";
        }
      ];
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
