#!/usr/bin/env bash
# Installs the Debian packages agefleet's build and tests need, when any is missing.
# Build: libssl-dev pkg-config (git2). Tests: age (interop oracle), nix-bin (rules oracle),
# openssh-server/openssh-client (sshd + ssh-agent rig), git, util-linux (unshare, script), passwd (useradd),
# chromium (renders the `access --html` page headless).
set -euo pipefail
need=()
command -v age >/dev/null && command -v age-keygen >/dev/null || need+=(age)
command -v nix-instantiate >/dev/null || need+=(nix-bin)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-agent >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev pkg-config)
command -v git >/dev/null || need+=(git)
command -v unshare >/dev/null && command -v script >/dev/null || need+=(util-linux bsdutils)
command -v useradd >/dev/null || need+=(passwd)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: missing packages: ${need[*]}; run as root (or: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
echo "deps.sh: installed ${need[*]}" >&2
