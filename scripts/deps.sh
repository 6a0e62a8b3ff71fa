#!/usr/bin/env bash
# Installs what agefleet's build or its tests need, when any of it is missing.
#   scripts/deps.sh build   the build: libssl-dev pkg-config (git2), a C compiler (libgit2,
#                           libssh2); what scripts/example.sh needs
#   scripts/deps.sh test    (the default) the build's, then the tests': the reference data
#                           (scripts/reference.sh: the CCTV vectors and the Nix sources, first,
#                           so a run that cannot have them stops at once with one line), and
#                           the Debian packages age (interop oracle), nix-bin (rules oracle),
#                           openssh-server/openssh-client (sshd + ssh-agent rig), git,
#                           util-linux (unshare, script), passwd (useradd), strace (the
#                           durability tests record flushes and renames), jq and diffutils
#                           (agenix's own script), nodejs/npm for typage (npm age-encryption:
#                           the post-quantum interop oracle, installed into target/npm by
#                           typage_install below), chromium (renders the `access --html` page
#                           headless); and cargo-machete (the unused-dependency check in
#                           scripts/test.sh), built by cargo from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
case $what in
  build | test) ;;
  *)
    echo "usage: scripts/deps.sh [build|test]" >&2
    exit 2
    ;;
esac
TYPAGE_VERSION=0.3.1
MACHETE_VERSION=0.9.2
machete_install() {
  if cargo machete --version 2>/dev/null | grep -qF "$MACHETE_VERSION"; then
    return 0
  fi
  cargo install --quiet --locked cargo-machete --version "$MACHETE_VERSION"
  echo "deps.sh: installed cargo-machete $MACHETE_VERSION" >&2
}
typage_install() {
  local dir=target/npm
  if [ "$(node -e 'try{console.log(require(process.argv[1]).version)}catch{}' "$PWD/$dir/node_modules/age-encryption/package.json" 2>/dev/null)" = "$TYPAGE_VERSION" ]; then
    return 0
  fi
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "age-encryption@$TYPAGE_VERSION" >/dev/null
  echo "deps.sh: installed age-encryption@$TYPAGE_VERSION (typage) into $dir" >&2
}
[ "$what" = build ] || scripts/reference.sh
need=()
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev pkg-config)
command -v cc >/dev/null || need+=(gcc)
if [ "$what" = test ]; then
  command -v age >/dev/null && command -v age-keygen >/dev/null || need+=(age)
  command -v nix-instantiate >/dev/null || need+=(nix-bin)
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh-agent >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
  command -v git >/dev/null || need+=(git)
  # agenix's own script, run side by side in tests/it/agenix_compat.rs: jq, diff.
  command -v jq >/dev/null || need+=(jq)
  command -v diff >/dev/null || need+=(diffutils)
  command -v unshare >/dev/null && command -v script >/dev/null || need+=(util-linux bsdutils)
  command -v useradd >/dev/null || need+=(passwd)
  command -v strace >/dev/null || need+=(strace)
  command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages: ${need[*]}; run as root (or: sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
  echo "deps.sh: installed ${need[*]}" >&2
fi
if [ "$what" = test ]; then
  typage_install
  machete_install
fi
