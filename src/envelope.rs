//! Encrypt / decrypt, and age header inspection without any identity.
//!
//! INTERFACE CONTRACT:
//! - [`Header::parse`] reads the header of a binary or armored age file: stanza types, SSH
//!   tags, X25519 count; unknown (grease) stanzas are kept as `Other` and ignored by callers.
//! - [`encrypt`] writes the armored form when `armor` is set.
//! - [`decrypt`] returns the plaintext in zeroized memory; errors distinguish "not an age
//!   file", "no identity matches", and "corrupt / truncated".

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::recipient::Recipient;

mod armor;
pub mod header;

pub use armor::ArmorError;

/// What one recipient stanza of a header is: its type and, for the SSH types, its tag; not
/// its body (that is [`age_core::format::Stanza`], which only decryption needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StanzaKind {
    /// `ssh-ed25519 <tag> …`.
    SshEd25519 {
        /// The recipient's 4-byte tag, base64 as in the header.
        tag: String,
    },
    /// `ssh-rsa <tag>`.
    SshRsa {
        /// The recipient's 4-byte tag, base64 as in the header.
        tag: String,
    },
    /// `X25519 …`: anonymous (no tag).
    X25519,
    /// The hybrid post-quantum recipient; anonymous like X25519 (no tag).
    MlKem768X25519,
    /// A passphrase (`scrypt`) stanza.
    Scrypt,
    /// Any other stanza type (grease, plugins).
    Other {
        /// The stanza's type as written.
        kind: String,
    },
}

/// What a header says without decrypting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Whether the file is ASCII-armored.
    pub armored: bool,
    /// Its recipient stanzas, in order.
    pub stanzas: Vec<StanzaKind>,
}

/// Why an age file could not be read, decrypted or written. One line; never plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not an age file: what our header parser found instead (a description, no underlying
    /// error).
    #[error("not an age file ({0})")]
    NotAge(String),
    /// None of the identities tried opens any stanza.
    #[error("no identity matches any recipient of this file")]
    NoMatchingIdentity,
    /// The header (or the payload nonce that ends it) is malformed or truncated, or a
    /// stanza addressed to one of our keys is invalid.
    #[error("corrupt or truncated age file ({0})")]
    Corrupt(#[source] Malformed),
    /// The ASCII armor around the file is malformed.
    #[error("corrupt or truncated age file ({0})")]
    Armor(#[from] ArmorError),
    /// A file key was unwrapped but the header MAC does not match it.
    #[error("corrupt or truncated age file (header MAC mismatch)")]
    HeaderMac,
    /// The header is good but the STREAM payload does not authenticate to its end. No
    /// plaintext of such a file is released.
    #[error("corrupt or truncated age file ({0})")]
    Payload(#[source] PayloadFailure),
    /// Encrypting failed.
    #[error("encryption failed: {0}")]
    Encrypt(#[source] EncryptFailure),
    /// Encrypting to an empty recipient list.
    #[error("no recipients")]
    NoRecipients,
    /// A passphrase (scrypt) file: not encrypted to keys.
    #[error("encrypted with a passphrase (scrypt), not to keys: agefleet does not decrypt those")]
    Passphrase,
    /// Reading the file failed.
    #[error("read failed: {0}")]
    Io(#[source] std::io::Error),
    /// An age plugin failed, or is not installed (one line).
    #[error("age plugin: {0}")]
    Plugin(#[source] PluginFailure),
}

/// What is wrong with a corrupt header.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// What our own header parser (or a stanza check) found: a description, there is no
    /// underlying error.
    #[error("{0}")]
    Described(String),
    /// The age crate failed reading a file our parser accepted.
    #[error(transparent)]
    Read(std::io::Error),
    /// The age crate refused a file for a reason our parser did not catch first.
    #[error(transparent)]
    Refused(age::DecryptError),
}

impl From<String> for Malformed {
    fn from(m: String) -> Self {
        Malformed::Described(m)
    }
}

impl From<&str> for Malformed {
    fn from(m: &str) -> Self {
        Malformed::Described(m.to_string())
    }
}

/// Why a payload did not authenticate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadFailure {
    /// The STREAM ended before its last chunk.
    #[error("truncated payload")]
    Truncated(#[source] std::io::Error),
    /// A chunk's tag did not verify.
    #[error("payload authentication failed")]
    Unauthenticated(#[source] std::io::Error),
}

/// Why encryption failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptFailure {
    /// The age crate refused the recipients.
    #[error(transparent)]
    Age(age::EncryptError),
    /// Writing the output (or its armor) failed.
    #[error(transparent)]
    Io(std::io::Error),
}

/// An age plugin's failure, kept whole; shown as one line (the age crate's localised text
/// may hold Unicode isolation marks and line breaks).
#[derive(Debug)]
#[non_exhaustive]
pub enum PluginFailure {
    /// While wrapping a file key for plugin recipients.
    Encrypt(age::EncryptError),
    /// While unwrapping with plugin identities.
    Decrypt(age::DecryptError),
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::recipient::plugin::{describe_errors, describe_resolve};
        let line = match self {
            PluginFailure::Encrypt(age::EncryptError::Plugin(errors))
            | PluginFailure::Decrypt(age::DecryptError::Plugin(errors)) => describe_errors(errors),
            PluginFailure::Encrypt(age::EncryptError::PluginResolve(e))
            | PluginFailure::Decrypt(age::DecryptError::PluginResolve(e)) => describe_resolve(e),
            PluginFailure::Encrypt(other) => describe_errors(std::slice::from_ref(other)),
            PluginFailure::Decrypt(other) => describe_errors(std::slice::from_ref(other)),
        };
        f.write_str(&line)
    }
}

impl std::error::Error for PluginFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PluginFailure::Encrypt(e) => Some(e),
            PluginFailure::Decrypt(e) => Some(e),
        }
    }
}

/// The keys a file may be decrypted with. `envelope` needs only the age crate's
/// [`age::Identity`] objects, so it does not depend on how they were loaded
/// (`identity::IdentitySet` implements this; so does a plain slice).
pub trait DecryptionKeys {
    /// The usable identities, in the order they should be tried.
    fn age_identities(&self) -> Vec<&dyn age::Identity>;
}

impl DecryptionKeys for [&dyn age::Identity] {
    fn age_identities(&self) -> Vec<&dyn age::Identity> {
        self.to_vec()
    }
}

impl From<header::ParseError> for EnvelopeError {
    fn from(e: header::ParseError) -> Self {
        match e {
            header::ParseError::Incomplete => EnvelopeError::Corrupt("truncated header".into()),
            header::ParseError::NotAge(m) => EnvelopeError::NotAge(m),
            header::ParseError::Corrupt(m) => EnvelopeError::Corrupt(m.into()),
            header::ParseError::Armor(e) => EnvelopeError::Armor(e),
        }
    }
}

impl Header {
    /// Reads the header of a whole file (binary or armored). Never panics; bounded work.
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        header::parse(bytes, true).map_err(EnvelopeError::from)
    }

    /// Reads just enough of `reader` for its header: what `status` needs over many files
    /// without reading their payloads. Bounded by [`header::MAX_HEADER_BYTES`] (of
    /// decoded header; armored input may take up to 4/3 of that plus line breaks).
    pub fn read_from<R: Read>(mut reader: R) -> Result<Self, EnvelopeError> {
        const FIRST_READ: usize = 4096;
        let cap = header::MAX_HEADER_BYTES / 3 * 4 + header::MAX_HEADER_BYTES / 32 + 4096;
        let mut buf = Vec::with_capacity(FIRST_READ);
        let mut want = FIRST_READ;
        loop {
            let before = buf.len();
            (&mut reader)
                .take((want - before) as u64)
                .read_to_end(&mut buf)
                .map_err(EnvelopeError::Io)?;
            let at_eof = buf.len() < want;
            match header::parse(&buf, at_eof) {
                Err(header::ParseError::Incomplete) if want < cap => {
                    want = want.saturating_mul(4).min(cap);
                }
                Err(header::ParseError::Incomplete) => {
                    return Err(EnvelopeError::Corrupt(
                        format!("header larger than {} KiB", header::MAX_HEADER_BYTES / 1024)
                            .into(),
                    ))
                }
                other => return other.map_err(EnvelopeError::from),
            }
        }
    }

    /// The SSH tags in this header.
    pub fn ssh_tags(&self) -> impl Iterator<Item = &str> {
        self.stanzas.iter().filter_map(|s| match s {
            StanzaKind::SshEd25519 { tag } | StanzaKind::SshRsa { tag } => Some(tag.as_str()),
            _ => None,
        })
    }

    /// How many X25519 stanzas.
    pub fn x25519_count(&self) -> usize {
        self.stanzas
            .iter()
            .filter(|s| **s == StanzaKind::X25519)
            .count()
    }

    /// How many hybrid post-quantum (`mlkem768x25519`) stanzas.
    pub fn mlkem768x25519_count(&self) -> usize {
        self.stanzas
            .iter()
            .filter(|s| **s == StanzaKind::MlKem768X25519)
            .count()
    }

    /// Whether every recipient stanza is post-quantum (grease and other unknown stanzas
    /// aside): the file resists a quantum adversary only then.
    pub fn all_post_quantum(&self) -> bool {
        self.mlkem768x25519_count() > 0
            && self
                .stanzas
                .iter()
                .all(|s| matches!(s, StanzaKind::MlKem768X25519 | StanzaKind::Other { .. }))
    }
}

/// Encrypts `plaintext` to `recipients`; armored when `armor`.
///
/// The age crate adds one random "grease" stanza to every header; readers ignore it.
pub fn encrypt(
    plaintext: &[u8],
    recipients: &[&Recipient],
    armor: bool,
) -> Result<Vec<u8>, EnvelopeError> {
    if recipients.is_empty() {
        return Err(EnvelopeError::NoRecipients);
    }
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age()))
        .map_err(map_encrypt_error)?;
    let io_error = |e: std::io::Error| EnvelopeError::Encrypt(EncryptFailure::Io(e));
    // Header (~300 bytes per RSA recipient, less for others), nonce, one 16-byte tag per
    // 64 KiB chunk; the armor adds a third plus line breaks.
    let binary_len =
        128 + recipients.len() * 320 + plaintext.len() + 16 * (plaintext.len() / 65536 + 2);
    let mut out = Vec::with_capacity(if armor {
        binary_len / 3 * 4 + binary_len / 48 + 80
    } else {
        binary_len
    });
    if armor {
        let armored =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .map_err(io_error)?;
        let mut writer = encryptor.wrap_output(armored).map_err(io_error)?;
        writer.write_all(plaintext).map_err(io_error)?;
        writer
            .finish()
            .and_then(|armored| armored.finish())
            .map_err(io_error)?;
    } else {
        let mut writer = encryptor.wrap_output(&mut out).map_err(io_error)?;
        writer.write_all(plaintext).map_err(io_error)?;
        writer.finish().map_err(io_error)?;
    }
    Ok(out)
}

/// Decrypts `ciphertext` (binary or armored) with the usable identities of `ids`.
pub fn decrypt<K: DecryptionKeys + ?Sized>(
    ciphertext: &[u8],
    ids: &K,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let dearmored;
    let (binary, armored): (&[u8], bool) = match armor::detect(ciphertext) {
        armor::Detected::Armored(start) => {
            dearmored = armor::decode_all(&ciphertext[start..])?;
            (&dearmored, true)
        }
        armor::Detected::TextBeforeArmor => return Err(ArmorError::TextBeforeBegin.into()),
        armor::Detected::Binary | armor::Detected::Undecided => (ciphertext, false),
    };
    // Our own parser first: bounded work on hostile input, and precise messages (the same
    // as `Header::parse` gives for the same file).
    let (stanzas, _) = match header::parse_binary(binary, true) {
        Err(header::ParseError::NotAge(m)) if armored => {
            return Err(EnvelopeError::Corrupt(format!("armored data: {m}").into()))
        }
        other => other?,
    };
    if stanzas.contains(&StanzaKind::Scrypt) {
        return Err(EnvelopeError::Passphrase);
    }
    let identities = ids.age_identities();
    if identities.is_empty() {
        return Err(EnvelopeError::NoMatchingIdentity);
    }
    let decryptor = age::Decryptor::new_buffered(binary).map_err(map_decrypt_error)?;
    let mut reader = decryptor
        .decrypt(identities.iter().copied())
        .map_err(map_decrypt_error)?;
    // The plaintext is shorter than the binary ciphertext, so this buffer never grows:
    // no stray copies of plaintext are left behind by reallocation.
    let mut plaintext = Zeroizing::new(Vec::with_capacity(binary.len()));
    reader.read_to_end(&mut plaintext).map_err(|e| {
        EnvelopeError::Payload(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => PayloadFailure::Truncated(e),
            _ => PayloadFailure::Unauthenticated(e),
        })
    })?;
    Ok(plaintext)
}

fn map_encrypt_error(e: age::EncryptError) -> EnvelopeError {
    match e {
        age::EncryptError::Plugin(_) | age::EncryptError::PluginResolve(_) => {
            EnvelopeError::Plugin(PluginFailure::Encrypt(e))
        }
        other => EnvelopeError::Encrypt(EncryptFailure::Age(other)),
    }
}

fn map_decrypt_error(e: age::DecryptError) -> EnvelopeError {
    use age::DecryptError as D;
    match e {
        D::Plugin(_) | D::PluginResolve(_) => EnvelopeError::Plugin(PluginFailure::Decrypt(e)),
        D::NoMatchingKeys => EnvelopeError::NoMatchingIdentity,
        D::UnknownFormat => EnvelopeError::NotAge("unsupported age format version".into()),
        D::InvalidHeader => EnvelopeError::Corrupt("invalid header".into()),
        D::InvalidMac => EnvelopeError::HeaderMac,
        D::DecryptionFailed => {
            EnvelopeError::Corrupt("the stanza for a matching key could not be decrypted".into())
        }
        D::KeyDecryptionFailed => EnvelopeError::Corrupt("key decryption failed".into()),
        D::ExcessiveWork { .. } => EnvelopeError::Passphrase,
        D::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            EnvelopeError::Corrupt("truncated file".into())
        }
        D::Io(e) => EnvelopeError::Corrupt(Malformed::Read(e)),
        other => EnvelopeError::Corrupt(Malformed::Refused(other)),
    }
}

#[cfg(test)]
mod tests;
