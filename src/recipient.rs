//! Recipient strings (as written in `secrets.nix`) -> age recipients, with the stanza tag
//! each one puts into a header.
//!
//! INTERFACE CONTRACT:
//! - [`Recipient::parse`] accepts `ssh-ed25519 AAAA… [comment]`, `ssh-rsa AAAA… [comment]`,
//!   and `age1…` (X25519). Anything else is a [`RecipientError`] naming the key (abbreviated).
//! - [`Recipient::tag`] is the SSH stanza tag: base64 (standard alphabet, no padding) of the
//!   first 4 bytes of SHA-256 of the SSH wire public key; `None` for X25519.
//! - [`Recipient::as_age`] is what `envelope::encrypt` hands to the age crate.

/// What kind of key a recipient is; also the stanza type it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecipientKind {
    SshEd25519,
    SshRsa,
    X25519,
}

/// A parsed recipient.
pub struct Recipient {
    /// The key as written, trimmed (comment included).
    pub text: String,
    pub kind: RecipientKind,
    /// SSH stanza tag; `None` for X25519.
    pub tag: Option<String>,
    inner: Box<dyn age::Recipient + Send + Sync>,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient")
            .field("kind", &self.kind)
            .field("tag", &self.tag)
            .field("text", &self.text)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid public key {key:?}: {reason}")]
pub struct RecipientError {
    /// The key, abbreviated for messages.
    pub key: String,
    pub reason: String,
}

impl Recipient {
    pub fn parse(s: &str) -> Result<Self, RecipientError> {
        let _ = s;
        unimplemented!("recipient::parse: implemented by the crypto work")
    }

    pub fn as_age(&self) -> &dyn age::Recipient {
        self.inner.as_ref()
    }
}
