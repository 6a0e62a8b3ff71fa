//! The Nix backend: `nix-instantiate --eval --strict --json`, run once per invocation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::RulesError;

const TOOL: &str = "nix-instantiate";

/// Evaluates every entry of a rules file in one call: each entry becomes `{ ok = …; }`
/// (only `publicKeys`, `armor`, `pq` and `generator`, fully evaluated) or `{ failed = true; }` when it throws
/// or fails an assertion; other errors fail the whole call with Nix's message.
const ENTRIES_WRAPPER: &str = r#"{ rulesFile }:
let
  rules = import rulesFile;
  pick = v: if builtins.isAttrs v then builtins.intersectAttrs { publicKeys = null; armor = null; pq = null; generator = null; } v else v;
  check = v: let r = builtins.tryEval (builtins.deepSeq v v); in
    if r.success then { ok = pick r.value; } else { failed = true; };
in
  if builtins.isAttrs rules
  then { type = "set"; entries = builtins.mapAttrs (name: check) rules; }
  else { type = builtins.typeOf rules; }
"#;

/// Whether `nix-instantiate` is on PATH.
pub fn available() -> bool {
    find().is_some()
}

fn find() -> Option<PathBuf> {
    crate::fsutil::find_program(TOOL, std::env::var_os("PATH").as_deref())
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| Path::new(".").join(path))
}

fn command() -> Result<Command, RulesError> {
    let tool = find().ok_or_else(|| {
        RulesError::NixUnavailable(
            "nix-instantiate not found: install Nix or use --nix-eval=builtin".into(),
        )
    })?;
    let mut cmd = Command::new(tool);
    cmd.args(["--eval", "--strict", "--json"]);
    // Without root there is usually no writable store or daemon; evaluation needs neither.
    if !rustix::process::geteuid().is_root() {
        cmd.args(["--store", "dummy://"]);
    }
    Ok(cmd)
}

fn run(mut cmd: Command, file: &Path) -> Result<serde_json::Value, RulesError> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| RulesError::NixUnavailable(format!("cannot run {TOOL}: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    if !out.status.success() {
        return Err(RulesError::NixFailed {
            file: file.to_path_buf(),
            stderr,
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| RulesError::NixFailed {
        file: file.to_path_buf(),
        stderr: format!("{stderr}\n(output is not JSON: {e})")
            .trim()
            .to_string(),
    })
}

/// What `nix-instantiate --eval --strict --json <file>` prints.
pub fn eval_file(file: &Path) -> Result<serde_json::Value, RulesError> {
    let mut cmd = command()?;
    cmd.arg(absolute(file));
    run(cmd, file)
}

/// Per-entry evaluation (see [`ENTRIES_WRAPPER`]).
pub fn eval_entries(file: &Path) -> Result<serde_json::Value, RulesError> {
    let mut cmd = command()?;
    cmd.arg("--argstr")
        .arg("rulesFile")
        .arg(absolute(file))
        .arg("-E")
        .arg(ENTRIES_WRAPPER);
    run(cmd, file)
}
