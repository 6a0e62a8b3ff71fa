//! Encrypt / decrypt, and age header inspection without any identity.
//!
//! INTERFACE CONTRACT:
//! - [`Header::parse`] reads the header of a binary or armored age file: stanza types, SSH
//!   tags, X25519 count; unknown (grease) stanzas are kept as `Other` and ignored by callers.
//! - [`encrypt`] writes the armored form when `armor` is set.
//! - [`decrypt`] returns the plaintext in zeroized memory; errors distinguish "not an age
//!   file", "no identity matches", and "corrupt / truncated".

use zeroize::Zeroizing;

use crate::identity::IdentitySet;
use crate::recipient::Recipient;

/// One recipient stanza of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stanza {
    SshEd25519 {
        tag: String,
    },
    SshRsa {
        tag: String,
    },
    X25519,
    Scrypt,
    /// Any other stanza type (grease, plugins).
    Other {
        kind: String,
    },
}

/// What a header says without decrypting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub armored: bool,
    pub stanzas: Vec<Stanza>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an age file ({0})")]
    NotAge(String),
    #[error("no identity matches any recipient of this file")]
    NoMatchingIdentity,
    #[error("corrupt or truncated age file ({0})")]
    Corrupt(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
    #[error("no recipients")]
    NoRecipients,
}

impl Header {
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let _ = bytes;
        unimplemented!("envelope::Header::parse: implemented by the crypto work")
    }

    /// The SSH tags in this header.
    pub fn ssh_tags(&self) -> impl Iterator<Item = &str> {
        self.stanzas.iter().filter_map(|s| match s {
            Stanza::SshEd25519 { tag } | Stanza::SshRsa { tag } => Some(tag.as_str()),
            _ => None,
        })
    }

    /// How many X25519 stanzas.
    pub fn x25519_count(&self) -> usize {
        self.stanzas
            .iter()
            .filter(|s| **s == Stanza::X25519)
            .count()
    }
}

/// Encrypts `plaintext` to `recipients`; armored when `armor`.
pub fn encrypt(
    plaintext: &[u8],
    recipients: &[&Recipient],
    armor: bool,
) -> Result<Vec<u8>, EnvelopeError> {
    let _ = (plaintext, recipients, armor);
    unimplemented!("envelope::encrypt: implemented by the crypto work")
}

/// Decrypts `ciphertext` (binary or armored) with the usable identities of `ids`.
pub fn decrypt(ciphertext: &[u8], ids: &IdentitySet) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let _ = (ciphertext, ids);
    unimplemented!("envelope::decrypt: implemented by the crypto work")
}
