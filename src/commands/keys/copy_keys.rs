//! `copy-keys`: the fleet's keys from a directory (a USB stick, a backup) into the SSH
//! directory, with modes and owner set.

use serde_json::{json, Value};

use super::say_dir_action;
use super::{key_error, print_json, ssh_dir, ui};
use crate::cli::CopyKeysArgs;
use crate::commands::{Context, Error, Outcome, Result};
use crate::keys::copy::{self, Action};
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
    let backup = if args.dry_run {
        say_dir_action(&dir, plan.dir_action, true);
        None
    } else {
        let backup = copy::execute(&plan, args.force).map_err(key_error)?;
        say_dir_action(&dir, plan.dir_action, false);
        backup
    };
    let mut actions = Vec::new();
    for f in &plan.files {
        let backed_up = backup
            .as_ref()
            .and_then(|b| b.moved.iter().find(|m| m.from == f.dest))
            .map(|m| m.to.clone());
        let from = if f.regenerated {
            format!("regenerated from {}", f.source.display())
        } else {
            format!("from {}", f.source.display())
        };
        let verb = |now: &str, done: &str| {
            if args.dry_run {
                format!("would {now}")
            } else {
                done.to_string()
            }
        };
        let msg = match f.action {
            Action::Create => format!(
                "{} {} ({from})",
                verb("create", "created"),
                f.dest.display()
            ),
            Action::Replace => format!(
                "{} {} ({from}; the old file {})",
                verb("replace", "replaced"),
                f.dest.display(),
                match &backed_up {
                    Some(to) => format!("was moved to {}", to.display()),
                    None => "would be moved to a backup".to_string(),
                }
            ),
            Action::Fix => format!(
                "{} {} (content already identical): mode {:04o}{}",
                verb("fix", "fixed"),
                f.dest.display(),
                f.mode,
                match plan.owner {
                    Some(o) => format!(", owner {}:{}", o.uid, o.gid),
                    None => String::new(),
                }
            ),
            Action::Unchanged => format!("unchanged: {}", f.dest.display()),
        };
        match (args.json, f.action) {
            (true, _) => {}
            (false, Action::Unchanged) => ctx.verbose(&msg),
            (false, _) => ui::info(&msg),
        }
        actions.push(json!({
            "file": f.dest,
            "source": f.source,
            "regenerated": f.regenerated,
            "action": f.action,
            "mode": format!("{:04o}", f.mode),
            "previous_mode": f.current_mode.map(|m| format!("{m:04o}")),
            "backup": backed_up,
        }));
    }
    if args.json {
        let keys: Vec<Value> = plan
            .keys
            .iter()
            .map(|k| {
                json!({
                    "role": k.role,
                    "name": k.role.file_name(),
                    "path": dir.join(k.role.file_name()),
                    "source": k.private_source,
                    "fingerprint_line": k.fingerprint_line,
                    "encrypted": k.encrypted,
                })
            })
            .collect();
        return print_json(&json!({
            "dry_run": args.dry_run,
            "ssh_dir": dir,
            "owner": plan.owner,
            "keys": keys,
            "actions": actions,
            "backup": backup,
        }));
    }
    for k in &plan.keys {
        ui::out(&format!(
            "{}: {}",
            k.role.file_name(),
            ui::printable(&k.fingerprint_line)
        ))?;
    }
    Ok(Outcome::Success)
}
