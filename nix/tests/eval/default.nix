# Entry point of the Nix evaluation tests (tests/it/nix_eval.rs): evaluates a configuration
# with agefleet's module or agenix's, on NixOS (./nixos.nix stubs), nix-darwin (its real
# modules) or home-manager (its real modules), and summarises what the two must agree on.
# The sources are arguments so that the tests can point them at any checkout.
{
  nixpkgsLib,
  nixDarwin,
  homeManager,
  agenix,
  agefleetOut ? null,
}:
let
  lib = import (nixpkgsLib + "/lib");

  platforms = {
    nixos = "x86_64-linux";
    darwin = "aarch64-darwin";
    home-linux = "x86_64-linux";
    home-darwin = "aarch64-darwin";
  };

  moduleOf = {
    agefleet = {
      nixos = ../../modules/age.nix;
      darwin = ../../modules/age.nix;
      home = ../../modules/age-home.nix;
    };
    agenix = {
      nixos = agenix + "/modules/age.nix";
      darwin = agenix + "/modules/age.nix";
      home = agenix + "/modules/age-home.nix";
    };
  };

  kind = platform: if lib.hasPrefix "home" platform then "home" else platform;

  pkgsFor = platform: import ./pkgs.nix {
    inherit lib agefleetOut;
    system = platforms.${platform};
  };

  # What the module would hand to the flake input named `agenix` in agenix's docs.
  flakeFor =
    impl:
    if impl == "agefleet" then
      import ./flake-outputs.nix { inherit lib; }
    else
      {
        packages = lib.genAttrs (lib.attrValues platforms) (system: {
          default = (pkgsFor "nixos").callPackage (agenix + "/pkgs/agenix.nix") { };
        });
      };

  eval =
    {
      platform,
      impl,
      modules,
      nixos ? { },
    }:
    let
      pkgs = pkgsFor platform;
      args = {
        inherit lib pkgs;
        modules = [
          moduleOf.${impl}.${kind platform}
          { _module.args.agenix = flakeFor impl; }
        ]
        ++ modules;
      };
    in
    if platform == "nixos" then
      import ./nixos.nix (args // nixos)
    else if platform == "darwin" then
      import ./darwin.nix (args // { inherit nixDarwin; })
    else
      import ./home.nix (args // { inherit homeManager; });

  # Forces what a real system build would (scripts, units, agents) and returns what both
  # modules must agree on: option types, the evaluated `age` values, assertions, warnings.
  summary =
    platform: e:
    let
      c = e.config;
      o = e.options;
      secretOptions = o.age.secrets.type.nestedTypes.elemType.getSubOptions [ ];
      typeOf = opt: opt.type.description or "unspecified";
      built =
        if platform == "nixos" then
          [
            c.system.activationScript
            c.system.dryActivationScript
            c.systemd.services
            c.environment.systemPackages
          ]
        else if platform == "darwin" then
          [
            c.system.activationScripts.script.text
            c.launchd.daemons
            c.environment.systemPackages
          ]
        else
          [
            c.systemd.user.services
            c.xdg.configFile
            c.launchd.agents
            c.home.file
          ];
    in
    builtins.seq (builtins.toJSON built) {
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
      warnings = c.warnings;
      options = lib.mapAttrs (_: typeOf) (removeAttrs o.age [ "_module" ]);
      secretOptions = lib.mapAttrs (_: typeOf) (removeAttrs secretOptions [ "_module" ]);
      age = {
        secretsDir = toString c.age.secretsDir;
        secretsMountPoint = toString c.age.secretsMountPoint;
        identityPaths = map toString c.age.identityPaths;
        secrets = lib.mapAttrs (
          _: s:
          lib.filterAttrs (n: _: n != "_module") (s // { file = toString s.file; })
        ) c.age.secrets;
      };
    };
in
{
  inherit lib eval summary;

  compare =
    {
      platform,
      impl,
      modules,
    }:
    summary platform (eval { inherit platform impl modules; });

  # For the checks on agefleet's own outputs (manifest, script order, units).
  config =
    {
      platform,
      modules,
      nixos ? { },
    }:
    (eval {
      inherit platform modules nixos;
      impl = "agefleet";
    }).config;
}
