# agefleet's flake outputs with the stand-in nixpkgs of ./pkgs.nix (what `nix flake show`
# would evaluate, without the flake machinery).
{ lib }:
let
  flake = import ../../../flake.nix;
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [
      "x86_64-linux"
      "aarch64-linux"
      "x86_64-darwin"
      "aarch64-darwin"
    ] (system: import ./pkgs.nix { inherit lib system; });
  };
  self = flake.outputs {
    inherit self nixpkgs;
  };
in
self
