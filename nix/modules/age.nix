# agefleet secrets for NixOS and nix-darwin, option-compatible with agenix's `age` module.
#
# The module only writes a manifest (../manifest.nix); `agefleet activate` does the work:
# RAM-backed mount, generation N+1, decryption, atomic `secretsDir` swap, ownership.
#
# NixOS ordering is agenix's: the install phase runs before the `users` activation snippet
# (so `hashedPasswordFile` can be a secret), the chown phase after `users` and `groups`.
# With systemd-sysusers or userborn, users are made by a unit after activation, so a
# oneshot unit after them runs every phase instead. nix-darwin: install in preActivation,
# chown after `users`, and a launchd daemon at boot.
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
    optionalAttrs
    literalExpression
    types
    ;

  cfg = config.age;

  # nix-darwin has `environment.darwinConfig`; NixOS does not (agenix's test).
  isDarwin = builtins.hasAttr "darwinConfig" options.environment;

  sysusersEnabled =
    !isDarwin
    && (options.systemd ? sysusers)
    && (config.systemd.sysusers.enable || (config.services.userborn.enable or false));

  users = config.users.users;

  manifestFile = pkgs.writeText "agefleet-manifest.json" (
    builtins.toJSON (
      import ../manifest.nix {
        secrets = lib.mapAttrs (_: s: {
          inherit (s)
            name
            file
            path
            mode
            owner
            group
            symlink
            ;
        }) cfg.secrets;
        inherit (cfg)
          secretsDir
          secretsMountPoint
          identityPaths
          fs
          ;
      }
    )
  );

  # age plugins (`age-plugin-<name>`) are found on PATH, as age finds them; activation runs
  # with a PATH of just the configured plugins (agenix users put them in `age.ageBin`).
  pluginPath = lib.optionalString (
    cfg.plugins != [ ]
  ) "${pkgs.coreutils}/bin/env PATH=${lib.makeBinPath cfg.plugins} ";

  activate =
    phase:
    "${pluginPath}${cfg.package}/bin/agefleet activate --manifest ${manifestFile} --phase ${phase}";

  # The binary mounts tmpfs/ramfs itself on Linux; on macOS a RAM disk is attached first
  # (as agenix does) and the binary uses the directory as it finds it.
  darwinMount = ''
    if ! diskutil info "${cfg.secretsMountPoint}" &> /dev/null; then
      mkdir -p "${cfg.secretsMountPoint}"
      num_sectors=1048576
      dev=$(hdiutil attach -nomount ram://"$num_sectors" | sed 's/[[:space:]]*$//')
      newfs_hfs -v agenix "$dev"
      mount -t hfs -o nobrowse,nodev,nosuid,-m=0751 "$dev" "${cfg.secretsMountPoint}"
    fi
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
        owner = mkOption {
          type = types.str;
          default = "0";
          description = "User (name or uid) owning the decrypted secret.";
        };
        group = mkOption {
          type = types.str;
          default = users.${config.owner}.group or "0";
          defaultText = literalExpression ''config.users.users.''${owner}.group or "0"'';
          description = "Group (name or gid) of the decrypted secret.";
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
  imports = [
    (lib.mkRenamedOptionModule
      [
        "age"
        "sshKeyPaths"
      ]
      [
        "age"
        "identityPaths"
      ]
    )
  ];

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
      example = literalExpression "[ pkgs.age-plugin-tpm pkgs.age-plugin-yubikey ]";
      description = ''
        age plugins (packages providing `bin/age-plugin-<name>`) that the identities in
        `age.identityPaths` (`AGE-PLUGIN-…` lines) need at activation.
      '';
    };
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      description = "Secrets to decrypt at activation.";
    };
    secretsDir = mkOption {
      type = types.path;
      default = "/run/agenix";
      description = "The symlink to the current generation of secrets.";
    };
    secretsMountPoint = mkOption {
      type = types.addCheck types.str (
        s: (builtins.match "[ \t\n]*" s) == null && (builtins.match ".+/" s) == null
      );
      default = "/run/agenix.d";
      description = "The RAM-backed mount holding the generations (non-empty, no trailing slash).";
    };
    fs = mkOption {
      type = types.enum [
        "tmpfs"
        "ramfs"
      ];
      default = "tmpfs";
      description = ''
        tmpfs is mounted with `noswap` (Linux 6.4+; ramfs on older kernels). ramfs never
        swaps either but has no size limit.
      '';
    };
    identityPaths = mkOption {
      type = types.listOf types.path;
      default =
        if isDarwin then
          [
            "/etc/ssh/ssh_host_ed25519_key"
            "/etc/ssh/ssh_host_rsa_key"
          ]
        else if (config.services.openssh.enable or false) then
          map (e: e.path) (
            lib.filter (e: e.type == "rsa" || e.type == "ed25519") config.services.openssh.hostKeys
          )
        else
          [ ];
      defaultText = literalExpression ''
        the ed25519 and rsa keys of services.openssh.hostKeys (NixOS),
        [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/ssh_host_rsa_key" ] (nix-darwin)
      '';
      description = "Identities (SSH or age keys) tried when decrypting; unreadable ones are skipped.";
    };
  };

  config = mkIf (cfg.secrets != { }) (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.identityPaths != [ ];
          message = "age.identityPaths must be set, for example by enabling openssh.";
        }
      ];
    }

    (optionalAttrs (!isDarwin) {
      systemd.services.agenix-install-secrets = mkIf sysusersEnabled {
        description = "Install agenix secrets (agefleet)";
        wantedBy = [ "sysinit.target" ];
        before = [ "sysinit.target" ];
        after = [
          "systemd-sysusers.service"
          "userborn.service"
        ];
        unitConfig.DefaultDependencies = "no";
        restartTriggers = [ manifestFile ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = activate "all";
        };
      };

      system.activationScripts = mkIf (!sysusersEnabled) {
        # Kept (empty) so configurations ordering against agenix's snippets still evaluate.
        agenixNewGeneration = {
          text = "";
          deps = [ "specialfs" ];
        };
        agenixInstall = {
          text = activate "install";
          deps = [
            "agenixNewGeneration"
            "specialfs"
          ];
        };
        # So user passwords can be secrets.
        users.deps = [ "agenixInstall" ];
        agenixChown = {
          text = activate "chown";
          deps = [
            "users"
            "groups"
          ];
        };
        # So other snippets can depend on the secrets being in place.
        agenix = {
          text = "";
          deps = [ "agenixChown" ];
        };
      };
    })

    (optionalAttrs isDarwin {
      system.activationScripts = {
        # Root-owned secrets can exist before users do (password files).
        preActivation.text = ''
          ${darwinMount}
          ${activate "install"}
        '';
        users.text = lib.mkAfter (activate "chown");
      };

      launchd.daemons.activate-agenix = {
        script = ''
          set -e
          ${darwinMount}
          ${activate "all"}
        '';
        serviceConfig = {
          RunAtLoad = true;
          KeepAlive.SuccessfulExit = false;
        };
      };
    })
  ]);
}
