//! Atomic replace, private temp dirs on RAM-backed filesystems, modes.
//!
//! Invariants:
//! - [`atomic_write`] leaves `path` holding either its old bytes or the new ones, whatever
//!   moment the process dies at: the new content goes to a temp file in the same directory,
//!   is fsynced, renamed over `path`, and the directory is fsynced. An existing file's
//!   permission bits are kept.
//! - Writers of secrets (rekey, edit) hold a [`WriteLock`] on the rules directory, so a
//!   temp file (see [`temp_target`]) found by a lock holder is a dead run's leftover and
//!   [`remove_stale_temps`] removes it.
//! - [`PrivateTempDir`] is a 0700 directory on tmpfs/ramfs, never on persistent disk, and is
//!   removed when dropped.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A filesystem operation that failed, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}: {source}")]
pub struct FsError {
    /// The file or directory.
    pub path: PathBuf,
    /// What was being done (`cannot replace`, …).
    pub what: &'static str,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl FsError {
    /// The error of doing `what` on `path`.
    pub fn new(path: &Path, what: &'static str, source: io::Error) -> Self {
        FsError {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}

pub use crate::platform::atomic::TEMP_MARKER;
use crate::platform::atomic::TEMP_SUFFIX_LEN;

/// The secret a temp file of [`atomic_write`] / [`Batch`] belongs to: `Some("x.age")` for
/// `.x.age.agefleet-tmp.<16 lowercase hex digits>`, `None` for any other name.
pub fn temp_target(name: &std::ffi::OsStr) -> Option<&std::ffi::OsStr> {
    let rest = name.as_bytes().strip_prefix(b".")?;
    let (head, suffix) = rest.split_at(rest.len().checked_sub(TEMP_SUFFIX_LEN)?);
    let base = head.strip_suffix(TEMP_MARKER.as_bytes())?;
    let hex = suffix
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (!base.is_empty() && hex).then(|| std::ffi::OsStr::from_bytes(base))
}

/// An exclusive lock on the rules directory, held by every run that writes secrets (rekey,
/// edit) from before it reads the files it will replace until its renames are durable.
///
/// Why a lock rather than an age limit on leftovers: with every writer holding it, a temp
/// file found by a lock holder cannot belong to a live run, so [`remove_stale_temps`] may
/// remove it at once, with no clock or guessed timeout involved; concurrent rekeys/edits of
/// one repository are serialised, so neither can rename stale ciphertext over the other's
/// result. It is `flock(2)` on the directory itself: nothing is created in the repository,
/// and the kernel drops the lock when the holder dies (kill -9 included), so a dead run
/// never leaves the lock behind. Removing a temp file is also harmless to data in the worst
/// case (a writer that does not take this lock): its rename then fails with an error and
/// the secret keeps its old content. Temp files hold ciphertext only, never plaintext.
#[derive(Debug)]
pub struct WriteLock {
    /// The locked directory; the lock lives as long as this descriptor.
    _dir: File,
}

impl WriteLock {
    /// Takes the lock on `dir` without waiting; `None` when another process holds it.
    pub fn try_acquire(dir: &Path) -> Result<Option<WriteLock>, FsError> {
        let f = File::open(dir).map_err(|e| FsError::new(dir, "cannot open to lock", e))?;
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(WriteLock { _dir: f })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(FsError::new(dir, "cannot lock", e.into())),
        }
    }

    /// Takes the lock on `dir`, waiting for its holder to finish.
    pub fn acquire(dir: &Path) -> Result<WriteLock, FsError> {
        let f = File::open(dir).map_err(|e| FsError::new(dir, "cannot open to lock", e))?;
        loop {
            match rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(WriteLock { _dir: f }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(FsError::new(dir, "cannot lock", e.into())),
            }
        }
    }

    /// Whether a writer holds the lock on `dir` right now (so temp files there may be
    /// live). Errors count as not held.
    pub fn is_held(dir: &Path) -> bool {
        let Ok(f) = File::open(dir) else {
            return false;
        };
        // A shared lock conflicts only with a writer's exclusive one; dropping `f` releases it.
        matches!(
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared),
            Err(rustix::io::Errno::WOULDBLOCK)
        )
    }
}

/// Removes the leftover temp files (see [`temp_target`]) of `targets`, i.e. of killed runs:
/// holding `_lock` proves no live writer owns them. Only regular files are removed. Returns
/// the removed paths and the ones that could not be removed, with why.
pub fn remove_stale_temps(targets: &[PathBuf], _lock: &WriteLock) -> (Vec<PathBuf>, Vec<FsError>) {
    let mut by_dir: std::collections::BTreeMap<
        PathBuf,
        std::collections::HashSet<&std::ffi::OsStr>,
    > = std::collections::BTreeMap::new();
    for t in targets {
        if let Some(base) = t.file_name() {
            by_dir.entry(parent_dir(t)).or_default().insert(base);
        }
    }
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    for (dir, bases) in by_dir {
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                failed.push(FsError::new(&dir, "cannot list for stale temp files", e));
                continue;
            }
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !temp_target(&name).is_some_and(|b| bases.contains(b)) {
                continue;
            }
            // file_type() does not follow symlinks: only our own kind of file is removed.
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = e.path();
            match fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => failed.push(FsError::new(&path, "cannot remove stale temp file", e)),
            }
        }
    }
    (removed, failed)
}

/// What [`lock_for_writing`] cleaned up: the leftover temp files of killed runs it removed,
/// and the ones it could not remove.
#[derive(Debug, Default)]
pub struct StaleTemps {
    /// Temp files removed.
    pub removed: Vec<PathBuf>,
    /// Temp files that could not be removed, with why.
    pub failed: Vec<FsError>,
}

/// Takes the write lock on the rules directory `dir`, calling `on_wait` first when it has to
/// wait for another run, then removes the leftover temp files of killed runs beside
/// `targets` (see [`remove_stale_temps`]). The lock must be held until the new files are
/// renamed into place (see [`WriteLock`]).
pub fn lock_for_writing(
    dir: &Path,
    targets: &[PathBuf],
    on_wait: impl FnOnce(),
) -> Result<(WriteLock, StaleTemps), FsError> {
    let lock = match WriteLock::try_acquire(dir)? {
        Some(l) => l,
        None => {
            on_wait();
            WriteLock::acquire(dir)?
        }
    };
    let (removed, failed) = remove_stale_temps(targets, &lock);
    Ok((lock, StaleTemps { removed, failed }))
}

/// Creates the missing parent directories of `file` (mode 0777 & ~umask, as `mkdir -p`),
/// returning those it made, deepest first. On failure the ones made are removed again.
pub fn create_parent_dirs(file: &Path) -> Result<Vec<PathBuf>, FsError> {
    let mut missing = Vec::new();
    let mut dir = file.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if d.symlink_metadata().is_ok() {
            break;
        }
        missing.push(d.to_path_buf());
        dir = d.parent();
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                remove_empty_dirs(&missing);
                return Err(FsError::new(d, "cannot create the directory", e));
            }
        }
    }
    Ok(missing)
}

/// Removes the directories [`create_parent_dirs`] made (deepest first), each only if empty.
pub fn remove_empty_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = fs::remove_dir(d);
    }
}

/// Where the symlink at `path` points, `None` when `path` is not a symlink.
pub fn symlink_target(path: &Path) -> Option<PathBuf> {
    fs::read_link(path).ok()
}

/// Where `program` would be run from, as `execvp` finds it: `program` itself when it holds a
/// `/`, else the first executable regular file of that name in a directory of `path` (a
/// `PATH` value). The one program lookup (`nix-instantiate`, the install commands).
pub fn find_program(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program)).then(|| PathBuf::from(program));
    }
    std::env::split_paths(path?)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

/// Writes `data` to `path` atomically. A new file gets `new_mode`; an existing one keeps its
/// permission bits. A symlink at `path` is refused rather than replaced by a file.
pub fn atomic_write(path: &Path, data: &[u8], new_mode: u32) -> Result<(), FsError> {
    use crate::platform::atomic::{write_at, WriteOptions};
    let mode = mode_to_keep(path, new_mode)?;
    let dir_path = parent_dir(path);
    let dir = crate::sys::open_dir(&dir_path)
        .map_err(|e| FsError::new(path, "cannot create temp file", e))?;
    let base = path.file_name().unwrap_or_default();
    write_at(&dir, base, data, WriteOptions::replace(mode))
        .map(|_| ())
        .map_err(|e| FsError::new(path, "cannot replace", e))
}

/// Atomic replacements of many files, made durable together.
///
/// [`Batch::stage`] writes each new content to a temp file beside its target;
/// [`Batch::commit`] makes them all durable, renames each over its target, and fsyncs each
/// directory once. Invariant: a rename happens only after its temp file's data is durable,
/// so whatever moment the process dies at (or the power fails), each target holds its old
/// or its new content. Temp files not committed are removed on drop.
///
/// How the data is made durable, per filesystem:
/// - one `syncfs(2)` for all the files staged on it, on Linux ≥ 5.8 and a filesystem known
///   to implement it fully (ext2/3/4, XFS, Btrfs, F2FS; tmpfs and ramfs, where it costs
///   nothing). One flush instead of one per file: on ext4 each `fdatasync` is a journal
///   commit and a disk cache flush (10,000 of them took 7 s of system time), while one
///   `syncfs` writes every dirty page back and commits once. It also writes back other
///   processes' dirty data on that filesystem, which a rekey waits for: bounded by the
///   kernel's dirty-page limits, and cheaper than thousands of commits. Since Linux 5.8
///   `syncfs` reports writeback errors (the superblock's error sequence, sampled when the
///   descriptor is opened: that descriptor is opened before the first temp file on the
///   filesystem is written, so no error on one of them can be missed); before 5.8 it
///   returned 0 whatever happened, so older kernels take the per-file path.
/// - elsewhere (other kernels or systems, network and FUSE filesystems, whose `syncfs` may
///   not reach the server or may not report its errors), each temp file is `fdatasync`ed
///   right after it is written, on the caller's thread (the rekey's one thread pool).
#[derive(Default)]
pub struct Batch {
    staged: std::sync::Mutex<Vec<Staged>>,
    /// Per filesystem (device) a staged file is on: the descriptor its `syncfs` goes
    /// through, opened before the first file on it was written; `None`: per-file flushes.
    filesystems: std::sync::Mutex<Vec<(u64, Option<OwnedFd>)>>,
}

struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    /// The device whose `syncfs` makes it durable; `None`: flushed when staged.
    syncfs: Option<u64>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Batch {
    /// Writes `data` to a temp file beside `path` (mode: `path`'s if it exists, else
    /// `new_mode`), durable once [`Batch::commit`] has flushed it. Safe to call from many
    /// threads.
    pub fn stage(&self, path: &Path, data: &[u8], new_mode: u32) -> Result<(), FsError> {
        let mode = mode_to_keep(path, new_mode)?;
        let dir = parent_dir(path);
        let planned = self.syncfs_device(&dir);
        let (mut file, tmp) = create_temp_beside(path, mode)?;
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let mut write = || -> io::Result<Option<u64>> {
            file.write_all(data)?;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            // The file must be on the filesystem whose descriptor was opened before it was
            // written (a directory swapped meanwhile for a mount point is not); else, or
            // without syncfs there, it is flushed here.
            let dev = file.metadata()?.dev();
            if planned == Some(dev) {
                return Ok(Some(dev));
            }
            file.sync_data()?;
            Ok(None)
        };
        let syncfs = write().map_err(|e| FsError::new(&tmp, "cannot write", e))?;
        std::mem::forget(guard);
        lock(&self.staged).push(Staged {
            tmp,
            target: path.to_path_buf(),
            syncfs,
        });
        Ok(())
    }

    /// The device of `dir` when files there are made durable by one `syncfs`: its
    /// descriptor is opened here, on the first file staged on that filesystem.
    fn syncfs_device(&self, dir: &Path) -> Option<u64> {
        let dev = fs::metadata(dir).ok()?.dev();
        let mut filesystems = lock(&self.filesystems);
        if let Some((_, fd)) = filesystems.iter().find(|(d, _)| *d == dev) {
            return fd.is_some().then_some(dev);
        }
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths differ by target
        let same_dev = |fd: &OwnedFd| rustix::fs::fstat(fd).is_ok_and(|st| st.st_dev as u64 == dev);
        let fd = crate::sys::open_dir(dir)
            .ok()
            .filter(|fd| same_dev(fd) && crate::sys::syncfs_is_sound(fd));
        let sound = fd.is_some();
        filesystems.push((dev, fd));
        sound.then_some(dev)
    }

    /// Makes every staged file durable, renames each into place and syncs each directory a
    /// file was renamed in, once. Returns one result per target, in staging order; a failed
    /// target keeps its old content.
    ///
    /// The renames are made one after the other, after every file is written: on ext4,
    /// replacing a file frees the old inode inside `rename` (about 0.15 ms each, measured on
    /// a quiet machine; renames from several threads were no faster, as the journal
    /// serialises them), and committing slices while other files were still being created
    /// was much slower: ext4 skips recently freed inodes when it allocates one, so each new
    /// temp file's allocation scanned past the inodes the renames had just freed.
    pub fn commit(self) -> Vec<(PathBuf, Result<(), FsError>)> {
        let staged = std::mem::take(&mut *lock(&self.staged));
        // One syncfs per filesystem that holds staged files.
        let mut failed_flushes: Vec<(u64, io::Error)> = Vec::new();
        for (dev, fd) in lock(&self.filesystems).iter() {
            let Some(fd) = fd else { continue };
            if staged.iter().any(|s| s.syncfs == Some(*dev)) {
                if let Err(e) = crate::sys::syncfs(fd) {
                    failed_flushes.push((*dev, e));
                }
            }
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut results = Vec::with_capacity(staged.len());
        for s in staged {
            let failed = failed_flushes
                .iter()
                .find(|(dev, _)| s.syncfs == Some(*dev));
            let r = match failed {
                Some((_, e)) => Err(FsError::new(
                    &s.target,
                    "not replaced: flushing the new content failed",
                    io::Error::new(e.kind(), e.to_string()),
                )),
                None => fs::rename(&s.tmp, &s.target)
                    .map_err(|e| FsError::new(&s.target, "cannot replace", e)),
            };
            match r {
                Ok(()) => {
                    let dir = parent_dir(&s.target);
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
                Err(_) => {
                    let _ = fs::remove_file(&s.tmp);
                }
            }
            results.push((s.target, r));
        }
        // The renames themselves: durable once their directories are synced.
        for dir in dirs {
            if let Err(e) = sync_dir(&dir) {
                for (target, r) in results.iter_mut() {
                    if r.is_ok() && parent_dir(target) == dir {
                        *r = Err(FsError::new(
                            target,
                            "replaced, but syncing its directory failed",
                            io::Error::new(e.source.kind(), e.source.to_string()),
                        ));
                    }
                }
            }
        }
        results
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for s in lock(&self.staged).drain(..) {
            let _ = fs::remove_file(&s.tmp);
        }
    }
}

/// The permission bits a replacement of `path` gets: its current ones, or `new_mode`.
/// A symlink at `path` is refused rather than replaced by a file.
fn mode_to_keep(path: &Path, new_mode: u32) -> Result<u32, FsError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(FsError::new(
            path,
            "refusing to replace a symlink",
            io::Error::from(io::ErrorKind::InvalidInput),
        )),
        Ok(meta) => Ok(meta.permissions().mode() & 0o7777),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(new_mode),
        Err(e) => Err(FsError::new(path, "cannot stat", e)),
    }
}

/// Creates an exclusive, no-follow temp file next to `path` with `mode`.
fn create_temp_beside(path: &Path, mode: u32) -> Result<(File, PathBuf), FsError> {
    let dir = parent_dir(path);
    let base = path.file_name().unwrap_or_default();
    for _ in 0..16 {
        let tmp = dir.join(crate::platform::atomic::temp_name(base));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FsError::new(path, "cannot create temp file", e)),
        }
    }
    Err(FsError::new(
        path,
        "cannot create temp file",
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}

/// How [`read_guarded`] treats the file at a path.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadGuard {
    /// Refuse a symbolic link at the path itself (`O_NOFOLLOW`); links above it are followed.
    pub no_follow: bool,
    /// Read at most this many bytes.
    pub limit: Option<u64>,
    /// Past `limit`: read only the first `limit` bytes (a header) instead of refusing.
    pub truncate: bool,
}

/// A file read by [`read_guarded`]: its bytes in zeroized memory and what `fstat` said.
pub(crate) struct GuardedRead {
    /// The content (at most the guard's limit).
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
    /// The open file's metadata (mode, owner, size).
    pub meta: fs::Metadata,
}

/// Why [`read_guarded`] read nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GuardedReadError {
    /// Opening failed (missing, permission denied, …).
    #[error("{0}")]
    Open(#[source] io::Error),
    /// A symbolic link where the guard refuses one.
    #[error("is a symbolic link, not a regular file")]
    Symlink,
    /// A directory.
    #[error("is a directory")]
    Directory,
    /// A FIFO, device or socket.
    #[error("not a regular file")]
    NotRegular,
    /// Larger than the guard's limit (and not to be truncated).
    #[error("{size} bytes is over the limit of {limit}")]
    TooLarge {
        /// The size seen (`fstat`, or what was read when the file grew).
        size: u64,
        /// The guard's limit.
        limit: u64,
    },
    /// Reading failed.
    #[error("{0}")]
    Read(#[source] io::Error),
}

impl GuardedReadError {
    /// As an `io::Error` with the same message, for callers that report I/O errors.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            GuardedReadError::Open(e) | GuardedReadError::Read(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// The one guarded reader of a file that must be regular. A device or FIFO where a file
/// should be (a repo can hold a symlink to `/dev/zero`) would otherwise block at open or be
/// read forever: the open is non-blocking and the open file (not the path, which could be
/// swapped) must be a regular file; a limit bounds what is read even if the file grows; the
/// bytes are in zeroized memory, since identity and key files are secrets.
pub(crate) fn read_guarded(path: &Path, guard: ReadGuard) -> Result<GuardedRead, GuardedReadError> {
    use std::io::Read;
    let mut flags = rustix::fs::OFlags::NONBLOCK;
    if guard.no_follow {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if guard.no_follow && e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                GuardedReadError::Symlink
            } else {
                GuardedReadError::Open(e)
            }
        })?;
    let meta = file.metadata().map_err(GuardedReadError::Read)?;
    if meta.is_dir() {
        return Err(GuardedReadError::Directory);
    }
    if !meta.is_file() {
        return Err(GuardedReadError::NotRegular);
    }
    let too_large = |size| match guard.limit {
        Some(limit) if size > limit && !guard.truncate => {
            Err(GuardedReadError::TooLarge { size, limit })
        }
        _ => Ok(()),
    };
    too_large(meta.len())?;
    let cap = guard.limit.map_or(meta.len(), |l| meta.len().min(l));
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(
        usize::try_from(cap).unwrap_or(0).saturating_add(1),
    ));
    let take = match guard.limit {
        Some(l) if guard.truncate => l,
        Some(l) => l.saturating_add(1),
        None => u64::MAX,
    };
    let mut file = file.take(take);
    // One read when the file is the size fstat gave (one byte more is asked for, so a read
    // that stops at that size stopped at the end): 10,000 secrets are 10,000 syscalls fewer.
    // Any other outcome (a growing file, a short read) goes on to the end as before.
    let expected = usize::try_from(cap).unwrap_or(0);
    bytes.resize(expected.saturating_add(1), 0);
    let n = loop {
        match file.read(&mut bytes[..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r.map_err(GuardedReadError::Read)?,
        }
    };
    bytes.truncate(n);
    if n != expected {
        file.read_to_end(&mut bytes)
            .map_err(GuardedReadError::Read)?;
    }
    too_large(bytes.len() as u64)?;
    Ok(GuardedRead { bytes, meta })
}

/// Reads a file that must be regular (symlinks followed), through [`read_guarded`]; a
/// directory is "is a directory", a device or FIFO "not a regular file".
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut read = read_guarded(path, ReadGuard::default()).map_err(GuardedReadError::into_io)?;
    Ok(std::mem::take(&mut *read.bytes))
}

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::new(dir, "cannot sync directory", e))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Whether `path` lives on a RAM-backed filesystem (tmpfs or ramfs).
#[cfg(test)]
fn is_ram_backed(path: &Path) -> bool {
    crate::sys::open_dir(path)
        .and_then(crate::sys::fs_kind)
        .is_ok_and(|k| k.ram_backed())
}

/// A 0700 directory on tmpfs/ramfs for plaintext, made and used through directory fds and
/// removed (fd-relative, never following a symlink) on drop. Its owner holds an exclusive
/// `flock` on it for its whole life: the kernel drops that lock when the process dies, even
/// by SIGKILL, so a directory nobody holds is a leftover ([`sweep_stale_private_dirs`]).
#[derive(Debug)]
pub struct PrivateTempDir {
    /// The directory it was made in.
    base: OwnedFd,
    name: OsString,
    dir: OwnedFd,
    path: PathBuf,
}

impl PrivateTempDir {
    /// Creates the directory under `$XDG_RUNTIME_DIR` when that is a RAM-backed directory
    /// (not a symlink) owned by the effective user with mode 0700, else under `/dev/shm`.
    /// A runtime dir of another user (left by `su` or `sudo -E`) is never used: its owner
    /// could read or swap the plaintext. Refuses when no candidate is RAM-backed: plaintext
    /// never goes to disk.
    pub fn new() -> Result<Self, FsError> {
        let mut tried = Vec::new();
        for (base, usable) in private_bases() {
            match usable {
                Ok(fd) => return Self::create_in(fd, &base),
                Err(why) => tried.push(format!("{} {why}", base.display())),
            }
        }
        Err(FsError::new(
            Path::new(&tried.join("; ")),
            "no private RAM-backed directory for plaintext",
            io::Error::from(io::ErrorKind::NotFound),
        ))
    }

    /// Creates the directory under `base` (which the caller vouches for).
    #[cfg(test)]
    fn new_in(base: &Path) -> Result<Self, FsError> {
        let fd = crate::platform::walk::open_dir(base, crate::platform::walk::Missing::Fail)
            .map_err(|e| FsError::new(base, "cannot open", io::Error::other(e.to_string())))?;
        Self::create_in(fd, base)
    }

    fn create_in(base: OwnedFd, base_path: &Path) -> Result<Self, FsError> {
        let fail = |e| FsError::new(base_path, "cannot create private temp dir", e);
        for _ in 0..16 {
            let name = OsString::from(format!("agefleet.{:016x}", rand::random::<u64>()));
            match crate::sys::mkdir_at(&base, Path::new(&name), 0o700) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(fail(e)),
            }
            let path = base_path.join(&name);
            let dir = crate::sys::open_dir_at(&base, Path::new(&name)).map_err(fail)?;
            let made = PrivateTempDir {
                base,
                name,
                dir,
                path,
            };
            // mkdir's mode is masked by the umask; make it exact.
            crate::sys::fchmod(&made.dir, 0o700)
                .map_err(|e| FsError::new(&made.path, "cannot set mode", e))?;
            // Held until the process ends: the proof, for a later sweep, that we are alive.
            rustix::fs::flock(
                &made.dir,
                rustix::fs::FlockOperation::NonBlockingLockExclusive,
            )
            .map_err(|e| FsError::new(&made.path, "cannot lock", e.into()))?;
            return Ok(made);
        }
        Err(fail(io::Error::from(io::ErrorKind::AlreadyExists)))
    }

    /// The private directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `name` in the directory, exclusively and without following a symlink, with
    /// exactly `mode`, holding `data`.
    pub fn write_new(&self, name: &std::ffi::OsStr, data: &[u8], mode: u32) -> Result<(), FsError> {
        let shown = self.path.join(name);
        let fd = crate::sys::create_exclusive_at(&self.dir, Path::new(name), mode)
            .map_err(|e| FsError::new(&shown, "cannot create", e))?;
        crate::sys::fchmod(&fd, mode)
            .and_then(|()| crate::sys::write_all_sync(&fd, data))
            .map_err(|e| FsError::new(&shown, "cannot write", e))
    }

    /// Reads `name` back through the directory fd: `None` when it does not exist; an error
    /// for a symlink, a non-regular file, or a file of another owner (never followed or read).
    pub fn read_back(
        &self,
        name: &std::ffi::OsStr,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, FsError> {
        let shown = self.path.join(name);
        let fd = match crate::sys::open_read_nofollow_at(&self.dir, Path::new(name)) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if crate::sys::is_symlink_or_not_dir(&e) => {
                return Err(FsError::new(
                    &shown,
                    "is a symbolic link; not reading it",
                    e,
                ))
            }
            Err(e) => return Err(FsError::new(&shown, "cannot open", e)),
        };
        let st =
            rustix::fs::fstat(&fd).map_err(|e| FsError::new(&shown, "cannot stat", e.into()))?;
        let refuse = |what| FsError::new(&shown, what, io::Error::from(io::ErrorKind::InvalidData));
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(refuse("not a regular file; not reading it"));
        }
        if st.st_uid != rustix::process::geteuid().as_raw() {
            return Err(refuse("owned by another user; not reading it"));
        }
        read_fd_zeroizing(&fd, usize::try_from(st.st_size).unwrap_or(0))
            .map(Some)
            .map_err(|e| FsError::new(&shown, "cannot read", e))
    }
}

/// Reads `fd` to its end into zeroized memory; growth copies into a fresh zeroized buffer
/// so no stale copy of the plaintext is left in freed memory.
fn read_fd_zeroizing(fd: &OwnedFd, hint: usize) -> io::Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; hint.max(4096) + 1]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            let mut bigger = zeroize::Zeroizing::new(vec![0u8; buf.len() * 2]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match rustix::io::read(fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                return Err(io::Error::from(io::ErrorKind::WouldBlock))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(&buf[..len]);
    Ok(out)
}

/// The candidate bases of [`PrivateTempDir`], in order of preference, each opened or with
/// why it is unusable: `$XDG_RUNTIME_DIR` when set (it must be ours and 0700), then
/// `/dev/shm`.
fn private_bases() -> Vec<(PathBuf, Result<OwnedFd, UnusableBase>)> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    xdg.into_iter()
        .map(|p| (p, true))
        .chain([(PathBuf::from("/dev/shm"), false)])
        .map(|(base, must_be_mine)| {
            let usable = usable_base(&base, must_be_mine);
            (base, usable)
        })
        .collect()
}

/// What [`sweep_stale_private_dirs`] did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Leftover directories removed.
    pub removed: Vec<PathBuf>,
    /// Leftovers that could not be removed.
    pub failed: Vec<FsError>,
}

/// Removes the [`PrivateTempDir`]s a run of the same user left behind when it was killed
/// (SIGKILL, a crash, a power cut of a persistent /dev/shm): `agefleet.<16 hex digits>`
/// directories in the bases [`PrivateTempDir::new`] uses, owned by the effective user, mode
/// 0700, not a symbolic link, whose lock no live process holds. Another user's directory, or
/// one in use (by a concurrent edit or install), is never touched.
pub fn sweep_stale_private_dirs() -> Sweep {
    let mut sweep = Sweep::default();
    let me = rustix::process::geteuid().as_raw();
    for (base_path, base) in private_bases() {
        let Ok(base) = base else { continue };
        let Ok(names) = crate::sys::list_dir(&base) else {
            continue;
        };
        for name in names {
            let is_ours = name
                .as_bytes()
                .strip_prefix(b"agefleet.")
                .is_some_and(|hex| hex.len() == 16 && hex.iter().all(u8::is_ascii_hexdigit));
            if !is_ours {
                continue;
            }
            // No-follow: a symlink or a file of that name is not ours to remove.
            let Ok(dir) = crate::sys::open_dir_at(&base, Path::new(&name)) else {
                continue;
            };
            let Ok(st) = rustix::fs::fstat(&dir) else {
                continue;
            };
            if st.st_uid != me || st.st_mode & 0o7777 != 0o700 {
                continue;
            }
            let lock = rustix::fs::FlockOperation::NonBlockingLockExclusive;
            if rustix::fs::flock(&dir, lock).is_err() {
                continue; // Held: its run is alive.
            }
            let path = base_path.join(&name);
            match crate::sys::remove_tree_at(&base, Path::new(&name)) {
                Ok(()) => sweep.removed.push(path),
                Err(e) => sweep.failed.push(FsError::new(&path, "cannot remove", e)),
            }
        }
    }
    sweep
}

/// Why a candidate base of [`PrivateTempDir::new`] is unusable (shown in parentheses after
/// its path).
#[derive(Debug, thiserror::Error)]
enum UnusableBase {
    /// Its parent could not be opened.
    #[error("({0})")]
    Parent(#[source] crate::platform::walk::WalkError),
    /// It could not be opened as a directory without following a link.
    #[error("({})", .0.reason)]
    Open(#[source] crate::platform::walk::WalkError),
    /// It could not be stat'ed, or its file system not identified.
    #[error("({0})")]
    Stat(#[source] io::Error),
    /// A runtime dir that is not the effective user's own 0700 directory.
    #[error("(owned by uid {uid} with mode {mode:04o}; needs uid {me} and 0700)")]
    NotMine { uid: u32, mode: u32, me: u32 },
    /// A shared base owned by someone other than root or the effective user.
    #[error("(owned by uid {0})")]
    Foreign(u32),
    /// A shared base others may write without the sticky bit.
    #[error("(writable by others without the sticky bit, mode {0:04o})")]
    OthersWritable(u32),
    /// Not RAM-backed: plaintext there would reach a disk.
    #[error("(not on tmpfs/ramfs)")]
    NotRam,
}

/// Opens a candidate base of [`PrivateTempDir::new`] and says why it is unusable, if it is.
fn usable_base(path: &Path, must_be_mine: bool) -> Result<OwnedFd, UnusableBase> {
    use crate::platform::walk;
    let (parent, base) =
        walk::open_parent(path, walk::Missing::Fail).map_err(UnusableBase::Parent)?;
    let fd = walk::open_subdir(&parent, &base, path).map_err(UnusableBase::Open)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| UnusableBase::Stat(e.into()))?;
    let me = rustix::process::geteuid().as_raw();
    let mode = st.st_mode & 0o7777;
    if must_be_mine && (st.st_uid != me || mode != 0o700) {
        return Err(UnusableBase::NotMine {
            uid: st.st_uid,
            mode,
            me,
        });
    }
    if !must_be_mine && st.st_uid != 0 && st.st_uid != me {
        return Err(UnusableBase::Foreign(st.st_uid));
    }
    if !must_be_mine && mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(UnusableBase::OthersWritable(mode));
    }
    match crate::sys::fs_kind(&fd) {
        Ok(k) if k.ram_backed() => Ok(fd),
        Ok(_) => Err(UnusableBase::NotRam),
        Err(e) => Err(UnusableBase::Stat(e)),
    }
}

impl Drop for PrivateTempDir {
    fn drop(&mut self) {
        let _ = crate::sys::remove_tree_at(&self.base, Path::new(&self.name));
    }
}

/// Creates `path` exclusively with `mode` (exact, umask ignored) and writes `data`.
pub fn write_new_private(path: &Path, data: &[u8], mode: u32) -> Result<(), FsError> {
    create_new_exact(path, mode, |f| f.write_all(data)).map_err(|e| match e {
        CreateNew::Create(e) => FsError::new(path, "cannot create", e),
        CreateNew::Write(e) => FsError::new(path, "cannot write", e),
    })
}

/// Which half of [`create_new_exact`] failed.
pub(crate) enum CreateNew {
    /// Creating: something is there already (even a dangling symlink), or the directory
    /// refuses.
    Create(io::Error),
    /// Setting the mode, filling or syncing the new file.
    Write(io::Error),
}

/// The one way a new file is made with an exact mode: created exclusively (never over
/// anything, never through a symlink), with no wider mode than `mode` from the start, then
/// given exactly `mode` (umask ignored), filled by `fill` and synced.
pub(crate) fn create_new_exact(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> Result<(), CreateNew> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(CreateNew::Create)?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| fill(&mut f))
        .and_then(|()| f.sync_all())
        .map_err(CreateNew::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_regular_reads_files_and_refuses_devices_fifos_and_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f.age");
        fs::write(&f, b"bytes").unwrap();
        assert_eq!(read_regular(&f).unwrap(), b"bytes");
        let dev = tmp.path().join("zero.age");
        std::os::unix::fs::symlink("/dev/zero", &dev).unwrap();
        assert_eq!(
            read_regular(&dev).unwrap_err().to_string(),
            "not a regular file"
        );
        let fifo = tmp.path().join("fifo.age");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(
            read_regular(&fifo).unwrap_err().to_string(),
            "not a regular file"
        );
        assert_eq!(
            read_regular(tmp.path()).unwrap_err().to_string(),
            "is a directory"
        );
    }

    #[test]
    fn read_guarded_bounds_refuses_or_truncates_and_refuses_a_link_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"0123456789").unwrap();
        let limited = |limit, truncate| ReadGuard {
            limit: Some(limit),
            truncate,
            ..ReadGuard::default()
        };
        let read = read_guarded(&f, limited(10, false)).unwrap();
        assert_eq!(&read.bytes[..], b"0123456789");
        assert!(matches!(
            read_guarded(&f, limited(4, false)),
            Err(GuardedReadError::TooLarge { size: 10, limit: 4 })
        ));
        assert_eq!(
            &read_guarded(&f, limited(4, true)).unwrap().bytes[..],
            b"0123"
        );
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(
            &read_guarded(&link, ReadGuard::default()).unwrap().bytes[..],
            b"0123456789"
        );
        let no_follow = ReadGuard {
            no_follow: true,
            ..ReadGuard::default()
        };
        assert!(matches!(
            read_guarded(&link, no_follow),
            Err(GuardedReadError::Symlink)
        ));
        assert!(matches!(
            read_guarded(&tmp.path().join("missing"), ReadGuard::default()),
            Err(GuardedReadError::Open(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }

    #[test]
    fn atomic_write_creates_with_mode_and_keeps_existing_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.age");
        atomic_write(&p, b"one", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        atomic_write(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temp file left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("a.age")]);
    }

    #[test]
    fn atomic_write_refuses_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link.age");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = atomic_write(&link, b"new", 0o644).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope/a.age");
        let err = atomic_write(&p, b"x", 0o644).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn batch_replaces_all_keeps_modes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.age");
        let b = dir.path().join("b.age");
        fs::write(&a, b"old a").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o600)).unwrap();
        let batch = Batch::default();
        batch.stage(&a, b"new a", 0o644).unwrap();
        batch.stage(&b, b"new b", 0o644).unwrap();
        // Nothing replaced before the commit.
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert!(!b.exists());
        let results = batch.commit();
        assert!(results.iter().all(|(_, r)| r.is_ok()));
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&b).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn dropped_batch_removes_its_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.age");
        fs::write(&a, b"old").unwrap();
        let batch = Batch::default();
        batch.stage(&a, b"new", 0o644).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        drop(batch);
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_target_names_the_secret() {
        let t = |s: &str| temp_target(std::ffi::OsStr::new(s)).map(|b| b.to_owned());
        assert_eq!(
            t(".x.age.agefleet-tmp.0123456789abcdef"),
            Some("x.age".into())
        );
        assert_eq!(
            t(".my secret.age.agefleet-tmp.ffffffffffffffff"),
            Some("my secret.age".into())
        );
        assert_eq!(t(".x.age.agefleet-tmp.0123456789ABCDEF"), None);
        assert_eq!(t(".x.age.agefleet-tmp.0123456789abcde"), None);
        assert_eq!(t("x.age.agefleet-tmp.0123456789abcdef"), None);
        assert_eq!(t("..agefleet-tmp.0123456789abcdef"), None);
        assert_eq!(t(".agefleet-tmp.0123456789abcdef"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("."), None);
        assert_eq!(t(".x.age"), None);
    }

    #[test]
    fn real_temp_names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.age");
        let (_f, tmp) = create_temp_beside(&p, 0o600).unwrap();
        assert_eq!(
            temp_target(tmp.file_name().unwrap()),
            Some(std::ffi::OsStr::new("s.age"))
        );
    }

    #[test]
    fn write_lock_excludes_a_second_holder_and_dies_with_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!WriteLock::is_held(dir.path()));
        let first = WriteLock::try_acquire(dir.path()).unwrap().unwrap();
        assert!(WriteLock::is_held(dir.path()));
        assert!(WriteLock::try_acquire(dir.path()).unwrap().is_none());
        drop(first);
        assert!(!WriteLock::is_held(dir.path()));
        let _again = WriteLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn stale_temps_of_the_targets_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        let mine = [
            d.join(".a.age.agefleet-tmp.0000000000000001"),
            d.join(".a.age.agefleet-tmp.0000000000000002"),
            d.join("sub/.b.age.agefleet-tmp.0000000000000003"),
        ];
        let others = [
            d.join(".c.age.agefleet-tmp.0000000000000004"), // not a target
            d.join(".a.age.agefleet-tmp.zz"),               // not our name
            d.join("a.age"),
        ];
        for p in mine.iter().chain(&others) {
            fs::write(p, b"x").unwrap();
        }
        // A directory and a symlink with our names are not ours: left alone.
        let dir_named = d.join(".a.age.agefleet-tmp.0000000000000005");
        fs::create_dir(&dir_named).unwrap();
        let link_named = d.join(".a.age.agefleet-tmp.0000000000000006");
        std::os::unix::fs::symlink(d.join("a.age"), &link_named).unwrap();

        let lock = WriteLock::acquire(d).unwrap();
        let targets = [d.join("a.age"), d.join("sub/b.age"), d.join("nodir/x.age")];
        let (mut removed, failed) = remove_stale_temps(&targets, &lock);
        removed.sort();
        let mut want = mine.to_vec();
        want.sort();
        assert_eq!(removed, want);
        assert!(failed.is_empty(), "{failed:?}");
        for p in &others {
            assert!(p.exists(), "{}", p.display());
        }
        assert!(dir_named.is_dir() && fs::symlink_metadata(&link_named).is_ok());
        assert_eq!(fs::read(d.join("a.age")).unwrap(), b"x");
    }

    #[test]
    fn find_program_takes_the_first_executable_on_path() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        // Not executable in `a` (skipped, as execvp skips it), executable in `b`.
        fs::write(a.join("tool"), b"").unwrap();
        fs::write(b.join("tool"), b"").unwrap();
        fs::set_permissions(b.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(a.join("dir")).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_program("tool", Some(&path)), Some(b.join("tool")));
        assert_eq!(find_program("dir", Some(&path)), None);
        assert_eq!(find_program("tool", None), None);
        let abs = b.join("tool");
        assert_eq!(find_program(abs.to_str().unwrap(), None), Some(abs));
        let not_exec = a.join("tool");
        assert_eq!(find_program(not_exec.to_str().unwrap(), Some(&path)), None);
    }

    #[test]
    #[ignore = "needs a tmpfs /dev/shm"]
    fn private_temp_dir_is_0700_on_ram_and_removed() {
        assert!(
            is_ram_backed(Path::new("/dev/shm")),
            "this test needs /dev/shm on tmpfs"
        );
        let p;
        {
            let d = PrivateTempDir::new_in(Path::new("/dev/shm")).unwrap();
            p = d.path().to_path_buf();
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o700
            );
            assert!(is_ram_backed(&p));
            fs::write(p.join("f"), b"x").unwrap();
        }
        assert!(!p.exists());
    }
}
