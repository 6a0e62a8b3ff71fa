# home-manager for evaluation tests: its real systemd.nix and launchd module with `lib.hm`
# (modules/lib/stdlib-extended.nix), and declarations of the few other options they and the
# `age` modules read (home.*, xdg.*, assertions, warnings).
{
  lib,
  pkgs,
  homeManager,
  modules,
}:
let
  hmLib = import (homeManager + "/modules/lib/stdlib-extended.nix") lib;
  inherit (hmLib) mkOption types;
  any = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  fileType = types.attrsOf (
    types.submodule {
      freeformType = types.attrsOf types.anything;
    }
  );
  stubs = {
    options = {
      meta = any;
      home.username = mkOption {
        type = types.str;
        default = "user1";
      };
      home.homeDirectory = mkOption {
        type = types.str;
        default = if pkgs.stdenv.hostPlatform.isDarwin then "/Users/user1" else "/home/user1";
      };
      home.stateVersion = mkOption {
        type = types.str;
        default = lib.trivial.release;
      };
      home.activation = any;
      home.extraBuilderCommands = mkOption {
        type = types.lines;
        default = "";
      };
      home.sessionVariables = any;
      home.file = mkOption {
        type = fileType;
        default = { };
      };
      xdg.configHome = mkOption {
        type = types.str;
        default = "/home/user1/.config";
      };
      xdg.configFile = mkOption {
        type = fileType;
        default = { };
      };
      xdg.dataFile = mkOption {
        type = fileType;
        default = { };
      };
    };
  };
in
hmLib.evalModules {
  modules = [
    stubs
    ./checks.nix
    { _module.args.pkgs = pkgs; }
    (homeManager + "/modules/systemd.nix")
    (homeManager + "/modules/launchd")
  ]
  ++ modules;
}
