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
