//! `host add NAME …` / `host remove NAME`: a verified in-place edit of `secrets.nix`
//! (`fleet::edit`), its diff on stdout, then `rekey --drifted` of the secrets that changed.

use std::path::PathBuf;

use super::{rekey, ui, Context, Error, Outcome, Result};
use crate::cli::{HostAddArgs, HostRemoveArgs, RekeyArgs};
use crate::fleet::edit::{self, EditError, Plan, Target};
use crate::fleet::keyscan::{self, KeyscanError};

pub fn add(ctx: &Context, args: &HostAddArgs) -> Result<Outcome> {
    let key = match (&args.key, &args.key_file, &args.keyscan) {
        (Some(k), None, None) => k.clone(),
        (None, Some(f), None) => edit::key_from_file(f).map_err(edit_error)?,
        (None, None, Some(t)) => key_from_scan(t, args.fingerprint.as_deref())?,
        _ => {
            return Err(Error::Usage(
                "give one of --key, --key-file and --keyscan".into(),
            ))
        }
    };
    let target = match &args.like {
        Some(other) => Target::Like(other.clone()),
        None => Target::Secrets(args.to.clone()),
    };
    let path = ctx.rules_path();
    let text = edit::read(&path).map_err(edit_error)?;
    let plan = edit::plan_add(&path, &text, &args.name, &key, &target).map_err(edit_error)?;
    if plan.changed.is_empty() {
        ui::warn(&format!(
            "{} gets no secret: only its binding is added",
            args.name
        ));
    }
    apply(ctx, &plan, args.dry_run, args.no_rekey)
}

pub fn remove(ctx: &Context, args: &HostRemoveArgs) -> Result<Outcome> {
    let path = ctx.rules_path();
    let text = edit::read(&path).map_err(edit_error)?;
    let plan = edit::plan_remove(&path, &text, &args.name).map_err(edit_error)?;
    for name in &plan.emptied {
        ui::warn(&format!(
            "{} has no recipient left: give it one, or delete the rule and its file",
            ui::printable(name)
        ));
    }
    let outcome = apply(ctx, &plan, args.dry_run, args.no_rekey)?;
    if !plan.changed.is_empty() {
        ui::warn(&format!(
            "{} could read {} secret(s): rekeying is not revocation — rotate these values:",
            args.name,
            plan.changed.len()
        ));
        // Which of them a generator can rotate (the rules as they now are; the edit
        // changes no generator).
        let rules = ctx.load_rules().ok();
        let mut can_rotate = 0;
        for name in &plan.changed {
            let has_generator = rules
                .as_ref()
                .and_then(|r| r.entry(name))
                .and_then(|e| e.rule.as_ref().ok())
                .is_some_and(|r| r.generator.is_some());
            if has_generator {
                can_rotate += 1;
                ui::err_line(&format!(
                    "  {}  (has a generator: `agefleet generate --rotate-debt` rotates it)",
                    ui::printable(name)
                ));
            } else {
                ui::err_line(&format!("  {}", ui::printable(name)));
            }
        }
        if can_rotate > 0 {
            ui::info(&format!(
                "{can_rotate} of them have a generator: `agefleet generate --rotate-debt` gives them new values; rotate the others by hand"
            ));
        }
    }
    Ok(outcome)
}

/// Prints the diff; unless `dry_run`, writes the file, warns when git does not track it,
/// and rekeys the changed secrets.
fn apply(ctx: &Context, plan: &Plan, dry_run: bool, no_rekey: bool) -> Result<Outcome> {
    ui::out_bytes(edit::unified_diff(plan).as_bytes())?;
    if dry_run {
        ui::info(&format!("dry run: {} not written", plan.path.display()));
        return Ok(Outcome::Success);
    }
    edit::write(plan).map_err(edit_error)?;
    ui::info(&format!("wrote {}", plan.path.display()));
    super::gitcheck::warn_untracked(ctx, &plan.path, false);
    if no_rekey || plan.changed.is_empty() {
        if !plan.changed.is_empty() {
            ui::info("not rekeyed: run `agefleet rekey --drifted`");
        }
        return Ok(Outcome::Success);
    }
    let rules = ctx.load_rules()?;
    // A changed rule whose file does not exist yet has nothing to rekey; `edit` creates it
    // for the new recipients.
    let files: Vec<PathBuf> = plan
        .changed
        .iter()
        .map(|n| rules.file_of(n))
        .filter(|f| f.exists())
        .collect();
    if files.is_empty() {
        ui::info("nothing to rekey: none of the changed secrets exists yet");
        return Ok(Outcome::Success);
    }
    rekey::run(
        ctx,
        &RekeyArgs {
            files,
            drifted: true,
            ..RekeyArgs::default()
        },
    )
}

/// The host's ed25519 key from `ssh-keyscan`, trusted only when its fingerprint is the
/// `--fingerprint` given or the operator confirms it on the terminal.
fn key_from_scan(target: &str, expected: Option<&str>) -> Result<String> {
    let usage = |e: KeyscanError| Error::Usage(e.to_string());
    // Both arguments are checked before anything runs.
    let target = keyscan::Target::parse(target).map_err(usage)?;
    let expected = expected
        .map(keyscan::parse_fingerprint)
        .transpose()
        .map_err(usage)?;
    let key = keyscan::scan(&target).map_err(|e| match e {
        KeyscanError::Spawn { .. } => Error::ExternalTool(e.to_string()),
        other => Error::Failed(other.to_string()),
    })?;
    ui::info(&format!("{target}: ED25519 host key {}", key.fingerprint));
    match expected {
        Some(expected) => {
            keyscan::check_fingerprint(&key, &expected).map_err(Error::failed)?;
            ui::info("the fingerprint matches --fingerprint");
        }
        None => {
            let question = format!(
                "Is {} the fingerprint of {target}'s host key (check `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it)?",
                key.fingerprint
            );
            match ui::confirm(&question)? {
                Some(true) => {}
                Some(false) => {
                    return Err(Error::Failed(
                        "host key not confirmed; nothing was changed".into(),
                    ))
                }
                None => {
                    return Err(Error::Usage(format!(
                        "no terminal to confirm {target}'s host key on: pass --fingerprint SHA256:… as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it on the host (nothing was changed)"
                    )))
                }
            }
        }
    }
    Ok(key.line)
}

/// An editor error as a command error; a manual-edit snippet goes to stderr first.
fn edit_error(e: EditError) -> Error {
    if let Some(snippet) = e.snippet() {
        ui::info("edit by hand instead:");
        for line in snippet.lines() {
            ui::err_line(&format!("  {}", ui::printable(line)));
        }
    }
    match e {
        EditError::BadName(_) => Error::Usage(e.to_string()),
        other => Error::Failed(other.to_string()),
    }
}
