//! `create-keys`: the git key and the agenix identity (and, with `--pq`, the post-quantum
//! identity) in the SSH directory; the `secrets.nix` snippet on stdout.

use super::{key_error, print_json, ssh_dir, ui};
use super::{read_passphrase_stdin, say_dir_action};
use crate::cli::{CreateKeysArgs, KeyRole};
use crate::commands::{Context, Error, Outcome, Result};
use crate::keys::create::{self, CreateOptions, CreatePreview, CreateReport};
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

    let pq_existing = plan.pq_identity.as_ref().filter(|_| plan.pq_existing);
    if (!plan.existing.is_empty() || pq_existing.is_some()) && !args.force {
        for p in plan.existing.iter().chain(pq_existing) {
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
        let preview = create::preview(&plan);
        say_preview(&preview);
        if args.json {
            return print_json(&preview);
        }
        return Ok(Outcome::Success);
    }

    let passphrase = if args.passphrase_stdin {
        Some(read_passphrase_stdin()?)
    } else {
        None
    };
    let host = owner::host_name();
    let report = create::execute(
        &plan,
        &CreateOptions {
            comment: &comment,
            git_passphrase: passphrase.as_deref().map(|p| p.as_slice()),
            force: args.force,
            host: &host,
        },
    )
    .map_err(key_error)?;

    say_dir_action(&dir, plan.dir_action, false);
    say_created(&report);
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
        return print_json(&report);
    }
    ui::out_bytes(created_text(&report).as_bytes())?;
    Ok(Outcome::Success)
}

/// What a dry run would do, on stderr.
fn say_preview(preview: &CreatePreview<'_>) {
    let plan = preview.plan;
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
    if let Some(pq_path) = &plan.pq_identity {
        if plan.pq_existing {
            ui::info(&format!("would move {} to a backup", pq_path.display()));
        }
        ui::info(&format!("would create {} (0600)", pq_path.display()));
    }
}

/// What was done, on stderr.
fn say_created(report: &CreateReport) {
    let pq_backup = report
        .pq_identity
        .as_ref()
        .and_then(|id| id.backup.as_ref());
    for b in report.backup.iter().chain(pq_backup) {
        for m in &b.moved {
            ui::info(&format!("moved {} to {}", m.from.display(), m.to.display()));
        }
    }
    if let Some(id) = &report.pq_identity {
        ui::info(&format!("created {} (0600)", id.path.display()));
    }
    for k in &report.keys {
        ui::info(&format!(
            "created {} (0600{}) and {} (0644)",
            k.target.private_path.display(),
            if k.encrypted {
                ", passphrase-protected"
            } else {
                ""
            },
            k.target.public_path.display()
        ));
    }
}

/// The keys, the post-quantum recipient and the `secrets.nix` snippets: stdout.
fn created_text(report: &CreateReport) -> String {
    let mut out = String::new();
    for k in &report.keys {
        out.push_str(&format!(
            "{} ({}): {}\n{}\n{}\n\n",
            k.target.name,
            k.target.role.purpose(),
            k.target.private_path.display(),
            k.fingerprint_line,
            k.public
        ));
    }
    if let Some(id) = &report.pq_identity {
        out.push_str(&format!(
            "{} (post-quantum agenix identity): {}\n{}\n\n",
            age_identity::PQ_IDENTITY_FILE,
            id.path.display(),
            id.recipient
        ));
    }
    if let Some(snippet) = &report.secrets_nix {
        out.push_str(&format!(
            "# secrets.nix: paste into the `let` block, then add `{}` to the publicKeys of \
             this host's secrets\n{snippet}\n",
            nix::nix_identifier(&report.host)
        ));
    }
    if let (Some(snippet), Some(id)) = (&report.secrets_nix_pq, &report.pq_identity) {
        out.push_str(&format!(
            "# post-quantum: add `{}` to the publicKeys (and age.identityPaths gets {})\n{snippet}\n",
            nix::nix_identifier(&format!("{}-pq", report.host)),
            id.path.display()
        ));
    }
    out
}
