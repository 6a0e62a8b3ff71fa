//! The RAM-backed mount under `secretsMountPoint`.

use std::os::unix::fs::DirBuilderExt;

use super::{ActivationError, FsChoice, Layout};
use crate::sys::{self, FsKind, RamMount};

/// What activation found or made at the mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum MountState {
    /// Mounted now.
    Mounted {
        /// The filesystem mounted.
        fs: RamMount,
    },
    /// An existing tmpfs/ramfs mount (agenix's, or ours from an earlier activation).
    Reused {
        /// The filesystem found there.
        fs: FsKind,
    },
    /// Not mounted (not root, or not Linux): the directory is used as it is.
    Directory {
        /// The filesystem the directory is on.
        fs: FsKind,
    },
}

/// Makes sure the mount point exists, is RAM-backed where this process can arrange it, has
/// mode 0751 and is a real directory (not a symlink). Root on Linux mounts tmpfs `noswap`
/// (ramfs when the kernel lacks it or the manifest asks) unless a tmpfs/ramfs is already
/// mounted there; a non-RAM filesystem mounted there is refused. Others (home-manager) use
/// the directory as is and get a warning if it is not on tmpfs/ramfs.
pub(crate) fn ensure(
    layout: &Layout,
    warnings: &mut Vec<String>,
) -> Result<MountState, ActivationError> {
    let mp = &layout.mount_point;
    if let Some(parent) = mp.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| ActivationError::io(parent, e))?;
    }
    match std::fs::DirBuilder::new().mode(0o751).create(mp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ActivationError::io(mp, e)),
    }
    // Refuses a symlink at the mount point: mounting over it would follow it.
    let fd = sys::open_dir_nofollow(mp).map_err(|e| not_a_directory(mp, e))?;
    let kind = sys::fs_kind(&fd).map_err(|e| ActivationError::io(mp, e))?;
    let can_mount = cfg!(any(target_os = "linux", target_os = "android")) && sys::is_root();
    let state = if !can_mount {
        if cfg!(any(target_os = "linux", target_os = "android")) && !kind.ram_backed() {
            warnings.push(format!(
                "{}: not on a RAM-backed filesystem (only root can mount one); secrets will be written to it as it is",
                mp.display()
            ));
        }
        MountState::Directory { fs: kind }
    } else if sys::is_mount_root(mp).map_err(|e| ActivationError::io(mp, e))? {
        if !kind.ram_backed() {
            return Err(ActivationError::at(
                mp,
                "a filesystem that is not tmpfs or ramfs is mounted here; refusing to put secrets on it",
            ));
        }
        MountState::Reused { fs: kind }
    } else {
        drop(fd);
        let fs = sys::mount_ram(mp, layout.fs == FsChoice::Tmpfs)
            .map_err(|e| ActivationError::at(mp, format!("cannot mount a RAM filesystem: {e}")))?;
        MountState::Mounted { fs }
    };
    let fd = sys::open_dir_nofollow(mp).map_err(|e| not_a_directory(mp, e))?;
    sys::fchmod(&fd, 0o751).map_err(|e| ActivationError::io(mp, e))?;
    Ok(state)
}

fn not_a_directory(mp: &std::path::Path, e: std::io::Error) -> ActivationError {
    if sys::is_symlink_or_not_dir(&e) {
        ActivationError::at(mp, "is a symlink or not a directory; refusing to use it")
    } else {
        ActivationError::io(mp, e)
    }
}
