#!/usr/bin/env bash
# Time `agefleet activate` on N secrets (default 1000; target: <= 0.5 s), as root,
# inside a private mount namespace, with temp directories (the host's /run is not touched).
# Secrets are encrypted by the reference `age` CLI to an ssh-ed25519 host key, as a NixOS
# host's secrets are. Each timed run is a full activation: new generation, N decryptions,
# swap, removal of the previous generation. Uses hyperfine when installed, else `time`.
set -euo pipefail
N=${1:-1000}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (mount namespace, tmpfs)" >&2; exit 2; }
cargo build --release --quiet
BIN=$PWD/target/release/agefleet

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ssh-keygen -q -t ed25519 -N '' -C bench -f "$WORK/host_key"
PUB=$(cat "$WORK/host_key.pub")
mkdir "$WORK/store"
head -c 64 /dev/urandom | base64 -w0 > "$WORK/plain"
age -e -r "$PUB" -o "$WORK/store/0.age" "$WORK/plain"
# Distinct ciphertexts (age is randomised), made in parallel.
seq 1 $((N - 1)) | xargs -P "$(nproc)" -I{} age -e -r "$PUB" -o "$WORK/store/{}.age" "$WORK/plain"

{
  printf '{"version":1,"secretsDir":"%s/agenix","secretsMountPoint":"%s/agenix.d",' "$WORK" "$WORK"
  printf '"identityPaths":["%s/host_key"],"fs":"tmpfs","secrets":[' "$WORK"
  for i in $(seq 0 $((N - 1))); do
    [ "$i" = 0 ] || printf ','
    printf '{"name":"s%d","file":"%s/store/%d.age","path":"%s/agenix/s%d","mode":"0440","owner":"0","group":"0","symlink":true}' \
      "$i" "$WORK" "$i" "$WORK" "$i"
  done
  printf ']}\n'
} > "$WORK/manifest.json"

RUN="$BIN activate --manifest $WORK/manifest.json"
echo "activate: $N secrets (ssh-ed25519), $(nproc) cores, $(uname -r)"
if command -v hyperfine >/dev/null; then
  unshare -m --propagation private hyperfine --warmup 2 --runs 20 --style basic \
    --export-json "$WORK/h.json" "$RUN" >&2
  python3 - "$WORK/h.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"mean {r['mean']*1000:.1f} ms  median {r['median']*1000:.1f} ms  min {r['min']*1000:.1f} ms  max {r['max']*1000:.1f} ms")
EOF
else
  unshare -m --propagation private bash -c "for i in 1 2 3 4 5; do time $RUN; done"
fi
