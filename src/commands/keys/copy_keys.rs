//! `copy-keys`: the fleet's keys from a directory (a USB stick, a backup) into the SSH
//! directory, with modes and owner set.

use super::say_dir_action;
use super::{key_error, print_json, ssh_dir, ui};
use crate::cli::CopyKeysArgs;
use crate::commands::{Context, Error, Outcome, Result};
use crate::keys::copy::{self, Action, CopyReport, FileAction};
use crate::keys::owner;

pub fn run(ctx: &Context, args: &CopyKeysArgs) -> Result<Outcome> {
    let dir = ssh_dir(args.ssh_dir.as_deref())?;
    let owner = match &args.owner {
        Some(spec) => {
            let o = owner::resolve_owner(spec).map_err(|e| Error::Usage(e.to_string()))?;
            let euid = rustix::process::geteuid();
            if !euid.is_root() && o.uid != euid.as_raw() {
                return Err(Error::Preflight(format!(
                    "--owner {spec}: only root can give files to another user"
                )));
            }
            Some(o)
        }
        None => None,
    };
    let plan = copy::plan(&args.from, &dir, owner).map_err(key_error)?;
    for role in &plan.absent {
        ui::warn(&format!(
            "{}: no {} ({}) to copy",
            args.from.display(),
            role.purpose(),
            role.source_names().join(" or ")
        ));
    }
    let conflicts: Vec<_> = plan.conflicts().collect();
    if !conflicts.is_empty() && !args.force {
        for f in &conflicts {
            ui::error(&format!(
                "{}: exists and differs from {}",
                f.dest.display(),
                f.source.display()
            ));
        }
        return Err(Error::Refused(format!(
            "refusing to overwrite keys in {} (use --force to move them to a timestamped \
             backup first)",
            dir.display()
        )));
    }
    if plan.is_noop() {
        ui::info(&format!(
            "the keys in {} are already these: nothing to do",
            dir.display()
        ));
    }
    let report = if args.dry_run {
        copy::preview(&plan)
    } else {
        copy::execute(&plan, args.force).map_err(key_error)?
    };
    say_dir_action(&dir, plan.dir_action, args.dry_run);
    if args.json {
        return print_json(&report);
    }
    for f in &report.actions {
        let msg = action_text(&report, f);
        match f.action {
            Action::Unchanged => ctx.verbose(&msg),
            _ => ui::info(&msg),
        }
    }
    for k in &report.keys {
        ui::out(&format!(
            "{}: {}",
            k.name,
            ui::printable(&k.fingerprint_line)
        ))?;
    }
    Ok(Outcome::Success)
}

/// One file's line on stderr: what was (or would be) done to it.
fn action_text(report: &CopyReport, f: &FileAction) -> String {
    let from = if f.regenerated {
        format!("regenerated from {}", f.source.display())
    } else {
        format!("from {}", f.source.display())
    };
    let verb = |now: &str, done: &str| {
        if report.dry_run {
            format!("would {now}")
        } else {
            done.to_string()
        }
    };
    match f.action {
        Action::Create => format!(
            "{} {} ({from})",
            verb("create", "created"),
            f.file.display()
        ),
        Action::Replace => format!(
            "{} {} ({from}; the old file {})",
            verb("replace", "replaced"),
            f.file.display(),
            match &f.backup {
                Some(to) => format!("was moved to {}", to.display()),
                None => "would be moved to a backup".to_string(),
            }
        ),
        Action::Fix => format!(
            "{} {} (content already identical): mode {:04o}{}",
            verb("fix", "fixed"),
            f.file.display(),
            f.mode,
            match report.owner {
                Some(o) => format!(", owner {}:{}", o.uid, o.gid),
                None => String::new(),
            }
        ),
        Action::Unchanged => format!("unchanged: {}", f.file.display()),
    }
}
