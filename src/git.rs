//! Git awareness: is a file tracked; add with intent-to-add; clone over the SSH agent.

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);

use std::path::Path;

/// Whether `path` is tracked; `None` outside a git work tree. (Placeholder until the git work lands.)
pub fn is_tracked(_path: &Path) -> Result<Option<bool>, GitError> {
    Ok(None)
}

/// `git add --intent-to-add path`. (Placeholder until the git work lands.)
pub fn add_intent_to_add(path: &Path) -> Result<(), GitError> {
    Err(GitError(format!(
        "{}: git support not built yet",
        path.display()
    )))
}

/// The tracked files of one work tree, read once, for checking many files quickly.
pub struct Tracker {
    workdir: std::path::PathBuf,
    tracked: std::collections::HashSet<Vec<u8>>,
}

impl Tracker {
    /// Opens the work tree containing `dir`; `None` when `dir` is not in one.
    pub fn open(dir: &Path) -> Result<Option<Tracker>, GitError> {
        let repo = match git2::Repository::discover(dir) {
            Ok(r) => r,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(GitError(format!("{}: {}", dir.display(), e.message()))),
        };
        let Some(workdir) = repo.workdir() else {
            return Ok(None);
        };
        let workdir = workdir
            .canonicalize()
            .map_err(|e| GitError(format!("{}: {e}", workdir.display())))?;
        let index = repo.index().map_err(|e| {
            GitError(format!(
                "{}: cannot read the git index: {}",
                workdir.display(),
                e.message()
            ))
        })?;
        let tracked = index.iter().map(|e| e.path).collect();
        Ok(Some(Tracker { workdir, tracked }))
    }

    /// Whether `path` (existing or not) is in the index. Paths outside the work tree count as
    /// tracked: they are not this repository's concern.
    pub fn is_tracked(&self, path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let abs = match path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .and_then(|p| p.canonicalize().ok())
        {
            Some(dir) => dir.join(path.file_name().unwrap_or_default()),
            None => return true,
        };
        match abs.strip_prefix(&self.workdir) {
            Ok(rel) => self.tracked.contains(rel.as_os_str().as_bytes()),
            Err(_) => true,
        }
    }
}
