//! `rekey [FILE…] [--drifted] [--recipient KEY]` / `-r`: re-encrypt secrets to the
//! recipients their rules list. The work is [`crate::secrets::rekey`]; this turns the flags
//! into a selection, unlocks the keys the plan needs, and renders the report. Every selected
//! file is processed even when others fail; each failure is reported by name and the exit
//! is 1.

use std::path::PathBuf;

use serde::Serialize;

use super::common::{cwd, identities_for_each, lock_for_writing};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::RekeyArgs;
use crate::identity::IdentitySet;
use crate::recipient::Recipient;
use crate::secrets::rekey::{self, Outcome as FileOutcome, Progress};

/// One file in `--json` output.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
enum Row<'a> {
    Rekeyed { file: &'a str },
    Skipped { file: &'a str, reason: &'a str },
    Failed { file: &'a str, error: String },
}

pub fn run(ctx: &Context, args: &RekeyArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    if rules.entries.is_empty() {
        // As agenix: an empty rules file is not an error.
        ui::info(&format!(
            "nothing to rekey: {} lists no secrets",
            rules.path.display()
        ));
        if args.json {
            ui::out(&serde_json::json!({ "files": [] }).to_string())?;
        }
        return Ok(Outcome::Success);
    }
    let cwd = if args.files.is_empty() {
        PathBuf::new()
    } else {
        cwd()?
    };
    let wanted = match &args.recipient {
        Some(key) => {
            Some(Recipient::parse(key).map_err(|e| Error::Usage(format!("--recipient: {e}")))?)
        }
        None => None,
    };
    let mut selection = rekey::select(&rules, &args.files, &cwd, wanted.as_ref());
    selection.plugin_ui = Some(ui::plugin_ui());
    if let (Some(key), true) = (&args.recipient, selection.entries.is_empty()) {
        ui::warn(&format!(
            "no rule lists the key {}",
            crate::recipient::abbreviate(key)
        ));
    }

    // Held until the renames are durable: no other writer can change a file between our
    // read and our rename, and leftovers beside our files are from dead runs.
    let lock = lock_for_writing(ctx, &rules.dir, &selection.targets(&rules))?;
    let plan = rekey::plan(&rules, selection, args.drifted, &lock);
    // Unlock once, for the headers that need it; no identity is needed for nothing to do.
    let ids = if plan.is_empty() {
        IdentitySet::default()
    } else {
        identities_for_each(ctx, &plan.headers())?
    };
    let bar = ui::progress(plan.len(), "rekeying");
    let report = rekey::execute(
        plan,
        &ids,
        &|step| match step {
            Progress::FileDone => bar.inc(1),
            Progress::Committing => bar.finish_and_clear(),
        },
        &lock,
    );
    let dir_shown = match rules.dir.to_str() {
        Some(".") => "the current directory".to_string(),
        _ => rules.dir.display().to_string(),
    };
    render(ctx, args.json, &report, &dir_shown)
}

fn render(ctx: &Context, json: bool, report: &rekey::Report, dir_shown: &str) -> Result<Outcome> {
    if json {
        let rows: Vec<Row> = report
            .files
            .iter()
            .map(|r| match &r.outcome {
                FileOutcome::Rekeyed => Row::Rekeyed { file: &r.file },
                FileOutcome::Skipped { reason } => Row::Skipped {
                    file: &r.file,
                    reason,
                },
                FileOutcome::Failed(e) => Row::Failed {
                    file: &r.file,
                    error: e.to_string(),
                },
            })
            .collect();
        ui::out(&serde_json::json!({ "files": rows }).to_string())?;
    }
    for row in &report.files {
        match &row.outcome {
            FileOutcome::Rekeyed => ctx.verbose(&format!("rekeyed {}", row.file)),
            FileOutcome::Skipped { reason } => {
                ui::warn(&format!("{}: skipped: {reason}", row.file))
            }
            FileOutcome::Failed(e) => ui::error(&e.to_string()),
        }
    }
    let failed = report.failed();
    ui::info(&format!(
        "rekeyed {} of {} secret(s){}",
        report.rekeyed(),
        report.files.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    ));
    let none_found = report.none_found();
    if none_found {
        ui::error(&format!(
            "none of the {} file(s) the rules name exists (looked in {dir_shown}); run from the \
             directory that holds them, or pass --rules",
            report.skipped()
        ));
    }
    Ok(Outcome::from_failed(failed > 0 || none_found))
}
