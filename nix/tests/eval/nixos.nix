# NixOS, as far as the `age` modules touch it, for evaluation tests (nixpkgs' nixos/ tree
# is not available here). `system.activationScripts` copies NixOS's semantics
# (nixos/modules/system/activation/activation-script.nix): a snippet is a string or
# { text, deps, supportsDryActivation }, each is wrapped with its headline and
# `_localstatus`, and the script is `lib.textClosureMap` over the snippets (deps first, then
# attribute-name order), with an ERR trap instead of `set -e`: a failing snippet is
# reported and the next one still runs. `users`/`groups`/`specialfs` are given by the test
# (NixOS's own make users; a test makes real ones). The rest are option declarations only.
{
  lib,
  pkgs,
  modules,
  # Shell text of the `users`, `groups` and `specialfs` snippets.
  usersText ? "",
  groupsText ? "",
  specialfsText ? "",
}:
let
  inherit (lib) mkOption types;

  scriptType = types.either types.str (
    types.submodule {
      options = {
        deps = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        text = mkOption { type = types.lines; };
        supportsDryActivation = mkOption {
          type = types.bool;
          default = false;
        };
      };
    }
  );

  activationScript =
    set: onlyDry:
    let
      set' = lib.mapAttrs (
        _: v: if lib.isString v then (lib.noDepEntry v) // { supportsDryActivation = false; } else v
      ) set;
      withHeadlines = lib.mapAttrs (
        a: v:
        v
        // {
          text = ''
            #### Activation script snippet ${a}:
            _localstatus=0
            ${v.text}

            if (( _localstatus > 0 )); then
              printf "Activation script snippet '%s' failed (%s)\n" "${a}" "$_localstatus"
            fi
          '';
        }
      ) set';
      withDrySnippets = lib.mapAttrs (
        a: v:
        if onlyDry && !v.supportsDryActivation then
          v // { text = "#### Activation script snippet ${a} does not support dry activation."; }
        else
          v
      ) withHeadlines;
    in
    ''
      #!/bin/sh
      _status=0
      trap "_status=1 _localstatus=\$?" ERR
      umask 0022

      ${lib.textClosureMap lib.id withDrySnippets (lib.attrNames withDrySnippets)}

      exit $_status
    '';

  stubs =
    { config, ... }:
    {
      options = {
        system.activationScripts = mkOption {
          type = types.attrsOf scriptType;
          default = { };
        };
        system.activationScript = mkOption {
          type = types.str;
          readOnly = true;
        };
        system.dryActivationScript = mkOption {
          type = types.str;
          readOnly = true;
        };
        systemd.services = mkOption {
          type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; });
          default = { };
        };
        systemd.sysusers.enable = mkOption {
          type = types.bool;
          default = false;
        };
        services.userborn.enable = mkOption {
          type = types.bool;
          default = false;
        };
        services.openssh.enable = mkOption {
          type = types.bool;
          default = false;
        };
        services.openssh.hostKeys = mkOption {
          type = types.listOf types.attrs;
          default = [
            {
              type = "rsa";
              bits = 4096;
              path = "/etc/ssh/ssh_host_rsa_key";
            }
            {
              type = "ed25519";
              path = "/etc/ssh/ssh_host_ed25519_key";
            }
          ];
        };
        environment.systemPackages = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        i18n.defaultLocale = mkOption {
          type = types.str;
          default = "en_US.UTF-8";
        };
        users.mutableUsers = mkOption {
          type = types.bool;
          default = true;
        };
        users.users = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule (
              { config, ... }:
              {
                freeformType = types.attrsOf types.anything;
                options = {
                  isNormalUser = mkOption {
                    type = types.bool;
                    default = false;
                  };
                  group = mkOption {
                    type = types.str;
                    default = "";
                  };
                  uid = mkOption {
                    type = types.nullOr types.int;
                    default = null;
                  };
                  hashedPasswordFile = mkOption {
                    type = types.nullOr types.str;
                    default = null;
                  };
                };
                config.group = lib.mkIf config.isNormalUser (lib.mkDefault "users");
              }
            )
          );
        };
        users.groups = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              freeformType = types.attrsOf types.anything;
              options.gid = mkOption {
                type = types.nullOr types.int;
                default = null;
              };
            }
          );
        };
        # agenix's integration test imports home-manager's NixOS module; its users are
        # evaluated by ./home.nix instead.
        home-manager.users = mkOption {
          type = types.attrsOf types.deferredModule;
          default = { };
        };
      };
      config = {
        users.groups.users.gid = 100;
        system.activationScripts = {
          specialfs = specialfsText;
          users = {
            text = usersText;
            supportsDryActivation = true;
          };
          groups = {
            text = groupsText;
            deps = [ "users" ];
            supportsDryActivation = true;
          };
        };
        system.activationScript = activationScript config.system.activationScripts false;
        system.dryActivationScript = activationScript config.system.activationScripts true;
      };
    };
in
lib.evalModules {
  modules = [
    stubs
    ./checks.nix
    { _module.args.pkgs = pkgs; }
  ]
  ++ modules;
}
