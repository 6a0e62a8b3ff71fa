//! Identity discovery and loading.
//!
//! INTERFACE CONTRACT:
//! - [`IdentitySet::load`] reads explicit `-i` files (errors are fatal: a garbage or public-key
//!   file names the file) or, with none given, the default paths (`~/.ssh/id_rsa`, then
//!   `~/.ssh/id_ed25519`), skipping unusable ones with a returned warning.
//! - OpenSSH keys encrypted with a passphrase stay locked until [`IdentitySet::unlock_for`]
//!   is given the headers of the files about to be decrypted: only keys whose tag appears in
//!   one of them are unlocked, each at most once per run, through the [`PassphrasePrompt`].
//! - Key material lives in zeroized memory (the age crate's types zeroize on drop).
//! - After loading and unlocking, an `IdentitySet` is `Sync`: rekey decrypts from rayon
//!   threads through [`IdentitySet::age_identities`].
//! - Unencrypted ssh-ed25519 keys unwrap through `ssh_ed25519.rs` (precomputed; same results
//!   as the age crate's identity); other keys, and keys unlocked with a passphrase, use the
//!   age crate's identities.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::envelope::{DecryptionKeys, Header};
use crate::recipient::plugin::{PluginIdentity, PluginUi};
use crate::recipient::ssh_tag;

/// Asks the operator for a passphrase. Implemented by the commands layer (terminal) and by
/// tests. Returns `None` when no terminal is available.
pub trait PassphrasePrompt: Sync {
    /// The passphrase for the key file at `key_path`, or `None` when none can be asked for.
    fn passphrase(&self, key_path: &Path) -> Option<age::secrecy::SecretString>;
}

/// What an identity file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// An OpenSSH ed25519 private key.
    SshEd25519,
    /// An OpenSSH RSA private key.
    SshRsa,
    /// An age identity file (`AGE-SECRET-KEY-1…` lines).
    Age,
}

/// A loaded identity file.
pub struct LoadedIdentity {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// SSH stanza tag of the key (None for age X25519 identity files).
    pub tag: Option<String>,
    /// What the file holds.
    pub kind: IdentityKind,
    key: Key,
}

enum Key {
    /// An unencrypted (or unlocked) SSH key.
    Ssh(age::ssh::Identity),
    /// An unencrypted ssh-ed25519 key, on the faster path of `ssh_ed25519.rs`.
    SshEd25519(ssh_ed25519::SshEd25519Identity),
    /// A passphrase-protected OpenSSH key not unlocked yet.
    Locked(age::ssh::EncryptedKey),
    /// Unlocking was attempted and failed this run (why): never prompt for it again.
    Failed(IdentityError),
    /// The identities of an age identity file: X25519, hybrid post-quantum, and age plugin
    /// identities (`AGE-PLUGIN-…`, grouped by plugin).
    Native {
        x25519: Vec<age::x25519::Identity>,
        post_quantum: Vec<MlKem768X25519Identity>,
        plugins: Vec<PluginIdentity>,
    },
}

impl LoadedIdentity {
    /// Whether this is a passphrase-protected key that has not been unlocked.
    pub fn is_locked(&self) -> bool {
        matches!(self.key, Key::Locked(_) | Key::Failed(_))
    }
}

impl LoadedIdentity {
    /// The recipients (`age1…`, `age1pq1…`) of an age identity file's identities; empty for
    /// SSH keys.
    pub fn age_recipients(&self) -> Vec<String> {
        match &self.key {
            Key::Native {
                x25519,
                post_quantum,
                ..
            } => x25519
                .iter()
                .map(|k| k.to_public().to_string())
                .chain(post_quantum.iter().map(|k| k.recipient()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl std::fmt::Debug for LoadedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedIdentity")
            .field("path", &self.path)
            .field("tag", &self.tag)
            .field("kind", &self.kind)
            .field("locked", &self.is_locked())
            .finish()
    }
}

mod mlkem768x25519;
mod ssh_ed25519;

pub use mlkem768x25519::MlKem768X25519Identity;

/// All identities of a run.
#[derive(Default)]
pub struct IdentitySet {
    /// Every identity loaded, in the order the files were given.
    pub identities: Vec<LoadedIdentity>,
    /// Where plugin identities (and, for a rekey, plugin recipients) send their requests.
    plugin_ui: Option<Arc<dyn PluginUi>>,
}

impl std::fmt::Debug for IdentitySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySet")
            .field("identities", &self.identities)
            .field("plugin_ui", &self.plugin_ui.is_some())
            .finish()
    }
}

/// Why an identity file could not be loaded or unlocked. `Display` is one line naming the file.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The file is missing, unreadable or not a supported key.
    #[error("{path}: {reason}")]
    Invalid {
        /// The identity file.
        path: PathBuf,
        /// What is wrong with it.
        reason: IdentityProblem,
    },
    /// The key is passphrase-protected and the prompt had no terminal to ask on.
    #[error("{path}: passphrase-protected key and no terminal to ask for its passphrase")]
    NoTerminal {
        /// The identity file.
        path: PathBuf,
    },
    /// Every passphrase attempt failed.
    #[error("{path}: wrong passphrase")]
    WrongPassphrase {
        /// The identity file.
        path: PathBuf,
    },
}

/// What is wrong with one identity file (never its content).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityProblem {
    /// The file does not exist.
    #[error("no such file")]
    Missing,
    /// The file may not be read by this user.
    #[error("permission denied")]
    PermissionDenied,
    /// Opening or reading the file failed otherwise.
    #[error("cannot read: {0}")]
    Read(#[source] Arc<std::io::Error>),
    /// The path is a directory.
    #[error("is a directory")]
    Directory,
    /// The path is a FIFO, device or socket.
    #[error("not a regular file")]
    NotRegular,
    /// The file is over 1 MiB.
    #[error("too large to be a key file (over 1 MiB)")]
    TooLarge,
    /// The file holds only whitespace.
    #[error("empty file")]
    Empty,
    /// A passphrase-encrypted age identity file.
    #[error("passphrase-encrypted age identity files are not supported")]
    PassphraseAgeFile,
    /// A PEM block of a kind other than OpenSSH or RSA.
    #[error("unsupported private key format (use an OpenSSH, PEM RSA or age identity file)")]
    UnsupportedFormat,
    /// Neither a private key nor an age identity file.
    #[error("not a private key or age identity file")]
    NotAKey,
    /// An SSH public key given as an identity.
    #[error("this is a public key, not a private key")]
    PublicKey,
    /// An OpenSSH or PEM RSA block that does not parse.
    #[error("not a valid OpenSSH or PEM RSA private key")]
    InvalidSsh,
    /// A passphrase-encrypted PEM key.
    #[error("encrypted PEM keys are not supported (convert with `ssh-keygen -p -o -f KEY`)")]
    EncryptedPem,
    /// An OpenSSH key encrypted with a cipher the age crate does not support.
    #[error("unsupported key encryption cipher {0}")]
    UnsupportedCipher(String),
    /// A hardware security key (`sk-…`).
    #[error("unsupported key type {0} (hardware security keys cannot decrypt age files)")]
    HardwareKey(String),
    /// An SSH key type age cannot decrypt with, named when known.
    #[error("unsupported key type{}", .0.as_ref().map(|t| format!(" {t}")).unwrap_or_default())]
    UnsupportedKeyType(Option<String>),
    /// An `AGE-PLUGIN-` line that does not parse.
    #[error("line {line}: invalid age plugin identity")]
    InvalidPlugin {
        /// 1-based line number.
        line: usize,
    },
    /// An `AGE-SECRET-KEY-PQ-` line that does not parse.
    #[error("line {line}: {reason}")]
    InvalidPostQuantum {
        /// 1-based line number.
        line: usize,
        /// Why it does not parse.
        reason: &'static str,
    },
    /// An age public key (`age1…`) given as an identity.
    #[error("this is an age public key (recipient), not an identity")]
    AgeRecipient,
    /// An `AGE-SECRET-KEY-` line that does not parse.
    #[error("line {line}: invalid age identity")]
    InvalidAge {
        /// 1-based line number.
        line: usize,
    },
    /// A line that is not an identity, after at least one that was.
    #[error("line {line}: not an age identity")]
    NotAgeIdentity {
        /// 1-based line number.
        line: usize,
    },
    /// Only comments and blank lines.
    #[error("no identity in the file (only comments)")]
    OnlyComments,
}

/// How a hybrid post-quantum identity line starts.
const PQ_IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-PQ-";
/// Identity files larger than this are not key files.
const MAX_IDENTITY_FILE_BYTES: u64 = 1 << 20;
/// Passphrase attempts per key.
const PASSPHRASE_ATTEMPTS: usize = 3;
/// The default identities, in agenix's order.
const DEFAULT_KEYS: [&str; 2] = ["id_rsa", "id_ed25519"];

/// Why one file could not be loaded.
enum LoadFailure {
    Missing,
    Unusable(IdentityProblem),
}

impl IdentitySet {
    /// Loads `explicit` identities, or the defaults under `home` when `explicit` is empty.
    /// Returns the set and warnings about skipped default keys.
    pub fn load(
        explicit: &[PathBuf],
        home: Option<&Path>,
    ) -> Result<(Self, Vec<String>), IdentityError> {
        let mut set = IdentitySet::default();
        let mut warnings = Vec::new();
        if !explicit.is_empty() {
            for path in explicit {
                match load_file(path) {
                    Ok(id) => set.identities.push(id),
                    Err(LoadFailure::Missing) => {
                        return Err(IdentityError::Invalid {
                            path: path.clone(),
                            reason: IdentityProblem::Missing,
                        })
                    }
                    Err(LoadFailure::Unusable(reason)) => {
                        return Err(IdentityError::Invalid {
                            path: path.clone(),
                            reason,
                        })
                    }
                }
            }
            return Ok((set, warnings));
        }
        if let Some(home) = home {
            for name in DEFAULT_KEYS {
                let path = home.join(".ssh").join(name);
                match load_file(&path) {
                    Ok(id) => set.identities.push(id),
                    Err(LoadFailure::Missing) => {}
                    Err(LoadFailure::Unusable(reason)) => {
                        warnings.push(format!("skipping {}: {reason}", path.display()))
                    }
                }
            }
        }
        Ok((set, warnings))
    }

    /// Loads every readable, valid identity among `paths`, skipping the others with a
    /// warning each (missing, unreadable, empty, invalid): what activation needs.
    pub fn load_lenient(paths: &[PathBuf]) -> (Self, Vec<String>) {
        let mut set = IdentitySet::default();
        let mut warnings = Vec::new();
        for path in paths {
            match load_file(path) {
                Ok(id) => set.identities.push(id),
                Err(LoadFailure::Missing) => {
                    warnings.push(format!("skipping {}: no such file", path.display()))
                }
                Err(LoadFailure::Unusable(reason)) => {
                    warnings.push(format!("skipping {}: {reason}", path.display()))
                }
            }
        }
        (set, warnings)
    }

    /// Unlocks the encrypted keys needed by `headers`, prompting at most once per key;
    /// stops at the first key that cannot be unlocked (see [`IdentitySet::unlock_all`]).
    pub fn unlock_for(
        &mut self,
        headers: &[&Header],
        prompt: &dyn PassphrasePrompt,
    ) -> Result<(), IdentityError> {
        match self.unlock_each(headers, prompt, true).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Unlocks the encrypted keys needed by `headers`, prompting at most once per key, and
    /// returns why each needed key that could not be unlocked failed (no terminal, wrong
    /// passphrase). Those keys stay unusable for the run; files that need only them fail on
    /// their own (see [`IdentitySet::unavailable_for`]) while the others still decrypt.
    ///
    /// A locked key is needed when some header has a stanza with its tag and no stanza for
    /// a key that is already usable (X25519 stanzas are anonymous, so an age identity never
    /// counts as covering a header). A wrong passphrase is asked again, up to 3 attempts;
    /// a key that failed is not asked for again in this run.
    pub fn unlock_all(
        &mut self,
        headers: &[&Header],
        prompt: &dyn PassphrasePrompt,
    ) -> Vec<IdentityError> {
        self.unlock_each(headers, prompt, false)
    }

    fn unlock_each(
        &mut self,
        headers: &[&Header],
        prompt: &dyn PassphrasePrompt,
        stop_at_first: bool,
    ) -> Vec<IdentityError> {
        let mut failures = Vec::new();
        let mut usable: HashSet<String> = self
            .identities
            .iter()
            .filter(|id| matches!(id.key, Key::Ssh(_) | Key::SshEd25519(_)))
            .filter_map(|id| id.tag.clone())
            .collect();
        for id in &mut self.identities {
            if stop_at_first && !failures.is_empty() {
                break;
            }
            let Some(tag) = id.tag.as_deref() else {
                continue;
            };
            let needed = || {
                headers.iter().any(|h| {
                    h.ssh_tags().any(|t| t == tag) && !h.ssh_tags().any(|t| usable.contains(t))
                })
            };
            match &id.key {
                Key::Locked(encrypted) => {
                    if !needed() {
                        continue;
                    }
                    let mut unlocked = None;
                    let mut failure = IdentityError::WrongPassphrase {
                        path: id.path.clone(),
                    };
                    for _ in 0..PASSPHRASE_ATTEMPTS {
                        let Some(passphrase) = prompt.passphrase(&id.path) else {
                            failure = IdentityError::NoTerminal {
                                path: id.path.clone(),
                            };
                            break;
                        };
                        if let Ok(key) = encrypted.decrypt(passphrase) {
                            unlocked = Some(key);
                            break;
                        }
                    }
                    match unlocked {
                        Some(key) => {
                            usable.insert(tag.to_string());
                            id.key = Key::Ssh(age::ssh::Identity::from(key));
                        }
                        None => {
                            failures.push(failure.clone());
                            id.key = Key::Failed(failure);
                        }
                    }
                }
                Key::Failed(e) if needed() => failures.push(e.clone()),
                _ => {}
            }
        }
        failures
    }

    /// Why the keys that `header` names could not be used: the failures recorded by
    /// [`IdentitySet::unlock_all`] for keys with a stanza in `header`.
    pub fn unavailable_for(&self, header: &Header) -> Vec<&IdentityError> {
        self.identities
            .iter()
            .filter_map(|id| match (&id.key, id.tag.as_deref()) {
                (Key::Failed(e), Some(tag)) if header.ssh_tags().any(|t| t == tag) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// A set of post-quantum identities held in memory (`path` names them in messages):
    /// what install-with-secrets proves a generated, not yet written, key with.
    pub fn from_post_quantum(path: &Path, ids: Vec<MlKem768X25519Identity>) -> Self {
        IdentitySet {
            identities: vec![LoadedIdentity {
                path: path.to_path_buf(),
                tag: None,
                kind: IdentityKind::Age,
                key: Key::Native {
                    x25519: Vec::new(),
                    post_quantum: ids,
                    plugins: Vec::new(),
                },
            }],
            plugin_ui: None,
        }
    }

    /// Whether any identity (usable or locked) was loaded.
    pub fn has_any(&self) -> bool {
        !self.identities.is_empty()
    }

    /// The usable (unencrypted or unlocked) identities, for `envelope::decrypt`.
    ///
    /// SSH identities come first: a stanza that is not theirs is skipped by comparing tags,
    /// whereas an X25519 identity pays a Diffie-Hellman for every X25519 stanza it tries.
    pub fn age_identities(&self) -> Vec<&dyn age::Identity> {
        DecryptionKeys::age_identities(self)
    }
}

impl DecryptionKeys for IdentitySet {
    fn age_identities(&self) -> Vec<&dyn age::Identity> {
        let mut out: Vec<&dyn age::Identity> = Vec::with_capacity(self.identities.len());
        for id in &self.identities {
            match &id.key {
                Key::Ssh(k) => out.push(k),
                Key::SshEd25519(k) => out.push(k),
                _ => {}
            }
        }
        for id in &self.identities {
            if let Key::Native {
                x25519,
                post_quantum,
                ..
            } = &id.key
            {
                out.extend(x25519.iter().map(|k| k as &dyn age::Identity));
                out.extend(post_quantum.iter().map(|k| k as &dyn age::Identity));
            }
        }
        // Plugins last: each try starts the plugin, which may ask for a PIN or a touch, so
        // they run only for files no key above could open.
        for id in &self.identities {
            if let Key::Native { plugins, .. } = &id.key {
                out.extend(plugins.iter().map(|k| k as &dyn age::Identity));
            }
        }
        out
    }
}

impl IdentitySet {
    /// Sends what age plugins ask of the user (PINs, touches, confirmations) to `ui`: the
    /// plugin identities of this set, and the plugin recipients of a rekey run with it. Without
    /// a UI, every plugin request fails (the plugin reports that as its error).
    pub fn with_plugin_ui(mut self, ui: Arc<dyn PluginUi>) -> Self {
        for id in &mut self.identities {
            if let Key::Native { plugins, .. } = &mut id.key {
                for p in plugins {
                    p.set_ui(ui.clone());
                }
            }
        }
        self.plugin_ui = Some(ui);
        self
    }

    /// The UI given to [`with_plugin_ui`](Self::with_plugin_ui), if any.
    pub fn plugin_ui(&self) -> Option<&Arc<dyn PluginUi>> {
        self.plugin_ui.as_ref()
    }

    /// SSH tags of every loaded SSH identity, usable or locked.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.identities.iter().filter_map(|id| id.tag.as_deref())
    }
}

/// Reads an identity file into zeroized memory (bounded size; a FIFO given as an identity
/// must not hang the run).
fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, LoadFailure> {
    use crate::fsutil::{read_guarded, GuardedReadError, ReadGuard};
    let guard = ReadGuard {
        limit: Some(MAX_IDENTITY_FILE_BYTES),
        ..ReadGuard::default()
    };
    match read_guarded(path, guard) {
        Ok(read) => Ok(read.bytes),
        Err(GuardedReadError::Open(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(LoadFailure::Missing)
        }
        Err(e) => Err(LoadFailure::Unusable(match e {
            GuardedReadError::Open(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                IdentityProblem::PermissionDenied
            }
            GuardedReadError::Open(e) | GuardedReadError::Read(e) => {
                IdentityProblem::Read(Arc::new(e))
            }
            GuardedReadError::Directory => IdentityProblem::Directory,
            GuardedReadError::Symlink | GuardedReadError::NotRegular => IdentityProblem::NotRegular,
            GuardedReadError::TooLarge { .. } => IdentityProblem::TooLarge,
        })),
    }
}

fn load_file(path: &Path) -> Result<LoadedIdentity, LoadFailure> {
    let bytes = read_secret_file(path)?;
    parse_identity(path, &bytes).map_err(LoadFailure::Unusable)
}

/// Parses the content of an identity file; the error says why (never content).
fn parse_identity(path: &Path, bytes: &[u8]) -> Result<LoadedIdentity, IdentityProblem> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or(IdentityProblem::Empty)?;
    let content = &bytes[start..];
    if content.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        || content.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
    {
        return parse_ssh_identity(path, content);
    }
    if content.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        return Err(IdentityProblem::PassphraseAgeFile);
    }
    if content.starts_with(b"-----BEGIN") {
        return Err(IdentityProblem::UnsupportedFormat);
    }
    let Ok(text) = std::str::from_utf8(content) else {
        return Err(IdentityProblem::NotAKey);
    };
    let first_word = text.split_ascii_whitespace().next().unwrap_or_default();
    if looks_like_ssh_public_key(first_word) {
        return Err(IdentityProblem::PublicKey);
    }
    parse_age_identity_file(path, text)
}

fn looks_like_ssh_public_key(first_word: &str) -> bool {
    first_word.starts_with("ssh-")
        || first_word.starts_with("ecdsa-sha2-")
        || first_word.starts_with("sk-ssh-")
        || first_word.starts_with("sk-ecdsa-")
}

fn parse_ssh_identity(path: &Path, content: &[u8]) -> Result<LoadedIdentity, IdentityProblem> {
    use age::ssh::{Identity, UnsupportedKey};
    let identity = Identity::from_buffer(content, Some(path.display().to_string()))
        .map_err(|_| IdentityProblem::InvalidSsh)?;
    let (key, recipient) = match identity {
        Identity::Unencrypted(_) => {
            let recipient = age::ssh::Recipient::try_from(identity.clone());
            (Key::Ssh(identity), recipient)
        }
        Identity::Encrypted(encrypted) => {
            let recipient = age::ssh::Recipient::try_from(Identity::Encrypted(encrypted.clone()));
            (Key::Locked(encrypted), recipient)
        }
        Identity::Unsupported(unsupported) => {
            return Err(match unsupported {
                UnsupportedKey::EncryptedPem => IdentityProblem::EncryptedPem,
                UnsupportedKey::EncryptedSsh(cipher) => {
                    IdentityProblem::UnsupportedCipher(cipher.to_string())
                }
                UnsupportedKey::Hardware(t) => IdentityProblem::HardwareKey(t.to_string()),
                UnsupportedKey::Type(t) => IdentityProblem::UnsupportedKeyType(Some(t.to_string())),
            });
        }
    };
    let (kind, wire) = match recipient {
        Ok(age::ssh::Recipient::SshEd25519(wire, _)) => (IdentityKind::SshEd25519, wire),
        Ok(age::ssh::Recipient::SshRsa(wire, _)) => (IdentityKind::SshRsa, wire),
        Err(age::ssh::ParseRecipientKeyError::Unsupported(t)) => {
            return Err(IdentityProblem::UnsupportedKeyType(Some(t.to_string())))
        }
        Err(_) => return Err(IdentityProblem::UnsupportedKeyType(None)),
    };
    let key = match key {
        Key::Ssh(_) if kind == IdentityKind::SshEd25519 => match ed25519_seed(content, &wire) {
            Some(seed) => Key::SshEd25519(ssh_ed25519::SshEd25519Identity::new(&wire, &seed)),
            None => key,
        },
        other => other,
    };
    Ok(LoadedIdentity {
        path: path.to_path_buf(),
        tag: Some(ssh_tag(&wire)),
        kind,
        key,
    })
}

/// The Ed25519 seed of an unencrypted OpenSSH key whose public key is `wire` (the age crate
/// does not expose it); `None` sends the key down the age crate's own path.
fn ed25519_seed(content: &[u8], wire: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let key = ssh_key::PrivateKey::from_openssh(content).ok()?;
    let pair = key.key_data().ed25519()?;
    if !wire.ends_with(&pair.public.0) {
        return None;
    }
    Some(Zeroizing::new(pair.private.to_bytes()))
}

fn parse_age_identity_file(path: &Path, text: &str) -> Result<LoadedIdentity, IdentityProblem> {
    let mut identities = Vec::new();
    let mut plugins = Vec::new();
    let mut post_quantum = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-PLUGIN-") {
            match line.parse::<age::plugin::Identity>() {
                Ok(id) => plugins.push(id),
                Err(_) => return Err(IdentityProblem::InvalidPlugin { line: i + 1 }),
            }
            continue;
        }
        if line
            .get(..PQ_IDENTITY_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PQ_IDENTITY_PREFIX))
        {
            let id = MlKem768X25519Identity::parse(line).map_err(|reason| {
                IdentityProblem::InvalidPostQuantum {
                    line: i + 1,
                    reason,
                }
            })?;
            post_quantum.push(id);
            continue;
        }
        match line.parse::<age::x25519::Identity>() {
            Ok(id) => identities.push(id),
            Err(_) => {
                let reason = if line.starts_with("age1") {
                    IdentityProblem::AgeRecipient
                } else if line.starts_with("AGE-SECRET-KEY-") {
                    IdentityProblem::InvalidAge { line: i + 1 }
                } else if identities.is_empty() && plugins.is_empty() && post_quantum.is_empty() {
                    IdentityProblem::NotAKey
                } else {
                    IdentityProblem::NotAgeIdentity { line: i + 1 }
                };
                return Err(reason);
            }
        }
    }
    if identities.is_empty() && plugins.is_empty() && post_quantum.is_empty() {
        return Err(IdentityProblem::OnlyComments);
    }
    Ok(LoadedIdentity {
        path: path.to_path_buf(),
        tag: None,
        kind: IdentityKind::Age,
        key: Key::Native {
            x25519: identities,
            post_quantum,
            plugins: PluginIdentity::group(plugins),
        },
    })
}

#[cfg(test)]
mod tests;
