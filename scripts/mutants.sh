#!/usr/bin/env bash
# Mutation testing of the security-critical modules with cargo-mutants, on demand (not in CI:
# every mutant is a rebuild and a test run, hours for the whole set on a small machine).
#
#   scripts/mutants.sh [-m MODULE]... [-f FILE]... [-t TEST_FILTER] [--lib] [-- ARGS...]
#
#   -m MODULE   one of: recipient identity envelope platform drift place rekey (repeatable;
#               default: all of them). `-m list` prints the files of each.
#   -f FILE     mutate only FILE (a path or glob under src/; repeatable), instead of modules.
#   -t FILTER   run only the tests whose name contains FILTER (a libtest filter, e.g.
#               `platform::walk`), for an affordable partial run.
#   --lib       run the unit tests only (no integration binary to rebuild per mutant).
#   --report    run nothing: account for the results already in mutants.out/ (a run that
#               was stopped, or one shard).
#   after --     passed to cargo-mutants as is (e.g. `--timeout 300 --shard 0/4 --jobs 2`).
#
# Tests run as CI runs them: with the reference-material variables of .ci/run and, as root or
# with CI=true, `--include-ignored` (the root-and-tools tests). The tree is mutated in place
# (`--in-place`, so the existing target/ is reused): do not edit the work tree meanwhile.
#
# Every surviving mutant must be listed, with the reason it is accepted, in
# scripts/mutants-accepted.txt; the script prints the kill rate and fails on a survivor that
# is not listed. Results are in mutants.out/ (caught.txt, missed.txt, timeout.txt, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: a new release may name or generate mutants differently (the accepted list
# matches names).
version=27.1.0

declare -A files=(
  [recipient]="src/recipient.rs src/recipient/*.rs"
  [identity]="src/identity.rs src/identity/*.rs"
  [envelope]="src/envelope.rs src/envelope/*.rs"
  [platform]="src/platform/*.rs"
  [drift]="src/drift.rs"
  [place]="src/activation/place.rs src/activation/state.rs"
  [rekey]="src/secrets/rekey.rs"
)
order=(recipient identity envelope platform drift place rekey)

modules=()
report_only=false
only=()
filter=()
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -m)
      [ $# -ge 2 ] || { echo "mutants.sh: -m needs a module" >&2; exit 2; }
      if [ "$2" = list ]; then
        for m in "${order[@]}"; do echo "$m: ${files[$m]}"; done
        exit 0
      fi
      [ -n "${files[$2]+x}" ] || { echo "mutants.sh: unknown module '$2' (-m list)" >&2; exit 2; }
      modules+=("$2")
      shift 2
      ;;
    -f)
      [ $# -ge 2 ] || { echo "mutants.sh: -f needs a file" >&2; exit 2; }
      only+=("$2")
      shift 2
      ;;
    -t)
      [ $# -ge 2 ] || { echo "mutants.sh: -t needs a filter" >&2; exit 2; }
      filter+=("$2")
      shift 2
      ;;
    --report)
      report_only=true
      shift
      ;;
    --lib)
      # To every cargo command, so the builds skip the other targets too.
      cargo_args+=(--cargo-arg=--lib)
      shift
      ;;
    --)
      shift
      break
      ;;
    *)
      echo "mutants.sh: unknown argument '$1' (see the comment at the top)" >&2
      exit 2
      ;;
  esac
done
[ ${#modules[@]} -gt 0 ] || modules=("${order[@]}")

run_mutants() {
  if ! cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $version"; then
    cargo install cargo-mutants --version "$version" --locked
  fi

  # As .ci/run: the reference material next to the repository.
  shared="$(cd .. && pwd)/shared"
  [ -d "$shared" ] || shared=/work/shared
  export AGEFLEET_CCTV_DIR="${AGEFLEET_CCTV_DIR:-$shared/cctv-age/testdata}"
  export AGEFLEET_NIXPKGS_LIB="${AGEFLEET_NIXPKGS_LIB:-$shared/nix-src/nixpkgs-lib}"
  export AGEFLEET_NIX_DARWIN="${AGEFLEET_NIX_DARWIN:-$shared/nix-src/nix-darwin}"
  export AGEFLEET_HOME_MANAGER="${AGEFLEET_HOME_MANAGER:-$shared/nix-src/home-manager}"
  export AGEFLEET_AGENIX_SRC="${AGEFLEET_AGENIX_SRC:-$shared/nix-src/agenix}"

  test_bin_args=()
  if [ "${CI:-}" = true ] || [ "$(id -u)" = 0 ]; then
    test_bin_args+=(--include-ignored)
  else
    echo "mutants.sh: not root and not CI: the root-and-tools tests do not run, expect survivors" >&2
  fi
  test_bin_args+=("${filter[@]}")

  file_args=()
  if [ ${#only[@]} -gt 0 ]; then
    for f in "${only[@]}"; do file_args+=(--file "$f"); done
    what="files: ${only[*]}"
  else
    for m in "${modules[@]}"; do
      for f in ${files[$m]}; do
        case "$f" in */tests.rs) continue ;; esac # test modules are not mutated
        file_args+=(--file "$f")
      done
    done
    what="modules: ${modules[*]}"
  fi

  echo "mutants.sh: $what; test filter: ${filter[*]:-(none)}" >&2
  status=0
  cargo mutants --in-place --no-shuffle "${file_args[@]}" "${cargo_args[@]}" "$@" \
    -- -- "${test_bin_args[@]}" || status=$?
  # 0: all caught; 2: some missed; 3: some timed out; anything else is a failure of the run.
  case "$status" in 0 | 2 | 3) ;; *) echo "mutants.sh: cargo mutants failed ($status)" >&2; exit "$status" ;; esac
}
$report_only || run_mutants "$@"

out=mutants.out
count() {
  [ -f "$out/$1" ] || { echo 0; return; }
  grep -c . "$out/$1" || true # prints 0 itself when there is no line
}
caught=$(count caught.txt)
missed=$(count missed.txt)
timeout=$(count timeout.txt)
unviable=$(count unviable.txt)
viable=$((caught + missed + timeout))
# A mutant's name without its line:col, as the accepted list has it.
strip() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }
# The accepted list: a mutant's name at the start of a line, its reason on the indented
# line(s) below; a name without a reason is an error.
list=scripts/mutants-accepted.txt
if ! awk '/^[^#[:space:]]/ { if (name) exit 1; name = 1; next } /^[[:space:]]+[^[:space:]]/ { name = 0 }
  END { exit name }' "$list"; then
  echo "mutants.sh: $list: every mutant listed needs its reason on an indented line below it" >&2
  exit 2
fi
accepted=$(grep -E '^[^#[:space:]]' "$list" | sed -E 's/ +$//' | sort -u)
# One line per surviving mutant that is not listed (two mutants can share a name).
not_listed=$( ([ -f "$out/missed.txt" ] && strip <"$out/missed.txt" || true) |
  grep -vxF -f <(echo "$accepted") || true)
listed=$((missed - $(echo -n "$not_listed" | grep -c . || true)))
unexpected=$(echo -n "$not_listed" | sort -u)
percent() { [ "$2" -gt 0 ] && awk -v k="$1" -v n="$2" 'BEGIN { printf "%.1f%%", 100 * k / n }' || echo n/a; }
killed=$((caught + timeout))
echo "mutants.sh: $viable viable mutants ($unviable unviable): $caught caught, $timeout timed out," \
  "$missed missed ($listed accepted); kill rate $(percent "$killed" "$viable")" \
  "($(percent "$killed" $((viable - listed))) without the accepted ones)"
if [ -n "$unexpected" ]; then
  echo "mutants.sh: survivors not in scripts/mutants-accepted.txt (add a test, or list one with its reason):" >&2
  echo "$unexpected" >&2
  exit 1
fi
