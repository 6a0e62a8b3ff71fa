#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies and the reference data (scripts/deps.sh
# test; without the reference data it stops here with one line), formatting, lints, unused
# dependencies, tests.
# Tests that need root or a tool are #[ignore = "needs …"]; as root or with CI=true (where
# deps.sh has installed every tool) they run too, and a missing requirement fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo machete
scripts/check-msrv.py
ignored=()
if [ "${CI:-}" = true ] || [ "$(id -u)" = 0 ]; then
  ignored=(--include-ignored)
else
  echo "test.sh: not root and not CI: tests that need root or a tool are listed as ignored" >&2
fi
cargo test --locked --no-fail-fast -- "${ignored[@]}" 2>&1 | tee target/test.log
