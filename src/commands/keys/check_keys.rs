//! `check-keys`: the SSH directory's keys (modes, `.pub` agreement, passphrases) and, with
//! the rules, whether the agenix identity opens every secret listing it; a table or JSON.

use serde_json::json;

use super::table;
use super::{key_error, print_json, ssh_dir, ui};
use crate::cli::CheckKeysArgs;
use crate::commands::{Context, Error, Outcome, Result};
use crate::keys::check::{self, KeyCheck, SecretCheck, SecretStatus};
use crate::keys::check_pq;
use crate::keys::{DirAction, Role};

pub fn run(ctx: &Context, args: &CheckKeysArgs) -> Result<Outcome> {
    let dir = ssh_dir(args.ssh_dir.as_deref())?;
    if let Ok(DirAction::Tighten { from }) = check::dir_state(&dir) {
        ui::warn(&format!(
            "{}: mode {from:04o} gives group/other access (want 0700)",
            dir.display()
        ));
    }
    let mut keys: Vec<KeyCheck> = Vec::new();
    let mut agenix = None;
    for role in Role::ALL {
        let (c, public) = check::check_key(&dir, role);
        // Secrets can be checked with any parsable, unencrypted agenix key, even one whose
        // other checks (mode, .pub) failed: those are reported in the table anyway.
        if role == Role::Agenix && c.encrypted == Some(false) {
            agenix = public.map(|p| (p, c.path.clone()));
        }
        keys.push(c);
    }
    let all_present = keys.iter().all(|k| k.present);
    let mut failed = keys.iter().any(|k| !k.ok);
    let pq_key = check_pq::check_pq_identity(&dir);
    failed |= pq_key.as_ref().is_some_and(|k| !k.ok);
    let mut pq_secrets: Option<Vec<SecretCheck>> = None;

    let mut secrets: Option<Vec<SecretCheck>> = None;
    let mut secrets_note = None;
    if ctx.rules_given() {
        let rules = ctx.load_rules()?;
        if let Some((path, recipient)) = pq_key
            .as_ref()
            .and_then(|k| Some((&k.path, k.recipient.as_ref()?)))
        {
            pq_secrets = Some(check_pq::check_pq_secrets(
                &rules,
                path,
                recipient,
                args.try_decrypt,
            ));
        }
        match &agenix {
            Some((public, path)) => {
                secrets = Some(
                    check::check_secrets(&rules, public, path, args.try_decrypt)
                        .map_err(key_error)?,
                );
            }
            None => {
                failed = true;
                secrets_note = Some(
                    "secrets not checked: no usable (parsable, unencrypted) agenix identity"
                        .to_string(),
                );
            }
        }
    } else if args.try_decrypt {
        return Err(Error::Usage(
            "--try-decrypt needs the rules: pass --rules FILE (or set RULES)".into(),
        ));
    }
    for list in secrets.iter().chain(pq_secrets.iter()) {
        failed |= list.iter().any(|s| s.status == SecretStatus::Error);
        for s in list.iter().filter(|s| s.status == SecretStatus::Error) {
            ui::error(&format!(
                "{}: {}",
                s.path.display(),
                s.error.as_deref().unwrap_or("error")
            ));
        }
    }
    if let Some(note) = &secrets_note {
        ui::error(note);
    }

    if args.json {
        print_json(&json!({
            "all_present": all_present,
            "ok": !failed,
            "ssh_dir": dir,
            "keys": keys,
            "secrets": secrets.unwrap_or_default(),
            "pq_identity": pq_key,
            "pq_secrets": pq_secrets,
        }))?;
        return Ok(Outcome::from_failed(failed));
    }

    let mut out = String::new();
    out.push_str(if all_present {
        "All SSH keys are present.\n"
    } else {
        "Some SSH keys are missing.\n"
    });
    for k in keys.iter().filter(|k| !k.present) {
        out.push_str(&format!("Missing: {}\n", k.name));
    }
    let rows: Vec<[String; 3]> = keys
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
    if let Some(k) = &pq_key {
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
        (secrets.as_ref(), "AGENIX IDENTITY CAN OPEN"),
        (pq_secrets.as_ref(), "PQ IDENTITY CAN OPEN"),
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
    ui::out_bytes(out.as_bytes())?;
    Ok(Outcome::from_failed(failed))
}
