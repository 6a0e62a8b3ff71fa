//! What the secret verbs (edit, decrypt, rekey) share: identity loading with warnings, a
//! rule's recipients, and reading a secret file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{ui, Context, Error, Result};
use crate::envelope::Header;
use crate::identity::IdentitySet;
use crate::recipient::Recipient;
use crate::rules::RuleEntry;

/// Loads `-i` identities or the defaults, printing a warning for each skipped default key.
pub fn load_identities(ctx: &Context) -> Result<IdentitySet> {
    let home = super::home_dir();
    let (ids, warnings) = IdentitySet::load(&ctx.global.identity, home.as_deref())?;
    for w in warnings {
        ui::warn(&w);
    }
    Ok(ids)
}

/// Loads identities and unlocks those the given headers need (one prompt per key at most).
pub fn identities_for(ctx: &Context, headers: &[&Header]) -> Result<IdentitySet> {
    let mut ids = load_identities(ctx)?;
    if !ids.has_any() {
        return Err(Error::Failed(
            "no identity to decrypt with: pass -i KEY, or create ~/.ssh/id_ed25519 or ~/.ssh/id_rsa"
                .into(),
        ));
    }
    ids.unlock_for(headers, &ui::TerminalPrompt)?;
    Ok(ids)
}

/// Parsed recipients, shared across rules: fleets list the same few keys in every rule, so
/// each distinct key string is parsed once per run.
#[derive(Default)]
pub struct RecipientCache {
    parsed: Mutex<HashMap<String, std::result::Result<Arc<Recipient>, String>>>,
}

impl RecipientCache {
    /// The recipients of the secret `name`; one line naming the secret and key if any is bad.
    pub fn parse_all(
        &self,
        name: &str,
        keys: &[String],
    ) -> std::result::Result<Vec<Arc<Recipient>>, String> {
        if keys.is_empty() {
            return Err(format!(
                "secret {name:?}: publicKeys is empty: nobody could decrypt it"
            ));
        }
        keys.iter()
            .map(|k| {
                let cached = self.parsed.lock().ok().and_then(|m| m.get(k).cloned());
                let parsed = cached.unwrap_or_else(|| {
                    let p = Recipient::parse(k).map(Arc::new).map_err(|e| e.to_string());
                    if let Ok(mut m) = self.parsed.lock() {
                        m.insert(k.clone(), p.clone());
                    }
                    p
                });
                parsed.map_err(|e| format!("secret {name:?}: {e}"))
            })
            .collect()
    }

    /// The recipients of a rule entry; the entry's error if it is bad.
    pub fn of(&self, entry: &RuleEntry) -> Result<Vec<Arc<Recipient>>> {
        let rule = entry.rule.as_ref().map_err(Error::failed)?;
        self.parse_all(&entry.name, &rule.public_keys)
            .map_err(Error::Failed)
    }
}

/// Reads a secret file, naming it in the error.
pub fn read_secret(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
}

/// Parses a secret's header, naming the file in the error.
pub fn header_of(path: &Path, bytes: &[u8]) -> Result<Header> {
    Header::parse(bytes).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
}

/// The current directory, for resolving command-line names.
pub fn cwd() -> Result<std::path::PathBuf> {
    std::env::current_dir()
        .map_err(|e| Error::Failed(format!("cannot read the current directory: {e}")))
}

/// Borrowed views of shared recipients, as `envelope` and `drift` take them.
pub fn refs(recipients: &[Arc<Recipient>]) -> Vec<&Recipient> {
    recipients.iter().map(|r| r.as_ref()).collect()
}
