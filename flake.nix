{
  description = "agefleet: an agenix-compatible secrets lifecycle tool (rules, rekey, keys, activation)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The binary under each name it answers to (argv[0] dispatch; see nix/package.nix).
      appNames = [
        "agenix"
        "create-keys"
        "copy-keys"
        "check-keys"
        "install-with-secrets"
      ];
      # Attribute sets importing the files, not the paths themselves: `nix flake check`
      # wants a module to be a function or an attribute set, and importing by path keeps
      # the module system's de-duplication (and file names in its errors).
      ageModule = {
        imports = [ ./nix/modules/age.nix ];
      };
      homeModule = {
        imports = [ ./nix/modules/age-home.nix ];
      };
    in
    {
      # `agenix` too: configurations refer to `pkgs.agenix` (agenix's overlay provides it).
      overlays.default = final: _prev: {
        agefleet = final.callPackage ./nix/package.nix { };
        agenix = final.agefleet;
      };

      packages = forAllSystems (pkgs: rec {
        agefleet = pkgs.callPackage ./nix/package.nix { };
        default = agefleet;
      });

      apps = forAllSystems (
        pkgs:
        let
          pkg = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          app = name: {
            type = "app";
            program = "${pkg}/bin/${name}";
          };
        in
        { default = app "agefleet"; } // lib.genAttrs appNames app
      );

      nixosModules = {
        age = ageModule;
        default = ageModule;
      };
      darwinModules = {
        age = ageModule;
        default = ageModule;
      };
      homeManagerModules = {
        age = homeModule;
        default = homeModule;
      };

      checks = forAllSystems (
        pkgs:
        {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        }
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          activation = import ./nix/tests/activation.nix {
            inherit pkgs;
            module = {
              imports = [ ageModule ];
              age.package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
            };
          };
        }
      );
    };
}
