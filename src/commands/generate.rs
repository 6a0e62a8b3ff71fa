//! `generate [SECRET…] [--rotate | --rotate-debt] [--dry-run] [--git-add] [--json]`: make the
//! secrets whose rules have a generator. The work is [`crate::secrets::generate`]; this turns
//! the flags into a selection (for `--rotate-debt`, from the same audit `agefleet audit`
//! runs), holds the write lock and renders the report. Every selected secret is processed
//! even when others fail; each failure is reported by name and the exit is 1.

use std::path::PathBuf;

use super::common::{cwd, lock_for_writing};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::GenerateArgs;
use crate::secrets::generate::{self, Outcome as FileOutcome, Progress, Report};

pub fn run(ctx: &Context, args: &GenerateArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    let cwd = if args.secrets.is_empty() {
        PathBuf::new()
    } else {
        cwd()?
    };
    let audit;
    let selection = if args.rotate_debt {
        let text = crate::fleet::access::rules_text(&rules);
        audit = super::audit::report(ctx, &rules, text.as_deref(), None)?;
        for w in &audit.warnings {
            ui::warn(w);
        }
        generate::select_debt(&rules, &audit)
    } else {
        generate::select(&rules, &args.secrets, &cwd, args.rotate)
    };

    let report = if args.dry_run {
        // Held so the plan sees no half-written run; nothing is cleaned or written.
        let lock = crate::fsutil::WriteLock::acquire(&rules.dir)?;
        generate::plan(&rules, selection, &lock).dry_run()
    } else {
        let lock = lock_for_writing(ctx, &rules.dir, &selection.targets(&rules))?;
        let plan = generate::plan(&rules, selection, &lock);
        let bar = ui::progress(plan.len(), "generating");
        generate::execute(
            &rules,
            plan,
            &|step| match step {
                Progress::SecretDone => bar.inc(1),
                Progress::Committing => bar.finish_and_clear(),
            },
            &lock,
        )
    };
    if !args.dry_run {
        for file in report.written_files() {
            super::gitcheck::warn_untracked(ctx, std::path::Path::new(file), args.git_add);
        }
    }
    render(args, &report)
}

fn render(args: &GenerateArgs, report: &Report) -> Result<Outcome> {
    if args.json {
        ui::out(&serde_json::to_string(report).map_err(Error::failed)?)?;
    }
    let mut made = String::new();
    for row in &report.files {
        let file = ui::printable(&row.file);
        let kind = row.kind.unwrap_or("");
        let verb = match &row.outcome {
            FileOutcome::Created => "created",
            FileOutcome::Rotated => "rotated",
            FileOutcome::WouldCreate => "would create",
            FileOutcome::WouldRotate => "would rotate",
            FileOutcome::Exists {
                companion_missing: true,
            } => {
                ui::warn(&format!(
                    "{file} exists but its public companion {} is missing: \
                     `agefleet generate --rotate {file}` makes a new pair",
                    row.companion.as_deref().unwrap_or_default()
                ));
                continue;
            }
            FileOutcome::Exists { .. } => continue,
            FileOutcome::Failed { error } => {
                ui::error(&error.to_string());
                continue;
            }
        };
        made.push_str(&format!("{verb} {file} ({kind})"));
        if let Some(c) = &row.companion {
            made.push_str(&format!(", public half in {}", ui::printable(c)));
        }
        made.push('\n');
    }
    if !args.json {
        ui::out_bytes(made.as_bytes())?;
    }
    let failed = report.failed();
    let written = report.written();
    let summary = match (args.dry_run, written) {
        (true, n) => format!("dry run: {n} secret(s) would be written, nothing written"),
        (false, 0) if failed == 0 && report.debt_without_generator.is_empty() => {
            "nothing to generate: every secret with a generator exists".to_string()
        }
        (false, n) => format!("generated {n} secret(s)"),
    };
    let failed_note = if failed > 0 {
        format!(", {failed} failed")
    } else {
        String::new()
    };
    ui::info(&format!("{summary}{failed_note}"));
    if !report.debt_without_generator.is_empty() {
        ui::warn(&format!(
            "{} secret(s) in rotation debt have no generator: rotate them by hand \
             (`agefleet edit`), then check with `agefleet audit -i KEY`:",
            report.debt_without_generator.len()
        ));
        for name in &report.debt_without_generator {
            ui::err_line(&format!("  {}", ui::printable(name)));
        }
    }
    Ok(Outcome::from_failed(
        failed > 0 || !report.debt_without_generator.is_empty(),
    ))
}
