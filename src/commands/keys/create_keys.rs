//! `create-keys`: the git key and the agenix identity (and, with `--pq`, the post-quantum
//! identity) in the SSH directory; the `secrets.nix` snippet on stdout.

use serde_json::{json, Value};

use super::{key_error, print_json, ssh_dir, ui};
use super::{read_passphrase_stdin, say_dir_action};
use crate::cli::{CreateKeysArgs, KeyRole};
use crate::commands::{Context, Error, Outcome, Result};
use crate::keys::create::{self, CreateOptions};
use crate::keys::{age_identity, nix, openssh, owner, Role};

pub fn run(_ctx: &Context, args: &CreateKeysArgs) -> Result<Outcome> {
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
    let plan = create::plan(&dir, &roles, args.pq).map_err(key_error)?;
    let pq_path = dir.join(age_identity::PQ_IDENTITY_FILE);
    let pq_existing = plan.pq_existing;

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
