//! Atomic replace, private temp dirs on tmpfs, modes, no-follow opens.

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FsError(pub String);
