#!/usr/bin/env bash
# Times agefleet beside the reference `age` CLI on one generated corpus, in one run, and prints
# ratios against the targets:
#   rekey 200×5       on tmpfs: agefleet vs the age CLI file by file (what agenix does, minus
#                     its Nix calls; ragenix is not published on crates.io, so it is not built)
#   rekey 10000×5     on a disk filesystem (flushes included): wall time and peak RSS
#   status 10000      headers only
#   rules 1000 rules  builtin evaluator vs nix-instantiate
#   rekey 200×5 PQ    the same secrets, 5 hybrid post-quantum (age1pq1…) recipients, pq = true;
#                     with the mean file size beside the ssh-ed25519 one
# Usage: scripts/bench-vs-peers.sh [N_SMALL=200] [N_LARGE=10000] [RECIPIENTS=5]
# BENCH_TMPFS (default /dev/shm) holds the small corpora, BENCH_DISK (default /var/tmp) the
# large one.
# With AGEFLEET_BASELINE=/path/to/an/older/agefleet, that binary is measured on the same corpus
# right after this one (rekey, status, builtin eval) and the last column gives the ratio
# baseline/this: the no-regression check (>= 1.0 means this build is as fast or faster).
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-200} large=${2:-10000} m=${3:-5}
for t in age age-keygen ssh-keygen nix-instantiate python3; do
  command -v "$t" >/dev/null || { echo "bench: $t is required" >&2; exit 1; }
done
cargo build --release --locked --quiet
bin="$PWD/target/release/agefleet"
work=$(mktemp -d "${BENCH_TMPFS:-/dev/shm}/agefleet-bench.XXXXXX")
# Not under the repository: status would report the corpus as untracked by its git.
disk=$(mktemp -d "${BENCH_DISK:-/var/tmp}/agefleet-bench.XXXXXX")
trap 'rm -rf "$work" "$disk"' EXIT
fs_of() { stat -f -c %T "$1"; }

# measure LABEL CMD... : wall seconds (the fastest of BENCH_RUNS runs, default 3: each run
# does the same work) and peak RSS (KiB) of CMD and its children. With BENCH_PAUSE=S, each run
# starts after a sync and S seconds of quiet: the large rekey replaces 10,000 files, and for
# some seconds after freeing that many inodes ext4 skips them when it allocates new ones,
# which made the run right after another one (or the baseline's, measured after this
# build's) several seconds slower.
measure() {
  local label=$1; shift
  python3 - "$label" "${BENCH_RUNS:-3}" "${BENCH_PAUSE:-0}" "$@" <<'PY'
import os, resource, subprocess, sys, time
label, runs, pause, cmd = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
best = None
for _ in range(runs):
    if pause > 0:
        os.sync()
        time.sleep(pause)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if r.returncode not in (0,):
        sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
        sys.exit(f"{label}: exit {r.returncode}")
    best = dt if best is None else min(best, dt)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{best:.4f} {rss}")
PY
}

# --- corpus -----------------------------------------------------------------------------
mkdir -p "$work/keys"
ssh-keygen -q -t ed25519 -N "" -f "$work/keys/admin"
recips=("$(cat "$work/keys/admin.pub")")
for i in $(seq 2 "$m"); do
  ssh-keygen -q -t ed25519 -N "" -f "$work/keys/host$i"
  recips+=("$(cat "$work/keys/host$i.pub")")
done
rargs=(); for r in "${recips[@]}"; do rargs+=(-r "$r"); done

make_rules() { # make_rules DIR N
  local dir=$1 n=$2
  {
    echo "let"
    for i in "${!recips[@]}"; do echo "  k$i = \"${recips[$i]}\";"; done
    echo "  all = [ $(for i in "${!recips[@]}"; do printf 'k%s ' "$i"; done)];"
    echo "in {"
    for i in $(seq 1 "$n"); do echo "  \"s$i.age\".publicKeys = all;"; done
    echo "}"
  } > "$dir/secrets.nix"
}

make_corpus() { # make_corpus DIR N : the first 200 files made by the age CLI, the rest copies
  local dir=$1 n=$2 seed=$(( $2 < 200 ? $2 : 200 ))
  mkdir -p "$dir"
  for i in $(seq 1 "$seed"); do
    head -c 64 /dev/urandom | base64 | age -e "${rargs[@]}" -o "$dir/s$i.age"
  done
  for i in $(seq $((seed + 1)) "$n"); do cp "$dir/s$(( (i - 1) % seed + 1 )).age" "$dir/s$i.age"; done
  make_rules "$dir" "$n"
}

echo "generating corpus: $small and $large secrets × $m recipients ..." >&2
make_corpus "$work/small" "$small"
make_corpus "$disk/large" "$large"
cp -a "$work/small" "$work/small-age"

# --- rekey 200×5: age CLI loop vs agefleet ------------------------------------------------
cat > "$work/age-loop.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cd "$work/small-age"
for f in s*.age; do
  age -d -i "$work/keys/admin" "\$f" | age -e ${rargs[*]@Q} -o "\$f.tmp"
  mv "\$f.tmp" "\$f"
done
EOF
chmod +x "$work/age-loop.sh"
read -r t_age _ < <(BENCH_RUNS=1 measure "age CLI loop" "$work/age-loop.sh")
read -r t_small _ < <(measure "agefleet rekey small" env -C "$work/small" "$bin" -i "$work/keys/admin" -r)

# --- rekey 10000×5, status 10000 -----------------------------------------------------------
read -r t_large rss_large < <(BENCH_PAUSE=12 measure "agefleet rekey large" env -C "$disk/large" "$bin" -i "$work/keys/admin" -r)
read -r t_status _ < <(measure "agefleet status large" env -C "$disk/large" "$bin" status)

# --- rekey 200×5 post-quantum ---------------------------------------------------------------
# The small corpus re-encrypted (once, from ssh) to 5 PQ identities, then rekeyed PQ -> PQ.
mkdir -p "$work/pq"
pq_recips=()
for i in $(seq 1 "$m"); do
  pq_recips+=("$("$bin" keygen --pq -o "$work/keys/pq$i")")
done
{
  echo "let"
  for i in "${!pq_recips[@]}"; do echo "  p$i = \"${pq_recips[$i]}\";"; done
  echo "  all = [ $(for i in "${!pq_recips[@]}"; do printf 'p%s ' "$i"; done)];"
  echo "in {"
  for i in $(seq 1 "$small"); do echo "  \"s$i.age\" = { publicKeys = all; pq = true; };"; done
  echo "}"
} > "$work/pq/secrets.nix"
cp "$work/small-age"/s*.age "$work/pq/"
env -C "$work/pq" "$bin" -i "$work/keys/admin" -r >/dev/null
read -r t_pq _ < <(measure "agefleet rekey pq" env -C "$work/pq" "$bin" -i "$work/keys/pq1" -r)
size_ssh=$(cat "$work/small"/s*.age | wc -c)
size_pq=$(cat "$work/pq"/s*.age | wc -c)

# --- rules: 1,000 rules, builtin vs nix-instantiate ------------------------------------------
mkdir -p "$work/rules1000"; make_rules "$work/rules1000" 1000
read -r t_builtin _ < <(measure "builtin eval" "$bin" --rules "$work/rules1000/secrets.nix" --nix-eval builtin rules --json)
read -r t_nix _ < <(measure "nix-instantiate" nix-instantiate --eval --strict --json "$work/rules1000/secrets.nix")

# --- the baseline binary on the same corpus ---------------------------------------------------
b_small=0 b_large=0 b_rss=0 b_status=0 b_builtin=0 b_pq=0
if [ -n "${AGEFLEET_BASELINE:-}" ]; then
  base=$AGEFLEET_BASELINE
  read -r b_small _ < <(measure "baseline rekey small" env -C "$work/small" "$base" -i "$work/keys/admin" -r)
  read -r b_large b_rss < <(BENCH_PAUSE=12 measure "baseline rekey large" env -C "$disk/large" "$base" -i "$work/keys/admin" -r)
  read -r b_status _ < <(measure "baseline status large" env -C "$disk/large" "$base" status)
  read -r b_pq _ < <(measure "baseline rekey pq" env -C "$work/pq" "$base" -i "$work/keys/pq1" -r)
  read -r b_builtin _ < <(measure "baseline builtin eval" "$base" --rules "$work/rules1000/secrets.nix" --nix-eval builtin rules --json)
fi

fs_small=$(fs_of "$work") fs_large=$(fs_of "$disk")
python3 - "$small" "$large" "$m" "$fs_small" "$fs_large" "$t_age" "$t_small" "$t_large" "$rss_large" "$t_status" "$t_builtin" "$t_nix" "$t_pq" "$size_ssh" "$size_pq" "$b_small" "$b_large" "$b_rss" "$b_status" "$b_builtin" "$b_pq" <<'PY'
import sys, os
small, large, m, fs_small, fs_large = sys.argv[1:6]
t_age, t_small, t_large, rss, t_status, t_builtin, t_nix, t_pq, size_ssh, size_pq = map(float, sys.argv[6:16])
b_small, b_large, b_rss, b_status, b_builtin, b_pq = map(float, sys.argv[16:22])
print(f"machine: {os.cpu_count()} cores, {os.uname().release}; small corpora on {fs_small}, large on {fs_large}")
print(f"{'measure':42} {'time':>9} {'ratio/target':>22}")
print(f"{'age CLI loop, rekey '+small+'x'+m:42} {t_age:8.3f}s")
print(f"{'agefleet rekey '+small+'x'+m:42} {t_small:8.3f}s {f'{t_age/t_small:.1f}x faster':>22}")
print(f"{'agefleet rekey '+small+'x'+m+' post-quantum':42} {t_pq:8.3f}s {f'{t_pq/t_small:.1f}x the ssh rekey (<=2x)':>22}")
print(f"{'  mean file size, ssh-ed25519 / PQ':42} {size_ssh/int(small):7.0f}B / {size_pq/int(small):.0f}B")
print(f"{'agefleet rekey '+large+'x'+m:42} {t_large:8.3f}s {'(<=3s)':>22}")
print(f"{'  peak RSS':42} {rss/1024:7.1f}MiB {'(<=64MiB)':>22}")
print(f"{'agefleet status '+large+' files':42} {t_status:8.3f}s {'(<=0.15s)':>22}")
print(f"{'nix-instantiate, 1000 rules':42} {t_nix:8.3f}s")
print(f"{'agefleet builtin eval, 1000 rules':42} {t_builtin:8.3f}s {f'{t_nix/t_builtin:.1f}x faster':>22}")
if b_small > 0:
    print(f"baseline {os.environ.get('AGEFLEET_BASELINE')}: its time, and baseline/this (>=1.0: no regression)")
    for label, b, t in [
        ("rekey " + small + "x" + m, b_small, t_small),
        ("rekey " + small + "x" + m + " post-quantum", b_pq, t_pq),
        ("rekey " + large + "x" + m, b_large, t_large),
        ("status " + large + " files", b_status, t_status),
        ("builtin eval, 1000 rules", b_builtin, t_builtin),
    ]:
        print(f"{'  '+label:42} {b:8.3f}s {f'{b/t:.2f}':>22}")
    print(f"{'  peak RSS, rekey '+large+'x'+m:42} {b_rss/1024:7.1f}MiB {f'{b_rss/rss:.2f}':>22}")
PY
