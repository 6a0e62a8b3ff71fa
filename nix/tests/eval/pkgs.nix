# A stand-in for nixpkgs in evaluation tests and the stand-in nixpkgs flake: the real
# `lib`, `callPackage`, and packages that are derivations whose builder always fails
# (they can be instantiated, never built). Text files go to the store with
# `builtins.toFile`, so that a test running in read-write mode (a private chroot store)
# gets the real manifest and scripts. `agefleetOut`, when given, is a directory holding
# bin/agefleet (the binary under test) used as `pkgs.agefleet`; otherwise there is no
# `pkgs.agefleet` (as in nixpkgs) and the modules build ../../package.nix themselves.
{
  lib,
  system ? "x86_64-linux",
  agefleetOut ? null,
}:
let
  platform = {
    inherit system;
    isLinux = lib.hasSuffix "linux" system;
    isDarwin = lib.hasSuffix "darwin" system;
    canExecute = other: other.system == system;
  };

  package =
    pname: out: extra:
    lib.fix (
      self:
      {
        type = "derivation";
        name = pname;
        inherit pname;
        version = "0";
        outPath = out;
        outputs = [ "out" ];
        out = self;
        meta.mainProgram = pname;
        override = args: package pname out (extra // { overridden = args; });
      }
      // extra
    );

  unbuildable =
    name:
    (derivation {
      inherit name system;
      builder = "/bin/sh";
      args = [
        "-c"
        "echo 'a stand-in package of the evaluation tests; it cannot be built' >&2; exit 1"
      ];
    }).outPath;

  stub = pname: package pname (unbuildable pname) { };

  writeTextFile =
    {
      name,
      text,
      destination ? "",
      executable ? false,
      ...
    }:
    let
      # Store references are dropped: nothing here is ever built.
      file = builtins.toFile (lib.strings.sanitizeDerivationName name) (
        builtins.unsafeDiscardStringContext text
      );
    in
    if destination == "" then
      package name file { inherit text; }
    else
      # The stub cannot make a directory: the file is `outPath + destination` in name only.
      package name (builtins.dirOf file + "/" + builtins.baseNameOf file + "-dir") { inherit text; };

  writeText = name: text: writeTextFile { inherit name text; };
  writeScript = name: text: writeTextFile { inherit name text; };
  writeShellScript = name: text: writeText name "#!/bin/sh\n${text}";

  pkgs = lib.optionalAttrs (agefleetOut != null) {
    agefleet = package "agefleet" agefleetOut { };
  }
  // {
    inherit lib writeTextFile writeText writeScript writeShellScript;
    path = /nonexistent/nixpkgs;
    stdenv = {
      mkDerivation =
        args: package (args.pname or args.name) (unbuildable (args.pname or args.name)) { stubArgs = args; };
      hostPlatform = platform;
      buildPlatform = platform;
      shell = "/bin/sh";
      isDarwin = platform.isDarwin;
      isLinux = platform.isLinux;
    };
    runtimeShell = "/bin/sh";
    writeScriptBin = name: text: writeScript name text;
    writeShellScriptBin = name: text: writeShellScript name text;
    writeShellApplication =
      { name, text, ... }:
      package name (writeShellScript name text).outPath { meta.mainProgram = name; };
    runCommand = name: _env: text: writeText name text;
    symlinkJoin = { name, ... }: stub name;
    emptyDirectory = stub "empty-directory";
    formats.ini =
      _:
      {
        type = lib.types.attrsOf lib.types.anything;
        generate = name: value: writeText name (lib.generators.toINI { } value);
      };
    callPackage = lib.callPackageWith pkgs;
    rustPlatform.buildRustPackage =
      args:
      package args.pname (unbuildable "${args.pname}-${args.version}") {
        inherit (args) meta;
        stubArgs = args;
      };
    replaceVars = src: _vars: src;
    pkg-config = stub "pkg-config";
    installShellFiles = stub "install-shell-files";
    openssl = stub "openssl";
    zlib = stub "zlib";
    git = stub "git";
    shellcheck = stub "shellcheck";
    mktemp = stub "mktemp";
    diffutils = stub "diffutils";

    testers.nixosTest = test: stub "nixos-test-${test.name}";
    age = stub "age";
    rage = package "rage" "/nix/store/00000000000000000000000000000000-rage" { meta.mainProgram = "rage"; };
    getconf = stub "getconf";
    mount = stub "mount";
    gnugrep = stub "gnugrep";
    coreutils = stub "coreutils";
    systemd = stub "systemd";
    sd-switch = stub "sd-switch";
    jq = stub "jq";
    nix = stub "nix";
  };
in
pkgs
