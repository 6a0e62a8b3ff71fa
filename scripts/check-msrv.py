#!/usr/bin/env python3
"""Fails when a dependency in Cargo.lock declares a rust-version above the crate's own.

The one Rust toolchain here is newer than the MSRV, so this is the check that is possible:
every resolved package's declared `rust-version` (cargo metadata) must be <= ours. Refresh an
offending lock with: CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo update
"""
import json
import subprocess
import sys


def version(s):
    return tuple(int(x) for x in (s.split(".") + ["0", "0"])[:3])


meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--locked", "--format-version", "1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
resolved = {n["id"] for n in meta["resolve"]["nodes"]}
root = next(p for p in meta["packages"] if p["id"] == meta["resolve"]["root"])
msrv = version(root["rust_version"])
too_new = [
    f'{p["name"]} {p["version"]} needs Rust {p["rust_version"]}'
    for p in meta["packages"]
    if p["id"] in resolved and p.get("rust_version") and version(p["rust_version"]) > msrv
]
if too_new:
    sys.exit(f"check-msrv: MSRV is {root['rust_version']}, but: " + "; ".join(too_new))
