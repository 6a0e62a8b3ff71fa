//! File plumbing for keys: bounded no-follow reads, atomic no-replace writes with the final
//! mode and owner, the SSH directory's mode, and timestamped backups.
//!
//! The lead's `crate::fsutil` will own atomic replace for the whole crate; these helpers are
//! private to `keys` until the two are unified.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::owner::Owner;
use super::{Backup, DirAction, KeyError, Moved, DIR_MODE};

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
    let mut flags = rustix::fs::OFlags::NONBLOCK;
    if !follow_symlinks {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if !follow_symlinks && e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
            {
                KeyError::invalid(path, "is a symbolic link, not a regular file")
            } else {
                KeyError::io(path, e)
            }
        })?;
    let meta = file.metadata().map_err(|e| KeyError::io(path, e))?;
    if !meta.is_file() {
        return Err(KeyError::invalid(path, "not a regular file"));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyError::invalid(
            path,
            format!("{} bytes is too large for a key file", meta.len()),
        ));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    (&mut file)
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyError::io(path, e))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::invalid(path, "too large for a key file"));
    }
    Ok(ReadFile {
        bytes,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
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

/// Carries out `action` on `dir`: create it 0700 (parents with the default mode) and give it
/// to `owner` when one is named, or tighten an existing one to 0700.
pub(crate) fn prepare_dir(
    dir: &Path,
    action: DirAction,
    owner: Option<Owner>,
) -> Result<(), KeyError> {
    match action {
        DirAction::Keep => Ok(()),
        DirAction::Create => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| KeyError::io(parent, e))?;
            }
            std::fs::DirBuilder::new()
                .mode(DIR_MODE)
                .create(dir)
                .map_err(|e| KeyError::io(dir, e))?;
            if let Some(owner) = owner {
                rustix::fs::chown(dir, Some(owner.uid()), Some(owner.gid()))
                    .map_err(|e| KeyError::io(dir, e.into()))?;
            }
            Ok(())
        }
        DirAction::Tighten { .. } => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| KeyError::io(dir, e))
        }
    }
}

/// Creates `path` holding `contents`, with exactly `mode` (and `owner`), atomically and
/// without replacing anything: a temp file in the same directory is written, given its mode
/// and owner, fsynced, then renamed into place only if `path` does not exist. If something
/// appeared at `path` meanwhile, the result is [`KeyError::Exists`] and nothing changed.
pub(crate) fn write_new_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> Result<(), KeyError> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| KeyError::invalid(path, "has no file name"))?;
    let (tmp_path, mut tmp) = create_temp(dir, &name.to_string_lossy())?;
    let result = (|| {
        tmp.write_all(contents)
            .map_err(|e| KeyError::io(&tmp_path, e))?;
        if let Some(owner) = owner {
            rustix::fs::fchown(&tmp, Some(owner.uid()), Some(owner.gid()))
                .map_err(|e| KeyError::io(&tmp_path, e.into()))?;
        }
        // Exact mode regardless of the umask (the open mode was never wider than this).
        rustix::fs::fchmod(&tmp, rustix::fs::Mode::from_raw_mode(mode))
            .map_err(|e| KeyError::io(&tmp_path, e.into()))?;
        tmp.sync_all().map_err(|e| KeyError::io(&tmp_path, e))?;
        rename_no_replace(&tmp_path, path)
    })();
    drop(tmp);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
    }
    result?;
    sync_dir(dir)
}

/// Opens a fresh `0600` temp file next to the target.
fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File), KeyError> {
    for _ in 0..16 {
        let tmp_path = dir.join(format!(
            ".{name}.agefleet-tmp-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp_path)
        {
            Ok(f) => return Ok((tmp_path, f)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(KeyError::io(&tmp_path, e)),
        }
    }
    Err(KeyError::invalid(
        dir,
        "could not create a unique temp file",
    ))
}

/// Renames `from` to `to` unless `to` exists (then [`KeyError::Exists`]).
fn rename_no_replace(from: &Path, to: &Path) -> Result<(), KeyError> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                return Err(KeyError::Exists {
                    path: to.to_path_buf(),
                })
            }
            // Filesystems without RENAME_NOREPLACE: fall through to link + unlink.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(KeyError::io(to, e.into())),
        }
    }
    // link(2) fails with EEXIST instead of replacing, which is the property needed here.
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from).map_err(|e| KeyError::io(from, e)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(KeyError::Exists {
            path: to.to_path_buf(),
        }),
        Err(e) => Err(KeyError::io(to, e)),
    }
}

/// fsyncs a directory so renames in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    let d = File::open(dir).map_err(|e| KeyError::io(dir, e))?;
    d.sync_all().map_err(|e| KeyError::io(dir, e))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Moves every path of `paths` into a new directory `<ssh_dir>/bak-<UTC timestamp>` (0700;
/// `-1`, `-2`, … appended when that name is taken). Nothing is deleted.
pub(crate) fn backup(ssh_dir: &Path, paths: &[PathBuf]) -> Result<Backup, KeyError> {
    let stamp = utc_timestamp(SystemTime::now());
    let mut dir = ssh_dir.join(format!("bak-{stamp}"));
    let mut n = 0u32;
    loop {
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 1000 => {
                n += 1;
                dir = ssh_dir.join(format!("bak-{stamp}-{n}"));
            }
            Err(e) => return Err(KeyError::io(&dir, e)),
        }
    }
    let mut moved = Vec::with_capacity(paths.len());
    for from in paths {
        let name = from
            .file_name()
            .ok_or_else(|| KeyError::invalid(from, "has no file name"))?;
        let to = dir.join(name);
        rename_no_replace(from, &to)?;
        moved.push(Moved {
            from: from.clone(),
            to,
        });
    }
    sync_dir(&dir)?;
    sync_dir(ssh_dir)?;
    Ok(Backup { dir, moved })
}

/// Sets the mode (and owner) of an existing regular file through a no-follow descriptor, so a
/// symlink swapped in meanwhile is not followed.
pub(crate) fn fix_file(path: &Path, mode: u32, owner: Option<Owner>) -> Result<(), KeyError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| KeyError::io(path, e))?;
    let meta = file.metadata().map_err(|e| KeyError::io(path, e))?;
    if !meta.is_file() {
        return Err(KeyError::invalid(path, "not a regular file"));
    }
    if let Some(owner) = owner {
        rustix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))
            .map_err(|e| KeyError::io(path, e.into()))?;
    }
    rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(mode))
        .map_err(|e| KeyError::io(path, e.into()))
}

/// `YYYYmmddTHHMMSSZ` in UTC (times before 1970 clamp to the epoch).
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
        write_new_file(&p, b"one", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        let err = write_new_file(&p, b"two", 0o600, None).unwrap_err();
        assert!(err.is_refusal(), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k")]);
        let q = dir.path().join("k.pub");
        write_new_file(&q, b"pub", 0o644, None).unwrap();
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
        let b1 = backup(dir.path(), std::slice::from_ref(&a)).unwrap();
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
        let b2 = backup(dir.path(), std::slice::from_ref(&a)).unwrap();
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
