//! `create-keys`: plan (what exists, what the directory needs) and execute (generate, back up,
//! write). Planning has no side effects, so `--dry-run` and refusals touch nothing.

use std::path::{Path, PathBuf};

use super::files;
use super::openssh::{self, GeneratedKey};
use super::{Backup, DirAction, KeyError, Role, PRIVATE_MODE, PUBLIC_MODE};

/// The two files of one key in the SSH directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Which of the fleet's keys.
    pub role: Role,
    /// The private key's path.
    pub private_path: PathBuf,
    /// The public key's path.
    pub public_path: PathBuf,
}

impl Target {
    pub(crate) fn new(ssh_dir: &Path, role: Role) -> Self {
        Target {
            role,
            private_path: ssh_dir.join(role.file_name()),
            public_path: ssh_dir.join(role.public_file_name()),
        }
    }
}

/// What creating keys in a directory involves, found without changing anything.
#[derive(Debug, Clone)]
pub struct CreatePlan {
    /// The SSH directory the keys go into.
    pub ssh_dir: PathBuf,
    /// What preparing the directory does.
    pub dir_action: DirAction,
    /// The keys to create.
    pub targets: Vec<Target>,
    /// Target paths that exist now (anything, even a dangling symlink): creating means
    /// refusing, or with `force` moving them to a backup first.
    pub existing: Vec<PathBuf>,
    /// The post-quantum identity file, when one is to be created too.
    pub pq_identity: Option<PathBuf>,
    /// Whether something is at [`Self::pq_identity`] now (even a dangling symlink).
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
    let pq_identity = pq.then(|| ssh_dir.join(super::age_identity::PQ_IDENTITY_FILE));
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

/// How to create.
pub struct CreateOptions<'a> {
    /// Comment of every key (validated by [`openssh::validate_comment`]).
    pub comment: &'a str,
    /// Passphrase for the git key. The agenix key never gets one: activation cannot prompt.
    pub git_passphrase: Option<&'a [u8]>,
    /// Move existing targets to a backup instead of refusing.
    pub force: bool,
}

/// A key that was written.
pub struct CreatedKey {
    /// Where it was written.
    pub target: Target,
    /// The generated key: private key text, public line and fingerprints.
    pub key: GeneratedKey,
}

/// What [`execute`] did.
pub struct Created {
    /// Every key written, in the plan's order.
    pub keys: Vec<CreatedKey>,
    /// The backup of replaced files, when `force` moved any.
    pub backup: Option<Backup>,
}

/// Generates every key of `plan` first (so a generation failure writes nothing), prepares the
/// directory, moves existing targets to a backup when `force` (else refuses with
/// [`KeyError::Exists`] before touching anything), then writes each key atomically: private
/// 0600, public 0644.
pub fn execute(plan: &CreatePlan, opts: &CreateOptions<'_>) -> Result<Created, KeyError> {
    if let (Some(first), false) = (plan.existing.first(), opts.force) {
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
            key,
        });
    }
    Ok(Created { keys, backup })
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

    #[test]
    fn creates_both_keys_with_modes_then_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/.ssh");
        let p = plan(&dir, &Role::ALL, false).unwrap();
        assert_eq!(p.dir_action, DirAction::Create);
        assert!(p.existing.is_empty());
        assert!(!dir.exists(), "planning must not create anything");
        let opts = CreateOptions {
            comment: "t@h",
            git_passphrase: None,
            force: false,
        };
        let done = execute(&p, &opts).unwrap();
        assert!(done.backup.is_none());
        assert_eq!(mode(&dir), 0o700);
        for k in &done.keys {
            assert_eq!(mode(&k.target.private_path), 0o600);
            assert_eq!(mode(&k.target.public_path), 0o644);
            let text = std::fs::read_to_string(&k.target.public_path).unwrap();
            assert_eq!(text, format!("{}\n", k.key.public_line));
        }
        let before = std::fs::read(dir.join("id_ed25519")).unwrap();
        let p2 = plan(&dir, &Role::ALL, false).unwrap();
        assert_eq!(p2.existing.len(), 4);
        assert!(execute(&p2, &opts).err().unwrap().is_refusal());
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
                comment: "c",
                git_passphrase: Some(b"pw"),
                force: true,
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
            .map(|k| (k.target.role, k.key.encrypted))
            .collect();
        assert_eq!(enc, vec![(Role::Git, true), (Role::Agenix, false)]);
    }
}
