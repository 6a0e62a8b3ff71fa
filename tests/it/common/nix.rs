//! Rigs for evaluating the Nix side: where nixpkgs' lib, nix-darwin, home-manager and agenix
//! are (`nix-src/…` of the reference data, [`super::reference`]), and `nix-instantiate
//! --eval` of the harness in `nix/tests/eval` against a dummy store (nothing written) or a
//! private chroot store.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{nix_string, require_tool, run, stderr, stdout};

/// The sources the evaluation tests need.
pub struct Sources {
    pub nixpkgs_lib: PathBuf,
    pub nix_darwin: PathBuf,
    pub home_manager: PathBuf,
    pub agenix: PathBuf,
}

/// Each tree's override variable and its place in the reference data.
const TREES: [(&str, &str); 4] = [
    ("AGEFLEET_NIXPKGS_LIB", "nix-src/nixpkgs-lib"),
    ("AGEFLEET_NIX_DARWIN", "nix-src/nix-darwin"),
    ("AGEFLEET_HOME_MANAGER", "nix-src/home-manager"),
    ("AGEFLEET_AGENIX_SRC", "nix-src/agenix"),
];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sources; fails the test when nix-instantiate or one of them is missing (such tests
/// are `#[ignore = "needs …"]`).
pub fn sources() -> Sources {
    require_tool("nix-instantiate");
    let [nixpkgs_lib, nix_darwin, home_manager, agenix] =
        TREES.map(|(var, sub)| super::reference(sub, var).canonicalize().unwrap());
    Sources {
        nixpkgs_lib,
        nix_darwin,
        home_manager,
        agenix,
    }
}

fn path_str(p: &Path) -> String {
    nix_string(&p.display().to_string())
}

impl Sources {
    /// `import nix/tests/eval { … }`; `agefleet_out` is a directory with bin/agefleet.
    pub fn harness(&self, agefleet_out: Option<&Path>) -> String {
        format!(
            "(import {} {{ nixpkgsLib = {}; nixDarwin = {}; homeManager = {}; agenix = {}; agefleetOut = {}; }})",
            path_str(&repo().join("nix/tests/eval")),
            path_str(&self.nixpkgs_lib),
            path_str(&self.nix_darwin),
            path_str(&self.home_manager),
            path_str(&self.agenix),
            agefleet_out.map_or("null".to_string(), path_str),
        )
    }
}

/// Where store paths go while evaluating.
pub enum Store<'a> {
    /// `dummy://`: store paths are computed, nothing is written.
    Dummy,
    /// A private chroot store at this directory (its files under `DIR/nix/store`).
    Chroot(&'a Path),
}

/// `nix-instantiate --eval --strict --json -E expr` with `extra` arguments.
pub fn eval(expr: &str, store: Store, extra: &[&str]) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new("nix-instantiate");
    cmd.current_dir(repo())
        .args(["--eval", "--strict", "--json"])
        .env("NIX_PATH", "")
        .env_remove("NIX_REMOTE");
    match store {
        Store::Dummy => {
            cmd.args(["--store", "dummy://"]);
        }
        Store::Chroot(dir) => {
            cmd.arg("--store").arg(dir).arg("--read-write-mode");
        }
    }
    let out = run(cmd.args(extra).arg("-E").arg(expr));
    if !out.status.success() {
        return Err(stderr(&out));
    }
    serde_json::from_str(&stdout(&out)).map_err(|e| format!("{e}: {}", stdout(&out)))
}

/// The file behind a store path of a chroot store.
pub fn in_chroot(store: &Path, store_path: &str) -> PathBuf {
    store.join(store_path.trim_start_matches('/'))
}
