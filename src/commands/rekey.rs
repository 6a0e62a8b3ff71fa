//! `rekey [FILE…] [--drifted] [--recipient KEY]` / `-r`: re-encrypt secrets to the
//! recipients their rules list.
//!
//! Every selected file is processed even when others fail; each failure is reported by name
//! and the exit is 1. Headers are read first so each passphrase-protected key is unlocked at
//! most once, and only when a selected file has a stanza for it. Files are then rekeyed in
//! parallel into temp files, made durable with one flush, and each renamed over its file
//! (atomic, mode kept; see `fsutil::Batch`); output is in rule order. The whole run holds
//! the rules directory's write lock (`fsutil::WriteLock`) and first removes the temp files
//! killed runs left beside the selected files.

use std::path::PathBuf;

use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::common::{cwd, identities_for, lock_for_writing, refs, RecipientCache};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::RekeyArgs;
use crate::envelope::{self, Header};
use crate::fsutil::Batch;
use crate::identity::IdentitySet;
use crate::recipient::Recipient;
use crate::rules::RuleEntry;

/// What happened to one selected secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
enum Report {
    Rekeyed,
    /// Not rekeyed, on purpose (e.g. the file does not exist yet).
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Serialize)]
struct Row {
    file: String,
    #[serde(flatten)]
    report: Report,
}

/// A secret that passed the first phase: its rule parsed and its header read.
struct Planned {
    path: PathBuf,
    recipients: Vec<Arc<Recipient>>,
    armor: bool,
    header: Header,
}

pub fn run(ctx: &Context, args: &RekeyArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    let mut rows: Vec<(String, Option<Report>)> = Vec::new();
    let mut selected: Vec<&RuleEntry> = Vec::new();

    if args.files.is_empty() {
        selected.extend(rules.entries.iter());
    } else {
        let cwd = cwd()?;
        for f in &args.files {
            match rules.resolve(f, &cwd) {
                Ok(e) if !selected.iter().any(|s| std::ptr::eq(*s, e)) => selected.push(e),
                Ok(_) => {}
                Err(e) => rows.push((
                    f.display().to_string(),
                    Some(Report::Failed {
                        error: e.to_string(),
                    }),
                )),
            }
        }
    }
    if let Some(key) = &args.recipient {
        let wanted =
            Recipient::parse(key).map_err(|e| Error::Usage(format!("--recipient: {e}")))?;
        selected.retain(|e| {
            e.rule
                .as_ref()
                .is_ok_and(|r| r.public_keys.iter().any(|k| wanted.matches_key(k)))
        });
        if selected.is_empty() {
            ui::warn(&format!(
                "no rule lists the key {}",
                crate::recipient::abbreviate(key)
            ));
        }
    }

    // Held until the renames are durable: no other writer can change a file between our
    // read and our rename, and leftovers beside our files are from dead runs.
    let targets: Vec<PathBuf> = selected.iter().map(|e| rules.file_of(&e.name)).collect();
    let _lock = lock_for_writing(ctx, &rules.dir, &targets)?;

    // Phase 1: rules and headers, in parallel; nothing is decrypted yet.
    let cache = RecipientCache::for_rules(&rules.path);
    let phase1: Vec<(String, std::result::Result<Option<Planned>, Report>)> = selected
        .par_iter()
        .map(|entry| {
            let path = rules.file_of(&entry.name);
            let shown = path.display().to_string();
            let planned = isolate_panic(&shown, || plan(&cache, entry, path, args.drifted))
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
            Err(report) => {
                order.push((shown, Some(report)));
            }
        }
    }

    // Phase 2: unlock once, for the headers that need it.
    let results: Vec<Report> = if planned.is_empty() {
        Vec::new()
    } else {
        let headers: Vec<&Header> = planned.iter().map(|p| &p.header).collect();
        let ids = identities_for(ctx, &headers)?;
        // Phase 3: decrypt, re-encrypt, replace; in parallel.
        let bar = ui::progress(planned.len(), "rekeying");
        let batch = Batch::default();
        let mut done: Vec<Report> = planned
            .par_iter()
            .map(|p| {
                let shown = p.path.display().to_string();
                let r = isolate_panic(&shown, || rekey_one(p, &ids, &batch))
                    .unwrap_or_else(|failed| failed);
                bar.inc(1);
                r
            })
            .collect();
        bar.finish_and_clear();
        // Phase 4: one flush for all, then each file renamed into place.
        let committed: std::collections::HashMap<PathBuf, String> = batch
            .commit()
            .into_iter()
            .filter_map(|(path, r)| r.err().map(|e| (path, e.to_string())))
            .collect();
        for (p, report) in planned.iter().zip(done.iter_mut()) {
            if let Some(error) = committed.get(&p.path) {
                *report = Report::Failed {
                    error: error.clone(),
                };
            }
        }
        done
    };

    let mut results = results.into_iter();
    for (shown, report) in order {
        let report = report.unwrap_or_else(|| results.next().expect("one result per planned file"));
        rows.push((shown, Some(report)));
    }
    report(ctx, args.json, rows)
}

/// Reads the rule and header of one secret. `Ok(None)`: not drifted while only drifted ones
/// are wanted.
fn plan(
    cache: &RecipientCache,
    entry: &RuleEntry,
    path: PathBuf,
    drifted_only: bool,
) -> std::result::Result<Option<Planned>, Report> {
    let failed = |e: Error| Report::Failed {
        error: e.to_string(),
    };
    let recipients = cache.of(entry).map_err(failed)?;
    let armor = entry.rule.as_ref().map(|r| r.armor).unwrap_or(false);
    let bytes = match crate::fsutil::read_regular(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Report::Skipped {
                reason: "the file does not exist (create it with edit)".into(),
            })
        }
        Err(e) => return Err(failed(Error::Failed(format!("{}: {e}", path.display())))),
    };
    let header = Header::parse(&bytes)
        .map_err(|e| failed(Error::Failed(format!("{}: {e}", path.display()))))?;
    if drifted_only && !crate::drift::compare(&refs(&recipients), armor, &header).any() {
        return Ok(None);
    }
    Ok(Some(Planned {
        path,
        recipients,
        armor,
        header,
    }))
}

/// Runs one file's work so that a panic in it (a bug, never expected) fails that file only:
/// the other files are still processed and every result is reported.
fn isolate_panic<T>(shown: &str, work: impl FnOnce() -> T) -> std::result::Result<T, Report> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Report::Failed {
            error: format!(
                "{shown}: internal error (please report this bug): {}",
                crate::text::escape_controls(&what)
            ),
        }
    })
}

fn rekey_one(p: &Planned, ids: &IdentitySet, batch: &Batch) -> Report {
    let shown = p.path.display();
    let run = || -> std::result::Result<(), String> {
        // Re-read: phase 1 kept only the header, so memory stays bounded over many files.
        let bytes = crate::fsutil::read_regular(&p.path).map_err(|e| format!("{shown}: {e}"))?;
        let plaintext = envelope::decrypt(&bytes, ids).map_err(|e| format!("{shown}: {e}"))?;
        let ciphertext = envelope::encrypt(&plaintext, &refs(&p.recipients), p.armor)
            .map_err(|e| format!("{shown}: {e}"))?;
        batch
            .stage(&p.path, &ciphertext, 0o644)
            .map_err(|e| e.to_string())
    };
    match run() {
        Ok(()) => Report::Rekeyed,
        Err(error) => Report::Failed { error },
    }
}

fn report(ctx: &Context, json: bool, rows: Vec<(String, Option<Report>)>) -> Result<Outcome> {
    let rows: Vec<Row> = rows
        .into_iter()
        .filter_map(|(file, r)| r.map(|report| Row { file, report }))
        .collect();
    let failed = rows
        .iter()
        .filter(|r| matches!(r.report, Report::Failed { .. }))
        .count();
    let rekeyed = rows
        .iter()
        .filter(|r| matches!(r.report, Report::Rekeyed))
        .count();
    if json {
        let out = serde_json::json!({ "files": rows });
        ui::out(&out.to_string())?;
    }
    for row in &rows {
        match &row.report {
            Report::Rekeyed => ctx.verbose(&format!("rekeyed {}", row.file)),
            Report::Skipped { reason } => ui::warn(&format!("{}: skipped: {reason}", row.file)),
            Report::Failed { error } => ui::error(error),
        }
    }
    ui::info(&format!(
        "rekeyed {rekeyed} of {} secret(s){}",
        rows.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    ));
    Ok(Outcome::from_failed(failed > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicking task fails its own file only; the tasks beside it still report.
    #[test]
    fn a_panic_in_one_task_fails_that_file_only() {
        let results: Vec<Report> = (0..8)
            .into_par_iter()
            .map(|i| {
                isolate_panic(&format!("f{i}.age"), || {
                    if i == 3 {
                        panic!("boom\nsecond line");
                    }
                    Report::Rekeyed
                })
                .unwrap_or_else(|failed| failed)
            })
            .collect();
        for (i, r) in results.iter().enumerate() {
            match (i, r) {
                (3, Report::Failed { error }) => {
                    assert!(error.starts_with("f3.age: internal error"), "{error}");
                    assert!(!error.contains('\n'), "{error}");
                }
                (3, other) => panic!("{other:?}"),
                (_, Report::Rekeyed) => {}
                (_, other) => panic!("{i}: {other:?}"),
            }
        }
    }
}
