# agefleet, built from this repository with the locked dependencies of Cargo.lock.
{
  lib,
  rustPlatform,
  pkg-config,
  installShellFiles,
  openssl,
  zlib,
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
  # it runs in CI and in the NixOS VM check. The sandbox runs the unit tests.
  cargoTestFlags = [ "--lib" ];

  postInstall = ''
    for alias in ${lib.concatStringsSep " " aliases}; do
      ln -s agefleet "$out/bin/$alias"
    done
    if [ -d man ]; then
      installManPage man/*.1
    fi
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
