//! `host add NAME …` (`--replace`, `--generate-key DIR`) / `host remove NAME`: a verified
//! in-place edit of `secrets.nix` (`fleet::edit`), its diff on stdout, then `rekey --drifted`
//! of the secrets that changed. `host verify`: the live host keys against secrets.nix
//! (`fleet::verify`).

use std::path::PathBuf;

use super::{rekey, ui, Context, Error, Outcome, Result};
use crate::cli::{HostAddArgs, HostRemoveArgs, HostVerifyArgs, RekeyArgs};
use crate::fleet::edit::{self, EditError, Plan, Target};
use crate::fleet::keyscan::{self, KeyscanError};
use crate::fleet::verify as hostcheck;
use crate::provision::extra_files::{self, ExtraFilesError};

pub fn add(ctx: &Context, args: &HostAddArgs) -> Result<Outcome> {
    // Generated in memory first: nothing is written until secrets.nix's edit is verified.
    let generated = args
        .generate_key
        .as_deref()
        .map(|dir| extra_files::plan(dir, &args.name, args.pq))
        .transpose()
        .map_err(extra_files_error)?;
    let key = match (&args.key, &args.key_file, &args.keyscan, &generated) {
        (Some(k), None, None, None) => k.clone(),
        (None, Some(f), None, None) => edit::key_from_file(f).map_err(edit_error)?,
        (None, None, Some(t), None) => key_from_scan(t, args.fingerprint.as_deref())?,
        (None, None, None, Some(g)) => g.public_line().to_string(),
        _ => {
            return Err(Error::Usage(
                "give one of --key, --key-file, --keyscan and --generate-key".into(),
            ))
        }
    };
    let path = ctx.rules_path();
    let text = edit::read(&path).map_err(edit_error)?;
    let plan = if args.replace {
        edit::plan_replace(&path, &text, &args.name, &key).map_err(edit_error)?
    } else {
        let target = match &args.like {
            Some(other) => Target::Like(other.clone()),
            None => Target::Secrets(args.to.clone()),
        };
        edit::plan_add(&path, &text, &args.name, &key, &target).map_err(edit_error)?
    };
    if plan.changed.is_empty() {
        ui::warn(&format!(
            "{} gets no secret: only its binding is {}",
            args.name,
            if args.replace { "changed" } else { "added" }
        ));
    }
    if let Some(g) = &generated {
        if args.dry_run {
            ui::info(&format!(
                "dry run: no key written to {}",
                g.host_key_path().display()
            ));
        } else {
            for p in extra_files::execute(g).map_err(extra_files_error)? {
                ui::info(&format!(
                    "wrote {} ({}){}",
                    p.path.display(),
                    p.mode.as_deref().unwrap_or(""),
                    p.fingerprint.map(|f| format!(" {f}")).unwrap_or_default()
                ));
            }
        }
    }
    let outcome = apply(ctx, &plan, args.dry_run, args.no_rekey)?;
    if let Some(g) = generated.as_ref().filter(|_| !args.dry_run) {
        if let Some(pq) = &g.pq {
            ui::info(&format!(
                "post-quantum recipient of {}: {} (add it to the rules next to {}, then rekey)",
                args.name, pq.recipient, args.name
            ));
        }
        ui::info("install the host with its key in place (HOST: the target's address):");
        ui::info(&format!(
            "  {}",
            extra_files::nixos_anywhere_command(&g.dir, &args.name)
        ));
    }
    Ok(outcome)
}

/// `host verify`: the live host keys against secrets.nix.
pub fn verify(ctx: &Context, args: &HostVerifyArgs) -> Result<Outcome> {
    let path = ctx.rules_path();
    let text = edit::read(&path).map_err(edit_error)?;
    let plan =
        hostcheck::plan(&path, &text, &args.names, &args.addresses).map_err(|e| match e {
            hostcheck::VerifyError::Read { .. } => Error::Failed(e.to_string()),
            other => Error::Usage(other.to_string()),
        })?;
    for s in &plan.skipped {
        ctx.verbose(&format!("{}: not checked: {}", s.name, s.why));
    }
    if !plan.candidates.is_empty()
        && crate::fsutil::find_program(keyscan::TOOL, std::env::var_os("PATH").as_deref()).is_none()
    {
        return Err(Error::ExternalTool(format!(
            "cannot run {}: not found on PATH",
            keyscan::TOOL
        )));
    }
    let opts = hostcheck::Options {
        jobs: usize::from(args.jobs),
        timeout_secs: args.timeout,
        rules_arg: ctx.rules_given().then(|| path.clone()),
    };
    let report = hostcheck::execute(plan, &opts, keyscan::scan_within);
    if args.json {
        let j = serde_json::to_string_pretty(&report).map_err(Error::failed)?;
        ui::out(&j)?;
    } else {
        ui::out_bytes(ui::printable_lines(&verify_text(&report)).as_bytes())?;
    }
    if report.hosts.is_empty() {
        ui::warn("no host checked: name hosts that resolve, or give --address NAME=HOST");
    }
    let changed = report.has_changed();
    if changed {
        ui::warn(
            "a changed key may be a reinstalled host or an impostor: check the live fingerprint \
             on the host's console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) before \
             running the repair",
        );
    }
    Ok(Outcome::from_failed(
        changed || (args.strict && report.has_unchecked()),
    ))
}

fn verify_text(r: &hostcheck::Report) -> String {
    use hostcheck::HostStatus;
    use std::fmt::Write as _;
    let name_w = r
        .hosts
        .iter()
        .map(|h| h.name.len())
        .chain(r.skipped.iter().map(|k| k.name.len()))
        .max()
        .unwrap_or(4)
        .max(4);
    let addr_w = r
        .hosts
        .iter()
        .map(|h| h.address.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut s = String::new();
    for h in &r.hosts {
        let (word, detail) = match &h.status {
            HostStatus::Match => ("match", h.recorded_fingerprint.clone()),
            HostStatus::Changed {
                live_fingerprint, ..
            } => (
                "CHANGED",
                format!(
                    "secrets.nix {} != live {live_fingerprint}",
                    h.recorded_fingerprint
                ),
            ),
            HostStatus::Unreachable { detail } => (
                "unreachable",
                detail
                    .clone()
                    .unwrap_or_else(|| "no answer (connection refused or timed out)".into()),
            ),
            HostStatus::NoEd25519Key { detail } => {
                ("no-ed25519-key", detail.clone().unwrap_or_default())
            }
            HostStatus::Refused { detail } => ("refused", detail.clone()),
        };
        let _ = writeln!(
            s,
            "{:name_w$}  {:addr_w$}  {word:<14} {detail}",
            h.name, h.address
        );
        if let HostStatus::Changed { repair, .. } = &h.status {
            let _ = writeln!(s, "{:name_w$}  repair: {repair}", "");
        }
    }
    for k in &r.skipped {
        let _ = writeln!(s, "{:name_w$}  not checked: {}", k.name, k.why);
    }
    s
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
    // The file's text may hold control characters (a hostile secrets.nix): each line is
    // escaped, so a CR cannot hide a line and an ESC cannot drive the terminal.
    ui::out_bytes(ui::printable_lines(&edit::unified_diff(plan)).as_bytes())?;
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

/// A refusal to place a generated key is exit 3; other failures exit 1.
fn extra_files_error(e: ExtraFilesError) -> Error {
    match e {
        ExtraFilesError::Exists { .. }
        | ExtraFilesError::Untrusted { .. }
        | ExtraFilesError::Walk(_) => Error::Refused(e.to_string()),
        other => Error::Failed(other.to_string()),
    }
}
