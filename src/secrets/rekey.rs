//! Re-encrypting secrets to the recipients their rules list: [`select`] → [`plan`] →
//! [`execute`] → [`Report`].
//!
//! Every selected file is processed even when others fail; each failure is reported by name.
//! [`plan`] reads the rules and headers first (in parallel, nothing decrypted), so the caller
//! can unlock each passphrase-protected key at most once, and only when a planned file has a
//! stanza for it. [`execute`] then rekeys the files in parallel into temp files, makes them
//! durable with one flush, and renames each over its file (atomic, mode kept; see
//! [`crate::fsutil::Batch`]); the report is in rule order. The whole run must hold the rules
//! directory's write lock ([`crate::fsutil::lock_for_writing`], which also removes the temp files
//! killed runs left beside the selected files).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::{RecipientCache, RuleRecipientsError, SecretError};
use crate::envelope::Header;
use crate::fsutil::{Batch, FsError, WriteLock};
use crate::identity::IdentitySet;
use crate::names::NameError;
use crate::recipient::plugin::PluginUi;
use crate::recipient::Recipient;
use crate::rules::{RuleEntry, Rules};

/// Why one selected secret was not rekeyed. `Display` is one line naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RekeyError {
    /// A file argument that designates no rule (or two).
    #[error("{0}")]
    Name(#[from] NameError),
    /// The secret's rule or its recipients are bad.
    #[error("{0}")]
    Rule(#[from] RuleRecipientsError),
    /// The secret cannot be read, decrypted or encrypted.
    #[error("{0}")]
    Secret(#[from] SecretError),
    /// The new file cannot be written or renamed into place.
    #[error("{0}")]
    Write(#[from] FsError),
    /// A bug: the work on this file panicked (the other files were still processed).
    #[error("{file}: internal error (please report this bug): {what}")]
    Panic {
        /// The file, as shown.
        file: String,
        /// The panic message, control characters escaped.
        what: String,
    },
}

/// What happened to one selected secret.
#[derive(Debug)]
pub enum Outcome {
    /// Re-encrypted and replaced.
    Rekeyed,
    /// Not rekeyed, on purpose (the file does not exist yet).
    Skipped {
        /// Why, for the user.
        reason: &'static str,
    },
    /// Not rekeyed: this went wrong.
    Failed(RekeyError),
}

/// One line of the report.
#[derive(Debug)]
pub struct FileReport {
    /// The file, as shown (its path, or the argument that named no rule).
    pub file: String,
    /// What happened to it.
    pub outcome: Outcome,
}

/// The rules a rekey covers, and the file arguments that name none.
pub struct Selection<'r> {
    /// Arguments that designate no rule, as failures (reported first).
    pub unresolved: Vec<FileReport>,
    /// The selected rules, each once, in the order given (rule order when all).
    pub entries: Vec<&'r RuleEntry>,
    /// Where plugin recipients send their requests while the files are re-encrypted.
    pub plugin_ui: Option<Arc<dyn PluginUi>>,
}

impl Selection<'_> {
    /// The files that will be replaced: what [`crate::fsutil::lock_for_writing`] cleans beside.
    pub fn targets(&self, rules: &Rules) -> Vec<PathBuf> {
        self.entries
            .iter()
            .map(|e| rules.file_of(&e.name))
            .collect()
    }
}

/// The rules named by `files` (read against `cwd`, see [`Rules::resolve`]), or all of them
/// when `files` is empty; only those whose rule lists `recipient`, when given.
pub fn select<'r>(
    rules: &'r Rules,
    files: &[PathBuf],
    cwd: &Path,
    recipient: Option<&Recipient>,
) -> Selection<'r> {
    let mut unresolved = Vec::new();
    let mut entries: Vec<&RuleEntry> = Vec::new();
    if files.is_empty() {
        entries.extend(rules.entries.iter());
    } else {
        for f in files {
            match rules.resolve(f, cwd) {
                Ok(e) if !entries.iter().any(|s| std::ptr::eq(*s, e)) => entries.push(e),
                Ok(_) => {}
                Err(e) => unresolved.push(FileReport {
                    file: f.display().to_string(),
                    outcome: Outcome::Failed(e.into()),
                }),
            }
        }
    }
    if let Some(wanted) = recipient {
        entries.retain(|e| {
            e.rule
                .as_ref()
                .is_ok_and(|r| r.public_keys.iter().any(|k| wanted.matches_key(k)))
        });
    }
    Selection {
        unresolved,
        entries,
        plugin_ui: None,
    }
}

/// A secret that passed the first phase: its rule parsed and its header read.
#[derive(Debug)]
struct Planned {
    path: PathBuf,
    recipients: Vec<Arc<Recipient>>,
    armor: bool,
    header: Header,
}

/// What [`execute`] will do: the files to rekey, and those already decided (skipped or
/// failed), in report order.
#[derive(Debug)]
pub struct Plan {
    /// Failures of the selection, reported first.
    unresolved: Vec<FileReport>,
    /// Each selected file in rule order: decided already (`Some`), or to rekey (`None`, in
    /// the order of `planned`).
    order: Vec<(String, Option<Outcome>)>,
    planned: Vec<Planned>,
}

impl Plan {
    /// The headers of the files to rekey: the keys to unlock are those these need.
    pub fn headers(&self) -> Vec<&Header> {
        self.planned.iter().map(|p| &p.header).collect()
    }

    /// How many files [`execute`] will rekey.
    pub fn len(&self) -> usize {
        self.planned.len()
    }

    /// Whether there is no file to rekey (so no identity is needed).
    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }
}

/// Phase 1, in parallel, decrypting nothing: each selected rule's recipients and its file's
/// header. A missing file is skipped; with `drifted_only`, a file whose header matches its
/// rule is left out (neither rekeyed nor reported). `_lock` is the held write lock.
pub fn plan(
    rules: &Rules,
    selection: Selection<'_>,
    drifted_only: bool,
    _lock: &WriteLock,
) -> Plan {
    let cache = RecipientCache::for_rules(&rules.path).with_plugin_ui(selection.plugin_ui.as_ref());
    let phase1: Vec<(String, Result<Option<Planned>, Outcome>)> = selection
        .entries
        .par_iter()
        .map(|entry| {
            let path = rules.file_of(&entry.name);
            let shown = path.display().to_string();
            let planned = isolate_panic(&shown, || plan_one(&cache, entry, path, drifted_only))
                .unwrap_or_else(Err);
            (shown, planned)
        })
        .collect();
    let mut planned = Vec::new();
    let mut order = Vec::new();
    for (shown, p) in phase1 {
        match p {
            Ok(Some(p)) => {
                order.push((shown, None));
                planned.push(p);
            }
            Ok(None) => {} // not drifted: not selected, not reported
            Err(outcome) => order.push((shown, Some(outcome))),
        }
    }
    Plan {
        unresolved: selection.unresolved,
        order,
        planned,
    }
}

/// Reads the rule and header of one secret. `Ok(None)`: not drifted while only drifted ones
/// are wanted.
fn plan_one(
    cache: &RecipientCache,
    entry: &RuleEntry,
    path: PathBuf,
    drifted_only: bool,
) -> Result<Option<Planned>, Outcome> {
    let failed = |e: RekeyError| Outcome::Failed(e);
    let recipients = cache.of(entry).map_err(|e| failed(e.into()))?;
    let armor = entry.rule.as_ref().map(|r| r.armor).unwrap_or(false);
    let bytes = match super::read_secret(&path) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Err(Outcome::Skipped {
                reason: "the file does not exist (create it with edit)",
            })
        }
        Err(e) => return Err(failed(e.into())),
    };
    let header = super::header_of(&path, &bytes).map_err(|e| failed(e.into()))?;
    if drifted_only && !crate::drift::compare(&super::refs(&recipients), armor, &header).any() {
        return Ok(None);
    }
    Ok(Some(Planned {
        path,
        recipients,
        armor,
        header,
    }))
}

/// A step of [`execute`], for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// One more file was re-encrypted (or failed).
    FileDone,
    /// Every file is done; the new files are being made durable and renamed into place.
    Committing,
}

/// The result of a rekey, one line per selected file in report order.
#[derive(Debug)]
pub struct Report {
    /// Every selected file (or unresolved argument) and what happened to it.
    pub files: Vec<FileReport>,
}

impl Report {
    /// How many files were rekeyed.
    pub fn rekeyed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Rekeyed))
    }

    /// How many failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    /// How many were skipped (their file does not exist).
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped { .. }))
    }

    /// Whether not one file of the rules exists: most likely the wrong directory, never a
    /// success.
    pub fn none_found(&self) -> bool {
        !self.files.is_empty() && self.skipped() == self.files.len()
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.files.iter().filter(|r| f(&r.outcome)).count()
    }
}

/// Phases 3 and 4: decrypts each planned file with `ids` (unlocked for [`Plan::headers`]),
/// re-encrypts it to its rule's recipients and stages it, in parallel; then one flush for
/// all and each file renamed into place. `progress` hears of each step. `_lock` is the
/// write lock [`plan`] ran under, still held.
pub fn execute(
    plan: Plan,
    ids: &IdentitySet,
    progress: &(dyn Fn(Progress) + Sync),
    _lock: &WriteLock,
) -> Report {
    let Plan {
        unresolved,
        order,
        planned,
    } = plan;
    let mut done: Vec<Outcome> = Vec::new();
    if !planned.is_empty() {
        let batch = Batch::default();
        done = planned
            .par_iter()
            .map(|p| {
                let shown = p.path.display().to_string();
                let r = isolate_panic(&shown, || rekey_one(p, ids, &batch))
                    .unwrap_or_else(|failed| failed);
                progress(Progress::FileDone);
                r
            })
            .collect();
        progress(Progress::Committing);
        let mut committed: HashMap<PathBuf, FsError> = batch
            .commit()
            .into_iter()
            .filter_map(|(path, r)| r.err().map(|e| (path, e)))
            .collect();
        for (p, outcome) in planned.iter().zip(done.iter_mut()) {
            if let Some(error) = committed.remove(&p.path) {
                *outcome = Outcome::Failed(error.into());
            }
        }
    }
    let mut done = done.into_iter();
    let mut files = unresolved;
    for (file, outcome) in order {
        let outcome = outcome.unwrap_or_else(|| done.next().expect("one result per planned file"));
        files.push(FileReport { file, outcome });
    }
    Report { files }
}

fn rekey_one(p: &Planned, ids: &IdentitySet, batch: &Batch) -> Outcome {
    let run = || -> Result<(), RekeyError> {
        // Re-read: phase 1 kept only the header, so memory stays bounded over many files.
        let bytes = super::read_secret(&p.path)?;
        let plaintext = super::decrypt(&p.path, &bytes, &p.header, ids)?;
        let ciphertext = super::encrypt(&p.path, &plaintext, &p.recipients, p.armor)?;
        batch.stage(&p.path, &ciphertext, 0o644)?;
        Ok(())
    };
    match run() {
        Ok(()) => Outcome::Rekeyed,
        Err(e) => Outcome::Failed(e),
    }
}

/// Runs one file's work so that a panic in it (a bug, never expected) fails that file only:
/// the other files are still processed and every result is reported.
fn isolate_panic<T>(shown: &str, work: impl FnOnce() -> T) -> Result<T, Outcome> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Outcome::Failed(RekeyError::Panic {
            file: shown.to_string(),
            what: crate::text::escape_controls(&what).into_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicking task fails its own file only; the tasks beside it still report.
    #[test]
    fn a_panic_in_one_task_fails_that_file_only() {
        let results: Vec<Outcome> = (0..8)
            .into_par_iter()
            .map(|i| {
                isolate_panic(&format!("f{i}.age"), || {
                    if i == 3 {
                        panic!("boom\nsecond line");
                    }
                    Outcome::Rekeyed
                })
                .unwrap_or_else(|failed| failed)
            })
            .collect();
        for (i, r) in results.iter().enumerate() {
            match (i, r) {
                (3, Outcome::Failed(error)) => {
                    let error = error.to_string();
                    assert!(error.starts_with("f3.age: internal error"), "{error}");
                    assert!(!error.contains('\n'), "{error}");
                }
                (3, other) => panic!("{other:?}"),
                (_, Outcome::Rekeyed) => {}
                (_, other) => panic!("{i}: {other:?}"),
            }
        }
    }
}
