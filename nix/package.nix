# agefleet, built from this repository with the locked dependencies of Cargo.lock.
#
# `ageBin` is accepted so that agenix's documented
# `agenix.packages.<system>.default.override { ageBin = …; }` keeps evaluating; agefleet
# decrypts natively and has no use for an age binary.
{
  lib,
  stdenv,
  rustPlatform,
  pkg-config,
  installShellFiles,
  openssl,
  zlib,
  git,
  ageBin ? null,
}:
let
  cargoToml = lib.importTOML ../Cargo.toml;
  # Names the binary answers to (argv[0] dispatch); `agenix` gives agenix's own flags.
  aliases = [
    "agenix"
    "create-keys"
    "copy-keys"
    "check-keys"
    "install-with-secrets"
  ];
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  inherit (cargoToml.package) version;

  src = lib.cleanSourceWith {
    src = ../.;
    filter =
      path: type:
      let
        base = baseNameOf path;
      in
      !(type == "directory" && (base == "target" || base == ".git" || base == "result"))
      && lib.cleanSourceFilter path type;
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [
    pkg-config
    installShellFiles
  ];
  buildInputs = [
    openssl
    zlib
  ];

  # The integration suite needs root, mount namespaces, sshd and the reference age CLI;
  # it runs in CI and in the NixOS VM check. The sandbox runs the unit tests, some of
  # which make git repositories (src/git.rs) and call chmod as an oracle (coreutils is in
  # stdenv).
  cargoTestFlags = [ "--lib" ];
  nativeCheckInputs = [ git ];

  postInstall =
    ''
      for alias in ${lib.concatStringsSep " " aliases}; do
        ln -s agefleet "$out/bin/$alias"
      done
      if [ -d man ]; then
        installManPage man/*.1
      fi
    ''
    # The completions come from the binary itself (clap), so only where it runs.
    + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
      installShellCompletion --cmd agefleet \
        --bash <("$out/bin/agefleet" completions bash) \
        --zsh <("$out/bin/agefleet" completions zsh) \
        --fish <("$out/bin/agefleet" completions fish)
    '';

  meta = {
    description = cargoToml.package.description;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "agefleet";
    platforms = lib.platforms.unix;
  };
}
