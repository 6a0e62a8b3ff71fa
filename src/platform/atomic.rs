//! The one atomic-write scheme, relative to an open directory: an exclusive, no-follow temp
//! file `.<name>.agefleet-tmp.<16 hex>` in the same directory, created with a mode no wider
//! than the final one, written, synced, given its owner and then its exact mode through the
//! fd, and renamed into place (`renameat`, which replaces a symlink at the name and never
//! follows it; or, for never-replace writes, `RENAME_NOREPLACE`). The temp file is removed
//! on every failure. What was written is identified by device and inode ([`FileId`]) and, by
//! the caller that needs it, by content ([`Fingerprint`]), so a later step can check it acts
//! on the same file.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys;

/// Marker in the names of temp files, so a later run (or `status`) recognises leftovers.
pub const TEMP_MARKER: &str = ".agefleet-tmp.";
/// Length of the random suffix of temp names (`{:016x}`).
pub const TEMP_SUFFIX_LEN: usize = 16;
/// Bytes of the target name kept in a temp name, so it stays within NAME_MAX (255).
const TEMP_BASE_MAX: usize = 200;

/// Device, inode and (where the filesystem records it) birth time of a file. Device and
/// inode alone identify a file only while it exists: ext4 hands a freed inode number to the
/// next file created, so a file deleted and recreated by someone else could look like ours.
/// Its birth time tells the two apart only when they were created in different ticks of the
/// kernel's coarse clock: a step that must never act on another file also compares a
/// [`Fingerprint`] of the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileId {
    /// Device number (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
    /// Birth time (seconds, nanoseconds), from `statx` on Linux when the filesystem has it.
    pub birth: Option<(i64, u32)>,
}

impl FileId {
    /// The identity of the open `fd`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn of(fd: impl AsFd) -> io::Result<FileId> {
        use rustix::fs::{AtFlags, StatxFlags};
        match rustix::fs::statx(
            &fd,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::INO | StatxFlags::BTIME,
        ) {
            Ok(stx) => Ok(FileId {
                dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor),
                ino: stx.stx_ino,
                birth: (stx.stx_mask & StatxFlags::BTIME.bits() != 0)
                    .then_some((stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec)),
            }),
            // Kernels before 4.11 (or a seccomp filter): no birth time.
            Err(_) => Self::of_fstat(fd),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn of(fd: impl AsFd) -> io::Result<FileId> {
        Self::of_fstat(fd)
    }

    fn of_fstat(fd: impl AsFd) -> io::Result<FileId> {
        let st = rustix::fs::fstat(fd).map_err(io::Error::from)?;
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths differ by target
        Ok(FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            birth: None,
        })
    }
}

/// What a file held when it was written: a random salt, the length, and SHA-256 of a label,
/// the salt and the bytes. [`FileId`] alone can name two files: ext4 hands a freed inode
/// number to the next file created, and birth times come from the coarse kernel clock (one
/// tick is several milliseconds), so a file removed and recreated by someone else within a
/// tick has the same device, inode and birth time as ours. Such a file passes as ours only if
/// it also holds the very bytes written. The salt is random per write, so the digest of a
/// short secret cannot be looked up in a precomputed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// Random bytes hashed before the content.
    pub salt: [u8; 16],
    /// The content's length in bytes.
    pub len: u64,
    /// SHA-256 of [`FINGERPRINT_LABEL`], the salt and the content.
    pub sha256: [u8; 32],
}

/// Domain separation of [`Fingerprint`] digests.
pub const FINGERPRINT_LABEL: &[u8] = b"agefleet written-file fingerprint v1\0";

impl Fingerprint {
    /// The fingerprint of `data`, with a fresh salt.
    pub fn of(data: &[u8]) -> Fingerprint {
        use sha2::Digest;
        let salt: [u8; 16] = rand::random();
        Fingerprint {
            salt,
            len: data.len() as u64,
            sha256: Self::hasher(&salt).chain_update(data).finalize().into(),
        }
    }

    fn hasher(salt: &[u8; 16]) -> sha2::Sha256 {
        use sha2::Digest;
        sha2::Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(salt)
    }

    /// Whether the open `fd` is a regular file holding exactly the bytes fingerprinted (read
    /// with `pread`, so the file offset is unchanged). Anything else, or a file of another
    /// length, is a mismatch.
    pub fn matches(&self, fd: impl AsFd) -> io::Result<bool> {
        use sha2::Digest;
        let fd = fd.as_fd();
        let st = rustix::fs::fstat(fd).map_err(io::Error::from)?;
        let regular =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths differ by target
        if !regular || st.st_size as u64 != self.len {
            return Ok(false);
        }
        let mut h = Self::hasher(&self.salt);
        // The bytes may be a secret: the buffer is zeroized.
        let mut buf = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
        let mut read: u64 = 0;
        loop {
            let n = match rustix::io::pread(fd, &mut buf[..], read) {
                Ok(0) => break,
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            read += n as u64;
            if read > self.len {
                return Ok(false); // grew since the fstat
            }
            h.update(&buf[..n]);
        }
        Ok(read == self.len && <[u8; 32]>::from(h.finalize()) == self.sha256)
    }
}

/// A fresh temp name for `base`: `.<base>.agefleet-tmp.<16 lowercase hex>`.
pub fn temp_name(base: &OsStr) -> OsString {
    let bytes = base.as_bytes();
    let mut name = OsString::from(".");
    name.push(OsStr::from_bytes(&bytes[..bytes.len().min(TEMP_BASE_MAX)]));
    name.push(TEMP_MARKER);
    name.push(format!(
        "{:0width$x}",
        rand::random::<u64>(),
        width = TEMP_SUFFIX_LEN
    ));
    name
}

/// Runs `make` with fresh temp names for `base` until one is free (an existing name,
/// planted or not, is never reused or followed).
pub fn with_temp_name<T>(
    base: &OsStr,
    mut make: impl FnMut(&OsStr) -> io::Result<T>,
) -> io::Result<(OsString, T)> {
    let mut last = None;
    for _ in 0..16 {
        let tmp = temp_name(base);
        match make(&tmp) {
            Ok(v) => return Ok((tmp, v)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()))
}

/// Creates an exclusive, no-follow temp file for `base` in `dir`, opened with `mode & 0o777`.
pub fn create_temp(dir: impl AsFd, base: &OsStr, mode: u32) -> io::Result<(OsString, OwnedFd)> {
    let dir = dir.as_fd();
    with_temp_name(base, |tmp| {
        sys::create_exclusive_at(dir, Path::new(tmp), mode & 0o777)
    })
}

/// What happens to an existing file at the target name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replaced atomically (a symlink there is replaced, not followed).
    Replace,
    /// Left alone: the write fails with `AlreadyExists`.
    Keep,
}

/// How [`write_at`] writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Exact final permission bits (the umask does not apply).
    pub mode: u32,
    /// Owner and group given before the final mode and name.
    pub owner: Option<(u32, u32)>,
    /// What happens to a file already at the target name.
    pub existing: Existing,
    /// fsync the directory after the rename (persistent filesystems).
    pub sync_dir: bool,
}

impl WriteOptions {
    /// Mode `mode`, owner unchanged, replacing an existing file, directory fsynced.
    pub fn replace(mode: u32) -> Self {
        WriteOptions {
            mode,
            owner: None,
            existing: Existing::Replace,
            sync_dir: true,
        }
    }

    /// As [`WriteOptions::replace`], but failing with `AlreadyExists` if the name is taken.
    pub fn create_new(mode: u32) -> Self {
        WriteOptions {
            existing: Existing::Keep,
            ..WriteOptions::replace(mode)
        }
    }

    /// The same options with `owner` (uid, gid) given to the file before its final name.
    pub fn owner(self, owner: Option<(u32, u32)>) -> Self {
        WriteOptions { owner, ..self }
    }
}

/// Writes `data` as `base` in `dir` atomically (see the module doc) and returns the
/// identity of the file written.
pub fn write_at(
    dir: impl AsFd,
    base: &OsStr,
    data: &[u8],
    opts: WriteOptions,
) -> io::Result<FileId> {
    let dir = dir.as_fd();
    // Created 0400 at most: never readable by anyone else before it has its owner.
    let (tmp, fd) = create_temp(dir, base, opts.mode & 0o400)?;
    let result = (|| -> io::Result<FileId> {
        sys::write_all_sync(&fd, data)?;
        if let Some((uid, gid)) = opts.owner {
            sys::fchown(&fd, uid, gid)?;
        }
        // After the chown, which may clear setuid/setgid bits.
        sys::fchmod(&fd, opts.mode)?;
        let id = FileId::of(&fd)?;
        rename_into_place(dir, &tmp, base, opts.existing)?;
        Ok(id)
    })();
    if result.is_err() {
        let _ = sys::unlink_at(dir, Path::new(&tmp));
    }
    let id = result?;
    if opts.sync_dir {
        sys::sync(dir)?;
    }
    Ok(id)
}

/// Renames `from` to `to` inside `dir`, replacing `to` or (with [`Existing::Keep`]) failing
/// with `AlreadyExists` when it exists.
pub fn rename_into_place(
    dir: impl AsFd,
    from: &OsStr,
    to: &OsStr,
    existing: Existing,
) -> io::Result<()> {
    rename_between(&dir, from, &dir, to, existing)
}

/// [`rename_into_place`] across two directories.
pub fn rename_between(
    from_dir: impl AsFd,
    from: &OsStr,
    to_dir: impl AsFd,
    to: &OsStr,
    existing: Existing,
) -> io::Result<()> {
    if existing == Existing::Replace {
        return sys::rename_at(&from_dir, Path::new(from), &to_dir, Path::new(to));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{renameat_with, RenameFlags};
        match renameat_with(&from_dir, from, &to_dir, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // Filesystems without RENAME_NOREPLACE: link + unlink below.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // link(2) fails with EEXIST instead of replacing, which is the property needed here.
    rustix::fs::linkat(&from_dir, from, &to_dir, to, rustix::fs::AtFlags::empty())?;
    sys::unlink_at(&from_dir, Path::new(from))
}

/// Replaces `base` in `dir` with a symlink to `target`, atomically (temp link + rename).
pub fn symlink_at(dir: impl AsFd, base: &OsStr, target: &Path) -> io::Result<()> {
    let dir = dir.as_fd();
    let (tmp, ()) = with_temp_name(base, |tmp| sys::symlink_at(target, dir, Path::new(tmp)))?;
    if let Err(e) = sys::rename_at(dir, Path::new(&tmp), dir, Path::new(base)) {
        let _ = sys::unlink_at(dir, Path::new(&tmp));
        return Err(e);
    }
    sys::sync(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_exact_mode_replaces_a_symlink_and_keeps_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, tmp.path().join("s")).unwrap();
        let dir = sys::open_dir_nofollow(tmp.path()).unwrap();
        let id = write_at(&dir, OsStr::new("s"), b"new", WriteOptions::replace(0o440)).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let meta = std::fs::symlink_metadata(tmp.path().join("s")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o440);
        use std::os::unix::fs::MetadataExt;
        assert_eq!((id.dev, id.ino), (meta.dev(), meta.ino()));
        let e = write_at(&dir, OsStr::new("s"), b"x", WriteOptions::create_new(0o600)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(tmp.path().join("s")).unwrap(), b"new");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "temp file left"
        );
    }

    #[test]
    fn symlinks_are_replaced_atomically_without_following() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let at = tmp.path().join("link");
        std::os::unix::fs::symlink(&victim, &at).unwrap();
        let dir = sys::open_dir_nofollow(tmp.path()).unwrap();
        symlink_at(&dir, OsStr::new("link"), Path::new("/run/agenix/y")).unwrap();
        assert_eq!(std::fs::read_link(&at).unwrap(), Path::new("/run/agenix/y"));
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn long_names_still_get_a_temp_name_within_name_max() {
        let base = OsString::from("x".repeat(255));
        assert!(temp_name(&base).len() <= 255);
    }
}
