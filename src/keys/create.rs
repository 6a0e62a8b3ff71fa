//! `create-keys`: plan (what exists, what the directory needs) and execute (generate, back up,
//! write) → [`CreateReport`]. Planning has no side effects, so `--dry-run` ([`preview`]) and
//! refusals touch nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files;
use super::openssh;
use super::{age_identity, nix};
use super::{Backup, DirAction, KeyError, Role, PRIVATE_MODE, PUBLIC_MODE};

/// The two files of one key in the SSH directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Which of the fleet's keys.
    pub role: Role,
    /// The private key's file name.
    pub name: &'static str,
    /// The private key's path.
    #[serde(rename = "path")]
    pub private_path: PathBuf,
    /// The public key's path.
    pub public_path: PathBuf,
}

impl Target {
    pub(crate) fn new(ssh_dir: &Path, role: Role) -> Self {
        Target {
            role,
            name: role.file_name(),
            private_path: ssh_dir.join(role.file_name()),
            public_path: ssh_dir.join(role.public_file_name()),
        }
    }
}

/// What creating keys in a directory involves, found without changing anything. In JSON
/// (the dry run's report, [`CreatePreview`]): `ssh_dir`, `keys`, `would_back_up` and
/// `pq_identity`.
#[derive(Debug, Clone, Serialize)]
pub struct CreatePlan {
    /// The SSH directory the keys go into.
    pub ssh_dir: PathBuf,
    /// What preparing the directory does.
    #[serde(skip)]
    pub dir_action: DirAction,
    /// The keys to create.
    #[serde(rename = "keys")]
    pub targets: Vec<Target>,
    /// Target paths that exist now (anything, even a dangling symlink): creating means
    /// refusing, or with `force` moving them to a backup first.
    #[serde(rename = "would_back_up")]
    pub existing: Vec<PathBuf>,
    /// The post-quantum identity file, when one is to be created too.
    pub pq_identity: Option<PathBuf>,
    /// Whether something is at [`Self::pq_identity`] now (even a dangling symlink).
    #[serde(skip)]
    pub pq_existing: bool,
}

/// Looks at `ssh_dir` for the keys of `roles` (and, with `pq`, the post-quantum identity).
pub fn plan(ssh_dir: &Path, roles: &[Role], pq: bool) -> Result<CreatePlan, KeyError> {
    files::refuse_symlinked_dir(ssh_dir)?;
    let dir_action = files::inspect_dir(ssh_dir)?;
    let targets: Vec<Target> = roles.iter().map(|&r| Target::new(ssh_dir, r)).collect();
    let mut existing = Vec::new();
    if dir_action != DirAction::Create {
        for t in &targets {
            for p in [&t.private_path, &t.public_path] {
                if files::exists_no_follow(p)? {
                    existing.push(p.clone());
                }
            }
        }
    }
    let pq_identity = pq.then(|| ssh_dir.join(age_identity::PQ_IDENTITY_FILE));
    let pq_existing = match &pq_identity {
        Some(p) => files::exists_no_follow(p)?,
        None => false,
    };
    Ok(CreatePlan {
        ssh_dir: ssh_dir.to_path_buf(),
        dir_action,
        targets,
        existing,
        pq_identity,
        pq_existing,
    })
}

/// What [`execute`] would do with `plan` (`--dry-run`): the plan, as a report.
pub fn preview(plan: &CreatePlan) -> CreatePreview<'_> {
    CreatePreview {
        dry_run: true,
        plan,
    }
}

/// What `create-keys --dry-run` reports.
#[derive(Debug, Serialize)]
pub struct CreatePreview<'a> {
    /// Always `true`: nothing was changed.
    pub dry_run: bool,
    /// What would be done.
    #[serde(flatten)]
    pub plan: &'a CreatePlan,
}

/// How to create.
pub struct CreateOptions<'a> {
    /// Comment of every key (validated by [`openssh::validate_comment`]).
    pub comment: &'a str,
    /// Passphrase for the git key. The agenix key never gets one: activation cannot prompt.
    pub git_passphrase: Option<&'a [u8]>,
    /// Move existing targets to a backup instead of refusing.
    pub force: bool,
    /// The host name the `secrets.nix` snippets bind the recipients to.
    pub host: &'a str,
}

/// What `create-keys` did. Holds no private key material.
#[derive(Debug, Serialize)]
pub struct CreateReport {
    /// Always `false`: the keys were written ([`CreatePreview`] is the dry run).
    pub dry_run: bool,
    /// The SSH directory the keys went into.
    pub ssh_dir: PathBuf,
    /// Every key written, in the plan's order.
    pub keys: Vec<CreatedKey>,
    /// The backup of replaced key files, when `force` moved any.
    pub backup: Option<Backup>,
    /// The `secrets.nix` binding of the agenix identity, when it was created.
    pub secrets_nix: Option<String>,
    /// The post-quantum identity, when one was created.
    pub pq_identity: Option<CreatedPqIdentity>,
    /// The `secrets.nix` binding of the post-quantum identity (named `<host>-pq`).
    pub secrets_nix_pq: Option<String>,
    /// The host name the snippets bind (not in JSON).
    #[serde(skip)]
    pub host: String,
}

/// A key that was written.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    /// Its files: the private key (mode 0600) and the public key (mode 0644).
    #[serde(flatten)]
    pub target: Target,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// As `ssh-keygen -lf` prints it.
    pub fingerprint_line: String,
    /// The public key line.
    pub public: String,
    /// The private key is passphrase-protected.
    pub encrypted: bool,
}

/// The post-quantum identity that was written.
#[derive(Debug, Serialize)]
pub struct CreatedPqIdentity {
    /// Its file (mode 0600).
    pub path: PathBuf,
    /// Its `age1pq1…` recipient.
    pub recipient: String,
    /// The backup of the file it replaced, when `force` moved one.
    pub backup: Option<Backup>,
}

/// Generates every key of `plan` first (so a generation failure writes nothing), prepares the
/// directory, moves existing targets to a backup when `force` (else refuses with
/// [`KeyError::Exists`] before touching anything), then writes each key atomically: private
/// 0600, public 0644; then the post-quantum identity, when the plan has one. Reports what
/// was written, with the `secrets.nix` snippets for `opts.host`.
pub fn execute(plan: &CreatePlan, opts: &CreateOptions<'_>) -> Result<CreateReport, KeyError> {
    let pq_existing = plan.pq_identity.as_ref().filter(|_| plan.pq_existing);
    if let (Some(first), false) = (plan.existing.first().or(pq_existing), opts.force) {
        return Err(KeyError::Exists {
            path: first.clone(),
        });
    }
    let mut generated = Vec::with_capacity(plan.targets.len());
    for t in &plan.targets {
        let pass = match t.role {
            Role::Git => opts.git_passphrase,
            Role::Agenix => None,
        };
        generated.push(openssh::generate_ed25519(opts.comment, pass)?);
    }
    let dir = files::prepare_dir(&plan.ssh_dir, plan.dir_action, None)?;
    let backup = if plan.existing.is_empty() {
        None
    } else {
        Some(files::backup(&dir, &plan.ssh_dir, &plan.existing)?)
    };
    let mut keys = Vec::with_capacity(generated.len());
    for (target, key) in plan.targets.iter().zip(generated) {
        files::write_new_file(
            &dir,
            &target.private_path,
            key.private_openssh.as_bytes(),
            PRIVATE_MODE,
            None,
        )?;
        let mut public = key.public_line.clone();
        public.push('\n');
        files::write_new_file(
            &dir,
            &target.public_path,
            public.as_bytes(),
            PUBLIC_MODE,
            None,
        )?;
        keys.push(CreatedKey {
            target: target.clone(),
            fingerprint: key.fingerprint,
            fingerprint_line: key.fingerprint_line,
            public: key.public_line,
            encrypted: key.encrypted,
        });
    }
    let pq_identity = match &plan.pq_identity {
        Some(path) => {
            let (id, backup) = age_identity::create_pq_identity(&plan.ssh_dir, opts.force)?;
            Some(CreatedPqIdentity {
                path: path.clone(),
                recipient: id.recipient,
                backup,
            })
        }
        None => None,
    };
    let secrets_nix = keys
        .iter()
        .find(|k| k.target.role == Role::Agenix)
        .map(|k| nix::secrets_nix_binding(opts.host, &k.public));
    let secrets_nix_pq = pq_identity
        .as_ref()
        .map(|id| nix::secrets_nix_binding(&format!("{}-pq", opts.host), &id.recipient));
    Ok(CreateReport {
        dry_run: false,
        ssh_dir: plan.ssh_dir.clone(),
        keys,
        backup,
        secrets_nix,
        pq_identity,
        secrets_nix_pq,
        host: opts.host.to_string(),
    })
}

/// `user@host` for the effective user and this host.
pub fn default_comment() -> String {
    format!(
        "{}@{}",
        super::owner::current_user_name(),
        super::owner::host_name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn opts(force: bool) -> CreateOptions<'static> {
        CreateOptions {
            comment: "t@h",
            git_passphrase: None,
            force,
            host: "web-1",
        }
    }

    /// The JSON object's field names, sorted.
    fn fields(v: &serde_json::Value) -> Vec<&str> {
        let mut f: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        f.sort_unstable();
        f
    }

    #[test]
    fn creates_both_keys_with_modes_then_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/.ssh");
        let p = plan(&dir, &Role::ALL, false).unwrap();
        assert_eq!(p.dir_action, DirAction::Create);
        assert!(p.existing.is_empty());
        assert!(!dir.exists(), "planning must not create anything");
        let done = execute(&p, &opts(false)).unwrap();
        assert!(done.backup.is_none());
        assert_eq!(mode(&dir), 0o700);
        for k in &done.keys {
            assert_eq!(mode(&k.target.private_path), 0o600);
            assert_eq!(mode(&k.target.public_path), 0o644);
            let text = std::fs::read_to_string(&k.target.public_path).unwrap();
            assert_eq!(text, format!("{}\n", k.public));
        }
        let before = std::fs::read(dir.join("id_ed25519")).unwrap();
        let p2 = plan(&dir, &Role::ALL, false).unwrap();
        assert_eq!(p2.existing.len(), 4);
        assert!(execute(&p2, &opts(false)).err().unwrap().is_refusal());
        assert_eq!(std::fs::read(dir.join("id_ed25519")).unwrap(), before);
    }

    #[test]
    fn force_backs_up_and_only_git_key_is_encrypted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("id_ed25519_agenix"), b"old agenix").unwrap();
        let p = plan(dir, &Role::ALL, false).unwrap();
        assert_eq!(p.existing, vec![dir.join("id_ed25519_agenix")]);
        let done = execute(
            &p,
            &CreateOptions {
                git_passphrase: Some(b"pw"),
                ..opts(true)
            },
        )
        .unwrap();
        let backup = done.backup.unwrap();
        assert_eq!(
            std::fs::read(backup.dir.join("id_ed25519_agenix")).unwrap(),
            b"old agenix"
        );
        let enc: Vec<_> = done
            .keys
            .iter()
            .map(|k| (k.target.role, k.encrypted))
            .collect();
        assert_eq!(enc, vec![(Role::Git, true), (Role::Agenix, false)]);
    }

    #[test]
    fn report_binds_the_agenix_key_and_keeps_the_json_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ssh");
        let p = plan(&dir, &Role::ALL, true).unwrap();
        let dry = serde_json::to_value(preview(&p)).unwrap();
        assert_eq!(
            fields(&dry),
            ["dry_run", "keys", "pq_identity", "ssh_dir", "would_back_up"]
        );
        assert_eq!(dry["dry_run"], true);
        assert_eq!(
            fields(&dry["keys"][1]),
            ["name", "path", "public_path", "role"]
        );
        assert_eq!(dry["keys"][1]["role"], "agenix");
        assert!(!dir.exists(), "a preview must not create anything");

        let done = execute(&p, &opts(false)).unwrap();
        let agenix = &done.keys[1];
        assert_eq!(agenix.target.name, "id_ed25519_agenix");
        assert_eq!(
            done.secrets_nix.as_deref(),
            Some(nix::secrets_nix_binding("web-1", &agenix.public).as_str())
        );
        let pq = done.pq_identity.as_ref().unwrap();
        assert_eq!(pq.path, dir.join(age_identity::PQ_IDENTITY_FILE));
        assert!(pq.recipient.starts_with("age1pq1"));
        assert_eq!(mode(&pq.path), 0o600);
        assert_eq!(
            done.secrets_nix_pq.as_deref(),
            Some(nix::secrets_nix_binding("web-1-pq", &pq.recipient).as_str())
        );
        let v = serde_json::to_value(&done).unwrap();
        assert_eq!(
            fields(&v),
            [
                "backup",
                "dry_run",
                "keys",
                "pq_identity",
                "secrets_nix",
                "secrets_nix_pq",
                "ssh_dir"
            ]
        );
        assert_eq!(v["dry_run"], false);
        assert_eq!(
            fields(&v["keys"][0]),
            [
                "encrypted",
                "fingerprint",
                "fingerprint_line",
                "name",
                "path",
                "public",
                "public_path",
                "role"
            ]
        );
        assert_eq!(fields(&v["pq_identity"]), ["backup", "path", "recipient"]);

        // Only the git key: no agenix binding.
        let p = plan(&tmp.path().join("git"), &[Role::Git], false).unwrap();
        let done = execute(&p, &opts(false)).unwrap();
        assert!(done.secrets_nix.is_none() && done.pq_identity.is_none());
    }

    #[test]
    fn an_existing_pq_identity_is_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let pq_path = dir.join(age_identity::PQ_IDENTITY_FILE);
        std::fs::write(&pq_path, b"old pq").unwrap();
        let p = plan(dir, &Role::ALL, true).unwrap();
        assert!(p.existing.is_empty() && p.pq_existing);
        let e = execute(&p, &opts(false)).err().unwrap();
        assert!(e.is_refusal(), "{e}");
        assert!(
            !dir.join("id_ed25519").exists(),
            "no key written on refusal"
        );

        let done = execute(&p, &opts(true)).unwrap();
        assert!(done.backup.is_none());
        let backup = done.pq_identity.unwrap().backup.unwrap();
        assert_eq!(
            std::fs::read(backup.dir.join(age_identity::PQ_IDENTITY_FILE)).unwrap(),
            b"old pq"
        );
    }
}
