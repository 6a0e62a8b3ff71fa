#!/usr/bin/env bash
# The main job on the bundled example fleet (fixtures/example), in a scratch copy:
# evaluate the rules, show drift, decrypt, rekey what drifted, edit through stdin.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cargo build --release --locked --quiet
bin="$PWD/target/release/agefleet"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a fixtures/example/. "$work/"
chmod 600 "$work/keys/admin_ed25519"   # git does not keep private modes
cd "$work"
export RULES=./secrets.nix
id=(-i keys/admin_ed25519)
step() { printf '\n\033[1m$ agefleet %s\033[0m\n' "$*"; }

step rules;                           "$bin" rules
step status;                          "$bin" status || true
step -d wifi.age "${id[@]}";          "$bin" -d wifi.age "${id[@]}"
step rekey --drifted "${id[@]}";      "$bin" rekey --drifted "${id[@]}"
step status;                          "$bin" status
step "edit api-token.age (stdin)";    printf 'tok_live_rotated' | "$bin" edit api-token.age "${id[@]}"
step -d api-token.age "${id[@]}";     "$bin" -d api-token.age "${id[@]}"; echo
step "-r (rekey all)" "${id[@]}";     "$bin" -r "${id[@]}"
