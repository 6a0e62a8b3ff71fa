//! The host's post-quantum identity for `install-with-secrets --pq-key FILE|generate`: an
//! `AGE-SECRET-KEY-PQ-1…` identity placed at `<root>/etc/ssh/id_mlkem768x25519_agenix`
//! (0600) for `age.identityPaths`. Preflight proves it: every secret whose rule lists its
//! recipient must decrypt with it (post-quantum stanzas have no tag to compare).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{HostKeySource, InstallError, SecretsCheck};
use crate::identity::{IdentitySet, MlKem768X25519Identity};
use crate::rules::Rules;

/// Identity files larger than this are not identity files.
const MAX_FILE: u64 = 64 * 1024;

/// The host's post-quantum identity.
pub struct PqHostIdentity {
    identity: MlKem768X25519Identity,
    /// `age1pq1…`.
    pub recipient: String,
    /// Given, generated now or generated earlier.
    pub source: HostKeySource,
    /// The file it was read from or kept in (None for a dry-run generation).
    pub path: Option<PathBuf>,
}

impl PqHostIdentity {
    /// Reads the first post-quantum identity of an age identity file.
    pub fn load(path: &Path) -> Result<Self, InstallError> {
        let bytes = Zeroizing::new(
            crate::fsutil::read_regular(path)
                .map_err(|e| InstallError::io(path, "cannot read the PQ key: ", e))?,
        );
        Self::parse(path, &bytes)
    }

    /// The first post-quantum identity in the identity file `bytes`, read from `path`.
    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, InstallError> {
        if bytes.len() as u64 > MAX_FILE {
            return Err(InstallError::refused(
                path,
                "too large for an identity file",
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| InstallError::refused(path, "not an age identity file"))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| {
                l.get(..18)
                    .is_some_and(|p| p.eq_ignore_ascii_case("AGE-SECRET-KEY-PQ-"))
            })
            .ok_or_else(|| {
                InstallError::refused(path, "holds no AGE-SECRET-KEY-PQ-1… post-quantum identity")
            })?;
        let identity =
            MlKem768X25519Identity::parse(line).map_err(|e| InstallError::refused(path, e))?;
        Ok(PqHostIdentity {
            recipient: identity.recipient(),
            identity,
            source: HostKeySource::File,
            path: Some(path.to_path_buf()),
        })
    }

    /// The identity kept at `path` by an earlier `generate`, or a new one (saved there 0600,
    /// parent dirs 0700, unless `save` is false).
    /// The state directory and the kept identity are checked as [`super::KeptKey`] says.
    pub fn generate_or_reuse(path: &Path, save: bool) -> Result<Self, InstallError> {
        let kept = super::KeptKey::open(path, save)?;
        if let Some(bytes) = kept.read()? {
            let mut id = Self::parse(path, &bytes)?;
            id.source = HostKeySource::Reused;
            return Ok(id);
        }
        let mut id = Self::generate();
        if save {
            kept.save(id.file_text().as_bytes())?;
            id.path = Some(path.to_path_buf());
        }
        Ok(id)
    }

    /// A new post-quantum identity, in memory only.
    pub fn generate() -> Self {
        let identity = MlKem768X25519Identity::generate();
        PqHostIdentity {
            recipient: identity.recipient(),
            identity,
            source: HostKeySource::Generated,
            path: None,
        }
    }

    /// The identity file's text, as placed under the root.
    pub(crate) fn file_text(&self) -> Zeroizing<String> {
        let secret = self.identity.to_secret_string();
        let mut text = Zeroizing::new(String::with_capacity(
            self.recipient.len() + secret.len() + 20,
        ));
        for part in [
            "# public key: ",
            &self.recipient,
            "\n",
            secret.as_str(),
            "\n",
        ] {
            text.push_str(part);
        }
        text
    }

    /// Which secrets list this identity's recipient, and which of those it cannot open
    /// (decrypted to memory and dropped at once).
    pub fn check_secrets(&self, rules: &Rules) -> SecretsCheck {
        let ids = IdentitySet::from_post_quantum(
            self.path.as_deref().unwrap_or(Path::new("--pq-key")),
            vec![self.identity.clone()],
        );
        super::check_listed(
            rules,
            |keys| {
                keys.iter().any(|k| {
                    k.split_ascii_whitespace()
                        .next()
                        .is_some_and(|k| k.eq_ignore_ascii_case(&self.recipient))
                })
            },
            |bytes| match crate::envelope::decrypt(bytes, &ids) {
                // The plaintext is zeroized as it drops here.
                Ok(_plaintext) => Ok(true),
                Err(crate::envelope::EnvelopeError::NoMatchingIdentity) => Ok(false),
                Err(e) => Err(e),
            },
        )
    }
}
