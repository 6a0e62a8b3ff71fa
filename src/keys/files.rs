//! File plumbing for keys: bounded no-follow reads, and, through the platform layer
//! ([`crate::platform`]), the SSH directory opened from `/` without following a planted
//! symlink, atomic no-replace writes with the final mode and owner, and timestamped backups,
//! all relative to the directory's fd.

use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::owner::Owner;
use super::{Backup, DirAction, KeyError, Moved, DIR_MODE};
use crate::platform::atomic::{self, Existing, WriteOptions};
use crate::platform::walk::{self, Missing, WalkError};
use crate::sys;

/// Mode of missing parents of the SSH directory that are created (the umask may narrow it).
const PARENT_MODE: u32 = 0o755;

/// Key files larger than this are not keys (a 16384-bit RSA key is about 12 KiB).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// A key file read into zeroized memory, with what `fstat` said about it.
pub(crate) struct ReadFile {
    pub bytes: Zeroizing<Vec<u8>>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Reads a small regular file. With `follow_symlinks` false a symbolic link is an error.
/// Opens non-blocking so a FIFO planted at the path cannot hang the run.
pub(crate) fn read_key_file(path: &Path, follow_symlinks: bool) -> Result<ReadFile, KeyError> {
    use crate::fsutil::{read_guarded, GuardedReadError, ReadGuard};
    let guard = ReadGuard {
        no_follow: !follow_symlinks,
        limit: Some(MAX_KEY_FILE),
        truncate: false,
    };
    let read = read_guarded(path, guard).map_err(|e| match e {
        GuardedReadError::Open(e) | GuardedReadError::Read(e) => KeyError::io(path, e),
        GuardedReadError::Symlink => {
            KeyError::invalid(path, "is a symbolic link, not a regular file")
        }
        GuardedReadError::Directory | GuardedReadError::NotRegular => {
            KeyError::invalid(path, "not a regular file")
        }
        GuardedReadError::TooLarge { size, .. } => {
            KeyError::invalid(path, format!("{size} bytes is too large for a key file"))
        }
    })?;
    Ok(ReadFile {
        bytes: read.bytes,
        mode: read.meta.mode() & 0o7777,
        uid: read.meta.uid(),
        gid: read.meta.gid(),
    })
}

/// Whether anything (file, directory, dangling symlink) exists at `path`.
pub(crate) fn exists_no_follow(path: &Path) -> Result<bool, KeyError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeyError::io(path, e)),
    }
}

/// What [`prepare_dir`] must do for `dir`.
pub(crate) fn inspect_dir(dir: &Path) -> Result<DirAction, KeyError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.mode() & 0o7777;
            if mode & 0o077 != 0 {
                Ok(DirAction::Tighten { from: mode })
            } else {
                Ok(DirAction::Keep)
            }
        }
        Ok(_) => Err(KeyError::invalid(dir, "exists and is not a directory")),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(DirAction::Create),
        Err(e) => Err(KeyError::io(dir, e)),
    }
}

/// Refuses an SSH directory that is a symbolic link: keys are written and modes set only in
/// a real directory, so a link planted by its owner cannot send them elsewhere.
pub(crate) fn refuse_symlinked_dir(dir: &Path) -> Result<(), KeyError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(KeyError::invalid(
            dir,
            "is a symbolic link; refusing to follow it (name the real directory)",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn walk_error(e: WalkError) -> KeyError {
    KeyError::Invalid {
        path: e.component,
        reason: e.reason,
    }
}

/// Carries out `action` on `dir` and returns it open: missing parents are created (0755 at
/// most) on a walk from `/` that follows no symlink an untrusted user could have planted,
/// `dir` itself is created 0700 or opened without following a symlink, its mode is set
/// through the fd, and `owner` (when named) is given the directory, existing or new.
pub(crate) fn prepare_dir(
    dir: &Path,
    action: DirAction,
    owner: Option<Owner>,
) -> Result<OwnedFd, KeyError> {
    let abs = std::path::absolute(dir).map_err(|e| KeyError::io(dir, e))?;
    let (parent, base) =
        walk::open_parent(&abs, Missing::Create(PARENT_MODE)).map_err(walk_error)?;
    if action == DirAction::Create {
        match sys::mkdir_at(&parent, Path::new(&base), DIR_MODE) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(KeyError::io(dir, e)),
        }
    }
    let fd = walk::open_subdir(&parent, &base, dir).map_err(walk_error)?;
    if action != DirAction::Keep {
        sys::fchmod(&fd, DIR_MODE).map_err(|e| KeyError::io(dir, e))?;
    }
    if let Some(owner) = owner {
        sys::fchown(&fd, owner.uid, owner.gid).map_err(|e| KeyError::io(dir, e))?;
    }
    Ok(fd)
}

/// Creates `path` (whose directory is open as `dir`) holding `contents`, with exactly `mode`
/// (and `owner`), atomically and without replacing anything (see
/// [`crate::platform::atomic`]). If something appeared at `path` meanwhile, the result is
/// [`KeyError::Exists`] and nothing changed.
pub(crate) fn write_new_file(
    dir: &OwnedFd,
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> Result<(), KeyError> {
    let name = path
        .file_name()
        .ok_or_else(|| KeyError::invalid(path, "has no file name"))?;
    let opts = WriteOptions::create_new(mode).owner(owner.map(|o| (o.uid, o.gid)));
    match atomic::write_at(dir, name, contents, opts) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(KeyError::Exists {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(KeyError::io(path, e)),
    }
}

/// Moves every path of `paths` (in the SSH directory `ssh_dir`, open as `dir`) into a new
/// directory `<ssh_dir>/bak-<UTC timestamp>` (0700; `-1`, `-2`, … appended when that name
/// is taken). Nothing is deleted.
pub(crate) fn backup(dir: &OwnedFd, ssh_dir: &Path, paths: &[PathBuf]) -> Result<Backup, KeyError> {
    let stamp = utc_timestamp(SystemTime::now());
    let mut name = format!("bak-{stamp}");
    let mut n = 0u32;
    loop {
        match sys::mkdir_at(dir, Path::new(&name), DIR_MODE) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 1000 => {
                n += 1;
                name = format!("bak-{stamp}-{n}");
            }
            Err(e) => return Err(KeyError::io(ssh_dir.join(&name), e)),
        }
    }
    let bak_path = ssh_dir.join(&name);
    let bak = walk::open_subdir(dir, name.as_ref(), &bak_path).map_err(walk_error)?;
    sys::fchmod(&bak, DIR_MODE).map_err(|e| KeyError::io(&bak_path, e))?;
    let mut moved = Vec::with_capacity(paths.len());
    for from in paths {
        let file = from
            .file_name()
            .ok_or_else(|| KeyError::invalid(from, "has no file name"))?;
        let to = bak_path.join(file);
        atomic::rename_between(dir, file, &bak, file, Existing::Keep).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                KeyError::Exists { path: to.clone() }
            } else {
                KeyError::io(from, e)
            }
        })?;
        moved.push(Moved {
            from: from.clone(),
            to,
        });
    }
    sys::sync(&bak).map_err(|e| KeyError::io(&bak_path, e))?;
    sys::sync(dir).map_err(|e| KeyError::io(ssh_dir, e))?;
    Ok(Backup {
        dir: bak_path,
        moved,
    })
}

/// Sets the mode (and owner) of an existing regular file in `dir` through a no-follow
/// descriptor, so a symlink swapped in meanwhile is not followed.
pub(crate) fn fix_file(
    dir: &OwnedFd,
    path: &Path,
    mode: u32,
    owner: Option<Owner>,
) -> Result<(), KeyError> {
    let name = path
        .file_name()
        .ok_or_else(|| KeyError::invalid(path, "has no file name"))?;
    let fd = sys::open_read_nofollow_at(dir, Path::new(name)).map_err(|e| {
        if sys::is_symlink_or_not_dir(&e) {
            KeyError::invalid(path, "is a symbolic link, not a regular file")
        } else {
            KeyError::io(path, e)
        }
    })?;
    if sys::regular_file_links(&fd)
        .map_err(|e| KeyError::io(path, e))?
        .is_none()
    {
        return Err(KeyError::invalid(path, "not a regular file"));
    }
    if let Some(owner) = owner {
        sys::fchown(&fd, owner.uid, owner.gid).map_err(|e| KeyError::io(path, e))?;
    }
    sys::fchmod(&fd, mode).map_err(|e| KeyError::io(path, e))
}

/// `YYYYmmddTHHMMSSZ` in UTC (times before 1970 clamp to the epoch).
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = crate::text::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(at(0), "19700101T000000Z");
        // 2000-02-29 12:34:56 UTC (leap day of a 400-year leap year)
        assert_eq!(at(951_827_696), "20000229T123456Z");
        // 2026-11-22 03:11:33 UTC
        assert_eq!(at(1_795_317_093), "20261122T031133Z");
        // 2100-03-01 00:00:00 UTC (2100 is not a leap year)
        assert_eq!(at(4_107_542_400), "21000301T000000Z");
        assert_eq!(
            utc_timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            "19700101T000000Z"
        );
    }

    #[test]
    fn write_new_file_sets_mode_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let d = prepare_dir(dir.path(), DirAction::Keep, None).unwrap();
        write_new_file(&d, &p, b"one", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        let err = write_new_file(&d, &p, b"two", 0o600, None).unwrap_err();
        assert!(err.is_refusal(), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k")]);
        let q = dir.path().join("k.pub");
        write_new_file(&d, &q, b"pub", 0o644, None).unwrap();
        assert_eq!(std::fs::metadata(&q).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn read_key_file_rejects_symlinks_fifos_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = read_key_file(&link, false).err().unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(&*read_key_file(&link, true).unwrap().bytes, b"x");

        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read_key_file(&fifo, true).err().unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; (MAX_KEY_FILE + 1) as usize]).unwrap();
        let err = read_key_file(&big, true).err().unwrap();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn backup_moves_files_into_a_fresh_private_dir() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"old").unwrap();
        let d = prepare_dir(dir.path(), DirAction::Keep, None).unwrap();
        let b1 = backup(&d, dir.path(), std::slice::from_ref(&a)).unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(b1.dir.join("a")).unwrap(), b"old");
        assert!(b1
            .dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("bak-"));
        assert_eq!(std::fs::metadata(&b1.dir).unwrap().mode() & 0o777, 0o700);
        // Same second: a second backup gets its own directory.
        std::fs::write(&a, b"newer").unwrap();
        let b2 = backup(&d, dir.path(), std::slice::from_ref(&a)).unwrap();
        assert_ne!(b1.dir, b2.dir);
        assert_eq!(std::fs::read(b2.dir.join("a")).unwrap(), b"newer");
        assert_eq!(std::fs::read(b1.dir.join("a")).unwrap(), b"old");
    }

    #[test]
    fn inspect_dir_reports_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("ssh");
        assert_eq!(inspect_dir(&d).unwrap(), DirAction::Create);
        prepare_dir(&d, DirAction::Create, None).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(inspect_dir(&d).unwrap(), DirAction::Keep);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(inspect_dir(&d).unwrap(), DirAction::Tighten { from: 0o755 });
        prepare_dir(&d, DirAction::Tighten { from: 0o755 }, None).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
        let f = dir.path().join("file");
        std::fs::write(&f, b"").unwrap();
        assert!(inspect_dir(&f).is_err());
    }
}
