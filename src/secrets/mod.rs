//! Operations on secret files that several verbs share (edit, decrypt, rekey, status): a
//! rule's recipients ([`RecipientCache`]), reading a secret and its header, decrypting and
//! encrypting it, and loading identities. Nothing here prints: warnings come back as
//! [`IdentityWarning`] values and failures as typed errors naming the file; the commands
//! render both.
//!
//! The verbs built on these: [`rekey`] (select → plan → execute → report), [`generate`]
//! (generated values, the same steps) and [`status`] (drift between the rules and the files,
//! from headers only).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::envelope::{self, EnvelopeError, Header};
use crate::identity::{IdentityError, IdentitySet, PassphrasePrompt};
use crate::policy::NotPostQuantum;
use crate::recipient::plugin::PluginUi;
use crate::recipient::{Recipient, RecipientError};
use crate::rules::{RuleEntry, RuleError};

pub mod generate;
pub mod rekey;
pub mod status;

pub use crate::fsutil::{lock_for_writing, StaleTemps, WriteLock};

/// Why a rule's recipients cannot be encrypted to. `Display` is one line naming the rules
/// file and the secret (for a bad rule: the rule's own error, which names them).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RuleRecipientsError {
    /// The rule itself is bad (not an attribute set, a wrong type, …).
    #[error("{0}")]
    BadRule(#[from] RuleError),
    /// The rule lists no public key.
    #[error("{which}: publicKeys is empty: nobody could decrypt it")]
    Empty {
        /// `<rules file>: secret "name"`.
        which: String,
    },
    /// A public key of the rule cannot be parsed.
    #[error("{which}: {source}")]
    BadKey {
        /// `<rules file>: secret "name"`.
        which: String,
        /// Why the key is refused.
        source: RecipientError,
    },
    /// The rule says `pq = true` and lists a classical recipient.
    #[error("{which}: {source}")]
    NotPostQuantum {
        /// `<rules file>: secret "name"`.
        which: String,
        /// The first classical recipient.
        source: NotPostQuantum,
    },
}

/// Parsed recipients, shared across rules: fleets list the same few keys in every rule, so
/// each distinct key string is parsed once per run. Safe to share between threads.
#[derive(Default)]
pub struct RecipientCache {
    parsed: Mutex<HashMap<String, Result<Arc<Recipient>, RecipientError>>>,
    /// The rules file the keys come from, named in errors.
    rules_file: Option<PathBuf>,
    /// Where plugin recipients send their requests while encrypting.
    plugin_ui: Option<Arc<dyn PluginUi>>,
}

impl RecipientCache {
    /// A cache whose errors name `rules_file` (where the bad key is written).
    pub fn for_rules(rules_file: &Path) -> Self {
        RecipientCache {
            rules_file: Some(rules_file.to_path_buf()),
            ..Self::default()
        }
    }

    /// Plugin recipients parsed from now on send their requests to `ui` (when given).
    pub fn with_plugin_ui(mut self, ui: Option<&Arc<dyn PluginUi>>) -> Self {
        self.plugin_ui = ui.cloned();
        self
    }

    /// `secret "name"`, prefixed with the rules file when known.
    fn which(&self, name: &str) -> String {
        match &self.rules_file {
            Some(f) => format!("{}: secret {name:?}", f.display()),
            None => format!("secret {name:?}"),
        }
    }

    /// The recipients of the secret `name` (its rule's `keys`); an error naming the secret
    /// and the key if any is bad.
    pub fn parse_all(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<Vec<Arc<Recipient>>, RuleRecipientsError> {
        if keys.is_empty() {
            return Err(RuleRecipientsError::Empty {
                which: self.which(name),
            });
        }
        keys.iter()
            .map(|k| {
                let cached = self.parsed.lock().ok().and_then(|m| m.get(k).cloned());
                let parsed = cached.unwrap_or_else(|| {
                    let p = Recipient::parse(k)
                        .map(|r| match &self.plugin_ui {
                            Some(ui) => r.with_plugin_ui(ui.clone()),
                            None => r,
                        })
                        .map(Arc::new);
                    if let Ok(mut m) = self.parsed.lock() {
                        m.insert(k.clone(), p.clone());
                    }
                    p
                });
                parsed.map_err(|source| RuleRecipientsError::BadKey {
                    which: self.which(name),
                    source,
                })
            })
            .collect()
    }

    /// The recipients to encrypt a rule entry to; the entry's error if it is bad, or if it
    /// says `pq = true` and lists a classical recipient.
    pub fn of(&self, entry: &RuleEntry) -> Result<Vec<Arc<Recipient>>, RuleRecipientsError> {
        let rule = entry.rule.as_ref().map_err(|e| e.clone())?;
        let recipients = self.parse_all(&entry.name, &rule.public_keys)?;
        crate::policy::check(rule.pq, &refs(&recipients)).map_err(|source| {
            RuleRecipientsError::NotPostQuantum {
                which: self.which(&entry.name),
                source,
            }
        })?;
        Ok(recipients)
    }
}

/// Borrowed views of shared recipients, as `envelope` and `drift` take them.
pub fn refs(recipients: &[Arc<Recipient>]) -> Vec<&Recipient> {
    recipients.iter().map(|r| r.as_ref()).collect()
}

/// A secret file that cannot be read, parsed, decrypted or encrypted. `Display` is one line
/// starting with the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file does not exist (nor does a symlink there lead to anything).
    #[error("{}: no such file", path.display())]
    Missing {
        /// The secret file.
        path: PathBuf,
    },
    /// The file cannot be read (or is not a regular file).
    #[error("{}: {source}", path.display())]
    Read {
        /// The secret file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file's age header does not parse.
    #[error("{}: {source}", path.display())]
    Header {
        /// The secret file.
        path: PathBuf,
        /// What is wrong with the header.
        source: Box<EnvelopeError>,
    },
    /// No identity decrypted the file.
    #[error("{}: {source}", path.display())]
    Decrypt {
        /// The secret file.
        path: PathBuf,
        /// Why decryption failed.
        source: Box<EnvelopeError>,
    },
    /// No identity matched, and a key the header names could not be unlocked.
    #[error("{}: cannot decrypt: {why}", path.display())]
    KeyUnavailable {
        /// The secret file.
        path: PathBuf,
        /// Why the key the file needs could not be used.
        why: Box<IdentityError>,
    },
    /// Encrypting the new content failed.
    #[error("{}: {source}", path.display())]
    Encrypt {
        /// The secret file.
        path: PathBuf,
        /// Why encryption failed.
        source: Box<EnvelopeError>,
    },
}

impl SecretError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            SecretError::Missing { .. } => true,
            SecretError::Read { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Reads a secret file (a regular file only), naming it in the error.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    crate::fsutil::read_regular(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// [`read_secret`] of a file that may not exist yet (`edit` of a new secret): `None` when
/// nothing is there.
pub fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, SecretError> {
    match crate::fsutil::read_regular(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes decrypted `plaintext` to a new file `out`, created 0600 and never over anything
/// already there (not even a dangling symlink): [`WriteNewError::Exists`] then.
pub fn write_plaintext_new(out: &Path, plaintext: &[u8]) -> Result<(), WriteNewError> {
    crate::fsutil::write_new_private(out, plaintext, 0o600).map_err(|e| {
        if e.source.kind() == std::io::ErrorKind::AlreadyExists {
            WriteNewError::Exists {
                path: out.to_path_buf(),
            }
        } else {
            WriteNewError::Fs(e)
        }
    })
}

/// Why [`write_plaintext_new`] wrote nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteNewError {
    /// Something is at the path already; it is left alone.
    #[error("{}: already exists; not overwriting", path.display())]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// Creating or writing the file failed.
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),
}

/// [`read_secret`] of a file that must exist: [`SecretError::Missing`] when nothing is there.
pub fn read_existing(path: &Path) -> Result<Vec<u8>, SecretError> {
    if !path.exists() {
        return Err(SecretError::Missing {
            path: path.to_path_buf(),
        });
    }
    read_secret(path)
}

/// Parses a secret's header, naming the file in the error.
pub fn header_of(path: &Path, bytes: &[u8]) -> Result<Header, SecretError> {
    Header::parse(bytes).map_err(|source| header_error(path, source))
}

/// The error for the secret `path` whose header does not parse.
pub(crate) fn header_error(path: &Path, source: EnvelopeError) -> SecretError {
    SecretError::Header {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// Decrypts the secret `path` (its `bytes`, whose parsed `header` is given). When no
/// identity matched and a key this header names could not be unlocked, the error says which
/// key and why.
pub fn decrypt(
    path: &Path,
    bytes: &[u8],
    header: &Header,
    ids: &IdentitySet,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    envelope::decrypt(bytes, ids).map_err(|source| {
        let path = path.to_path_buf();
        match (&source, ids.unavailable_for(header).first()) {
            (EnvelopeError::NoMatchingIdentity, Some(why)) => SecretError::KeyUnavailable {
                path,
                why: Box::new((*why).clone()),
            },
            _ => SecretError::Decrypt {
                path,
                source: Box::new(source),
            },
        }
    })
}

/// Encrypts `plaintext` for the secret `path` to `recipients`, armored when `armor`.
pub fn encrypt(
    path: &Path,
    plaintext: &[u8],
    recipients: &[Arc<Recipient>],
    armor: bool,
) -> Result<Vec<u8>, SecretError> {
    envelope::encrypt(plaintext, &refs(recipients), armor).map_err(|source| SecretError::Encrypt {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// Something about the identities of a run that the user should be told; not a failure.
#[derive(Debug, thiserror::Error)]
pub enum IdentityWarning {
    /// A default key (`~/.ssh/id_*`) that is not usable was skipped.
    #[error("{0}")]
    Skipped(String),
    /// A private key readable by group or others: still used (as age and agenix do; ssh
    /// would refuse it), but anyone who could read it can decrypt these secrets.
    #[error(
        "{}: private key is accessible by group or others (mode {mode:04o}); `chmod 600` it",
        path.display()
    )]
    Accessible {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key some file needs could not be unlocked; the files that need it fail one by one.
    #[error("{0}; files that need this key are not decrypted")]
    Locked(IdentityError),
}

/// There is no identity to decrypt with.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no identity to decrypt with: pass -i KEY, or create ~/.ssh/id_ed25519 or ~/.ssh/id_rsa")]
pub struct NoIdentity;

/// Loads the `explicit` identities (`-i`), or the default SSH keys under `home` when none
/// is given, with a warning for each skipped default key and each key readable by others.
pub fn load_identities(
    explicit: &[PathBuf],
    home: Option<&Path>,
) -> Result<(IdentitySet, Vec<IdentityWarning>), IdentityError> {
    let (ids, skipped) = IdentitySet::load(explicit, home)?;
    let mut warnings: Vec<IdentityWarning> =
        skipped.into_iter().map(IdentityWarning::Skipped).collect();
    for id in &ids.identities {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&id.path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warnings.push(IdentityWarning::Accessible {
                    path: id.path.clone(),
                    mode,
                });
            }
        }
    }
    Ok((ids, warnings))
}

/// [`NoIdentity`] when `ids` holds no identity at all.
pub fn require_any(ids: &IdentitySet) -> Result<(), NoIdentity> {
    if ids.has_any() {
        Ok(())
    } else {
        Err(NoIdentity)
    }
}

/// Unlocks the keys `headers` need (one prompt per key at most); a key that cannot be
/// unlocked is returned as a warning and the files that need it fail on their own.
pub fn unlock_each(
    ids: &mut IdentitySet,
    headers: &[&Header],
    prompt: &dyn PassphrasePrompt,
) -> Vec<IdentityWarning> {
    ids.unlock_all(headers, prompt)
        .into_iter()
        .map(IdentityWarning::Locked)
        .collect()
}

/// Reads all of `reader` into a zeroized buffer. `read_to_end` on a `Zeroizing<Vec>` grows
/// it by reallocation, which frees the outgrown block without clearing it and leaves copies
/// of the secret in freed memory; here each outgrown buffer is zeroized as it is replaced.
pub fn read_to_end_zeroizing(
    mut reader: impl std::io::Read,
) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(8 * 1024));
    loop {
        let len = buf.len();
        if len == buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(len * 2));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let cap = buf.capacity();
        buf.resize(cap, 0);
        match reader.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Ok(n) => buf.truncate(len + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(len),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroizing_reads_return_every_byte_across_growth() {
        for len in [0usize, 1, 8 * 1024, 8 * 1024 + 1, 100_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            // A reader that hands out odd-sized pieces, as pipes do.
            let reader = std::io::Read::chain(&data[..len / 3], &data[len / 3..]);
            assert_eq!(read_to_end_zeroizing(reader).unwrap().as_slice(), &data[..]);
        }
    }

    use crate::keys::age_identity::{self, AgeKeyKind, GeneratedIdentity};
    use crate::rules::{EvalMode, Rules};
    use status::Problem;

    /// A rules directory: `a.age` (rule: alice and bob; file: alice only), `c.age` (rule,
    /// no file), `orphan.age` (file, no rule) and a leftover temp file of `a.age`.
    struct Fixture {
        dir: tempfile::TempDir,
        alice: GeneratedIdentity,
        bob: GeneratedIdentity,
        temp: String,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let gen = || age_identity::generate(AgeKeyKind::X25519, std::time::SystemTime::now());
            let (alice, bob) = (gen(), gen());
            std::fs::write(
                dir.path().join("secrets.nix"),
                format!(
                    "{{ \"a.age\".publicKeys = [ \"{a}\" \"{b}\" ]; \"c.age\".publicKeys = [ \"{a}\" ]; }}\n",
                    a = alice.recipient,
                    b = bob.recipient
                ),
            )
            .unwrap();
            let to_alice = Recipient::parse(&alice.recipient).unwrap();
            let file = envelope::encrypt(b"one", &[&to_alice], false).unwrap();
            std::fs::write(dir.path().join("a.age"), &file).unwrap();
            std::fs::write(dir.path().join("orphan.age"), &file).unwrap();
            let temp = format!(".a.age{}0123456789abcdef", crate::fsutil::TEMP_MARKER);
            std::fs::write(dir.path().join(&temp), b"left by a killed run").unwrap();
            Fixture {
                dir,
                alice,
                bob,
                temp,
            }
        }

        fn rules(&self) -> Rules {
            crate::rules::load(&self.dir.path().join("secrets.nix"), EvalMode::Builtin).unwrap()
        }

        fn identities(&self, who: &GeneratedIdentity, name: &str) -> IdentitySet {
            let path = self.dir.path().join(name);
            age_identity::write_new(&path, who).unwrap();
            let (ids, warnings) = load_identities(&[path], None).unwrap();
            assert!(warnings.is_empty(), "{warnings:?}");
            ids
        }

        fn problems(&self, report: &status::Report) -> Vec<(String, Vec<Problem>)> {
            report
                .entries
                .iter()
                .map(|e| (e.file.clone(), e.problems.clone()))
                .collect()
        }
    }

    /// The library verbs work without the CLI: status finds every problem from headers, and
    /// rekey reports a file it cannot decrypt, then rekeys it with the right key.
    #[test]
    fn status_and_rekey_run_as_a_library() {
        let f = Fixture::new();
        let rules = f.rules();
        let report = status::scan(&rules, &|_| {});
        assert!(report.tracking_error.is_none());
        assert_eq!(
            f.problems(&report),
            [
                (
                    "a.age".into(),
                    vec![Problem::RecipientsDrift, Problem::StaleTemp]
                ),
                ("c.age".into(), vec![Problem::MissingFile]),
                ("orphan.age".into(), vec![Problem::Orphan]),
            ]
        );
        assert_eq!(report.entries[0].stale_temps, std::slice::from_ref(&f.temp));
        assert!(report.has_problems());

        // Bob is a recipient of the rule but not yet of the file: his key cannot rekey it.
        let a = f.dir.path().join("a.age");
        let before = std::fs::read(&a).unwrap();
        let bob = f.identities(&f.bob, "bob.txt");
        let selection = rekey::select(&rules, &[], f.dir.path(), None);
        let (lock, stale) =
            crate::fsutil::lock_for_writing(&rules.dir, &selection.targets(&rules), || {
                panic!("nobody else holds the lock")
            })
            .unwrap();
        assert_eq!(stale.removed, [f.dir.path().join(&f.temp)]);
        let plan = rekey::plan(&rules, selection, true, &lock);
        assert_eq!(plan.len(), 1);
        let report = rekey::execute(plan, &bob, &|_| {}, &lock);
        assert_eq!(
            (report.rekeyed(), report.failed(), report.skipped()),
            (0, 1, 1)
        );
        let failure = report
            .files
            .iter()
            .find_map(|r| match &r.outcome {
                rekey::Outcome::Failed(e) => Some(e.to_string()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            failure,
            format!(
                "{}: no identity matches any recipient of this file",
                a.display()
            )
        );
        assert_eq!(std::fs::read(&a).unwrap(), before, "a failed rekey wrote");

        // Alice's key rekeys it to both; the file is then in line with its rule.
        let alice = f.identities(&f.alice, "alice.txt");
        let selection = rekey::select(&rules, &[], f.dir.path(), None);
        let plan = rekey::plan(&rules, selection, true, &lock);
        let steps = std::sync::Mutex::new(Vec::new());
        let report = rekey::execute(plan, &alice, &|s| steps.lock().unwrap().push(s), &lock);
        drop(lock);
        assert_eq!(
            (report.rekeyed(), report.failed(), report.skipped()),
            (1, 0, 1)
        );
        assert!(!report.none_found());
        assert_eq!(
            steps.into_inner().unwrap(),
            [rekey::Progress::FileDone, rekey::Progress::Committing]
        );
        let bytes = read_secret(&a).unwrap();
        let header = header_of(&a, &bytes).unwrap();
        assert_eq!(&decrypt(&a, &bytes, &header, &bob).unwrap()[..], b"one");
        let report = status::scan(&rules, &|_| {});
        assert_eq!(f.problems(&report)[0], ("a.age".into(), vec![]));
    }

    /// A rule whose key list is empty, or whose key is not a key, is an error naming the
    /// rules file and the secret.
    #[test]
    fn bad_rule_recipients_name_the_rules_file_and_the_secret() {
        let cache = RecipientCache::for_rules(Path::new("/r/secrets.nix"));
        let e = cache.parse_all("x.age", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/r/secrets.nix: secret \"x.age\": publicKeys is empty: nobody could decrypt it"
        );
        let e = cache.parse_all("x.age", &["nonsense".into()]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/r/secrets.nix: secret \"x.age\": invalid public key"),
            "{e}"
        );
    }
}
