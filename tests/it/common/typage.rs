//! typage (npm `age-encryption`, installed by scripts/deps.sh into target/npm) driven through
//! `tests/typage/age.mjs`: an independent age implementation with the hybrid post-quantum
//! recipient, for interop tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The package's entry point: `AGEFLEET_TYPAGE_DIR` (the package directory) or the copy
/// scripts/deps.sh installs.
fn module() -> PathBuf {
    let dir = match std::env::var_os("AGEFLEET_TYPAGE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/npm/node_modules/age-encryption"),
    };
    dir.join("dist/index.js")
}

/// Fails the test unless node and typage are there (such tests are `#[ignore = "needs …"]`).
pub fn require_typage() {
    super::require_tool("node");
    assert!(
        module().is_file(),
        "typage not installed at {} (scripts/deps.sh installs it)",
        module().display()
    );
}

fn node(args: &[&std::ffi::OsStr]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/typage/age.mjs");
    Command::new("node")
        .arg(script)
        .args(args)
        .env("TYPAGE_MODULE", module())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn node")
}

/// A new hybrid identity from typage: (identity line, `age1pq1…` recipient).
pub fn keygen() -> (String, String) {
    let out = node(&["keygen".as_ref()]);
    assert!(
        out.status.success(),
        "typage keygen: {}",
        super::stderr(&out)
    );
    let text = super::stdout(&out);
    let mut lines = text.lines();
    let identity = lines.next().expect("identity line").to_string();
    let recipient = lines.next().expect("recipient line").to_string();
    (identity, recipient)
}

/// Encrypts `plaintext` to `recipients` into `out` with typage.
pub fn encrypt(plaintext: &Path, out: &Path, recipients: &[&str]) {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["encrypt".as_ref(), plaintext.as_ref(), out.as_ref()];
    args.extend(recipients.iter().map(|r| std::ffi::OsStr::new(*r)));
    let o = node(&args);
    assert!(o.status.success(), "typage encrypt: {}", super::stderr(&o));
}

/// Decrypts `file` (binary or armored) with the identities in `identity_file`.
pub fn decrypt(identity_file: &Path, file: &Path) -> Output {
    node(&["decrypt".as_ref(), identity_file.as_ref(), file.as_ref()])
}
