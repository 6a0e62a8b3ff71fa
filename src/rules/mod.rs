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

mod builtins;
mod convert;
mod eval;
mod generator;
mod nix_builtins;
mod nixcli;
mod strings;
pub(crate) mod syntax;
mod value;

use eval::{ErrorKind, EvalError, Evaluator};
pub use generator::{Generator, GeneratorError, KINDS as GENERATOR_KINDS};
/// The Nix version whose `builtins` names the builtin evaluator's `builtins` holds.
pub use nix_builtins::NIX_VERSION as NIX_BUILTINS_VERSION;
use value::Value;

/// The environment variable that sets the builtin evaluator's memory budget, in MiB
/// (default [`eval::DEFAULT_BUDGET`]).
pub const BUDGET_ENV: &str = "AGEFLEET_EVAL_BUDGET_MIB";

/// The builtin evaluator's memory budget in bytes: [`BUDGET_ENV`] when set, else the
/// default. A value that is not a positive number of MiB is an error naming the variable.
fn eval_budget(path: &Path) -> Result<usize, RulesError> {
    let Some(v) = std::env::var_os(BUDGET_ENV) else {
        return Ok(eval::DEFAULT_BUDGET);
    };
    v.to_str()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&mib| mib > 0)
        .and_then(|mib| mib.checked_mul(1 << 20))
        .ok_or_else(|| RulesError::Eval {
            file: path.to_path_buf(),
            message: format!(
                "{BUDGET_ENV}={:?} is not a positive number of MiB",
                v.to_string_lossy()
            ),
        })
}

/// Stacks tried for the thread that parses and evaluates, largest first (a small machine may
/// refuse to map the largest). Only touched pages are ever committed.
const EVAL_STACK_SIZES: [usize; 3] = [1 << 30, 1 << 28, 1 << 26];

/// Stack allowed per level of evaluation depth: over twice what an unoptimised build uses.
const STACK_PER_LEVEL: usize = 64 << 10;

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
    /// agefleet's own evaluator (`rules::eval`).
    Builtin,
    /// `nix-instantiate --eval`.
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
    /// `pq = true` in the rule: every recipient must be post-quantum (`age1pq1…`).
    pub pq: bool,
    /// `generator = …` in the rule: how `agefleet generate` makes the value.
    pub generator: Option<Generator>,
}

/// An entry of the rules attrset: its name (the attribute name, e.g. `"dir/x.age"`) and
/// either its rule or why it is bad.
#[derive(Debug, Clone)]
pub struct RuleEntry {
    /// The attribute name: the secret's file, relative to the rules directory.
    pub name: String,
    /// The validated rule, or why this entry is unusable (other entries stay usable).
    pub rule: Result<Rule, RuleError>,
}

/// The evaluated rules file.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The rules file as given.
    pub path: PathBuf,
    /// The directory rule names are relative to: the rules file's directory, or `.` when a
    /// command chose agenix's current-directory reading (`Rules::choose_name_base`).
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
    /// The whole one-line message.
    pub message: String,
}

/// Why the rules file as a whole could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The rules file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// Syntax or evaluation error at a position: `file:line:col: message`.
    #[error("{file}:{line}:{col}: {message}")]
    At {
        /// The rules file.
        file: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        col: usize,
        /// The evaluator's message.
        message: String,
    },
    /// An evaluation error without a position.
    #[error("{file}: {message}")]
    Eval {
        /// The rules file.
        file: PathBuf,
        /// The evaluator's message.
        message: String,
    },
    /// The builtin evaluator does not support a construct (Auto falls back on this).
    #[error("{file}:{line}:{col}: not supported by the builtin evaluator: {what}")]
    Unsupported {
        /// The rules file.
        file: PathBuf,
        /// 1-based line of the construct.
        line: usize,
        /// 1-based column (in characters) of the construct.
        col: usize,
        /// What is unsupported, e.g. `builtins.fetchGit`.
        what: String,
    },
    /// `nix-instantiate` is not installed or failed to run.
    #[error("{0}")]
    NixUnavailable(String),
    /// `nix-instantiate` ran and failed; its stderr verbatim.
    #[error("{file}: nix-instantiate failed:\n{stderr}")]
    NixFailed {
        /// The rules file.
        file: PathBuf,
        /// `nix-instantiate`'s stderr, verbatim.
        stderr: String,
    },
}

impl Rules {
    /// The entry named exactly `name` (matching of file names is in [`crate::names`]).
    pub fn entry(&self, name: &str) -> Option<&RuleEntry> {
        // `entries` is sorted by name (byte order).
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Evaluates `path` and returns every entry. Errors only when the file as a whole fails.
pub fn load(path: &Path, mode: EvalMode) -> Result<Rules, RulesError> {
    load_alongside(path, mode, || ()).0
}

/// [`load`], running `alongside` on the calling thread while the builtin evaluator works on
/// its own (or before `nix-instantiate` runs): work that does not need the rules, such as
/// reading the headers of the files they will name. No thread is added, so the process's
/// address space grows by no more than the work itself allocates (the evaluator's budget
/// holds under a tight `ulimit -v`).
pub fn load_alongside<W>(
    path: &Path,
    mode: EvalMode,
    alongside: impl FnOnce() -> W,
) -> (Result<Rules, RulesError>, W) {
    let mut pending = Some(alongside);
    let mut done = None;
    let mut run = || {
        if let Some(work) = pending.take() {
            done = Some(work());
        }
    };
    let rules = load_running(path, mode, &mut run);
    // Not run yet when no evaluator thread was started (nix-instantiate, an unreadable file).
    run();
    (rules, done.expect("the work alongside ran"))
}

fn load_running(
    path: &Path,
    mode: EvalMode,
    alongside: &mut dyn FnMut(),
) -> Result<Rules, RulesError> {
    let rules = |mut entries: Vec<RuleEntry>, backend, fallback_reason| {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Rules {
            path: path.to_path_buf(),
            dir: dir_of(path),
            entries,
            backend,
            fallback_reason,
        }
    };
    match mode {
        EvalMode::Builtin => Ok(rules(
            builtin_entries(path, alongside)?,
            Backend::Builtin,
            None,
        )),
        EvalMode::Nix => Ok(rules(nix_entries(path)?, Backend::Nix, None)),
        EvalMode::Auto => match builtin_entries(path, alongside) {
            Err(e @ RulesError::Unsupported { .. }) if nixcli::available() => {
                Ok(rules(nix_entries(path)?, Backend::Nix, Some(e.to_string())))
            }
            other => Ok(rules(other?, Backend::Builtin, None)),
        },
    }
}

/// The JSON value `nix-instantiate --eval --strict --json <path>` prints, from the chosen
/// backend.
pub fn evaluate_json(
    path: &Path,
    mode: EvalMode,
) -> Result<(serde_json::Value, Backend, Option<String>), RulesError> {
    match mode {
        EvalMode::Builtin => Ok((builtin_json(path)?, Backend::Builtin, None)),
        EvalMode::Nix => Ok((nixcli::eval_file(path)?, Backend::Nix, None)),
        EvalMode::Auto => match builtin_json(path) {
            Err(e @ RulesError::Unsupported { .. }) if nixcli::available() => {
                Ok((nixcli::eval_file(path)?, Backend::Nix, Some(e.to_string())))
            }
            other => Ok((other?, Backend::Builtin, None)),
        },
    }
}

/// The directory rule names are relative to: the rules file's parent, `.` if it has none.
pub fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read_rules(path: &Path) -> Result<String, RulesError> {
    std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `f` on a thread with a large stack, passing it the evaluation depth that stack
/// affords (at most [`eval::MAX_DEPTH`]); `alongside` runs on the calling thread meanwhile.
fn on_eval_stack<T: Send + 'static>(
    path: &Path,
    alongside: &mut dyn FnMut(),
    f: impl FnOnce(usize) -> Result<T, RulesError> + Send + Clone + 'static,
) -> Result<T, RulesError> {
    let internal = |what: &str| RulesError::Eval {
        file: path.to_path_buf(),
        message: format!("internal error: {what}"),
    };
    let mut last_error = None;
    for size in EVAL_STACK_SIZES {
        let depth = (size / STACK_PER_LEVEL).min(eval::MAX_DEPTH);
        let run = f.clone();
        match std::thread::Builder::new()
            .name("rules-eval".into())
            .stack_size(size)
            .spawn(move || run(depth))
        {
            Ok(handle) => {
                alongside();
                return handle
                    .join()
                    .map_err(|_| internal("the evaluator panicked"))?;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let why = last_error.map_or_else(String::new, |e| e.to_string());
    Err(internal(&format!(
        "cannot start the evaluator thread: {why}"
    )))
}

/// A whole-file evaluation error as a [`RulesError`].
fn file_error(ev: &Evaluator, root: &Path, mut e: EvalError) -> RulesError {
    // Evaluation messages quote names and strings from the rules file; errors stay one line.
    e.message = crate::text::escape_controls_owned(e.message);
    let at = e.pos.map(|p| ev.locate(p));
    match (e.kind, at) {
        (ErrorKind::Unsupported, Some((file, line, col))) => RulesError::Unsupported {
            file,
            line,
            col,
            what: e.message,
        },
        (ErrorKind::Unsupported, None) => RulesError::Unsupported {
            file: root.to_path_buf(),
            line: 1,
            col: 1,
            what: e.message,
        },
        (_, Some((file, line, col))) => RulesError::At {
            file,
            line,
            col,
            message: e.message,
        },
        (_, None) => RulesError::Eval {
            file: root.to_path_buf(),
            message: e.message,
        },
    }
}

/// One entry's evaluation error: `file:line:col: secret "name": what` when it lies in the
/// rules file itself, else the rules file, the secret, then where it happened.
fn entry_error(ev: &Evaluator, root: &Path, name: &str, e: &EvalError) -> RuleError {
    let what = crate::text::escape_controls_owned(e.message.clone());
    let message = match e.pos {
        Some(p) if p.file == 0 => {
            let (file, line, col) = ev.locate(p);
            format!("{}:{line}:{col}: secret {name:?}: {what}", file.display())
        }
        Some(p) => {
            let (file, line, col) = ev.locate(p);
            format!(
                "{}: secret {name:?}: {}:{line}:{col}: {what}",
                root.display(),
                file.display(),
            )
        }
        None => format!("{}: secret {name:?}: {what}", root.display()),
    };
    RuleError { message }
}

fn not_a_set(root: &Path, text: &str, what: &str) -> RulesError {
    let (line, col) = syntax::line_col(text, syntax::first_token_offset(text));
    RulesError::At {
        file: root.to_path_buf(),
        line,
        col,
        message: format!("the rules file evaluates to {what}, not an attribute set"),
    }
}

fn builtin_json(path: &Path) -> Result<serde_json::Value, RulesError> {
    let text = read_rules(path)?;
    let root = path.to_path_buf();
    let budget = eval_budget(path)?;
    on_eval_stack(path, &mut || (), move |max_depth| {
        let mut ev = Evaluator::with_max_depth(max_depth).with_budget(budget);
        let result = ev.eval_root(&root, text).and_then(|v| ev.json_value(&v));
        result.map_err(|e| file_error(&ev, &root, e))
    })
}

fn builtin_entries(path: &Path, alongside: &mut dyn FnMut()) -> Result<Vec<RuleEntry>, RulesError> {
    evaluate_str_alongside(path, read_rules(path)?, alongside)
}

/// The builtin evaluator's entries for rules `text`, as if read from `path` (which names the
/// file in errors and anchors relative imports). The in-memory entry point for fuzzing and
/// property tests; [`load`] is the one for files.
pub fn evaluate_str(path: &Path, text: String) -> Result<Vec<RuleEntry>, RulesError> {
    evaluate_str_alongside(path, text, &mut || ())
}

fn evaluate_str_alongside(
    path: &Path,
    text: String,
    alongside: &mut dyn FnMut(),
) -> Result<Vec<RuleEntry>, RulesError> {
    let root = path.to_path_buf();
    let budget = eval_budget(path)?;
    on_eval_stack(path, alongside, move |max_depth| {
        let mut ev = Evaluator::with_max_depth(max_depth).with_budget(budget);
        let set = match ev.eval_root(&root, text.clone()) {
            Ok(Value::Attrs(set)) => set,
            Ok(other) => return Err(not_a_set(&root, &text, other.type_phrase())),
            Err(e) => return Err(file_error(&ev, &root, e)),
        };
        let root_name = root.display().to_string();
        let mut entries = Vec::with_capacity(set.len());
        for (name, t) in set.iter() {
            let rule = match entry_json(&mut ev, *t) {
                Ok(j) => convert::rule_from_json(&root_name, name, &j).or_else(|_| {
                    // Bad shape: name the entry's definition when it is in the rules file.
                    let location = match ev.defined_at(*t) {
                        Some(p) if p.file == 0 => {
                            let (file, line, col) = ev.locate(p);
                            format!("{}:{line}:{col}", file.display())
                        }
                        _ => root_name.clone(),
                    };
                    convert::rule_from_json(&location, name, &j)
                }),
                Err(e) if matches!(e.kind, ErrorKind::Unsupported | ErrorKind::Budget) => {
                    return Err(file_error(&ev, &root, e))
                }
                Err(e) => Err(entry_error(&ev, &root, name, &e)),
            };
            entries.push(RuleEntry {
                name: name.to_string(),
                rule,
            });
        }
        Ok(entries)
    })
}

/// One entry fully evaluated, as the Nix backend sees it: `publicKeys`, `armor`, `pq` and
/// `generator` as JSON,
/// every other attribute forced (so an error anywhere in the entry makes it bad).
fn entry_json(ev: &mut Evaluator, t: value::ThunkId) -> Result<serde_json::Value, EvalError> {
    let v = ev.force(t)?;
    let Value::Attrs(set) = &v else {
        return ev.json_value(&v);
    };
    let mut out = serde_json::Map::new();
    for (k, t) in set.iter() {
        let item = ev.force(*t)?;
        if matches!(&**k, "publicKeys" | "armor" | "pq" | "generator") {
            out.insert(k.to_string(), ev.json_value(&item)?);
        } else {
            ev.deep_force(&item)?;
        }
    }
    Ok(serde_json::Value::Object(out))
}

fn nix_entries(path: &Path) -> Result<Vec<RuleEntry>, RulesError> {
    let text = read_rules(path)?;
    let out = nixcli::eval_entries(path)?;
    let kind = out.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let Some(entries) = out.get("entries").and_then(|e| e.as_object()) else {
        let what = match kind {
            "int" => "an integer",
            "bool" => "a Boolean",
            "string" => "a string",
            "path" => "a path",
            "null" => "null",
            "list" => "a list",
            "lambda" => "a function",
            "float" => "a float",
            _ => "something else",
        };
        return Err(not_a_set(path, &text, what));
    };
    Ok(entries
        .iter()
        .map(|(name, v)| {
            let rule = match v.get("ok") {
                Some(j) => convert::rule_from_json(&path.display().to_string(), name, j),
                None => Err(convert::entry_error(
                    &path.display().to_string(),
                    name,
                    "evaluation failed in nix-instantiate (throw or failed assertion)",
                )),
            };
            RuleEntry {
                name: name.clone(),
                rule,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests;
