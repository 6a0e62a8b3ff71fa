//! `status [--json]`: drift between the rules and the `.age` files, from headers only (no
//! identity, no decryption). One entry per rule and per `.age` file found under the rules
//! directory. Exit 0 when no entry has a problem, 1 otherwise. The scan is
//! [`crate::secrets::status::scan`]; this renders its report as a table or JSON. With
//! `--flake DIR` (or `$AGEFLEET_FLAKE`), one more line (a `pin` object in JSON) says whether
//! that flake pins the secrets repository's HEAD; it does not change the exit code.
//! With `-i`, the `.pub` companions of generated secrets are also checked against the secrets
//! ([`crate::secrets::generate::check_companions`]).

use super::{ui, Context, Outcome, Result};
use crate::cli::StatusArgs;
use crate::secrets::status::{self, Entry, Progress};

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<Outcome> {
    // The headers under the rules file's directory are read while the rules evaluate.
    let (rules, prefetch) = ctx.load_rules_alongside(status::Prefetch::read);
    let rules = rules?;
    let bar = ui::progress(rules.entries.len(), "reading headers");
    let mut report = status::scan_prefetched(&rules, Some(prefetch), &|step| match step {
        Progress::HeaderRead => bar.inc(1),
        Progress::HeadersDone => bar.finish_and_clear(),
    });
    if report.entries.iter().any(|e| e.companion.is_some()) {
        if ctx.global.identity.is_empty() {
            ui::info("public companions (.pub) are checked against their secrets only with -i KEY");
        } else {
            let ids = super::common::identities_for_each(ctx, &[])?;
            let checks = crate::secrets::generate::check_companions(&rules, &ids);
            status::mark_companions(&mut report, &checks);
        }
    }
    if let Some(e) = &report.tracking_error {
        ui::warn(&format!("cannot check git tracking: {e}"));
    }
    // With --flake (or $AGEFLEET_FLAKE): whether that flake's lock pins the secrets
    // repository's HEAD; a pin that cannot be checked is a warning, not a failed status.
    let pin = args
        .flake
        .as_ref()
        .filter(|d| !d.as_os_str().is_empty())
        .and_then(|dir| match super::pin::check(ctx, dir, None) {
            Ok(r) => Some(r),
            Err(e) => {
                ui::warn(&format!("cannot check the flake's pin: {e}"));
                None
            }
        });
    if args.json {
        let mut j = serde_json::json!({ "files": report.entries });
        if let Some(p) = &pin {
            j["pin"] = serde_json::to_value(p).map_err(super::Error::failed)?;
        }
        ui::out(&j.to_string())?;
    } else {
        ui::out_bytes(table(&report.entries).as_bytes())?;
        if let Some(p) = &pin {
            ui::out(&ui::printable(&super::pin::summary(p)))?;
        }
    }
    Ok(Outcome::from_failed(report.has_problems()))
}

fn table(entries: &[Entry]) -> String {
    use std::fmt::Write as _;
    let color = ui::color_stdout();
    let width = entries
        .iter()
        .map(|e| ui::printable(&e.file).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(out, "{:width$}  STATUS", "FILE");
    for e in entries {
        let status = if e.problems.is_empty() {
            paint(color, "32", "ok")
        } else {
            paint(
                color,
                "31",
                &e.problems
                    .iter()
                    .map(|p| p.code())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        let mut detail = Vec::new();
        if let Some(d) = &e.drift {
            if !d.recipients.added.is_empty() {
                detail.push(format!(
                    "not yet encrypted to {} key(s) of the rule",
                    d.recipients.added.len()
                ));
            }
            if !d.recipients.removed_tags.is_empty() {
                detail.push(format!(
                    "still encrypted to {} key(s) the rule dropped",
                    d.recipients.removed_tags.len()
                ));
            }
            if d.recipients.x25519_differs() {
                detail.push(format!(
                    "X25519 recipients: rule {}, file {}",
                    d.recipients.x25519_expected, d.recipients.x25519_found
                ));
            }
            if !d.recipients.stray_stanzas.is_empty() {
                detail.push(format!(
                    "stanzas no rule recipient writes: {}",
                    d.recipients.stray_stanzas.join(", ")
                ));
            }
            if d.recipients.mlkem768x25519_differs() {
                detail.push(format!(
                    "post-quantum recipients: rule {}, file {}",
                    d.recipients.mlkem768x25519_expected, d.recipients.mlkem768x25519_found
                ));
            }
            if let Some(a) = d.armor_expected {
                detail.push(if a {
                    "rule wants armor".into()
                } else {
                    "rule wants binary".into()
                });
            }
        }
        if let Some(err) = &e.error {
            detail.push(err.to_string());
        }
        if e.plugin_recipients_unchecked > 0 {
            detail.push(format!(
                "{} age plugin recipient(s) not checked: only the plugin could match its stanzas",
                e.plugin_recipients_unchecked
            ));
        }
        if e.generator.is_some() && e.problems.contains(&status::Problem::MissingFile) {
            detail.push("generate: `agefleet generate` makes it".into());
        }
        if e.problems.contains(&status::Problem::MissingCompanion) {
            detail.push(format!(
                "{} is missing",
                e.companion.as_deref().unwrap_or_default()
            ));
        }
        if let Some(note) = &e.companion_note {
            detail.push(format!(
                "{}: {note}",
                e.companion.as_deref().unwrap_or_default()
            ));
        }
        for t in &e.stale_temps {
            detail.push(format!("{t}: left by an interrupted run"));
        }
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!("  ({})", ui::printable(&detail.join("; ")))
        };
        let _ = writeln!(out, "{:width$}  {status}{detail}", ui::printable(&e.file));
    }
    out
}

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}
