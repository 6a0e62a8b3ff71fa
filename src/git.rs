//! Git awareness: is a file tracked; add with intent-to-add; clone over the SSH agent.

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);
