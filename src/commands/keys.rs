//! `create-keys`, `copy-keys`, `check-keys`: the fleet's SSH keys (DESIGN §5).
//!
//! Data (fingerprints, public lines, the `secrets.nix` snippet, the check table, JSON) goes
//! to stdout; what was done and notes go to stderr.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{ui, Context, Error, Outcome, Result};
use crate::cli::{CheckKeysArgs, CopyKeysArgs, CreateKeysArgs, KeyRole};
use crate::keys::check::{self, KeyCheck, SecretCheck, SecretStatus};
use crate::keys::check_pq;
use crate::keys::copy::{self, Action};
use crate::keys::create::{self, CreateOptions};
use crate::keys::{age_identity, nix, openssh, owner, DirAction, KeyError, Role};

fn key_error(e: KeyError) -> Error {
    if e.is_refusal() {
        Error::Refused(format!("{e} (use --force to move it to a backup first)"))
    } else {
        Error::Key(e)
    }
}

/// `--ssh-dir`, else `~/.ssh`.
fn ssh_dir(arg: Option<&Path>) -> Result<PathBuf> {
    match arg {
        Some(d) if !d.as_os_str().is_empty() => Ok(d.to_path_buf()),
        Some(_) => Err(Error::Usage("--ssh-dir is empty".into())),
        None => super::home_dir()
            .map(|h| h.join(".ssh"))
            .ok_or_else(|| Error::Usage("HOME is not set: pass --ssh-dir".into())),
    }
}

fn print_json(v: &Value) -> Result<Outcome> {
    let s = serde_json::to_string_pretty(v).map_err(Error::failed)?;
    ui::out(&s)?;
    Ok(Outcome::Success)
}

fn say_dir_action(dir: &Path, action: DirAction, dry_run: bool) {
    match action {
        DirAction::Keep => {}
        DirAction::Create => ui::info(&format!(
            "{} {} (mode 0700)",
            if dry_run { "would create" } else { "created" },
            dir.display()
        )),
        DirAction::Tighten { from } => ui::warn(&format!(
            "{}: mode {from:04o} gives group/other access; {}",
            dir.display(),
            if dry_run {
                "would tighten it to 0700"
            } else {
                "tightened it to 0700"
            }
        )),
    }
}

/// Reads the passphrase: stdin up to the first newline (a trailing CR is dropped).
fn read_passphrase_stdin() -> Result<Zeroizing<Vec<u8>>> {
    let all = crate::secrets::read_to_end_zeroizing(std::io::stdin().lock().take(64 * 1024))
        .map_err(|e| Error::Failed(format!("reading the passphrase from stdin: {e}")))?;
    let end = all.iter().position(|&b| b == b'\n').unwrap_or(all.len());
    let mut pass = Zeroizing::new(all[..end].to_vec());
    if pass.last() == Some(&b'\r') {
        pass.pop();
    }
    if pass.is_empty() {
        return Err(Error::Usage(
            "--passphrase-stdin: stdin held no passphrase (an empty passphrase means none)".into(),
        ));
    }
    Ok(pass)
}

pub fn create(_ctx: &Context, args: &CreateKeysArgs) -> Result<Outcome> {
    let dir = ssh_dir(args.ssh_dir.as_deref())?;
    let roles: Vec<Role> = match args.only {
        None => Role::ALL.to_vec(),
        Some(KeyRole::Git) => vec![Role::Git],
        Some(KeyRole::Agenix) => vec![Role::Agenix],
    };
    if args.passphrase_stdin && !roles.contains(&Role::Git) {
        return Err(Error::Usage(
            "--passphrase-stdin is for the git key only: the agenix identity stays unencrypted \
             (activation cannot prompt for a passphrase)"
                .into(),
        ));
    }
    let comment = args.comment.clone().unwrap_or_else(create::default_comment);
    openssh::validate_comment(&comment).map_err(|e| Error::Usage(e.to_string()))?;
    let plan = create::plan(&dir, &roles).map_err(key_error)?;
    let pq_path = dir.join(age_identity::PQ_IDENTITY_FILE);
    let pq_existing = args.pq && std::fs::symlink_metadata(&pq_path).is_ok();

    if (!plan.existing.is_empty() || pq_existing) && !args.force {
        for p in plan.existing.iter().chain(pq_existing.then_some(&pq_path)) {
            ui::error(&format!("{}: already exists", p.display()));
        }
        return Err(Error::Refused(format!(
            "refusing to overwrite existing keys in {} (use --force to move them to a \
             timestamped backup first)",
            dir.display()
        )));
    }
    if args.dry_run {
        say_dir_action(&dir, plan.dir_action, true);
        for p in &plan.existing {
            ui::info(&format!("would move {} to a backup", p.display()));
        }
        for t in &plan.targets {
            ui::info(&format!(
                "would create {} (0600) and {} (0644)",
                t.private_path.display(),
                t.public_path.display()
            ));
        }
        if args.pq {
            if pq_existing {
                ui::info(&format!("would move {} to a backup", pq_path.display()));
            }
            ui::info(&format!("would create {} (0600)", pq_path.display()));
        }
        if args.json {
            let keys: Vec<Value> = plan
                .targets
                .iter()
                .map(|t| {
                    json!({
                        "role": t.role,
                        "name": t.role.file_name(),
                        "path": t.private_path,
                        "public_path": t.public_path,
                    })
                })
                .collect();
            return print_json(&json!({
                "dry_run": true,
                "ssh_dir": dir,
                "keys": keys,
                "would_back_up": plan.existing,
                "pq_identity": args.pq.then_some(&pq_path),
            }));
        }
        return Ok(Outcome::Success);
    }

    let passphrase = if args.passphrase_stdin {
        Some(read_passphrase_stdin()?)
    } else {
        None
    };
    let host = owner::host_name();
    let created = create::execute(
        &plan,
        &CreateOptions {
            comment: &comment,
            git_passphrase: passphrase.as_deref().map(|p| p.as_slice()),
            force: args.force,
        },
    )
    .map_err(key_error)?;
    let pq = if args.pq {
        Some(age_identity::create_pq_identity(&dir, args.force).map_err(key_error)?)
    } else {
        None
    };

    say_dir_action(&dir, plan.dir_action, false);
    let pq_backup = pq.as_ref().and_then(|(_, b)| b.as_ref());
    for b in created.backup.iter().chain(pq_backup) {
        for m in &b.moved {
            ui::info(&format!("moved {} to {}", m.from.display(), m.to.display()));
        }
    }
    let pq_snippet = pq
        .as_ref()
        .map(|(id, _)| nix::secrets_nix_binding(&format!("{host}-pq"), &id.recipient));
    if pq.is_some() {
        ui::info(&format!("created {} (0600)", pq_path.display()));
    }
    let snippet = created
        .keys
        .iter()
        .find(|k| k.target.role == Role::Agenix)
        .map(|k| nix::secrets_nix_binding(&host, &k.key.public_line));
    for k in &created.keys {
        ui::info(&format!(
            "created {} (0600{}) and {} (0644)",
            k.target.private_path.display(),
            if k.key.encrypted {
                ", passphrase-protected"
            } else {
                ""
            },
            k.target.public_path.display()
        ));
    }
    if args.passphrase_stdin && roles.contains(&Role::Agenix) {
        ui::info(
            "note: the passphrase protects id_ed25519 only; the agenix identity \
             id_ed25519_agenix stays unencrypted because activation cannot prompt for a \
             passphrase",
        );
    }
    if roles.contains(&Role::Git) {
        ui::info("add id_ed25519.pub as an access key of the secrets repository");
    }

    if args.json {
        let keys: Vec<Value> = created
            .keys
            .iter()
            .map(|k| {
                json!({
                    "role": k.target.role,
                    "name": k.target.role.file_name(),
                    "path": k.target.private_path,
                    "public_path": k.target.public_path,
                    "fingerprint": k.key.fingerprint,
                    "fingerprint_line": k.key.fingerprint_line,
                    "public": k.key.public_line,
                    "encrypted": k.key.encrypted,
                })
            })
            .collect();
        return print_json(&json!({
            "dry_run": false,
            "ssh_dir": dir,
            "keys": keys,
            "backup": created.backup,
            "secrets_nix": snippet,
            "pq_identity": pq.as_ref().map(|(id, b)| json!({
                "path": pq_path,
                "recipient": id.recipient,
                "backup": b,
            })),
            "secrets_nix_pq": pq_snippet,
        }));
    }
    let mut out = String::new();
    for k in &created.keys {
        out.push_str(&format!(
            "{} ({}): {}\n{}\n{}\n\n",
            k.target.role.file_name(),
            k.target.role.purpose(),
            k.target.private_path.display(),
            k.key.fingerprint_line,
            k.key.public_line
        ));
    }
    if let Some((id, _)) = &pq {
        out.push_str(&format!(
            "{} (post-quantum agenix identity): {}\n{}\n\n",
            age_identity::PQ_IDENTITY_FILE,
            pq_path.display(),
            id.recipient
        ));
    }
    if let Some(snippet) = snippet {
        out.push_str(&format!(
            "# secrets.nix: paste into the `let` block, then add `{}` to the publicKeys of \
             this host's secrets\n{snippet}\n",
            nix::nix_identifier(&host)
        ));
    }
    if let Some(snippet) = pq_snippet {
        out.push_str(&format!(
            "# post-quantum: add `{}` to the publicKeys (and age.identityPaths gets {})\n{snippet}\n",
            nix::nix_identifier(&format!("{host}-pq")),
            pq_path.display()
        ));
    }
    ui::out_bytes(out.as_bytes())?;
    Ok(Outcome::Success)
}

pub fn copy(ctx: &Context, args: &CopyKeysArgs) -> Result<Outcome> {
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

pub fn check(ctx: &Context, args: &CheckKeysArgs) -> Result<Outcome> {
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

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(header: &[&str; 3], rows: &[[String; 3]]) -> String {
    // Cells hold names from the rules and key comments: control characters escaped.
    let rows: Vec<[String; 3]> = rows
        .iter()
        .map(|r| r.clone().map(|c| ui::printable(&c).into_owned()))
        .collect();
    let rows = &rows[..];
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 3]| {
        let s = format!(
            "{:w0$}  {:w1$}  {}",
            cells[0],
            cells[1],
            cells[2],
            w0 = widths[0],
            w1 = widths[1]
        );
        format!("{}\n", s.trim_end())
    };
    let mut out = line(*header);
    for r in rows {
        out.push_str(&line([&r[0], &r[1], &r[2]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn table_aligns_columns_and_trims_line_ends() {
        let rows = [
            ["id_ed25519".to_string(), "/a".to_string(), "ok".to_string()],
            ["k".to_string(), "/long/path".to_string(), String::new()],
        ];
        assert_eq!(
            table(&["KEY", "PATH", "CHECKS"], &rows),
            "KEY         PATH        CHECKS\n\
             id_ed25519  /a          ok\n\
             k           /long/path\n"
        );
    }
}
