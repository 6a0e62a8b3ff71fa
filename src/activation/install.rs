//! One secret: where it goes (planning), writing it atomically, and giving it its owner.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::manifest::{Manifest, SecretSpec};
use super::{paths, Layout, SecretFailure};
use crate::identity::IdentitySet;
use crate::sys;

/// Where the plaintext of a secret ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `secretsDir/name` (the default `path`): the file in the generation only.
    Generation,
    /// A custom `path` with `symlink = true`: the file in the generation and a symlink at
    /// `path` pointing at `secretsDir/name`.
    Link(PathBuf),
    /// A custom `path` with `symlink = false`: the file itself at `path`, not in the generation.
    File(PathBuf),
}

/// A secret whose name, mode and path have been checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub file: PathBuf,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub target: Target,
}

/// Checks every secret of `m`; the ones that cannot be planned are returned as failures.
pub fn plan(
    m: &Manifest,
    layout: &Layout,
    var: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Plan>, Vec<SecretFailure>) {
    let mut plans = Vec::with_capacity(m.secrets.len());
    let mut failures = Vec::new();
    let mut seen = HashSet::with_capacity(m.secrets.len());
    for spec in &m.secrets {
        let fail = |reason: String| SecretFailure {
            name: spec.name.clone(),
            reason: super::one_line(&reason),
        };
        if !seen.insert(spec.name.as_str()) {
            failures.push(fail("duplicate secret name in the manifest".into()));
            continue;
        }
        match plan_one(spec, layout, var) {
            Ok(p) => plans.push(p),
            Err(reason) => failures.push(fail(reason)),
        }
    }
    (plans, failures)
}

fn plan_one(
    spec: &SecretSpec,
    layout: &Layout,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, String> {
    paths::check_name(&spec.name).map_err(|r| format!("refused: {r}"))?;
    let mode = super::mode::parse(&spec.mode)?;
    if spec.file.is_empty() || spec.file.contains('\0') {
        return Err("no encrypted file given".into());
    }
    let expanded = paths::expand(&spec.path, var).map_err(|r| format!("path: {r}"))?;
    let path = paths::check_absolute(&expanded).map_err(|r| format!("path `{expanded}`: {r}"))?;
    let default = layout.secrets_dir.join(&spec.name);
    let target = if path == default {
        Target::Generation
    } else if path.starts_with(&layout.secrets_dir) || path.starts_with(&layout.mount_point) {
        return Err(format!(
            "path `{}` is inside secretsDir or secretsMountPoint but is not secretsDir/{}",
            path.display(),
            spec.name
        ));
    } else if spec.symlink {
        Target::Link(path)
    } else {
        Target::File(path)
    };
    Ok(Plan {
        name: spec.name.clone(),
        file: PathBuf::from(&spec.file),
        mode,
        owner: spec.owner.clone(),
        group: spec.group.clone(),
        target,
    })
}

/// Loads the readable, non-empty identities of `paths`; the others become warnings.
pub fn load_identities(paths: &[PathBuf]) -> (IdentitySet, Vec<String>) {
    IdentitySet::load_lenient(paths)
}

/// Decrypts `plan.file` and writes it to its target: into the generation directory `gen`
/// (whose path is `gen_path`), or at its configured `path`. `owner` (uid, gid) is applied
/// before the file gets its mode and final name.
pub fn install_one(
    plan: &Plan,
    gen: &OwnedFd,
    gen_path: &Path,
    secrets_dir: &Path,
    ids: &IdentitySet,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    let file = plan.file.display();
    let ciphertext = crate::fsutil::read_regular(&plan.file).map_err(|e| format!("{file}: {e}"))?;
    let plaintext: Zeroizing<Vec<u8>> =
        crate::envelope::decrypt(&ciphertext, ids).map_err(|e| format!("{file}: {e}"))?;
    match &plan.target {
        Target::Generation | Target::Link(_) => {
            let rel = Path::new(&plan.name);
            let shown = gen_path.join(rel);
            let (dir, base) =
                open_parent_in(gen, rel, true).map_err(|e| format!("{}: {e}", shown.display()))?;
            write_atomic(&dir, base, &plaintext, plan.mode, owner)
                .map_err(|e| format!("{}: {e}", shown.display()))?;
            if let Target::Link(path) = &plan.target {
                link_atomic(&secrets_dir.join(rel), path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Target::File(path) => {
            let shown = path.display();
            let (dir, base) = open_outside_parent(path).map_err(|e| format!("{shown}: {e}"))?;
            write_atomic(&dir, base, &plaintext, plan.mode, owner)
                .map_err(|e| format!("{shown}: {e}"))?;
            // Outside the mount the file may be on disk: make the rename durable.
            sys::sync(&dir).map_err(|e| format!("{shown}: {e}"))?;
        }
    }
    Ok(())
}

/// Gives an installed secret its owner and group (and re-applies its mode, which a chown
/// may have stripped of setuid/setgid bits). The file is opened without following a
/// symlink and must be a regular file.
pub fn chown_one(
    plan: &Plan,
    gen: &OwnedFd,
    gen_path: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), String> {
    let (dir, base, shown) = match &plan.target {
        Target::Generation | Target::Link(_) => {
            let rel = Path::new(&plan.name);
            let shown = gen_path.join(rel);
            let (dir, base) =
                open_parent_in(gen, rel, false).map_err(|e| format!("{}: {e}", shown.display()))?;
            (dir, base, shown)
        }
        Target::File(path) => {
            let (dir, base) = open_outside_parent_existing(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            (dir, base, path.clone())
        }
    };
    let shown = shown.display();
    let fd = sys::open_read_nofollow_at(&dir, Path::new(base)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{shown}: not installed")
        } else {
            format!("{shown}: {e}")
        }
    })?;
    match sys::regular_file_links(&fd).map_err(|e| format!("{shown}: {e}"))? {
        Some(1) => {}
        Some(_) => {
            // A hard link planted in a writable directory would hand its target to `uid`.
            return Err(format!(
                "{shown}: has other hard links; not changing its owner"
            ));
        }
        None => {
            return Err(format!(
                "{shown}: not a regular file; not changing its owner"
            ))
        }
    }
    sys::fchown(&fd, uid, gid).map_err(|e| format!("{shown}: cannot change owner: {e}"))?;
    sys::fchmod(&fd, plan.mode).map_err(|e| format!("{shown}: {e}"))
}

/// Opens the directory holding `rel` inside `root`, walking each component without
/// following symlinks (and creating missing ones 0751 when `create`). Returns it and the
/// last component.
fn open_parent_in<'a>(
    root: &OwnedFd,
    rel: &'a Path,
    create: bool,
) -> std::io::Result<(OwnedFd, &'a OsStr)> {
    let base = rel
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut dir = root.try_clone()?;
    if let Some(parent) = rel.parent() {
        for comp in parent.iter() {
            let comp = Path::new(comp);
            dir = match sys::open_dir_at(&dir, comp) {
                Ok(fd) => fd,
                Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                    match sys::mkdir_at(&dir, comp, 0o751) {
                        Ok(()) => {}
                        // Another worker made it first.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    sys::open_dir_at(&dir, comp)?
                }
                Err(e) => return Err(e),
            };
        }
    }
    Ok((dir, base))
}

/// Creates the missing parents of a configured `path` (0755) and opens its directory.
/// Parents are followed like any system path (they are the administrator's choice); only
/// the last component is handled without following.
fn open_outside_parent(path: &Path) -> std::io::Result<(OwnedFd, &OsStr)> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)?;
    open_outside_parent_existing(path)
}

fn open_outside_parent_existing(path: &Path) -> std::io::Result<(OwnedFd, &OsStr)> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let base = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    Ok((sys::open_dir(parent)?, base))
}

/// A temp name no other secret or attacker can predict.
fn temp_name(base: &OsStr) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    // Keep the temp name short enough for NAME_MAX whatever the base.
    let base_bytes = std::os::unix::ffi::OsStrExt::as_bytes(base);
    name.push(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
        &base_bytes[..base_bytes.len().min(200)],
    ));
    name.push(format!(".agefleet-{:016x}", rand::random::<u64>()));
    PathBuf::from(name)
}

/// Runs `make` with fresh temp names until one is free (an existing name, planted or not,
/// is never reused or followed).
fn with_temp_name<T>(
    base: &OsStr,
    mut make: impl FnMut(&Path) -> std::io::Result<T>,
) -> std::io::Result<(PathBuf, T)> {
    let mut last = None;
    for _ in 0..8 {
        let tmp = temp_name(base);
        match make(&tmp) {
            Ok(v) => return Ok((tmp, v)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()))
}

/// Writes `data` as `base` in `dir`: exclusive no-follow temp file created 0400, content
/// synced, owner, mode, rename over `base` (which replaces a symlink there, never follows it).
fn write_atomic(
    dir: &OwnedFd,
    base: &OsStr,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let (tmp, fd) = with_temp_name(base, |tmp| sys::create_exclusive_at(dir, tmp, 0o400))?;
    let result = (|| {
        sys::write_all_sync(&fd, data)?;
        if let Some((uid, gid)) = owner {
            sys::fchown(&fd, uid, gid)?;
        }
        // After the chown, which may clear setuid/setgid bits.
        sys::fchmod(&fd, mode)?;
        sys::rename_at(dir, &tmp, dir, Path::new(base))
    })();
    if result.is_err() {
        let _ = sys::unlink_at(dir, &tmp);
    }
    result
}

/// Points the symlink `at` to `target`, atomically (temp symlink, rename over `at`).
pub fn link_atomic(target: &Path, at: &Path) -> std::io::Result<()> {
    let (dir, base) = open_outside_parent(at)?;
    replace_with_symlink(&dir, base, target)
}

/// Replaces `base` in `dir` with a symlink to `target` atomically.
pub fn replace_with_symlink(dir: &impl AsFd, base: &OsStr, target: &Path) -> std::io::Result<()> {
    let (tmp, ()) = with_temp_name(base, |tmp| sys::symlink_at(target, dir, tmp))?;
    if let Err(e) = sys::rename_at(dir, &tmp, dir, Path::new(base)) {
        let _ = sys::unlink_at(dir, &tmp);
        return Err(e);
    }
    sys::sync(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::FsChoice;

    fn layout() -> Layout {
        Layout {
            secrets_dir: "/run/agenix".into(),
            mount_point: "/run/agenix.d".into(),
            identity_paths: vec![],
            fs: FsChoice::Tmpfs,
        }
    }

    fn spec(name: &str, path: &str, symlink: bool) -> SecretSpec {
        SecretSpec {
            name: name.into(),
            file: "/s/x.age".into(),
            path: path.into(),
            mode: "0400".into(),
            owner: "0".into(),
            group: "0".into(),
            symlink,
        }
    }

    fn manifest(secrets: Vec<SecretSpec>) -> Manifest {
        Manifest {
            version: 1,
            secrets_dir: "/run/agenix".into(),
            secrets_mount_point: "/run/agenix.d".into(),
            identity_paths: vec![],
            fs: FsChoice::Tmpfs,
            secrets,
        }
    }

    #[test]
    fn targets_follow_path_and_symlink() {
        let env = |v: &str| (v == "HOME").then(|| "/home/u".to_string());
        let m = manifest(vec![
            spec("a", "/run/agenix/a", true),
            spec("b", "/run/agenix//b", false),
            spec("c", "/etc/c", true),
            spec("d", "$HOME/d", false),
        ]);
        let (plans, failures) = plan(&m, &layout(), &env);
        assert!(failures.is_empty(), "{failures:?}");
        let targets: Vec<_> = plans.iter().map(|p| p.target.clone()).collect();
        assert_eq!(
            targets,
            vec![
                Target::Generation,
                Target::Generation,
                Target::Link("/etc/c".into()),
                Target::File("/home/u/d".into()),
            ]
        );
    }

    #[test]
    fn bad_entries_fail_alone() {
        let mut bad_mode = spec("m", "/run/agenix/m", true);
        bad_mode.mode = "u+s".into();
        let m = manifest(vec![
            spec("../escape", "/run/agenix/../escape", true),
            spec("/abs", "/abs", true),
            spec("ok", "/run/agenix/ok", true),
            spec("ok", "/run/agenix/ok", true),
            spec("in", "/run/agenix.d/1/in", true),
            spec("rel", "relative/path", true),
            bad_mode,
        ]);
        let (plans, failures) = plan(&m, &layout(), &|_| None);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].name, "ok");
        let names: Vec<_> = failures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["../escape", "/abs", "ok", "in", "rel", "m"]);
        assert!(failures[0].reason.starts_with("refused:"));
    }

    #[test]
    fn symlink_replacement_is_atomic_and_does_not_follow() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let at = tmp.path().join("sub/link");
        link_atomic(Path::new("/run/agenix/x"), &at).unwrap();
        assert_eq!(std::fs::read_link(&at).unwrap(), Path::new("/run/agenix/x"));
        std::fs::remove_file(&at).unwrap();
        std::os::unix::fs::symlink(&victim, &at).unwrap();
        link_atomic(Path::new("/run/agenix/y"), &at).unwrap();
        assert_eq!(std::fs::read_link(&at).unwrap(), Path::new("/run/agenix/y"));
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let leftovers = std::fs::read_dir(tmp.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn write_atomic_replaces_a_symlink_without_following_it() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, tmp.path().join("s")).unwrap();
        let dir = sys::open_dir_nofollow(tmp.path()).unwrap();
        write_atomic(&dir, OsStr::new("s"), b"new", 0o440, None).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let meta = std::fs::symlink_metadata(tmp.path().join("s")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o440);
        assert_eq!(std::fs::read(tmp.path().join("s")).unwrap(), b"new");
    }

    #[test]
    fn walking_a_name_refuses_a_symlinked_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("d")).unwrap();
        let root = sys::open_dir_nofollow(tmp.path()).unwrap();
        assert!(open_parent_in(&root, Path::new("d/x"), true).is_err());
        let (_, base) = open_parent_in(&root, Path::new("e/f/x"), true).unwrap();
        assert_eq!(base, "x");
        assert!(tmp.path().join("e/f").is_dir());
    }
}
