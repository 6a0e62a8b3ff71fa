//! `secrets.nix` -> [`Rules`].
//!
//! Two backends produce the same JSON value: the builtin lazy evaluator over the rnix AST
//! (`eval`), and `nix-instantiate --eval --strict --json` (`nixcli`), run at most once per
//! invocation. The JSON value is then turned into per-entry [`Rule`]s; a bad entry is an error
//! for that entry only.
//!
//! INTERFACE CONTRACT (used by commands and other modules; implementation in this directory):
//! - [`load`] evaluates a rules file and returns every entry, good or bad, sorted by name.
//! - [`evaluate_json`] returns the value `nix-instantiate --eval --strict --json` would print.
//! - Errors render as one line: `<file>:<line>:<col>: <what>` where a position exists.

use std::path::{Path, PathBuf};

/// Which evaluator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// Builtin evaluator; fall back to `nix-instantiate` for what it does not support.
    Auto,
    /// Builtin evaluator only.
    Builtin,
    /// `nix-instantiate` only.
    Nix,
}

/// Which evaluator produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Builtin,
    Nix,
}

/// One secret's rule, validated in shape (the key strings themselves are parsed by
/// `recipient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Recipient strings, one key each: multi-line strings are split, empty lines dropped,
    /// surrounding whitespace trimmed.
    pub public_keys: Vec<String>,
    /// `armor = true` in the rule.
    pub armor: bool,
}

/// An entry of the rules attrset: its name (the attribute name, e.g. `"dir/x.age"`) and
/// either its rule or why it is bad.
#[derive(Debug, Clone)]
pub struct RuleEntry {
    pub name: String,
    pub rule: Result<Rule, RuleError>,
}

/// The evaluated rules file.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The rules file as given.
    pub path: PathBuf,
    /// The directory rule names are relative to (the rules file's directory).
    pub dir: PathBuf,
    /// Every entry, sorted by name.
    pub entries: Vec<RuleEntry>,
    /// Which backend evaluated the file.
    pub backend: Backend,
    /// Set when `Auto` fell back to Nix: what the builtin evaluator did not support.
    pub fallback_reason: Option<String>,
}

/// Why one entry is unusable. `Display` is one line naming the rules file, the entry and
/// (where known) line:col.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub message: String,
}

/// Why the rules file as a whole could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or evaluation error at a position: `file:line:col: message`.
    #[error("{file}:{line}:{col}: {message}")]
    At {
        file: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    /// An evaluation error without a position.
    #[error("{file}: {message}")]
    Eval { file: PathBuf, message: String },
    /// The builtin evaluator does not support a construct (Auto falls back on this).
    #[error("{file}:{line}:{col}: not supported by the builtin evaluator: {what}")]
    Unsupported {
        file: PathBuf,
        line: usize,
        col: usize,
        what: String,
    },
    /// `nix-instantiate` is not installed or failed to run.
    #[error("{0}")]
    NixUnavailable(String),
    /// `nix-instantiate` ran and failed; its stderr verbatim.
    #[error("{file}: nix-instantiate failed:\n{stderr}")]
    NixFailed { file: PathBuf, stderr: String },
}

impl Rules {
    /// The entry whose name designates `name` (see [`crate::rules::names`]).
    pub fn entry(&self, name: &str) -> Option<&RuleEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// Evaluates `path` and returns every entry. Errors only when the file as a whole fails.
pub fn load(path: &Path, mode: EvalMode) -> Result<Rules, RulesError> {
    let _ = (path, mode);
    unimplemented!("rules::load: implemented by the rules work")
}

/// The JSON value `nix-instantiate --eval --strict --json <path>` prints, from the chosen
/// backend.
pub fn evaluate_json(
    path: &Path,
    mode: EvalMode,
) -> Result<(serde_json::Value, Backend, Option<String>), RulesError> {
    let _ = (path, mode);
    unimplemented!("rules::evaluate_json: implemented by the rules work")
}
