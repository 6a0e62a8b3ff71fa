//! `check-keys`: the SSH directory's keys (modes, `.pub` agreement, passphrases) and, with
//! the rules, whether the agenix identity opens every secret listing it; a table or JSON.

use super::table;
use super::{key_error, print_json, ssh_dir, ui};
use crate::cli::CheckKeysArgs;
use crate::commands::{Context, Error, Outcome, Result};
use crate::keys::check::{self, CheckReport, SecretStatus};
use crate::keys::DirAction;

pub fn run(ctx: &Context, args: &CheckKeysArgs) -> Result<Outcome> {
    let dir = ssh_dir(args.ssh_dir.as_deref())?;
    let plan = check::plan(&dir);
    if let Some(DirAction::Tighten { from }) = plan.dir_action {
        ui::warn(&format!(
            "{}: mode {from:04o} gives group/other access (want 0700)",
            dir.display()
        ));
    }
    let rules = if ctx.rules_given() {
        Some(ctx.load_rules()?)
    } else if args.try_decrypt {
        return Err(Error::Usage(
            "--try-decrypt needs the rules: pass --rules FILE (or set RULES)".into(),
        ));
    } else {
        None
    };
    let report = check::execute(plan, rules.as_ref(), args.try_decrypt).map_err(key_error)?;
    for s in report.secret_errors() {
        ui::error(&format!(
            "{}: {}",
            s.path.display(),
            s.error.as_deref().unwrap_or("error")
        ));
    }
    if report.secrets_unchecked {
        ui::error("secrets not checked: no usable (parsable, unencrypted) agenix identity");
    }
    if args.json {
        print_json(&report)?;
    } else {
        ui::out_bytes(report_text(&report).as_bytes())?;
    }
    Ok(Outcome::from_failed(!report.ok))
}

/// The key table, the post-quantum identity's line and the secret tables.
fn report_text(report: &CheckReport) -> String {
    let mut out = String::new();
    out.push_str(if report.all_present {
        "All SSH keys are present.\n"
    } else {
        "Some SSH keys are missing.\n"
    });
    for k in report.keys.iter().filter(|k| !k.present) {
        out.push_str(&format!("Missing: {}\n", k.name));
    }
    let rows: Vec<[String; 3]> = report
        .keys
        .iter()
        .map(|k| {
            let checks = if k.ok {
                format!("ok: {}", k.fingerprint.as_deref().unwrap_or(""))
            } else {
                k.problems.join("; ")
            };
            [k.name.to_string(), k.path.display().to_string(), checks]
        })
        .collect();
    out.push_str(&table(&["KEY", "PATH", "CHECKS"], &rows));
    if let Some(k) = &report.pq_identity {
        let checks = if k.ok {
            format!(
                "ok: {}",
                crate::recipient::abbreviate(k.recipient.as_deref().unwrap_or(""))
            )
        } else {
            k.problems.join("; ")
        };
        out.push_str(&format!(
            "post-quantum identity {}: {checks}\n",
            k.path.display()
        ));
    }
    let lists = [
        (report.secrets.as_ref(), "AGENIX IDENTITY CAN OPEN"),
        (report.pq_secrets.as_ref(), "PQ IDENTITY CAN OPEN"),
    ];
    for (list, column) in lists {
        let Some(list) = list else { continue };
        let rows: Vec<[String; 3]> = list
            .iter()
            .map(|s| {
                let open = match s.status {
                    SecretStatus::Openable if s.method == "decryption" => "yes (decrypted)",
                    SecretStatus::Openable => "yes (header)",
                    SecretStatus::NotRecipient => "no",
                    SecretStatus::Missing => "missing file",
                    SecretStatus::Error => "error",
                };
                [
                    s.file.clone(),
                    open.to_string(),
                    s.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["SECRET", column, "NOTE"], &rows));
    }
    out
}
