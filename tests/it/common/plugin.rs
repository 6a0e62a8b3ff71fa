//! The test age plugin (`examples/age-plugin-agefleettest.rs`): where its binary is, and a
//! fresh identity/recipient pair made by it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{run, stderr, stdout};

/// The plugin's name, as in `age1agefleettest1…`.
pub const NAME: &str = "agefleettest";

/// The plugin binary. `cargo test` builds examples with the tests; a run of a single test
/// binary (`cargo test --test plugin`) does not, so it is built here once when missing (an
/// outdated one is not rebuilt here: a nested cargo would wait on the running one's lock;
/// `cargo build --example age-plugin-agefleettest` refreshes it).
pub fn plugin_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test binary> -> target/<profile>/examples/
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let bin = profile_dir
            .join("examples")
            .join(format!("age-plugin-{NAME}"));
        if !bin.is_file() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let target_dir = profile_dir.parent().unwrap();
            let out = run(Command::new(cargo)
                .args([
                    "build",
                    "--locked",
                    "--example",
                    &format!("age-plugin-{NAME}"),
                ])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR")));
            assert!(
                out.status.success(),
                "building the test plugin: {}",
                stderr(&out)
            );
        }
        assert!(bin.is_file(), "no test plugin at {}", bin.display());
        bin
    })
    .clone()
}

/// A directory holding only the plugin binary, to put on PATH.
pub fn plugin_dir() -> PathBuf {
    plugin_binary().parent().unwrap().to_path_buf()
}

/// A new plugin identity written to `dir/name`: (identity file, recipient).
pub fn plugin_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let out = run(&mut Command::new(plugin_binary()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("recipient line")
        .to_string();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    (path, recipient)
}

/// `PATH` with the plugin's directory first.
pub fn path_with_plugin() -> std::ffi::OsString {
    let mut dirs = vec![plugin_dir()];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).unwrap()
}
