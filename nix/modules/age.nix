# agefleet secrets for NixOS and nix-darwin, option-compatible with agenix's `age` module.
#
# The module only writes a manifest (../manifest.nix); `agefleet activate` does the work:
# RAM-backed mount, generation N+1, decryption, atomic `secretsDir` swap, ownership.
#
# NixOS ordering is agenix's: the install phase runs before the `users` activation snippet
# (so `hashedPasswordFile` can be a secret), the chown phase after `users` and `groups`.
# With systemd-sysusers or userborn, users are made by a unit after activation, so a
# oneshot unit after them runs every phase instead. nix-darwin: install in
# `extraActivation` (after `createRun` has made /run, before users), chown after `users`,
# and a launchd daemon at boot; a failing secret is reported and never aborts activation.
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
  isDarwin = lib.hasAttrByPath [
    "environment"
    "darwinConfig"
  ] options;

  # Set by the configuration, not just the option's default.
  userSet = option: option.highestPrio < (lib.mkOptionDefault null).priority;

  sysusersEnabled =
    !isDarwin
    && (options.systemd ? sysusers)
    && (config.systemd.sysusers.enable || (config.services.userborn.enable or false));

  users = config.users.users;

  tpl = import ./templates.nix { inherit lib; };
  # Secrets and templates that restart or reload units (NixOS: switch-to-configuration).
  withUnits = tpl.withUnits { inherit (cfg) secrets templates; };

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
            restartUnits
            reloadUnits
            ;
        }) cfg.secrets;
        templates = tpl.forManifest [
          "name"
          "path"
          "mode"
          "owner"
          "group"
          "symlink"
          "restartUnits"
          "reloadUnits"
        ] cfg.templates;
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

  # The binary mounts ramfs/tmpfs itself on Linux; on macOS a RAM disk is attached first
  # (as agenix does) and the binary uses the directory as it finds it. Every step returns
  # on failure: the caller runs this where `set -e` does not apply, and secrets must never
  # be written to the mount point's own (persistent) volume.
  darwinMount = ''
    _agefleet_mount() {
      diskutil info "${cfg.secretsMountPoint}" &> /dev/null && return 0
      mkdir -p "${cfg.secretsMountPoint}" || return 1
      local dev
      dev=$(hdiutil attach -nomount ram://1048576 | sed 's/[[:space:]]*$//') || return 1
      newfs_hfs -v agenix "$dev" || return 1
      mount -t hfs -o nobrowse,nodev,nosuid,-m=0751 "$dev" "${cfg.secretsMountPoint}" || return 1
    }
  '';

  # One secret that cannot be installed (not rekeyed yet, identity missing) is reported by
  # agefleet and must not abort `darwin-rebuild switch`, which runs under `set -e`.
  darwinPhase = phase: ''
    ${activate phase} || echo "[agenix] WARNING: agefleet activate --phase ${phase} reported failures (above); activation continues" >&2
  '';

  # `owner` and `group` of a secret or of a template's rendered file (`what`).
  ownerOptions = config: what: {
    owner = mkOption {
      type = types.str;
      default = "0";
      description = "User (name or uid) owning the ${what}.";
    };
    group = mkOption {
      type = types.str;
      default = users.${config.owner}.group or "0";
      defaultText = literalExpression ''config.users.users.''${owner}.group or "0"'';
      description = "Group (name or gid) of the ${what}.";
    };
  };

  secretType = types.submodule (
    { config, name, ... }:
    {
      options =
        tpl.secretOptions {
          inherit config name;
          inherit (cfg) secretsDir;
        }
        // ownerOptions config "decrypted secret"
        // tpl.unitOptions;
    }
  );

  templateType = tpl.templateType {
    inherit (cfg) secretsDir;
    extra = config: ownerOptions config "rendered file";
  };
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
    ageBin = mkOption {
      type = types.str;
      default = "${pkgs.age}/bin/age";
      defaultText = literalExpression ''"''${pkgs.age}/bin/age"'';
      description = "Accepted for agenix compatibility and ignored: agefleet decrypts natively.";
    };
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
    inherit
      (tpl.templateOptions {
        inherit templateType;
        inherit (cfg) secrets;
      })
      templates
      placeholder
      ;
    secretsDir = mkOption {
      type = types.path;
      default = "/run/agenix";
      description = "The symlink to the current generation of secrets.";
    };
    secretsMountPoint = mkOption {
      type =
        types.addCheck types.str (
          s: (builtins.match "[ \t\n]*" s) == null && (builtins.match ".+/" s) == null
        )
        // {
          description = "${types.str.description} (with check: non-empty without trailing slash)";
        };
      default = "/run/agenix.d";
      description = "The RAM-backed mount holding the generations (non-empty, no trailing slash).";
    };
    fs = mkOption {
      type = types.enum [
        "tmpfs"
        "ramfs"
      ];
      default = "ramfs";
      description = ''
        The RAM filesystem mounted at `secretsMountPoint` on Linux. ramfs (the default) is
        what agenix mounts and looks for, so switching back to agenix reuses it. tmpfs is
        mounted with `noswap` (Linux 6.4+; ramfs on older kernels) and has a size limit,
        but agenix does not recognise it: after switching back to agenix, reboot (or
        unmount it) so that the old secrets do not stay in a hidden tmpfs.
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

  config = mkIf (cfg.secrets != { } || cfg.templates != { }) (mkMerge [
    {
      # `symlink = false` writes the plaintext itself at `path`: outside a RAM-backed
      # filesystem it is on disk (agefleet also warns at activation, and removes the file
      # when the secret leaves the configuration).
      warnings =
        lib.mapAttrsToList (
          n: s:
          "age.secrets.${n}: symlink = false writes the decrypted secret at ${s.path}; "
          + "unless that is on a RAM-backed filesystem (tmpfs/ramfs) the plaintext is on disk."
        ) (lib.filterAttrs (_: s: !s.symlink && !lib.hasPrefix "/run/" s.path) cfg.secrets)
        ++ lib.optional (userSet options.age.ageBin) "age.ageBin is ignored: agefleet decrypts secrets itself, without an age binary."
        ++ lib.optional (sysusersEnabled && withUnits != [ ]) (
          "${lib.head withUnits}: restartUnits/reloadUnits are not applied with systemd-sysusers or userborn: "
          + "agenix-install-secrets.service installs the secrets after switch-to-configuration has read its restart list."
        );

      assertions = [
        {
          assertion = cfg.identityPaths != [ ];
          message = "age.identityPaths must be set, for example by enabling openssh.";
        }
      ]
      ++ tpl.assertions { inherit (cfg) secrets templates; }
      ++ lib.optional (isDarwin && withUnits != [ ]) {
        assertion = false;
        message = "${lib.head withUnits}: restartUnits and reloadUnits need systemd (NixOS); nix-darwin has no restart list.";
      };
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
        }
        # `switch-to-configuration dry-activate`: with NIXOS_ACTION=dry-activate, agefleet
        # installs nothing and lists the units that would be restarted or reloaded.
        // lib.optionalAttrs (withUnits != [ ]) { supportsDryActivation = true; };
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
        # After `createRun` (/run exists) and before `groups`/`users`, so that root-owned
        # secrets (password files) exist before users are made.
        extraActivation.text = ''
          ${darwinMount}
          if _agefleet_mount; then
            ${darwinPhase "install"}
          else
            echo "[agenix] WARNING: cannot mount a RAM disk at ${cfg.secretsMountPoint}; secrets not installed" >&2
          fi
        '';
        users.text = lib.mkAfter (darwinPhase "chown");
      };

      # At boot. A failed mount exits non-zero, so launchd retries; a failing secret is
      # logged and the others stay installed (no new generation every retry).
      launchd.daemons.activate-agenix = {
        script = ''
          ${darwinMount}
          _agefleet_mount || exit 1
          ${darwinPhase "all"}
          exit 0
        '';
        serviceConfig = {
          RunAtLoad = true;
          KeepAlive.SuccessfulExit = false;
        };
      };
    })
  ]);
}
