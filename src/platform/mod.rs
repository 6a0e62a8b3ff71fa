//! The platform layer for paths that other users may control: one safe walk/open
//! ([`walk`]), one atomic-write scheme ([`atomic`]), one user/group lookup ([`users`]).
//! The private temp dir scheme built on them is [`crate::fsutil::PrivateTempDir`].
//!
//! Every caller that touches a path which is, or lies under, a directory a non-root user can
//! write (home directories, `$XDG_RUNTIME_DIR`, `/dev/shm`, a custom secret `path`, an SSH
//! directory) goes through here: the path is opened from `/` without following symlinks an
//! untrusted user could have planted, and everything after that is done through the
//! directory's file descriptor, so a component swapped between two calls cannot redirect a
//! write, a chmod or a chown.

pub(crate) mod append;
pub(crate) mod atomic;
pub(crate) mod users;
pub(crate) mod walk;
