# `assertions` and `warnings`, declared as nixpkgs' nixos/modules/misc/assertions.nix does
# (NixOS, nix-darwin and home-manager all use that module; it is not in nixpkgs' lib).
{ lib, ... }:
{
  options = {
    assertions = lib.mkOption {
      type = lib.types.listOf lib.types.unspecified;
      default = [ ];
    };
    warnings = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
    };
  };
}
