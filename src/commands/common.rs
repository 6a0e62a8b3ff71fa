//! What the secret verbs (edit, decrypt, rekey) share: identity loading with warnings, a
//! rule's recipients, and reading a secret file.

use std::path::Path;

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

/// The parsed recipients of a rule entry; the entry's error if it is bad.
pub fn recipients_of(entry: &RuleEntry) -> Result<Vec<Recipient>> {
    let rule = entry.rule.as_ref().map_err(Error::failed)?;
    if rule.public_keys.is_empty() {
        return Err(Error::Failed(format!(
            "secret {:?}: publicKeys is empty: nobody could decrypt it",
            entry.name
        )));
    }
    rule.public_keys
        .iter()
        .map(|k| {
            Recipient::parse(k).map_err(|e| Error::Failed(format!("secret {:?}: {e}", entry.name)))
        })
        .collect()
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
    std::env::current_dir().map_err(|e| Error::Failed(format!("cannot read the current directory: {e}")))
}
