//! Key lifecycle library: generate, validate, compare and install the fleet's OpenSSH keys.
//!
//! A fleet host has two keys in its SSH directory (the names the flake templates use):
//! `id_ed25519` gives git access to the private secrets repository, `id_ed25519_agenix` is the
//! identity that decrypts the host's secrets at activation and therefore never carries a
//! passphrase.
//!
//! Invariants kept by every writer in this module:
//! - files are created with their final mode and owner before they get their final name
//!   (temp file in the same directory, fsync, rename without replacing), so a key is never
//!   visible half-written or with a wider mode;
//! - an existing file is never overwritten in place and never deleted: replacing one means
//!   moving it into a timestamped backup directory first;
//! - nothing is written when any validation fails.
//!
//! This module never prints; the `commands::keys` verbs do.

use std::path::PathBuf;

pub mod age_identity;
pub mod check;
pub mod check_pq;
pub mod copy;
pub mod create;
mod files;
pub mod nix;
pub mod openssh;
pub mod owner;

pub use files::utc_timestamp;

/// Which of the fleet's two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `id_ed25519`: git access to the secrets repository (may have a passphrase).
    Git,
    /// `id_ed25519_agenix`: decrypts secrets at activation (never has a passphrase).
    Agenix,
}

impl Role {
    /// Both roles, in the order they are created and reported.
    pub const ALL: [Role; 2] = [Role::Git, Role::Agenix];

    /// The private key's file name in the SSH directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Role::Git => "id_ed25519",
            Role::Agenix => "id_ed25519_agenix",
        }
    }

    /// The public key's file name in the SSH directory.
    pub fn public_file_name(self) -> &'static str {
        match self {
            Role::Git => "id_ed25519.pub",
            Role::Agenix => "id_ed25519_agenix.pub",
        }
    }

    /// Names a copy source (the templates' USB layout) may use for this key.
    pub fn source_names(self) -> &'static [&'static str] {
        match self {
            Role::Git => &["id_ed25519_github", "id_ed25519"],
            Role::Agenix => &["id_ed25519_agenix"],
        }
    }

    /// What the key is for, in a few words.
    pub fn purpose(self) -> &'static str {
        match self {
            Role::Git => "git access",
            Role::Agenix => "agenix identity",
        }
    }
}

/// Mode of private key files.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of public key files.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of the SSH directory.
pub const DIR_MODE: u32 = 0o700;

/// Why a key operation stopped. `Display` is one line naming the file; never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading, writing or inspecting `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not what it must be: unparsable key, not a regular file, too large.
    #[error("{path}: {reason}")]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key and its `.pub` hold different keys.
    #[error("{private}: does not match its public key {public}")]
    Mismatch {
        /// The private key file.
        private: PathBuf,
        /// Its `.pub`.
        public: PathBuf,
    },
    /// A destination exists and replacing it was not allowed.
    #[error("{path}: already exists; refusing to overwrite it")]
    Exists {
        /// The existing destination.
        path: PathBuf,
    },
    /// `--owner` could not be resolved.
    #[error("owner {spec:?}: {reason}")]
    Owner {
        /// The `USER[:GROUP]` as given.
        spec: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// A comment that cannot go into a public key line.
    #[error("comment {comment:?}: {reason}")]
    Comment {
        /// The comment as given.
        comment: String,
        /// Why it is refused.
        reason: String,
    },
    /// Key generation or passphrase encryption failed.
    #[error("{what}: {reason}")]
    Generate {
        /// The step that failed (`ed25519 key generation`, `OpenSSH encoding`, …).
        what: String,
        /// The generator's or encryptor's error.
        reason: String,
    },
}

impl KeyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KeyError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        KeyError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Whether this is a refusal to overwrite (exit 3) rather than a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(self, KeyError::Exists { .. })
    }
}

/// The backup made before replacing files: the directory and each move (from, to).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backup {
    /// The timestamped backup directory the files were moved into.
    pub dir: PathBuf,
    /// Every file moved, in order.
    pub moved: Vec<Moved>,
}

/// One file moved into a backup directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    /// Where the file was.
    pub from: PathBuf,
    /// Where it is now, inside the backup directory.
    pub to: PathBuf,
}

/// What preparing the SSH directory does (or would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirAction {
    /// The directory exists with no group/other bits.
    Keep,
    /// The directory does not exist: created with mode 0700.
    Create,
    /// The directory exists with group/other bits (`from`): tightened to 0700, because the
    /// directory holds private keys and sshd's StrictModes rejects a group/other-writable one.
    Tighten {
        /// The directory's current permission bits.
        from: u32,
    },
}
