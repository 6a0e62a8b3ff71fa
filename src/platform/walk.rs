//! Opening a directory from `/` without following a symlink that someone other than root
//! (or the running user) could have planted.
//!
//! The fast path is one `openat2(RESOLVE_NO_SYMLINKS)` of the whole path (Linux 5.6+). When
//! it fails (a symlink on the way, a missing component, an older kernel or a seccomp filter
//! refusing the call) the path is walked component by component with
//! `O_NOFOLLOW|O_DIRECTORY` opens. A symlink met on that walk is followed only when it and
//! every directory above it are *trusted*: owned by root (or the running user) and not
//! writable by group or other. NixOS has such links (`/etc/static`, `/run/current-system`);
//! a link in a user's home is never followed. The error names the offending component.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Symlinks followed in one walk at most (the kernel's own limit is 40).
const MAX_LINKS: usize = 40;

/// Why a path could not be opened safely: `component` is the path (as walked) of the part
/// that was refused or failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", component.display())]
pub struct WalkError {
    /// The path, as walked, of the component that was refused or failed.
    pub component: PathBuf,
    /// Why, in words (the system error's message when there was one).
    pub reason: String,
    /// The system error, when there was one.
    #[source]
    pub source: Option<io::Error>,
}

impl WalkError {
    fn refused(component: &Path, reason: impl Into<String>) -> Self {
        WalkError {
            component: component.to_path_buf(),
            reason: reason.into(),
            source: None,
        }
    }

    fn io(component: &Path, e: io::Error) -> Self {
        WalkError {
            component: component.to_path_buf(),
            reason: e.to_string(),
            source: Some(e),
        }
    }

    /// Whether the walk failed because a component does not exist.
    pub fn is_not_found(&self) -> bool {
        self.source
            .as_ref()
            .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
    }
}

/// What to do with a missing directory on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Fail with a not-found [`WalkError`].
    Fail,
    /// Create it with this mode (masked by the umask, so never wider).
    Create(u32),
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the absolute directory `path` (see the module doc).
pub fn open_dir(path: &Path, missing: Missing) -> Result<OwnedFd, WalkError> {
    if !path.is_absolute() {
        return Err(WalkError::refused(path, "not an absolute path"));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::ResolveFlags;
        let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        if let Ok(fd) =
            rustix::fs::openat2(rustix::fs::CWD, path, DIR_FLAGS, Mode::empty(), resolve)
        {
            return Ok(fd);
        }
    }
    walk(path, missing)
}

/// Opens the absolute directory `path` only when every component, from `/` down, is a
/// directory owned by root or the running user and not writable by group or other (unless
/// sticky), and no component is a symbolic link (none is followed, trusted or not): a
/// place where another user can neither plant a file nor redirect a write. Directories
/// created on the way (`missing`) are the running user's. For a place that holds or will
/// hold a key, such as a state directory taken from the environment.
pub fn open_owned_dir(path: &Path, missing: Missing) -> Result<OwnedFd, WalkError> {
    if !path.is_absolute() {
        return Err(WalkError::refused(path, "not an absolute path"));
    }
    walk_with(path, missing, Follow::Never)
}

/// Opens the directory holding the absolute `path` (see [`open_dir`]) and returns it with
/// the last component, which the caller handles through the fd without following it.
pub fn open_parent(path: &Path, missing: Missing) -> Result<(OwnedFd, OsString), WalkError> {
    let base = match path.components().next_back() {
        Some(Component::Normal(b)) => b.to_os_string(),
        _ => return Err(WalkError::refused(path, "has no file name")),
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    Ok((open_dir(parent, missing)?, base))
}

/// Whether a directory (or link) with this owner and mode can be trusted not to be swapped
/// by someone else: owned by root or by us, and not writable by group/other unless sticky
/// (in a sticky directory like `/tmp` others cannot rename or remove an entry they do not
/// own, and every entry the walk goes through is itself checked). `None` when trusted,
/// else why not.
fn distrust(uid: u32, mode: u32, is_dir: bool) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    if uid != 0 && uid != me {
        return Some(format!("is owned by uid {uid}"));
    }
    // A link's own mode bits mean nothing.
    if is_dir && mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Some(format!(
            "is writable by group or other (mode {:04o})",
            mode & 0o7777
        ));
    }
    None
}

struct Level {
    fd: OwnedFd,
    shown: PathBuf,
    /// `None` when this directory and every one above it are trusted; else the first
    /// untrusted one and why.
    untrusted: Option<(PathBuf, String)>,
}

fn level(
    fd: OwnedFd,
    shown: PathBuf,
    above: Option<(PathBuf, String)>,
) -> Result<Level, WalkError> {
    let st = rustix::fs::fstat(&fd).map_err(|e| WalkError::io(&shown, errno(e)))?;
    let untrusted =
        above.or_else(|| distrust(st.st_uid, st.st_mode, true).map(|r| (shown.clone(), r)));
    Ok(Level {
        fd,
        shown,
        untrusted,
    })
}

/// Which symlinks a walk follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// Trusted ones (see the module doc).
    Trusted,
    /// None; and every directory on the way must be trusted itself.
    Never,
}

fn walk(path: &Path, missing: Missing) -> Result<OwnedFd, WalkError> {
    walk_with(path, missing, Follow::Trusted)
}

fn walk_with(path: &Path, missing: Missing, follow: Follow) -> Result<OwnedFd, WalkError> {
    let root = Path::new("/");
    let open_root = || -> Result<Level, WalkError> {
        let fd = rustix::fs::open(root, DIR_FLAGS, Mode::empty())
            .map_err(|e| WalkError::io(root, errno(e)))?;
        level(fd, root.to_path_buf(), None)
    };
    let mut stack = vec![open_root()?];
    // Components still to walk, in reverse order (pop from the end).
    let mut todo: Vec<OsString> = components(path.as_os_str().as_bytes());
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp.as_bytes() == b"." {
            continue;
        }
        if comp.as_bytes() == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("the root stays on the stack");
        let shown = cur.shown.join(&comp);
        match rustix::fs::openat(&cur.fd, comp.as_os_str(), DIR_FLAGS, Mode::empty()) {
            Ok(fd) => {
                let next = level(fd, shown, cur.untrusted.clone())?;
                if follow == Follow::Never {
                    if let Some((dir, why)) = &next.untrusted {
                        return Err(WalkError::refused(dir, why.clone()));
                    }
                }
                stack.push(next);
            }
            Err(rustix::io::Errno::NOENT) => {
                let Missing::Create(mode) = missing else {
                    return Err(WalkError::io(&shown, io::ErrorKind::NotFound.into()));
                };
                match rustix::fs::mkdirat(&cur.fd, comp.as_os_str(), Mode::from_bits_truncate(mode))
                {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => todo.push(comp),
                    Err(e) => return Err(WalkError::io(&shown, errno(e))),
                }
            }
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                let st = rustix::fs::statat(&cur.fd, comp.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| WalkError::io(&shown, errno(e)))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                    return Err(WalkError::refused(&shown, "is not a directory"));
                }
                if follow == Follow::Never {
                    return Err(WalkError::refused(
                        &shown,
                        "is a symbolic link; refusing to follow it",
                    ));
                }
                if let Some((dir, why)) = &cur.untrusted {
                    return Err(WalkError::refused(
                        &shown,
                        format!(
                            "is a symbolic link in {} which {why}; refusing to follow it",
                            dir.display()
                        ),
                    ));
                }
                if let Some(why) = distrust(st.st_uid, st.st_mode, false) {
                    return Err(WalkError::refused(
                        &shown,
                        format!("is a symbolic link that {why}; refusing to follow it"),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(WalkError::refused(
                        &shown,
                        "too many levels of symbolic links",
                    ));
                }
                let target = rustix::fs::readlinkat(&cur.fd, comp.as_os_str(), Vec::new())
                    .map_err(|e| WalkError::io(&shown, errno(e)))?
                    .into_bytes();
                if target.starts_with(b"/") {
                    stack.truncate(1);
                }
                todo.extend(components(&target));
            }
            Err(e) => return Err(WalkError::io(&shown, errno(e))),
        }
    }
    Ok(stack.pop().expect("the root stays on the stack").fd)
}

/// The non-empty `/`-separated parts of `path`, reversed (the walk pops from the end).
fn components(path: &[u8]) -> Vec<OsString> {
    path.split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .rev()
        .map(|p| OsString::from_vec(p.to_vec()))
        .collect()
}

/// Opens the directory `name` inside `dir` without following a symlink, refusing anything
/// else with an error naming `shown`.
pub fn open_subdir(dir: impl AsFd, name: &OsStr, shown: &Path) -> Result<OwnedFd, WalkError> {
    rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP => {
            WalkError::refused(shown, "is a symbolic link; refusing to follow it")
        }
        rustix::io::Errno::NOTDIR => WalkError::refused(shown, "is not a directory"),
        e => WalkError::io(shown, errno(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn same_dir(fd: &OwnedFd, path: &Path) -> bool {
        let st = rustix::fs::fstat(fd).unwrap();
        let m = std::fs::metadata(path).unwrap();
        st.st_ino == m.ino() && st.st_dev == m.dev()
    }

    #[test]
    fn opens_plain_paths_and_creates_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let fd = open_dir(tmp.path(), Missing::Fail).unwrap();
        assert!(same_dir(&fd, tmp.path()));
        let deep = tmp.path().join("a/b/c");
        let e = open_dir(&deep, Missing::Fail).unwrap_err();
        assert!(
            e.is_not_found() && e.component == tmp.path().join("a"),
            "{e}"
        );
        let fd = walk(&deep, Missing::Create(0o700)).unwrap();
        assert!(same_dir(&fd, &deep));
        let (fd, base) = open_parent(&deep.join("f"), Missing::Fail).unwrap();
        assert!(same_dir(&fd, &deep) && base == "f");
        let e = open_parent(Path::new("/"), Missing::Fail).unwrap_err();
        assert_eq!(e.reason, "has no file name");
        assert!(!e.is_not_found());
    }

    #[test]
    fn refuses_a_link_below_a_directory_we_do_not_trust_and_follows_trusted_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
        // The temp dir is ours and 0700: a link in it is trusted.
        let fd = open_dir(&tmp.path().join("link"), Missing::Fail).unwrap();
        assert!(same_dir(&fd, &real));
        // The same dir made group-writable: the link is refused, naming it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = open_dir(&tmp.path().join("link/x"), Missing::Create(0o755)).unwrap_err();
        assert_eq!(e.component, tmp.path().join("link"), "{e}");
        assert!(e.reason.contains("refusing to follow"), "{e}");
        assert!(!real.join("x").exists());
        // A path through it that exists is refused too (the one-call fast path must not
        // follow the link; as the last component, O_NOFOLLOW alone refuses it).
        std::fs::create_dir(real.join("x")).unwrap();
        let e = open_dir(&tmp.path().join("link/x"), Missing::Fail).unwrap_err();
        assert!(
            e.reason.contains("refusing to follow") && !e.is_not_found(),
            "{e}"
        );
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// The strict walk follows no link, not even a trusted one, and refuses a directory
    /// that is group- or other-writable (a place another user could plant a key in).
    #[test]
    fn owned_walk_follows_no_link_and_refuses_writable_directories() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
        let fd = open_owned_dir(&real, Missing::Fail).unwrap();
        assert!(same_dir(&fd, &real));
        let e = open_owned_dir(&tmp.path().join("link/x"), Missing::Create(0o700)).unwrap_err();
        assert_eq!(e.component, tmp.path().join("link"), "{e}");
        assert!(e.reason.contains("symbolic link"), "{e}");
        assert!(!real.join("x").exists());
        // Created on the way: ours, so accepted.
        let fd = open_owned_dir(&real.join("a/b"), Missing::Create(0o700)).unwrap();
        assert!(same_dir(&fd, &real.join("a/b")));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = open_owned_dir(&real.join("a/b"), Missing::Fail).unwrap_err();
        assert_eq!(e.component, real, "{e}");
        assert!(e.reason.contains("writable by group or other"), "{e}");
    }

    /// In a sticky world-writable directory (like `/tmp`) anyone can plant a link: one owned
    /// by another user is refused, naming its owner, while root's own link there is followed.
    #[test]
    #[ignore = "needs root"]
    fn refuses_a_link_owned_by_another_user_in_a_sticky_directory() {
        use std::os::unix::fs::PermissionsExt;
        assert!(
            rustix::process::geteuid().is_root(),
            "this test needs root (CI runs as root)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let sticky = tmp.path().join("sticky");
        let real = tmp.path().join("real");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let link = sticky.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let fd = open_dir(&link, Missing::Fail).unwrap();
        assert!(same_dir(&fd, &real));
        std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
        let e = open_dir(&link.join("x"), Missing::Create(0o755)).unwrap_err();
        assert_eq!(e.component, link, "{e}");
        assert_eq!(
            e.reason,
            "is a symbolic link that is owned by uid 4242; refusing to follow it"
        );
        assert!(!real.join("x").exists());
        // The same for a path through it that exists (the one-call fast path must not
        // follow the link).
        std::fs::create_dir(real.join("x")).unwrap();
        let e = open_dir(&link.join("x"), Missing::Fail).unwrap_err();
        assert_eq!(e.component, link, "{e}");
    }

    /// Trust is relative to the running user: a walk by another user (here one thread that
    /// drops to uid 4242) still follows root's own link, as a root walk does.
    #[test]
    #[ignore = "needs root"]
    fn a_walk_by_another_user_still_trusts_roots_links() {
        use std::os::unix::fs::PermissionsExt;
        assert!(
            rustix::process::geteuid().is_root(),
            "this test needs root (CI runs as root)"
        );
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let walked = std::thread::spawn(move || {
            // The raw system call changes this thread's credentials only.
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(4242)).unwrap();
            open_dir(&link, Missing::Fail).map(|fd| same_dir(&fd, &real))
        })
        .join()
        .unwrap();
        assert!(walked.unwrap(), "walked elsewhere");
    }

    #[test]
    fn relative_and_dotdot_links_resolve_like_the_kernel() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("../a/b", tmp.path().join("a/up")).unwrap();
        let fd = walk(&tmp.path().join("a/up"), Missing::Fail).unwrap();
        assert!(same_dir(&fd, &tmp.path().join("a/b")));
        // `..` at the root is the root, as for the kernel.
        let above = Path::new("/../..").join(tmp.path().strip_prefix("/").unwrap());
        let fd = walk(&above.join("a/b"), Missing::Fail).unwrap();
        assert!(same_dir(&fd, &tmp.path().join("a/b")));
        // At most 40 links are followed in one walk, as by the kernel.
        std::os::unix::fs::symlink("a/b", tmp.path().join("l1")).unwrap();
        for i in 2..=41 {
            let prev = format!("l{}", i - 1);
            std::os::unix::fs::symlink(prev, tmp.path().join(format!("l{i}"))).unwrap();
        }
        let fd = walk(&tmp.path().join("l40"), Missing::Fail).unwrap();
        assert!(same_dir(&fd, &tmp.path().join("a/b")));
        let e = walk(&tmp.path().join("l41"), Missing::Fail).unwrap_err();
        assert!(e.reason.contains("too many"), "{e}");
        std::os::unix::fs::symlink("loop", tmp.path().join("loop")).unwrap();
        let e = walk(&tmp.path().join("loop"), Missing::Fail).unwrap_err();
        assert!(e.reason.contains("too many"), "{e}");
        std::fs::write(tmp.path().join("f"), b"").unwrap();
        let e = walk(&tmp.path().join("f/x"), Missing::Fail).unwrap_err();
        assert_eq!(e.reason, "is not a directory");
    }
}
