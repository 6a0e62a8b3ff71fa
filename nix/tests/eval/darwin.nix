# nix-darwin for evaluation tests: its real activation-scripts, base (`createRun`), launchd
# and users modules, and declarations of the few other options they and the `age` modules
# read. `environment.darwinConfig` is declared here as nix-darwin's environment module
# declares it (that module pulls in the whole system path); agenix and agefleet both
# recognise nix-darwin by it.
{
  lib,
  pkgs,
  nixDarwin,
  modules,
}:
let
  inherit (lib) mkOption types;
  any = mkOption {
    type = types.anything;
    default = { };
  };
  stubs = {
    options = {
      nix.enable = mkOption {
        type = types.bool;
        default = true;
      };
      nix.package = mkOption {
        type = types.unspecified;
        default = pkgs.nix;
      };
      environment.darwinConfig = mkOption {
        type = types.nullOr (types.either types.path types.str);
        default = "$HOME/.nixpkgs/darwin-configuration.nix";
      };
      environment.systemPath = mkOption {
        type = types.str;
        default = "/run/current-system/sw/bin:/usr/bin:/bin";
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      environment.launchAgents = any;
      environment.launchDaemons = any;
      environment.userLaunchAgents = any;
      environment.etc = any;
      environment.profiles = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      environment.pathsToLink = any;
      environment.extraOutputsToInstall = any;
      system.path = any;
      system.primaryUser = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      system.requiresPrimaryUser = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      system.stateVersion = mkOption {
        type = types.int;
        default = 6;
      };
      system.checks.text = mkOption {
        type = types.lines;
        default = "";
      };
      programs = mkOption {
        type = types.attrsOf types.anything;
        default = { };
      };
    };
  };
in
lib.evalModules {
  modules = [
    stubs
    ./checks.nix
    { _module.args.pkgs = pkgs; }
    {
      # The snippets other nix-darwin modules define; the activation script names them all.
      system.activationScripts = lib.genAttrs [
        "checks"
        "extraActivation"
        "groups"
        "users"
        "applications"
        "pam"
        "patches"
        "openssh"
        "etc"
        "defaults"
        "userDefaults"
        "launchd"
        "userLaunchd"
        "nix-daemon"
        "time"
        "networking"
        "power"
        "keyboard"
        "fonts"
        "nvram"
        "homebrew"
      ] (_: { });
    }
    (nixDarwin + "/modules/system/activation-scripts.nix")
    (nixDarwin + "/modules/system/base.nix")
    (nixDarwin + "/modules/launchd")
    (nixDarwin + "/modules/users")
  ]
  ++ modules;
}
