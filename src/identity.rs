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

use std::path::{Path, PathBuf};

use crate::envelope::Header;

/// Asks the operator for a passphrase. Implemented by the commands layer (terminal) and by
/// tests. Returns `None` when no terminal is available.
pub trait PassphrasePrompt: Sync {
    fn passphrase(&self, key_path: &Path) -> Option<age::secrecy::SecretString>;
}

/// A loaded identity file.
pub struct LoadedIdentity {
    pub path: PathBuf,
    /// SSH stanza tag of the key (None for age X25519 identity files).
    pub tag: Option<String>,
    // implementation fields
}

/// All identities of a run.
#[derive(Default)]
pub struct IdentitySet {
    pub identities: Vec<LoadedIdentity>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: passphrase-protected key and no terminal to ask for its passphrase")]
    NoTerminal { path: PathBuf },
    #[error("{path}: wrong passphrase")]
    WrongPassphrase { path: PathBuf },
}

impl IdentitySet {
    /// Loads `explicit` identities, or the defaults under `home` when `explicit` is empty.
    /// Returns the set and warnings about skipped default keys.
    pub fn load(
        explicit: &[PathBuf],
        home: Option<&Path>,
    ) -> Result<(Self, Vec<String>), IdentityError> {
        let _ = (explicit, home);
        unimplemented!("identity::load: implemented by the crypto work")
    }

    /// Unlocks the encrypted keys needed by `headers`, prompting at most once per key.
    pub fn unlock_for(
        &mut self,
        headers: &[&Header],
        prompt: &dyn PassphrasePrompt,
    ) -> Result<(), IdentityError> {
        let _ = (headers, prompt);
        unimplemented!("identity::unlock_for: implemented by the crypto work")
    }

    /// Whether any identity (usable or locked) was loaded.
    pub fn has_any(&self) -> bool {
        !self.identities.is_empty()
    }

    /// The usable (unencrypted or unlocked) identities, for `envelope::decrypt`.
    pub fn age_identities(&self) -> Vec<&dyn age::Identity> {
        unimplemented!("identity::age_identities: implemented by the crypto work")
    }
}
