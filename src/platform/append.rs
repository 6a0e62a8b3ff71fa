//! Appending to a file that other programs also append to (NixOS's
//! `/run/nixos/activation-restart-list`), as root, without being redirected: the parent is
//! opened with [`super::walk`] (no symlink an untrusted user could have planted), the file
//! itself with `O_NOFOLLOW|O_APPEND|O_CREAT` through that directory, and it must be a
//! regular file with one link, owned by the running user. It is never truncated.

use std::io;
use std::path::{Path, PathBuf};

use super::walk::{self, Missing};
use crate::sys;

/// Why an append was refused or failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct AppendError {
    /// The file (or the component of its path) concerned.
    pub path: PathBuf,
    /// Why, in words.
    pub reason: String,
    /// The system error, when there was one.
    #[source]
    pub source: Option<io::Error>,
}

impl AppendError {
    fn refused(path: &Path, reason: &str) -> Self {
        AppendError {
            path: path.to_path_buf(),
            reason: reason.into(),
            source: None,
        }
    }

    fn io(path: &Path, e: io::Error) -> Self {
        AppendError {
            path: path.to_path_buf(),
            reason: e.to_string(),
            source: Some(e),
        }
    }
}

/// Appends `data` to the absolute `path` in one write, creating the file with `mode` when
/// it is missing. `Ok(false)` when its directory does not exist (nothing written).
pub fn append(path: &Path, data: &[u8], mode: u32) -> Result<bool, AppendError> {
    let (dir, base) = match walk::open_parent(path, Missing::Fail) {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => {
            return Err(AppendError {
                path: e.component.clone(),
                reason: e.reason.clone(),
                source: e.source,
            })
        }
    };
    let fd = sys::open_append_nofollow_at(&dir, Path::new(&base), mode).map_err(|e| {
        if sys::is_symlink_or_not_dir(&e) {
            AppendError::refused(path, "is a symbolic link; refusing to follow it")
        } else {
            AppendError::io(path, e)
        }
    })?;
    match sys::regular_file_links(&fd).map_err(|e| AppendError::io(path, e))? {
        Some(1) => {}
        Some(_) => {
            return Err(AppendError::refused(
                path,
                "has other hard links; not writing to it",
            ))
        }
        None => {
            return Err(AppendError::refused(
                path,
                "is not a regular file; not writing to it",
            ))
        }
    }
    let me = rustix::process::geteuid().as_raw();
    let uid = sys::owner_uid(&fd).map_err(|e| AppendError::io(path, e))?;
    if uid != me {
        return Err(AppendError::refused(
            path,
            &format!("is owned by uid {uid}, not uid {me}; not writing to it"),
        ));
    }
    sys::write_all(&fd, data).map_err(|e| AppendError::io(path, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_never_truncates_and_refuses_links() {
        let tmp = tempfile::tempdir().unwrap();
        let list = tmp.path().join("list");
        std::fs::write(&list, "other.service\n").unwrap();
        assert!(append(&list, b"a.service\n", 0o600).unwrap());
        assert!(append(&list, b"b.service\n", 0o600).unwrap());
        assert_eq!(
            std::fs::read_to_string(&list).unwrap(),
            "other.service\na.service\nb.service\n"
        );
        // Missing directory: nothing to do.
        assert!(!append(&tmp.path().join("none/list"), b"x\n", 0o600).unwrap());
        // A symlink (dangling or not) is not followed, and nothing is created through it.
        let victim = tmp.path().join("victim");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = append(&link, b"x\n", 0o600).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!victim.exists());
        // A hard link to another file is refused.
        let hard = tmp.path().join("hard");
        std::fs::hard_link(&list, &hard).unwrap();
        let e = append(&hard, b"x\n", 0o600).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        // A FIFO does not block and is refused.
        let fifo = tmp.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        let e = append(&fifo, b"x\n", 0o600).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}
