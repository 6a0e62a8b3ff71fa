#!/usr/bin/env bash
# Time `agefleet activate` on N secrets (default 1000; target: <= 0.5 s), then on the same N
# secrets plus T templates (default 100) of 10 KiB with 10 placeholders each, as root,
# inside a private mount namespace, with temp directories (the host's /run is not touched).
# Secrets are encrypted by the reference `age` CLI to an ssh-ed25519 host key, as a NixOS
# host's secrets are. Each timed run is a full activation: new generation, N decryptions,
# (templates rendered), change detection against the previous generation, swap, removal of
# the previous generation. Uses hyperfine when installed, else `time`. AGEFLEET_BASELINE=BIN
# also times an older build on the N-secret manifest (the figure before templates existed).
set -euo pipefail
N=${1:-1000}
T=${2:-100}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (mount namespace, tmpfs)" >&2; exit 2; }
cargo build --release --quiet
BIN=$PWD/target/release/agefleet

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ssh-keygen -q -t ed25519 -N '' -C bench -f "$WORK/host_key"
PUB=$(cat "$WORK/host_key.pub")
mkdir "$WORK/store" "$WORK/nixos"
head -c 64 /dev/urandom | base64 -w0 > "$WORK/plain"
age -e -r "$PUB" -o "$WORK/store/0.age" "$WORK/plain"
# Distinct ciphertexts (age is randomised), made in parallel.
seq 1 $((N - 1)) | xargs -P "$(nproc)" -I{} age -e -r "$PUB" -o "$WORK/store/{}.age" "$WORK/plain"

# Two manifests: the N secrets alone, and the same with T templates of 10 KiB, each with 10
# placeholders of secrets (rendered in memory, written into the same generation).
python3 - "$WORK" "$N" "$T" <<'PY'
import hashlib, json, sys
work, n, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
secrets = [{"name": f"s{i}", "file": f"{work}/store/{i}.age", "path": f"{work}/agenix/s{i}",
            "mode": "0440", "owner": "0", "group": "0", "symlink": True} for i in range(n)]
base = {"version": 1, "secretsDir": f"{work}/agenix", "secretsMountPoint": f"{work}/agenix.d",
        "identityPaths": [f"{work}/host_key"], "fs": "tmpfs", "secrets": secrets}
json.dump(base, open(f"{work}/manifest.json", "w"))

def placeholder(name):  # as nix/placeholder.nix
    return "<AGEFLEET:PLACEHOLDER:" + hashlib.sha256(name.encode()).hexdigest() + ">"

filler = ("x" * 79 + "\n") * 128  # 10 KiB of text around the placeholders
templates = []
for j in range(t):
    parts = [filler[k * 1024:(k + 1) * 1024] + "key = " + placeholder(f"s{(j * 10 + k) % n}") + "\n"
             for k in range(10)]
    templates.append({"name": f"t{j}.conf", "content": "".join(parts),
                      "path": f"{work}/agenix/t{j}.conf", "mode": "0440", "owner": "0",
                      "group": "0", "symlink": True, "restartUnits": [f"app{j}.service"],
                      "reloadUnits": []})
json.dump(dict(base, templates=templates,
               activationRestartList=f"{work}/nixos/activation-restart-list",
               activationReloadList=f"{work}/nixos/activation-reload-list"),
          open(f"{work}/manifest-templates.json", "w"))
PY

echo "activate: $N secrets (ssh-ed25519), $(nproc) cores, $(uname -r)"
bench() {
  local label=$1 run=$2
  if command -v hyperfine >/dev/null; then
    unshare -m --propagation private hyperfine --warmup 2 --runs 20 --style basic \
      --export-json "$WORK/h.json" "$run" >&2
    python3 - "$WORK/h.json" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"{sys.argv[2]}: mean {r['mean']*1000:.1f} ms  median {r['median']*1000:.1f} ms  min {r['min']*1000:.1f} ms  max {r['max']*1000:.1f} ms")
PY
  else
    echo "$label:"
    unshare -m --propagation private bash -c "for i in 1 2 3 4 5; do time $run; done"
  fi
}
if [ -n "${AGEFLEET_BASELINE:-}" ]; then
  bench "$N secrets, baseline $AGEFLEET_BASELINE" "$AGEFLEET_BASELINE activate --manifest $WORK/manifest.json"
fi
bench "$N secrets" "$BIN activate --manifest $WORK/manifest.json"
# Every run after the first compares each file with the previous generation (unchanged).
bench "$N secrets + $T templates (10 KiB, 10 placeholders)" \
  "$BIN activate --manifest $WORK/manifest-templates.json"
