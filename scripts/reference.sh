#!/usr/bin/env bash
# The reference data the tests check agefleet against (the C2SP CCTV age vectors, the Nix
# sources), as pinned in scripts/reference.pins, which also says where the tests look for it.
#
#   scripts/reference.sh               make sure it is there: $AGEFLEET_REFERENCE_DIR, else
#                                      ../shared, else target/reference/ (fetched when absent)
#   scripts/reference.sh --verify DIR  check a copy against the pins (commit content hashes)
#
# When it is neither there nor fetchable, it stops with one line naming what is missing and
# how to provide it (exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
pins=scripts/reference.pins
fetched=target/reference
tmp=
trap 'rm -rf "${tmp:-/nonexistent}"' EXIT

die() {
  echo "reference.sh: $*" >&2
  exit 1
}

# The pins, one per line: dest repository commit root sha256 paths…
pin_lines() {
  grep -v -e '^#' -e '^[[:space:]]*$' "$pins"
}

# The SHA-256 of the sorted `sha256sum` listing of every file under $1 (see the pins file).
tree_sha256() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) |
    sha256sum | cut -d' ' -f1
}

# Nothing but regular files and directories under $1 (no links, devices, FIFOs).
only_files() {
  [ -z "$(find "$1" ! -type f ! -type d -print -quit)" ]
}

verify() {
  local dir=$1 bad=0 dest repo commit root sha paths got
  while read -r dest repo commit root sha paths; do
    if [ ! -d "$dir/$dest" ]; then
      echo "missing  $dest ($repo $commit)"
      bad=1
    elif ! only_files "$dir/$dest"; then
      echo "differs  $dest: holds something other than files and directories"
      bad=1
    elif got=$(tree_sha256 "$dir/$dest") && [ "$got" != "$sha" ]; then
      echo "differs  $dest: sha256 $got, pinned $sha ($repo $commit)"
      bad=1
    else
      echo "ok       $dest ($repo $commit)"
    fi
  done < <(pin_lines)
  return $bad
}

# Every pinned directory present under $1, else one line naming the missing ones.
require_present() {
  local dir=$1 how=$2 missing=() dest rest
  while read -r dest rest; do
    [ -d "$dir/$dest" ] || missing+=("$dest")
  done < <(pin_lines)
  [ ${#missing[@]} -eq 0 ] ||
    die "reference data missing in $how ($dir): ${missing[*]}; lay it out as scripts/reference.pins says"
}

# Fetches one pin into $fetched/$dest. On failure sets `why` and returns 1.
fetch_one() {
  local dest=$1 repo=$2 commit=$3 root=$4 sha=$5 rc=0
  shift 5
  mkdir -p "$fetched"
  tmp=$(mktemp -d "$fetched/.fetch.XXXXXX")
  unpack "$repo" "$commit" "$root" "$sha" "$@" || rc=1
  if [ $rc -eq 0 ]; then
    rm -rf "${fetched:?}/$dest" "$fetched/.stamps/$dest"
    mkdir -p "$(dirname "$fetched/$dest")" "$(dirname "$fetched/.stamps/$dest")"
    mv "$tmp/dest" "$fetched/$dest"
    printf '%s %s %s\n' "$repo" "$commit" "$sha" >"$fetched/.stamps/$dest"
    echo "reference.sh: fetched $dest ($repo $commit) into $fetched" >&2
  fi
  rm -rf "$tmp"
  return $rc
}

# Downloads and unpacks one pin into $tmp/dest, checking its content hash.
unpack() {
  local repo=$1 commit=$2 root=$3 sha=$4
  shift 4
  local base=${AGEFLEET_REFERENCE_MIRROR:-https://github.com}
  local url="$base/$repo/archive/$commit.tar.gz" from="$tmp/src" got p
  [ "$root" = . ] || from="$tmp/src/$root"
  if ! curl -fsSL --proto '=https,file' --connect-timeout 15 --max-time 900 --retry 2 \
    -o "$tmp/src.tar.gz" "$url" 2>"$tmp/err"; then
    why="fetching $url failed: $(tail -n 1 "$tmp/err")"
    unreachable=1
    return 1
  fi
  mkdir "$tmp/src"
  if ! tar -xzf "$tmp/src.tar.gz" -C "$tmp/src" --strip-components=1 --no-same-owner \
    --no-same-permissions 2>"$tmp/err"; then
    why="$url is not a readable tar.gz: $(tail -n 1 "$tmp/err")"
    return 1
  fi
  [ -d "$from" ] || { why="$url has no directory $root"; return 1; }
  if [ "$*" = . ]; then
    mv "$from" "$tmp/dest"
  else
    mkdir "$tmp/dest"
    for p in "$@"; do
      case $p in -*) continue ;; esac
      [ -e "$from/$p" ] || { why="$url has no $root/$p"; return 1; }
      mkdir -p "$(dirname "$tmp/dest/$p")"
      mv "$from/$p" "$tmp/dest/$p"
    done
    for p in "$@"; do
      case $p in -*) rm -rf "${tmp:?}/dest/${p#-}" ;; esac
    done
  fi
  only_files "$tmp/dest" || { why="$url holds links or special files under $root"; return 1; }
  got=$(tree_sha256 "$tmp/dest")
  [ "$got" = "$sha" ] || { why="$url: sha256 $got, pinned $sha"; return 1; }
}

if [ "${1:-}" = --verify ]; then
  [ $# -eq 2 ] || die "usage: scripts/reference.sh --verify DIR"
  verify "$2"
  exit
fi
[ $# -eq 0 ] || die "usage: scripts/reference.sh [--verify DIR]"

if [ -n "${AGEFLEET_REFERENCE_DIR:-}" ]; then
  require_present "$AGEFLEET_REFERENCE_DIR" AGEFLEET_REFERENCE_DIR
  exit 0
fi
if [ -d ../shared ]; then
  require_present "$(cd ../shared && pwd)" "../shared beside the repository"
  exit 0
fi
missing=()
why=
unreachable=
while read -r dest repo commit root sha paths; do
  if [ "$(cat "$fetched/.stamps/$dest" 2>/dev/null)" = "$repo $commit $sha" ] &&
    [ -d "$fetched/$dest" ]; then
    continue
  fi
  # Once a download has failed the others are only listed: the network is the likely cause.
  # shellcheck disable=SC2086 # paths is a word list
  if [ -n "$unreachable" ] || ! fetch_one "$dest" "$repo" "$commit" "$root" "$sha" $paths; then
    missing+=("$dest")
  fi
done < <(pin_lines)
[ ${#missing[@]} -eq 0 ] ||
  die "reference data missing: ${missing[*]} ($why); set AGEFLEET_REFERENCE_DIR to a copy laid out as scripts/reference.pins says, or put one at ../shared, or allow access to github.com"
