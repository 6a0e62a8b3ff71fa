//! The thin syscall layer (mount, statfs, chown, renameat, no-follow opens). Everything that
//! needs a raw system call goes through here, on top of `rustix`. No `unsafe` is needed.
//!
//! Every function works relative to a directory fd where it can, so that a path component
//! swapped for a symlink between two calls cannot redirect a write.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

pub(crate) use rustix::fs::{Gid, Uid};

/// `statfs` magic of tmpfs (linux/magic.h).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// `statfs` magic of ramfs (linux/magic.h).
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// The filesystem behind a directory, as far as activation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    /// tmpfs (`TMPFS_MAGIC`).
    Tmpfs,
    /// ramfs (`RAMFS_MAGIC`).
    Ramfs,
    /// Anything else (disk-backed or unknown); the `statfs` magic number.
    Other(u64),
}

impl FsKind {
    /// Whether the contents live only in memory (tmpfs may still swap unless `noswap`).
    pub fn ram_backed(self) -> bool {
        matches!(self, FsKind::Tmpfs | FsKind::Ramfs)
    }
}

/// The filesystem type of the open file or directory `fd` (`fstatfs`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn fs_kind(fd: impl AsFd) -> io::Result<FsKind> {
    let st = rustix::fs::fstatfs(fd).map_err(errno)?;
    // f_type is a signed word on some targets; the magic numbers are 32-bit patterns.
    let magic = (st.f_type as u64) & 0xffff_ffff;
    Ok(match magic {
        TMPFS_MAGIC => FsKind::Tmpfs,
        RAMFS_MAGIC => FsKind::Ramfs,
        other => FsKind::Other(other),
    })
}

/// On other systems the type is not checked (nix-darwin mounts its own ramdisk first).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn fs_kind(_fd: impl AsFd) -> io::Result<FsKind> {
    Ok(FsKind::Other(0))
}

/// Whether `dir` is the root of a mount (not merely a directory inside one).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn is_mount_root(dir: &Path) -> io::Result<bool> {
    use rustix::fs::{StatxAttributes, StatxFlags};
    let cwd = rustix::fs::CWD;
    match rustix::fs::statx(cwd, dir, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS) {
        Ok(stx)
            if stx
                .stx_attributes_mask
                .contains(StatxAttributes::MOUNT_ROOT) =>
        {
            Ok(stx.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
        }
        // Kernels before 5.8 do not report MOUNT_ROOT: compare devices with the parent.
        _ => dev_differs_from_parent(dir),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn is_mount_root(dir: &Path) -> io::Result<bool> {
    dev_differs_from_parent(dir)
}

fn dev_differs_from_parent(dir: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::symlink_metadata(dir)?;
    let parent = std::fs::metadata(dir.join(".."))?;
    Ok(own.dev() != parent.dev() || own.ino() == parent.ino())
}

/// How a RAM-backed filesystem was mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RamMount {
    /// tmpfs with `noswap` (Linux 6.4+): never written to swap.
    TmpfsNoswap,
    /// ramfs (no swap by nature; used when tmpfs lacks `noswap` or the manifest asks).
    Ramfs,
}

/// Mounts a fresh RAM-backed filesystem on `target` with `nodev,nosuid,mode=0751`.
/// `prefer_tmpfs`: try tmpfs with `noswap` first and fall back to ramfs when the kernel
/// refuses `noswap` (EINVAL before 6.4); otherwise mount ramfs directly. A tmpfs without
/// `noswap` is never used: its pages could reach a swap device.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn mount_ram(target: &Path, prefer_tmpfs: bool) -> io::Result<RamMount> {
    use rustix::mount::{mount, MountFlags};
    let flags = MountFlags::NODEV | MountFlags::NOSUID;
    if prefer_tmpfs {
        match mount("tmpfs", target, "tmpfs", flags, c"mode=0751,noswap") {
            Ok(()) => return Ok(RamMount::TmpfsNoswap),
            Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(errno(e)),
        }
    }
    mount("ramfs", target, "ramfs", flags, c"mode=0751").map_err(errno)?;
    Ok(RamMount::Ramfs)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn mount_ram(_target: &Path, _prefer_tmpfs: bool) -> io::Result<RamMount> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "mounting a RAM filesystem is only implemented on Linux",
    ))
}

/// The process's umask. Read from `/proc/self/status` (Linux 4.7+), which leaves it
/// untouched; elsewhere it is set and restored at once, which is only safe while no other
/// thread creates files (edit calls this before it starts any).
pub(crate) fn umask() -> u32 {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        });
    from_proc.unwrap_or_else(|| {
        let old = rustix::process::umask(Mode::from_bits_truncate(0o077));
        rustix::process::umask(old);
        old.bits() as u32
    })
}

/// The mode a new file gets from `open(…, 0666)` under the current umask: what `age -o`
/// (and so agenix) gives a new secret.
pub fn new_file_mode() -> u32 {
    0o666 & !umask() & 0o777
}

/// Whether the effective user is root (only root mounts and chowns).
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Opens the directory `path` (absolute or relative to the working directory) without
/// following a symlink in its last component.
pub(crate) fn open_dir_nofollow(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Opens the directory `path`, following symlinks: only for paths the running user controls
/// (its own repository). Paths under directories other users can write go through
/// [`crate::platform::walk`].
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Whether `e` says a no-follow directory open met a symlink (ELOOP) or a non-directory.
pub(crate) fn is_symlink_or_not_dir(e: &io::Error) -> bool {
    let raw = e.raw_os_error();
    raw == Some(rustix::io::Errno::LOOP.raw_os_error())
        || raw == Some(rustix::io::Errno::NOTDIR.raw_os_error())
}

/// Opens the directory `name` inside `dir` without following a symlink.
pub(crate) fn open_dir_at(dir: impl AsFd, name: &Path) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Creates the directory `name` inside `dir` with `mode` (before the umask).
pub(crate) fn mkdir_at(dir: impl AsFd, name: &Path, mode: u32) -> io::Result<()> {
    rustix::fs::mkdirat(dir, name, Mode::from_bits_truncate(mode)).map_err(errno)
}

/// Creates the regular file `name` in `dir` for writing: exclusive (fails if anything,
/// a symlink included, already has that name) and never following a symlink, with `mode`.
pub(crate) fn create_exclusive_at(dir: impl AsFd, name: &Path, mode: u32) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(errno)
}

/// Opens the existing file `name` in `dir` for reading without following a symlink
/// (non-blocking, so a FIFO planted there cannot hang us).
pub(crate) fn open_read_nofollow_at(dir: impl AsFd, name: &Path) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Opens (creating it with `mode` if missing) the file `name` in `dir` for appending,
/// never following a symlink (a symlink there is ELOOP) and without blocking on a FIFO.
pub(crate) fn open_append_nofollow_at(
    dir: impl AsFd,
    name: &Path,
    mode: u32,
) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(errno)
}

/// The owner (uid) of the open `fd`.
pub(crate) fn owner_uid(fd: impl AsFd) -> io::Result<u32> {
    Ok(rustix::fs::fstat(fd).map_err(errno)?.st_uid)
}

/// Writes all of `data` to `fd` (no sync).
pub(crate) fn write_all(fd: impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(errno(e)),
        }
    }
    Ok(())
}

/// The link count of the open `fd` if it is a regular file; `None` for anything else.
pub(crate) fn regular_file_links(fd: impl AsFd) -> io::Result<Option<u64>> {
    let st = rustix::fs::fstat(fd).map_err(errno)?;
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    #[allow(clippy::useless_conversion)] // nlink is u32 on some targets
    Ok(regular.then(|| u64::from(st.st_nlink)))
}

/// Removes the file or symlink `name` from `dir`.
pub(crate) fn unlink_at(dir: impl AsFd, name: &Path) -> io::Result<()> {
    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno)
}

/// Takes an exclusive advisory lock on `fd`, waiting for it; released when `fd` is closed.
pub(crate) fn lock_exclusive(fd: impl AsFd) -> io::Result<()> {
    loop {
        match rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive) {
            Err(rustix::io::Errno::INTR) => {}
            other => return other.map_err(errno),
        }
    }
}

/// Writes all of `data` to `fd` and syncs it.
pub(crate) fn write_all_sync(fd: impl AsFd, data: &[u8]) -> io::Result<()> {
    write_all(&fd, data)?;
    rustix::fs::fsync(&fd).map_err(errno)
}

/// `fsync` of a directory, so the renames in it are durable.
pub(crate) fn sync(fd: impl AsFd) -> io::Result<()> {
    rustix::fs::fsync(fd).map_err(errno)
}

/// `syncfs(2)`: writes back every dirty page and inode of the filesystem holding `fd`, and
/// commits it (see [`crate::fsutil::Batch`] for when it is used).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn syncfs(fd: impl AsFd) -> io::Result<()> {
    rustix::fs::syncfs(fd).map_err(errno)
}

/// Never called: [`syncfs_is_sound`] is false on other systems.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn syncfs(_fd: impl AsFd) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Whether one `syncfs` of the filesystem holding `fd` makes the data written to it
/// durable and reports a failure to do so: Linux 5.8 or later (before, `syncfs` returned 0
/// on writeback errors) and a local filesystem whose `sync_fs` commits its journal or has
/// nothing to commit. Network and FUSE filesystems are left out: their `syncfs` may not
/// reach the server's storage.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn syncfs_is_sound(fd: impl AsFd) -> bool {
    /// linux/magic.h: ext2/3/4, XFS, Btrfs, F2FS.
    const SOUND: [u64; 4] = [0xef53, 0x5846_5342, 0x9123_683e, 0xf2f5_2010];
    static KERNEL_REPORTS_ERRORS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let reports = *KERNEL_REPORTS_ERRORS.get_or_init(|| {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (5, 8)
    });
    reports
        && match fs_kind(fd) {
            Ok(FsKind::Tmpfs | FsKind::Ramfs) => true,
            Ok(FsKind::Other(magic)) => SOUND.contains(&magic),
            Err(_) => false,
        }
}

/// Other systems: per-file flushes.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn syncfs_is_sound(_fd: impl AsFd) -> bool {
    false
}

/// `fchmod(2)`: sets the permission bits of the open file `fd`.
pub(crate) fn fchmod(fd: impl AsFd, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(errno)
}

/// `fchown(2)`: gives the open file `fd` to `uid`:`gid`.
pub(crate) fn fchown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(errno)
}

/// Renames `from` in `from_dir` over `to` in `to_dir` (atomic; a symlink at `to` is replaced,
/// never followed).
pub(crate) fn rename_at(
    from_dir: impl AsFd,
    from: &Path,
    to_dir: impl AsFd,
    to: &Path,
) -> io::Result<()> {
    rustix::fs::renameat(from_dir, from, to_dir, to).map_err(errno)
}

/// Creates a symlink `name` in `dir` pointing at `target` (fails if `name` exists).
pub(crate) fn symlink_at(target: &Path, dir: impl AsFd, name: &Path) -> io::Result<()> {
    rustix::fs::symlinkat(target, dir, name).map_err(errno)
}

/// The target of the symlink `path`; `None` if `path` does not exist or is not a symlink.
pub(crate) fn read_link(path: &Path) -> io::Result<Option<OsString>> {
    match rustix::fs::readlinkat(rustix::fs::CWD, path, Vec::new()) {
        Ok(target) => Ok(Some(OsString::from_vec(target.into_bytes()))),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

/// Removes `name` from `dir`: a file or symlink is unlinked, a directory is emptied
/// recursively and removed. Symlinks are never followed, so nothing outside `dir/name` is
/// touched. A missing `name` is not an error.
pub(crate) fn remove_tree_at(dir: impl AsFd, name: &Path) -> io::Result<()> {
    let dir = dir.as_fd();
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        // EISDIR (Linux) / EPERM (POSIX) mean a directory.
        Err(rustix::io::Errno::ISDIR | rustix::io::Errno::PERM) => {}
        Err(e) => return Err(errno(e)),
    }
    let sub = open_dir_at(dir, name)?;
    for entry in list_dir(&sub)? {
        remove_tree_at(&sub, Path::new(&entry))?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(errno(e)),
    }
}

/// The names in the directory `dir`, without `.` and `..`.
pub(crate) fn list_dir(dir: impl AsFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(errno)? {
        let entry = entry.map_err(errno)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_create_refuses_a_planted_symlink_and_leaves_its_target_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        std::os::unix::fs::symlink(&victim, tmp.path().join("planted")).unwrap();
        let dir = open_dir_nofollow(tmp.path()).unwrap();
        let err = create_exclusive_at(&dir, Path::new("planted"), 0o400).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    }

    #[test]
    fn exclusive_create_uses_the_given_mode() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = open_dir_nofollow(tmp.path()).unwrap();
        let fd = create_exclusive_at(&dir, Path::new("f"), 0o400).unwrap();
        write_all_sync(&fd, b"data").unwrap();
        let meta = std::fs::metadata(tmp.path().join("f")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"data");
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), b"y").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        let dir = open_dir_nofollow(tmp.path()).unwrap();
        remove_tree_at(&dir, Path::new("tree")).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep").exists());
        remove_tree_at(&dir, Path::new("tree")).unwrap();
    }

    #[test]
    fn open_dir_nofollow_refuses_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("l")).unwrap();
        assert!(open_dir_nofollow(&tmp.path().join("l")).is_err());
        assert!(open_dir(&tmp.path().join("l")).is_ok());
    }

    #[test]
    fn read_link_distinguishes_links_from_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/x/7", tmp.path().join("l")).unwrap();
        assert_eq!(
            read_link(&tmp.path().join("l")).unwrap(),
            Some(OsString::from("/x/7"))
        );
        assert_eq!(read_link(&tmp.path().join("missing")).unwrap(), None);
        assert_eq!(read_link(tmp.path()).unwrap(), None);
    }

    #[test]
    fn a_plain_directory_is_not_a_mount_root() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!is_mount_root(tmp.path()).unwrap());
        assert!(is_mount_root(Path::new("/")).unwrap());
    }
}
