//! `host add` (`--replace`) / `host remove` planned as text edits of `secrets.nix` on rnix's lossless
//! syntax tree: the new text is the old one with only the inserted (or removed) pieces
//! changed, never a regenerated file. Every plan is verified by evaluating the rules before
//! and after (builtin evaluator): exactly the intended rules gain (or lose) exactly the
//! host's key and nothing else changes; otherwise nothing is planned and the error says why,
//! with a snippet for a manual edit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::syntax::{self, Layout, TextEdit};
use crate::recipient::Recipient;
use crate::rules::{self, RuleEntry, RulesError};

/// Which secrets a new host gets.
#[derive(Debug, Clone)]
pub enum Target {
    /// The lists where this binding appears: the secrets it can read.
    Like(String),
    /// These rule names (`*` and `?` wildcards allowed).
    Secrets(Vec<String>),
}

/// A verified edit of the rules file.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The rules file.
    pub path: PathBuf,
    /// The file's text the plan was made from ([`write()`] refuses if it changed since).
    pub old_text: String,
    /// The file's text after the edit.
    pub new_text: String,
    /// The host's key as bound in the file.
    pub key: String,
    /// Rule names whose recipients change (for `remove`: the secrets the host could read).
    pub changed: Vec<String>,
    /// Rules the edit leaves without any recipient (they can no longer be encrypted).
    pub emptied: Vec<String>,
}

/// Why a rules-file edit was not planned or not written. `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The rules file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The rules file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The rules file does not evaluate.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The host name is not a plain Nix identifier.
    #[error("{0:?} is not a plain Nix identifier (letters, digits, _ ' -; not a keyword)")]
    BadName(String),
    /// The host's key is not a valid public key.
    #[error(transparent)]
    Key(#[from] crate::recipient::RecipientError),
    /// The `--key-file` does not hold exactly one public key line.
    #[error("{}: expected one public key line, found {found}", path.display())]
    KeyFileLines {
        /// The key file.
        path: PathBuf,
        /// How many key lines it holds.
        found: usize,
    },
    /// The `--key-file` key line holds a control character.
    #[error("{}:{line}:{col}: control character {} in the public key line (it would be written into secrets.nix and printed)", path.display(), crate::text::char_code(*found))]
    KeyFileControl {
        /// The key file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        col: usize,
        /// The character.
        found: char,
    },
    /// The host name is already bound in the `let` block.
    #[error("{file}: {name:?} is already bound at line {line}")]
    AlreadyBound {
        /// The rules file.
        file: PathBuf,
        /// The host name.
        name: String,
        /// 1-based line of the existing binding.
        line: usize,
    },
    /// The `let` block has no binding of that name (`--like` or `host remove`).
    #[error("{file}: no let binding named {name:?}")]
    Unknown {
        /// The rules file.
        file: PathBuf,
        /// The name looked for.
        name: String,
    },
    /// The key is already in the file: bound to a name, or a recipient of a rule.
    #[error("{file}: this key is already {what}")]
    KeyPresent {
        /// The rules file.
        file: PathBuf,
        /// Where it is: `bound as "name"` or `a recipient of "rule"`.
        what: String,
    },
    /// A secret pattern matches no rule.
    #[error("{file}: no secret matches {pattern:?}")]
    NoMatch {
        /// The rules file.
        file: PathBuf,
        /// The pattern as given.
        pattern: String,
    },
    /// The file is not of a shape this editor can change safely.
    #[error("{file}: cannot edit safely: {why}")]
    Unsafe {
        /// The rules file.
        file: PathBuf,
        /// What shape stops the edit.
        why: String,
    },
    /// The edit was made but did not evaluate to the intended rules.
    #[error("{file}: the edit would not do exactly what was asked ({why}); nothing written")]
    Unverified {
        /// The rules file.
        file: PathBuf,
        /// How the evaluated result differs from the intended one.
        why: String,
        /// What to change by hand.
        snippet: String,
    },
    /// The file changed between planning and writing.
    #[error("{path}: changed while being edited; nothing written")]
    Raced {
        /// The rules file.
        path: PathBuf,
    },
    /// Writing the new text failed.
    #[error(transparent)]
    Write(#[from] crate::fsutil::FsError),
}

impl EditError {
    /// A snippet for a manual edit, when one helps.
    pub fn snippet(&self) -> Option<&str> {
        match self {
            EditError::Unverified { snippet, .. } => Some(snippet),
            _ => None,
        }
    }
}

/// The rules file's text.
pub fn read(path: &Path) -> Result<String, EditError> {
    std::fs::read_to_string(path).map_err(|source| EditError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Evaluates `text` with the builtin evaluator; the editor verifies with it only.
fn evaluate(path: &Path, text: &str) -> Result<Vec<RuleEntry>, EditError> {
    match rules::evaluate_str(path, text.to_string()) {
        Err(RulesError::Unsupported { .. }) => Err(unsafe_edit(
            path,
            "the builtin evaluator does not support this file, so an edit cannot be verified",
        )),
        other => Ok(other?),
    }
}

fn unsafe_edit(path: &Path, why: impl Into<String>) -> EditError {
    EditError::Unsafe {
        file: path.to_path_buf(),
        why: why.into(),
    }
}

fn parse_layout(path: &Path, text: &str) -> Result<Layout, EditError> {
    let layout =
        syntax::layout(text).ok_or_else(|| unsafe_edit(path, "rnix cannot parse the file"))?;
    if layout.rules.is_none() {
        return Err(unsafe_edit(
            path,
            "the rules are not one literal attribute set (built by a function?)",
        ));
    }
    Ok(layout)
}

/// Refuses a key the file already has: bound to some name, or written as a recipient of
/// some rule (one key must not end up under two names, which `host remove` could not undo).
fn refuse_present_key(
    path: &Path,
    layout: &Layout,
    before: &[RuleEntry],
    recipient: &Recipient,
) -> Result<(), EditError> {
    if let Some(b) = layout
        .bindings
        .iter()
        .find(|b| b.key.as_deref().is_some_and(|k| recipient.matches_key(k)))
    {
        return Err(EditError::KeyPresent {
            file: path.to_path_buf(),
            what: format!("bound as {:?}", b.name),
        });
    }
    if let Some(e) = before.iter().find(|e| {
        e.rule
            .as_ref()
            .is_ok_and(|r| r.public_keys.iter().any(|k| recipient.matches_key(k)))
    }) {
        return Err(EditError::KeyPresent {
            file: path.to_path_buf(),
            what: format!("a recipient of {:?}", e.name),
        });
    }
    Ok(())
}

/// Plans `host add NAME`: binds `name = "<key>";` and adds `name` to the lists `target`
/// means.
pub fn plan_add(
    path: &Path,
    text: &str,
    name: &str,
    key: &str,
    target: &Target,
) -> Result<Plan, EditError> {
    if !crate::keys::nix::is_identifier(name) {
        return Err(EditError::BadName(name.to_string()));
    }
    let key = key.trim();
    let recipient = Recipient::parse(key)?;
    let before = evaluate(path, text)?;
    let layout = parse_layout(path, text)?;
    if let Some(at) = layout.bound_at(name) {
        let (line, _) = rules::syntax::line_col(text, at);
        return Err(EditError::AlreadyBound {
            file: path.to_path_buf(),
            name: name.to_string(),
            line,
        });
    }
    refuse_present_key(path, &layout, &before, &recipient)?;

    let binding_text = format!("{name} = {};", crate::keys::nix::nix_string(key));
    let mut edits: Vec<TextEdit> = Vec::new();
    // How many times each rule must gain the key.
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    let anchor = match target {
        Target::Like(other) => {
            let b = layout.binding(other).ok_or_else(|| EditError::Unknown {
                file: path.to_path_buf(),
                name: other.clone(),
            })?;
            let Some(other_key) = b.key.clone() else {
                return Err(unsafe_edit(
                    path,
                    format!("the key of {other:?} is computed (readFile, import, a function), not a string literal"),
                ));
            };
            let other_key = other_key.trim().to_string();
            for e in &before {
                if let Ok(r) = &e.rule {
                    let n = r.public_keys.iter().filter(|k| **k == other_key).count();
                    if n > 0 {
                        expected.insert(e.name.clone(), n);
                    }
                }
            }
            if let Some(root) = layout.top.parent() {
                for r in syntax::references(&root, other) {
                    if r.parent()
                        .is_some_and(|p| p.kind() == rnix::SyntaxKind::NODE_LIST)
                    {
                        edits.push(syntax::insert_after(&r, name));
                    }
                }
            }
            Some(b.node.clone())
        }
        Target::Secrets(patterns) => {
            let exprs = layout.public_keys_exprs();
            for pattern in patterns {
                let wanted = crate::names::normalize_name(pattern);
                let matched: Vec<&RuleEntry> = before
                    .iter()
                    .filter(|e| {
                        crate::names::glob(
                            wanted.as_bytes(),
                            crate::names::normalize_name(&e.name).as_bytes(),
                        )
                    })
                    .collect();
                if matched.is_empty() {
                    return Err(EditError::NoMatch {
                        file: path.to_path_buf(),
                        pattern: pattern.clone(),
                    });
                }
                for e in matched {
                    if expected.insert(e.name.clone(), 1).is_some() {
                        continue;
                    }
                    let mut exprs_of = exprs.iter().filter(|(n, _)| *n == e.name);
                    let (Some((_, expr)), None) = (exprs_of.next(), exprs_of.next()) else {
                        return Err(unsafe_edit(
                            path,
                            format!(
                                "the publicKeys of {:?} are not written once, literally, in the rules attrset",
                                e.name
                            ),
                        ));
                    };
                    let edit = syntax::append_to_keys(expr, name).ok_or_else(|| {
                        unsafe_edit(
                            path,
                            format!(
                                "the publicKeys of {:?} are not a list this editor can extend",
                                e.name
                            ),
                        )
                    })?;
                    edits.push(edit);
                }
            }
            layout
                .bindings
                .iter()
                .rev()
                .find(|b| b.key.is_some())
                .or(layout.bindings.last())
                .map(|b| b.node.clone())
        }
    };
    edits.push(match anchor {
        Some(node) => syntax::insert_after(&node, &binding_text),
        None => syntax::new_binding_without_anchor(&layout, &binding_text)
            .ok_or_else(|| unsafe_edit(path, "no place for a new let binding"))?,
    });
    let new_text = syntax::apply(text, edits);
    let snippet = || add_snippet(&binding_text, name, &expected);
    verify_edit(
        path,
        &new_text,
        &before,
        |name, keys| {
            let mut keys = keys.to_vec();
            keys.extend(std::iter::repeat_n(
                key.to_string(),
                expected.get(name).copied().unwrap_or(0),
            ));
            keys
        },
        snippet,
    )?;
    let changed: Vec<String> = expected.keys().cloned().collect();
    Ok(Plan {
        path: path.to_path_buf(),
        old_text: text.to_string(),
        new_text,
        key: key.to_string(),
        changed,
        emptied: Vec::new(),
    })
}

/// Plans `host add NAME --replace`: the string NAME is bound to becomes `key`; every list
/// naming NAME is kept, so exactly the rules that listed the old key list the new one.
pub fn plan_replace(path: &Path, text: &str, name: &str, key: &str) -> Result<Plan, EditError> {
    let key = key.trim();
    let recipient = Recipient::parse(key)?;
    let before = evaluate(path, text)?;
    let layout = parse_layout(path, text)?;
    let binding = layout.binding(name).ok_or_else(|| EditError::Unknown {
        file: path.to_path_buf(),
        name: name.to_string(),
    })?;
    let Some(old_key) = binding.key.clone().map(|k| k.trim().to_string()) else {
        return Err(unsafe_edit(
            path,
            format!("the key of {name:?} is computed (readFile, import, a function), not a string literal"),
        ));
    };
    if recipient.matches_key(&old_key) {
        return Err(EditError::KeyPresent {
            file: path.to_path_buf(),
            what: format!("bound as {name:?}: nothing to replace"),
        });
    }
    refuse_present_key(path, &layout, &before, &recipient)?;
    let literal = crate::keys::nix::nix_string(key);
    let edit = syntax::replace_value(&binding.node, &literal)
        .ok_or_else(|| unsafe_edit(path, format!("the binding of {name:?} has no value")))?;
    let new_text = syntax::apply(text, vec![edit]);
    let changed: Vec<String> = before
        .iter()
        .filter(|e| {
            e.rule
                .as_ref()
                .is_ok_and(|r| r.public_keys.contains(&old_key))
        })
        .map(|e| e.name.clone())
        .collect();
    let snippet =
        || format!("in the let block, bind {name} to the new key:\n  {name} = {literal};\n");
    verify_edit(
        path,
        &new_text,
        &before,
        |_, keys| {
            keys.iter()
                .map(|k| {
                    if *k == old_key {
                        key.to_string()
                    } else {
                        k.clone()
                    }
                })
                .collect()
        },
        snippet,
    )?;
    Ok(Plan {
        path: path.to_path_buf(),
        old_text: text.to_string(),
        new_text,
        key: key.to_string(),
        changed,
        emptied: Vec::new(),
    })
}

fn add_snippet(binding: &str, name: &str, expected: &BTreeMap<String, usize>) -> String {
    let mut s = format!("in the let block:\n  {binding}\n");
    for rule in expected.keys() {
        s.push_str(&format!("add {name} to the publicKeys of {rule:?}\n"));
    }
    s
}

/// Plans `host remove NAME`: removes its binding and every list element naming it.
pub fn plan_remove(path: &Path, text: &str, name: &str) -> Result<Plan, EditError> {
    let before = evaluate(path, text)?;
    let layout = parse_layout(path, text)?;
    let unknown = || EditError::Unknown {
        file: path.to_path_buf(),
        name: name.to_string(),
    };
    let binding = layout.binding(name).ok_or_else(unknown)?;
    let Some(key) = binding.key.clone().map(|k| k.trim().to_string()) else {
        return Err(unsafe_edit(
            path,
            format!("the key of {name:?} is computed (readFile, import, a function), not a string literal"),
        ));
    };
    let mut edits = vec![syntax::remove(&binding.node)];
    let root = layout.top.parent().ok_or_else(unknown)?;
    for r in syntax::references(&root, name) {
        if r.parent()
            .is_some_and(|p| p.kind() == rnix::SyntaxKind::NODE_LIST)
        {
            edits.push(syntax::remove(&r));
        } else {
            let (line, col) = rules::syntax::line_col(text, syntax::start(&r));
            return Err(EditError::Unsafe {
                file: path.to_path_buf(),
                why: format!("{name} is used at {line}:{col} outside a list; remove it by hand"),
            });
        }
    }
    let changed: Vec<String> = before
        .iter()
        .filter(|e| e.rule.as_ref().is_ok_and(|r| r.public_keys.contains(&key)))
        .map(|e| e.name.clone())
        .collect();
    let new_text = syntax::apply(text, edits);
    let snippet = || {
        let mut s = format!("remove the binding of {name} and {name} from the publicKeys of:\n");
        for c in &changed {
            s.push_str(&format!("  {c:?}\n"));
        }
        s
    };
    let after = verify_edit(
        path,
        &new_text,
        &before,
        |_, keys| keys.iter().filter(|k| **k != key).cloned().collect(),
        snippet,
    )?;
    let emptied = after
        .iter()
        .filter(|e| e.rule.as_ref().is_ok_and(|r| r.public_keys.is_empty()))
        .filter(|e| changed.contains(&e.name))
        .map(|e| e.name.clone())
        .collect();
    Ok(Plan {
        path: path.to_path_buf(),
        old_text: text.to_string(),
        new_text,
        key,
        changed,
        emptied,
    })
}

/// Evaluates the edited `new_text` and checks its rules are `before`'s with each rule's keys
/// turned into `expected(name, keys)` ([`verify`]): the rules after the edit, or
/// [`EditError::Unverified`] with `snippet`, the edit to make by hand.
fn verify_edit(
    path: &Path,
    new_text: &str,
    before: &[RuleEntry],
    expected: impl Fn(&str, &[String]) -> Vec<String>,
    snippet: impl Fn() -> String,
) -> Result<Vec<RuleEntry>, EditError> {
    let unverified = |why: String| EditError::Unverified {
        file: path.to_path_buf(),
        why,
        snippet: snippet(),
    };
    let after = evaluate(path, new_text)
        .map_err(|e| unverified(format!("the edited file does not evaluate: {e}")))?;
    verify(before, &after, expected).map_err(|why| unverified(why.to_string()))?;
    Ok(after)
}

/// How an edited file's rules differ from the intended ones.
#[derive(Debug, thiserror::Error)]
enum Mismatch {
    #[error("the set of secrets would change")]
    Secrets,
    #[error("the recipients of {0:?} would not be as intended")]
    Recipients(String),
    #[error("the armor of {0:?} would change")]
    Armor(String),
    #[error("{0:?} would become bad: {1}")]
    BecameBad(String, String),
    #[error("{0:?} would change from bad to good")]
    BecameGood(String),
}

/// Checks that `after` is `before` with each rule's keys turned into `expected(name, keys)`
/// (compared as multisets) and nothing else changed.
fn verify(
    before: &[RuleEntry],
    after: &[RuleEntry],
    expected: impl Fn(&str, &[String]) -> Vec<String>,
) -> Result<(), Mismatch> {
    let names = |v: &[RuleEntry]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    if names(before) != names(after) {
        return Err(Mismatch::Secrets);
    }
    for (b, a) in before.iter().zip(after) {
        match (&b.rule, &a.rule) {
            (Ok(b_rule), Ok(a_rule)) => {
                let mut want = expected(&b.name, &b_rule.public_keys);
                let mut got = a_rule.public_keys.clone();
                want.sort();
                got.sort();
                if want != got {
                    return Err(Mismatch::Recipients(b.name.clone()));
                }
                if b_rule.armor != a_rule.armor {
                    return Err(Mismatch::Armor(b.name.clone()));
                }
            }
            (Err(_), Err(_)) => {}
            (Ok(_), Err(e)) => return Err(Mismatch::BecameBad(b.name.clone(), e.to_string())),
            (Err(_), Ok(_)) => return Err(Mismatch::BecameGood(b.name.clone())),
        }
    }
    Ok(())
}

/// Writes the plan's new text atomically (mode kept), if the file still holds the text the
/// plan was made from.
pub fn write(plan: &Plan) -> Result<(), EditError> {
    if read(&plan.path)? != plan.old_text {
        return Err(EditError::Raced {
            path: plan.path.clone(),
        });
    }
    crate::fsutil::atomic_write(&plan.path, plan.new_text.as_bytes(), 0o644)?;
    Ok(())
}

/// A unified diff of the plan (`--- a/FILE`, `+++ b/FILE`, 3 lines of context).
pub fn unified_diff(plan: &Plan) -> String {
    let shown = plan
        .path
        .strip_prefix(".")
        .unwrap_or(&plan.path)
        .display()
        .to_string();
    similar::TextDiff::from_lines(&plan.old_text, &plan.new_text)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{shown}"), &format!("b/{shown}"))
        .to_string()
}

/// The one public key line of a `.pub` file (blank lines and `#` comments ignored).
pub fn key_from_file(path: &Path) -> Result<String, EditError> {
    let text = std::fs::read_to_string(path).map_err(|source| EditError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .collect();
    match lines.as_slice() {
        [(i, one)] => match crate::text::first_control(one.trim_end()) {
            Some((col, found)) => Err(EditError::KeyFileControl {
                path: path.to_path_buf(),
                line: i + 1,
                col,
                found,
            }),
            None => Ok(one.trim().to_string()),
        },
        _ => Err(EditError::KeyFileLines {
            path: path.to_path_buf(),
            found: lines.len(),
        }),
    }
}
