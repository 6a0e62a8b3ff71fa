//! `copy-keys`: read and validate a key set from a source directory (the templates' USB
//! layout), compare it with the SSH directory, then install it → [`CopyReport`].
//!
//! Planning reads everything and validates every pair before anything is written: a private
//! key that does not match its `.pub`, an unparsable key, or a passphrase-protected agenix
//! identity stops the copy with nothing changed.

use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use super::files;
use super::openssh;
use super::owner::Owner;
use super::{Backup, DirAction, KeyError, Role, PRIVATE_MODE, PUBLIC_MODE};

/// A validated key from the source.
#[derive(Debug, Clone)]
pub struct SourceKey {
    /// Which of the fleet's keys it is.
    pub role: Role,
    /// The private key file it came from (`id_ed25519_github`, `id_ed25519`, …).
    pub private_source: PathBuf,
    /// Its `.pub`, or `None` when the public key is regenerated from the private key.
    pub public_source: Option<PathBuf>,
    /// As `ssh-keygen -lf` prints it.
    pub fingerprint_line: String,
    /// The private key is passphrase-protected (refused for the agenix key).
    pub encrypted: bool,
}

/// What happens to one destination file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Absent: created.
    Create,
    /// Same bytes, mode (and owner, with `--owner`): nothing to do.
    Unchanged,
    /// Same bytes, but mode or owner differ: fixed in place.
    Fix,
    /// Different bytes, or not a regular file: refused unless forced, then backed up and
    /// replaced.
    Replace,
}

/// One destination file and what happens to it.
#[derive(Debug, Clone)]
pub struct FilePlan {
    /// The key this file belongs to.
    pub role: Role,
    /// The destination path in the SSH directory.
    pub dest: PathBuf,
    /// The source file (for a regenerated `.pub`: the private key it was derived from).
    pub source: PathBuf,
    /// The `.pub` is regenerated from the private key (the source had none).
    pub regenerated: bool,
    /// The mode the destination gets.
    pub mode: u32,
    /// What happens to the destination.
    pub action: Action,
    /// The destination's current mode, when it exists as a regular file.
    pub current_mode: Option<u32>,
    contents: Contents,
}

/// File contents (a private key among them) whose `Debug` shows only the length.
#[derive(Clone)]
struct Contents(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// Everything `copy-keys` will do, found without changing anything.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// The source directory.
    pub from: PathBuf,
    /// The destination SSH directory.
    pub ssh_dir: PathBuf,
    /// What preparing the destination directory does.
    pub dir_action: DirAction,
    /// The `--owner` the files and directory are given to, if any.
    pub owner: Option<Owner>,
    /// `--owner` names someone other than the existing directory's owner (it is chowned).
    pub dir_owner_differs: bool,
    /// The validated keys found in the source.
    pub keys: Vec<SourceKey>,
    /// Roles the source has no key for (nothing is copied for them).
    pub absent: Vec<Role>,
    /// Every destination file (private and public) and its action.
    pub files: Vec<FilePlan>,
}

impl CopyPlan {
    /// Destination files that differ and need `force`.
    pub fn conflicts(&self) -> impl Iterator<Item = &FilePlan> {
        self.files.iter().filter(|f| f.action == Action::Replace)
    }

    /// Whether the destination already holds exactly this key set.
    pub fn is_noop(&self) -> bool {
        self.dir_action == DirAction::Keep
            && !self.dir_owner_differs
            && self.files.iter().all(|f| f.action == Action::Unchanged)
    }
}

/// Reads the key set in `from`, validates it, and compares it with `ssh_dir`.
pub fn plan(from: &Path, ssh_dir: &Path, owner: Option<Owner>) -> Result<CopyPlan, KeyError> {
    match std::fs::metadata(from) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(KeyError::invalid(from, "not a directory")),
        Err(e) => return Err(KeyError::io(from, e)),
    }
    files::refuse_symlinked_dir(ssh_dir)?;
    let dir_action = files::inspect_dir(ssh_dir)?;
    let mut keys = Vec::new();
    let mut absent = Vec::new();
    let mut file_plans = Vec::new();
    for role in Role::ALL {
        let Some(source) = read_source(from, role)? else {
            absent.push(role);
            continue;
        };
        for (dest, contents, src, regenerated, mode) in [
            (
                ssh_dir.join(role.file_name()),
                source.private_bytes,
                source.key.private_source.clone(),
                false,
                PRIVATE_MODE,
            ),
            (
                ssh_dir.join(role.public_file_name()),
                source.public_bytes,
                source
                    .key
                    .public_source
                    .clone()
                    .unwrap_or_else(|| source.key.private_source.clone()),
                source.key.public_source.is_none(),
                PUBLIC_MODE,
            ),
        ] {
            let (action, current_mode) = compare_dest(&dest, &contents, mode, owner)?;
            file_plans.push(FilePlan {
                role,
                dest,
                source: src,
                regenerated,
                mode,
                action,
                current_mode,
                contents: Contents(contents),
            });
        }
        keys.push(source.key);
    }
    if keys.is_empty() {
        let names: Vec<&str> = Role::ALL
            .iter()
            .flat_map(|r| r.source_names().iter().copied())
            .collect();
        return Err(KeyError::invalid(
            from,
            format!("no keys found (looked for {})", names.join(", ")),
        ));
    }
    let dir_owner_differs = match (owner, std::fs::symlink_metadata(ssh_dir)) {
        (Some(o), Ok(m)) => {
            use std::os::unix::fs::MetadataExt;
            (m.uid(), m.gid()) != (o.uid, o.gid)
        }
        _ => false,
    };
    Ok(CopyPlan {
        from: from.to_path_buf(),
        ssh_dir: ssh_dir.to_path_buf(),
        dir_action,
        owner,
        dir_owner_differs,
        keys,
        absent,
        files: file_plans,
    })
}

struct Source {
    key: SourceKey,
    private_bytes: Zeroizing<Vec<u8>>,
    public_bytes: Zeroizing<Vec<u8>>,
}

/// The validated source key of `role`, or `None` when the source has none.
fn read_source(from: &Path, role: Role) -> Result<Option<Source>, KeyError> {
    let mut found: Vec<(PathBuf, files::ReadFile, ssh_key::PrivateKey)> = Vec::new();
    for name in role.source_names() {
        let path = from.join(name);
        if !files::exists_no_follow(&path)? {
            continue;
        }
        // A mounted stick may hold symlinks; what they point at must still be a regular file.
        let file = files::read_key_file(&path, true)?;
        let key = openssh::parse_private(&path, &file.bytes)?;
        found.push((path, file, key));
    }
    if let [(a, _, ka), (b, _, kb), ..] = found.as_slice() {
        if ka.public_key().key_data() != kb.public_key().key_data() {
            return Err(KeyError::invalid(
                from,
                format!(
                    "{} and {} are different keys: keep only the one to install",
                    file_name(a),
                    file_name(b)
                ),
            ));
        }
    }
    let Some((private_path, private_file, private)) = found.into_iter().next() else {
        return Ok(None);
    };
    if role == Role::Agenix && private.is_encrypted() {
        return Err(KeyError::invalid(
            &private_path,
            "the agenix identity is passphrase-protected; activation cannot prompt for it \
             (remove the passphrase with `ssh-keygen -p`)",
        ));
    }
    let mut pub_name = private_path.as_os_str().to_owned();
    pub_name.push(".pub");
    let pub_path = PathBuf::from(pub_name);
    let (public_source, public_bytes, public_key) = if files::exists_no_follow(&pub_path)? {
        let file = files::read_key_file(&pub_path, true)?;
        let public = openssh::parse_public(&pub_path, &file.bytes)?;
        if !openssh::same_key(&private, &public) {
            return Err(KeyError::Mismatch {
                private: private_path,
                public: pub_path,
            });
        }
        (Some(pub_path), file.bytes, public)
    } else {
        let public = private.public_key().clone();
        let mut line = openssh::public_line(&public)?;
        line.push('\n');
        (None, Zeroizing::new(line.into_bytes()), public)
    };
    Ok(Some(Source {
        key: SourceKey {
            role,
            fingerprint_line: openssh::fingerprint_line(&public_key),
            encrypted: private.is_encrypted(),
            private_source: private_path,
            public_source,
        },
        private_bytes: private_file.bytes,
        public_bytes,
    }))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Compares a destination with what it should hold.
fn compare_dest(
    dest: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> Result<(Action, Option<u32>), KeyError> {
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Action::Create, None)),
        Err(e) => return Err(KeyError::io(dest, e)),
    };
    if !meta.file_type().is_file() {
        return Ok((Action::Replace, None));
    }
    let current = files::read_key_file(dest, false)?;
    if *current.bytes != contents {
        return Ok((Action::Replace, Some(current.mode)));
    }
    let owner_differs = owner.is_some_and(|o| (o.uid, o.gid) != (current.uid, current.gid));
    let action = if current.mode != mode || owner_differs {
        Action::Fix
    } else {
        Action::Unchanged
    };
    Ok((action, Some(current.mode)))
}

/// Installs `plan`: refuses with [`KeyError::Exists`] (nothing touched) when a destination
/// differs and `force` is off; otherwise prepares the directory, moves differing
/// destinations to a backup, writes new files atomically with their mode and owner, and
/// fixes mode/owner of identical ones. Reports what was done.
pub fn execute(plan: &CopyPlan, force: bool) -> Result<CopyReport, KeyError> {
    let backup = install(plan, force)?;
    Ok(report(plan, backup, false))
}

/// What [`execute`] would do with `plan` (`--dry-run`): the report, with nothing backed up.
pub fn preview(plan: &CopyPlan) -> CopyReport {
    report(plan, None, true)
}

/// What `copy-keys` did (or, in a dry run, would do).
#[derive(Debug, Serialize)]
pub struct CopyReport {
    /// Nothing was changed: this is what would be done.
    pub dry_run: bool,
    /// The destination SSH directory.
    pub ssh_dir: PathBuf,
    /// The `--owner` the files and directory are given to, if any.
    pub owner: Option<Owner>,
    /// The keys found in the source, in [`Role::ALL`] order.
    pub keys: Vec<CopiedKey>,
    /// Every destination file (private and public) and what happened to it.
    pub actions: Vec<FileAction>,
    /// The backup of replaced files, when any were moved.
    pub backup: Option<Backup>,
}

/// One key of the source and where it goes.
#[derive(Debug, Serialize)]
pub struct CopiedKey {
    /// Which of the fleet's keys it is.
    pub role: Role,
    /// The private key's file name in the SSH directory.
    pub name: &'static str,
    /// The private key's destination.
    pub path: PathBuf,
    /// The private key file it came from.
    pub source: PathBuf,
    /// As `ssh-keygen -lf` prints it.
    pub fingerprint_line: String,
    /// The private key is passphrase-protected.
    pub encrypted: bool,
}

/// One destination file and what happened (or would happen) to it.
#[derive(Debug, Serialize)]
pub struct FileAction {
    /// The destination path in the SSH directory.
    pub file: PathBuf,
    /// The source file (for a regenerated `.pub`: the private key it was derived from).
    pub source: PathBuf,
    /// The `.pub` is regenerated from the private key (the source had none).
    pub regenerated: bool,
    /// What happens to the destination.
    pub action: Action,
    /// The mode the destination gets (octal in JSON: `"0600"`).
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    /// The destination's mode before, when it existed as a regular file.
    #[serde(serialize_with = "octal_opt")]
    pub previous_mode: Option<u32>,
    /// Where a replaced destination was moved to (`None` in a dry run).
    pub backup: Option<PathBuf>,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{mode:04o}"))
}

fn octal_opt<S: serde::Serializer>(mode: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match mode {
        Some(m) => s.serialize_some(&format!("{m:04o}")),
        None => s.serialize_none(),
    }
}

fn report(plan: &CopyPlan, backup: Option<Backup>, dry_run: bool) -> CopyReport {
    let keys = plan
        .keys
        .iter()
        .map(|k| CopiedKey {
            role: k.role,
            name: k.role.file_name(),
            path: plan.ssh_dir.join(k.role.file_name()),
            source: k.private_source.clone(),
            fingerprint_line: k.fingerprint_line.clone(),
            encrypted: k.encrypted,
        })
        .collect();
    let actions = plan
        .files
        .iter()
        .map(|f| FileAction {
            file: f.dest.clone(),
            source: f.source.clone(),
            regenerated: f.regenerated,
            action: f.action,
            mode: f.mode,
            previous_mode: f.current_mode,
            backup: backup
                .as_ref()
                .and_then(|b| b.moved.iter().find(|m| m.from == f.dest))
                .map(|m| m.to.clone()),
        })
        .collect();
    CopyReport {
        dry_run,
        ssh_dir: plan.ssh_dir.clone(),
        owner: plan.owner,
        keys,
        actions,
        backup,
    }
}

fn install(plan: &CopyPlan, force: bool) -> Result<Option<Backup>, KeyError> {
    if let (Some(first), false) = (plan.conflicts().next(), force) {
        return Err(KeyError::Exists {
            path: first.dest.clone(),
        });
    }
    let dir = files::prepare_dir(&plan.ssh_dir, plan.dir_action, plan.owner)?;
    let replaced: Vec<PathBuf> = plan.conflicts().map(|f| f.dest.clone()).collect();
    let backup = if replaced.is_empty() {
        None
    } else {
        Some(files::backup(&dir, &plan.ssh_dir, &replaced)?)
    };
    for f in &plan.files {
        match f.action {
            Action::Unchanged => {}
            Action::Create | Action::Replace => {
                files::write_new_file(&dir, &f.dest, &f.contents.0, f.mode, plan.owner)?
            }
            Action::Fix => files::fix_file(&dir, &f.dest, f.mode, plan.owner)?,
        }
    }
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::openssh::generate_ed25519;

    fn put_key(dir: &Path, name: &str, with_pub: bool) -> String {
        let k = generate_ed25519(name, None).unwrap();
        std::fs::write(dir.join(name), k.private_openssh.as_bytes()).unwrap();
        if with_pub {
            std::fs::write(
                dir.join(format!("{name}.pub")),
                format!("{}\n", k.public_line),
            )
            .unwrap();
        }
        k.public_line
    }

    #[test]
    fn github_name_maps_to_id_ed25519_and_pub_is_regenerated() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("usb");
        std::fs::create_dir(&src).unwrap();
        let git_pub = put_key(&src, "id_ed25519_github", false);
        put_key(&src, "id_ed25519_agenix", true);
        let dst = tmp.path().join("ssh");
        let p = plan(&src, &dst, None).unwrap();
        assert!(p.absent.is_empty());
        assert_eq!(p.files.len(), 4);
        assert!(p.files.iter().all(|f| f.action == Action::Create));
        assert!(p.files[1].regenerated);
        execute(&p, false).unwrap();
        assert_eq!(
            std::fs::read(dst.join("id_ed25519")).unwrap(),
            std::fs::read(src.join("id_ed25519_github")).unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(dst.join("id_ed25519.pub")).unwrap(),
            format!("{git_pub}\n")
        );
        let again = plan(&src, &dst, None).unwrap();
        assert!(again.is_noop());
    }

    #[test]
    fn mismatched_pair_and_ambiguous_sources_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        put_key(tmp.path(), "id_ed25519", true);
        let other = put_key(tmp.path(), "other", false);
        std::fs::write(tmp.path().join("id_ed25519.pub"), other).unwrap();
        let e = plan(tmp.path(), &tmp.path().join("d"), None).unwrap_err();
        assert!(matches!(e, KeyError::Mismatch { .. }), "{e}");

        let tmp = tempfile::tempdir().unwrap();
        put_key(tmp.path(), "id_ed25519", false);
        put_key(tmp.path(), "id_ed25519_github", false);
        let e = plan(tmp.path(), &tmp.path().join("d"), None).unwrap_err();
        assert!(e.to_string().contains("different keys"), "{e}");

        let tmp = tempfile::tempdir().unwrap();
        let e = plan(tmp.path(), &tmp.path().join("d"), None).unwrap_err();
        assert!(e.to_string().contains("no keys found"), "{e}");
    }

    #[test]
    fn report_says_what_happens_to_each_file_and_where_a_replaced_one_went() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("usb");
        std::fs::create_dir(&src).unwrap();
        put_key(&src, "id_ed25519", true);
        put_key(&src, "id_ed25519_agenix", true);
        let dst = tmp.path().join("ssh");
        std::fs::create_dir(&dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A different private key (replaced), the same .pub with a wrong mode (fixed).
        std::fs::write(dst.join("id_ed25519"), b"old key").unwrap();
        std::fs::set_permissions(
            dst.join("id_ed25519"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::copy(src.join("id_ed25519.pub"), dst.join("id_ed25519.pub")).unwrap();
        std::fs::set_permissions(
            dst.join("id_ed25519.pub"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let p = plan(&src, &dst, None).unwrap();

        let dry = preview(&p);
        assert!(dry.dry_run && dry.backup.is_none());
        assert!(dry.actions.iter().all(|a| a.backup.is_none()));
        let v = serde_json::to_value(&dry).unwrap();
        let rows: Vec<_> = v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["file"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_string(),
                    a["action"].clone(),
                    a["mode"].clone(),
                    a["previous_mode"].clone(),
                )
            })
            .collect();
        let row = |f: &str, action: &str, mode: &str, previous: serde_json::Value| {
            (f.to_string(), action.into(), mode.into(), previous)
        };
        assert_eq!(
            rows,
            [
                row("id_ed25519", "replace", "0600", "0600".into()),
                row("id_ed25519.pub", "fix", "0644", "0600".into()),
                row(
                    "id_ed25519_agenix",
                    "create",
                    "0600",
                    serde_json::Value::Null
                ),
                row(
                    "id_ed25519_agenix.pub",
                    "create",
                    "0644",
                    serde_json::Value::Null
                ),
            ]
        );
        assert_eq!(v["keys"][0]["name"], "id_ed25519");
        assert_eq!(
            v["keys"][0]["path"],
            dst.join("id_ed25519").to_str().unwrap()
        );
        assert_eq!(
            v["keys"][0]["source"],
            src.join("id_ed25519").to_str().unwrap()
        );
        assert!(v["owner"].is_null() && v["backup"].is_null());
        assert_eq!(std::fs::read(dst.join("id_ed25519")).unwrap(), b"old key");

        assert!(execute(&p, false).unwrap_err().is_refusal());
        let done = execute(&p, true).unwrap();
        assert!(!done.dry_run);
        let backup = done.backup.as_ref().unwrap();
        assert_eq!(backup.moved.len(), 1);
        let moved_to = done.actions[0].backup.as_ref().unwrap();
        assert_eq!(moved_to, &backup.moved[0].to);
        assert_eq!(std::fs::read(moved_to).unwrap(), b"old key");
        assert!(done.actions[1..].iter().all(|a| a.backup.is_none()));
        assert_eq!(
            std::fs::read(dst.join("id_ed25519")).unwrap(),
            std::fs::read(src.join("id_ed25519")).unwrap()
        );
    }
}
