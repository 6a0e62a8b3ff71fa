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
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A filesystem operation that failed, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}: {source}")]
pub struct FsError {
    pub path: PathBuf,
    pub what: &'static str,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn new(path: &Path, what: &'static str, source: io::Error) -> Self {
        FsError {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}

/// Marker in the names of temp files made by [`atomic_write`], so a later run (or `status`)
/// can recognise leftovers of a killed run.
pub const TEMP_MARKER: &str = ".agefleet-tmp.";

/// Whether `name` is a leftover temp file of [`atomic_write`].
pub fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    name.as_bytes()
        .windows(TEMP_MARKER.len())
        .any(|w| w == TEMP_MARKER.as_bytes())
}

/// Length of the random suffix of temp names (`{:016x}`).
const TEMP_SUFFIX_LEN: usize = 16;

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

/// Writes `data` to `path` atomically. A new file gets `new_mode`; an existing one keeps its
/// permission bits. A symlink at `path` is refused rather than replaced by a file.
pub fn atomic_write(path: &Path, data: &[u8], new_mode: u32) -> Result<(), FsError> {
    let mode = mode_to_keep(path, new_mode)?;
    let dir = parent_dir(path);
    let (mut file, tmp) = create_temp_beside(path, mode)?;
    let guard = RemoveOnDrop(Some(tmp.clone()));
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| FsError::new(&tmp, "cannot write", e))?;
    // Mode given at open is masked by the umask; set it exactly before the rename.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| FsError::new(&tmp, "cannot set mode", e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| FsError::new(path, "cannot replace", e))?;
    std::mem::forget(guard);
    sync_dir(&dir)
}

/// Atomic replacements of many files, made durable together.
///
/// [`Batch::stage`] writes each new content to a temp file beside its target and hands the
/// open file to a pool of flusher threads, which `fdatasync` it while the caller goes on
/// (concurrent syncs share journal commits: on a real disk this is many times faster than
/// syncing files one after another, and unlike `syncfs` it never waits for other processes'
/// data). [`Batch::commit`] waits for the flushes, renames each flushed temp over its target,
/// and fsyncs the directories. Invariant: a rename happens only after its temp file's data is
/// durable, so whatever moment the process dies at, each target holds its old or its new
/// content. Temp files not committed are removed on drop.
#[derive(Default)]
pub struct Batch {
    staged: std::sync::Mutex<Vec<Staged>>,
    flusher: std::sync::OnceLock<Flusher>,
}

struct Staged {
    tmp: PathBuf,
    target: PathBuf,
}

/// Threads that fdatasync staged files. The queue is bounded, which bounds open files.
struct Flusher {
    queue: std::sync::Mutex<Option<std::sync::mpsc::SyncSender<(PathBuf, File)>>>,
    workers: std::sync::Mutex<Vec<std::thread::JoinHandle<FlushFailures>>>,
}

/// Temp files whose flush failed, with why.
type FlushFailures = Vec<(PathBuf, io::Error)>;

const FLUSH_THREADS: usize = 64;
const FLUSH_QUEUE: usize = 256;

impl Flusher {
    fn start() -> Flusher {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, File)>(FLUSH_QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let workers = (0..FLUSH_THREADS)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut failed = Vec::new();
                    loop {
                        let next = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok((tmp, file)) = next else { break };
                        if let Err(e) = file.sync_data() {
                            failed.push((tmp, e));
                        }
                    }
                    failed
                })
            })
            .collect();
        Flusher {
            queue: std::sync::Mutex::new(Some(tx)),
            workers: std::sync::Mutex::new(workers),
        }
    }

    /// Queues `file` for fdatasync; syncs it right here if the pool is gone.
    fn submit(&self, tmp: PathBuf, file: File) -> io::Result<()> {
        let sender = self.queue.lock().ok().and_then(|q| q.clone());
        match sender {
            Some(tx) => match tx.send((tmp, file)) {
                Ok(()) => Ok(()),
                Err(std::sync::mpsc::SendError((_, file))) => file.sync_data(),
            },
            None => file.sync_data(),
        }
    }

    /// Waits for every queued flush; returns the temp files whose flush failed.
    fn finish(&self) -> FlushFailures {
        if let Ok(mut q) = self.queue.lock() {
            q.take(); // closing the queue ends the workers once it is drained
        }
        let workers = self
            .workers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    }
}

impl Batch {
    /// Writes `data` to a temp file beside `path` (mode: `path`'s if it exists, else
    /// `new_mode`) and queues it for flushing. Safe to call from many threads.
    pub fn stage(&self, path: &Path, data: &[u8], new_mode: u32) -> Result<(), FsError> {
        let mode = mode_to_keep(path, new_mode)?;
        let (mut file, tmp) = create_temp_beside(path, mode)?;
        let guard = RemoveOnDrop(Some(tmp.clone()));
        file.write_all(data)
            .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
            .and_then(|()| {
                self.flusher
                    .get_or_init(Flusher::start)
                    .submit(tmp.clone(), file)
            })
            .map_err(|e| FsError::new(&tmp, "cannot write", e))?;
        std::mem::forget(guard);
        let staged = Staged {
            tmp,
            target: path.to_path_buf(),
        };
        match self.staged.lock() {
            Ok(mut v) => v.push(staged),
            Err(poisoned) => poisoned.into_inner().push(staged),
        }
        Ok(())
    }

    /// Waits until every staged file is durable, then renames each into place and syncs the
    /// directories. Returns one result per target, in staging order; a failed target keeps
    /// its old content.
    pub fn commit(mut self) -> Vec<(PathBuf, Result<(), FsError>)> {
        let failed_flushes: std::collections::HashMap<PathBuf, io::Error> = self
            .flusher
            .take()
            .map(|f| f.finish())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let staged = std::mem::take(match self.staged.get_mut() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        });
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut results = Vec::with_capacity(staged.len());
        for s in staged {
            let r = match failed_flushes.get(&s.tmp) {
                Some(e) => Err(FsError::new(
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
        if let Some(f) = self.flusher.take() {
            f.finish();
        }
        if let Ok(v) = self.staged.get_mut() {
            for s in v.drain(..) {
                let _ = fs::remove_file(&s.tmp);
            }
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
        let mut name = OsString::from(".");
        name.push(base);
        name.push(TEMP_MARKER);
        name.push(format!(
            "{:0width$x}",
            rand::random::<u64>(),
            width = TEMP_SUFFIX_LEN
        ));
        let tmp = dir.join(name);
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

/// Reads a file that must be regular (symlinks followed). A device or FIFO where a `.age`
/// file should be (a repo can hold a symlink to `/dev/zero`) would otherwise block at open
/// or be read forever; the non-blocking open makes a FIFO fail the check instead.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(if meta.is_dir() {
            "is a directory"
        } else {
            "not a regular file"
        }));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
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

const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Whether `path` lives on a RAM-backed filesystem (tmpfs or ramfs).
pub fn is_ram_backed(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .map(|s| {
            #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
            let t = s.f_type as u64;
            t == TMPFS_MAGIC || t == RAMFS_MAGIC
        })
        .unwrap_or(false)
}

/// A 0700 directory on tmpfs/ramfs for plaintext, removed on drop.
#[derive(Debug)]
pub struct PrivateTempDir {
    path: PathBuf,
}

impl PrivateTempDir {
    /// Creates the directory under `$XDG_RUNTIME_DIR` when that is RAM-backed, else under
    /// `/dev/shm`. Refuses when neither is RAM-backed: plaintext never goes to disk.
    pub fn new() -> Result<Self, FsError> {
        let candidates = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from("/dev/shm")]);
        let mut tried = Vec::new();
        for base in candidates {
            if base.is_dir() && is_ram_backed(&base) {
                return Self::new_in(&base);
            }
            tried.push(base.display().to_string());
        }
        Err(FsError::new(
            Path::new(&tried.join(", ")),
            "no RAM-backed directory for plaintext (need $XDG_RUNTIME_DIR or /dev/shm on tmpfs)",
            io::Error::from(io::ErrorKind::NotFound),
        ))
    }

    /// Creates the directory under `base` (which the caller vouches for).
    pub fn new_in(base: &Path) -> Result<Self, FsError> {
        for _ in 0..16 {
            let path = base.join(format!("agefleet.{:016x}", rand::random::<u64>()));
            match fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map(|()| path.clone())
            {
                Ok(p) => {
                    // DirBuilder's mode is masked by the umask; make it exact.
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
                        .map_err(|e| FsError::new(&p, "cannot set mode", e))?;
                    return Ok(PrivateTempDir { path: p });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(FsError::new(base, "cannot create private temp dir", e)),
            }
        }
        Err(FsError::new(
            base,
            "cannot create private temp dir",
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Creates `path` exclusively with `mode` (exact, umask ignored) and writes `data`.
pub fn write_new_private(path: &Path, data: &[u8], mode: u32) -> Result<(), FsError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| FsError::new(path, "cannot create", e))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| f.write_all(data))
        .and_then(|()| f.sync_all())
        .map_err(|e| FsError::new(path, "cannot write", e))
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
    fn temp_names_are_recognised() {
        assert!(is_temp_name(std::ffi::OsStr::new(
            ".x.age.agefleet-tmp.0123456789abcdef"
        )));
        assert!(!is_temp_name(std::ffi::OsStr::new("x.age")));
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
    fn private_temp_dir_is_0700_on_ram_and_removed() {
        if !is_ram_backed(Path::new("/dev/shm")) {
            eprintln!("SKIP: /dev/shm is not tmpfs here");
            return;
        }
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
