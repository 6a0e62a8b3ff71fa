//! What the secret verbs (edit, decrypt, rekey) share: identity loading with warnings, a
//! rule's recipients, and reading a secret file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{ui, Context, Error, Result};
use crate::envelope::Header;
use crate::fsutil::{self, WriteLock};
use crate::identity::IdentitySet;
use crate::recipient::Recipient;
use crate::rules::RuleEntry;
use zeroize::Zeroizing;

/// Loads `-i` identities or the defaults, printing a warning for each skipped default key.
pub fn load_identities(ctx: &Context) -> Result<IdentitySet> {
    let home = super::home_dir();
    let (ids, warnings) = IdentitySet::load(&ctx.global.identity, home.as_deref())?;
    for w in warnings {
        ui::warn(&w);
    }
    // Like age and agenix, a private key readable by others is still used (ssh would refuse
    // it); the user is told, since anyone who could read it can decrypt these secrets.
    for id in &ids.identities {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&id.path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                ui::warn(&format!(
                    "{}: private key is accessible by group or others (mode {mode:04o}); \
                     `chmod 600` it",
                    id.path.display()
                ));
            }
        }
    }
    Ok(ids)
}

/// Takes the write lock on the rules directory `dir` (saying so when it has to wait for
/// another run), then removes the leftover temp files of killed runs beside `targets`. The
/// lock must be held until the new files are renamed into place (see [`WriteLock`]).
pub fn lock_for_writing(ctx: &Context, dir: &Path, targets: &[PathBuf]) -> Result<WriteLock> {
    let lock = match WriteLock::try_acquire(dir)? {
        Some(l) => l,
        None => {
            ui::info(&format!(
                "waiting for another agefleet run writing secrets in {}",
                dir.display()
            ));
            WriteLock::acquire(dir)?
        }
    };
    let (removed, failed) = fsutil::remove_stale_temps(targets, &lock);
    for p in removed {
        ctx.verbose(&format!(
            "removed {} (left by an interrupted run)",
            p.display()
        ));
    }
    for e in failed {
        ui::warn(&e.to_string());
    }
    Ok(lock)
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

/// Loads identities and unlocks those the given headers need, like [`identities_for`], but a
/// key that cannot be unlocked (no terminal, wrong passphrase) is only warned about: the
/// files that need it fail one by one ([`decrypt_error`] says why), the others go on.
pub fn identities_for_each(ctx: &Context, headers: &[&Header]) -> Result<IdentitySet> {
    let mut ids = load_identities(ctx)?;
    if !ids.has_any() {
        return Err(Error::Failed(
            "no identity to decrypt with: pass -i KEY, or create ~/.ssh/id_ed25519 or ~/.ssh/id_rsa"
                .into(),
        ));
    }
    for failure in ids.unlock_all(headers, &ui::TerminalPrompt) {
        ui::warn(&format!(
            "{failure}; files that need this key are not decrypted"
        ));
    }
    Ok(ids)
}

/// One line for a failed decryption of `shown`: when no identity matched and a key this
/// header names could not be unlocked, that key and why.
pub fn decrypt_error(
    shown: &str,
    header: &Header,
    ids: &IdentitySet,
    e: &crate::envelope::EnvelopeError,
) -> String {
    let unavailable = ids.unavailable_for(header);
    match (e, unavailable.first()) {
        (crate::envelope::EnvelopeError::NoMatchingIdentity, Some(why)) => {
            format!("{shown}: cannot decrypt: {why}")
        }
        _ => format!("{shown}: {e}"),
    }
}

/// Parsed recipients, shared across rules: fleets list the same few keys in every rule, so
/// each distinct key string is parsed once per run.
#[derive(Default)]
pub struct RecipientCache {
    parsed: Mutex<HashMap<String, std::result::Result<Arc<Recipient>, String>>>,
    /// The rules file the keys come from, named in errors.
    rules_file: Option<std::path::PathBuf>,
}

impl RecipientCache {
    /// A cache whose errors name `rules_file` (where the bad key is written).
    pub fn for_rules(rules_file: &Path) -> Self {
        RecipientCache {
            rules_file: Some(rules_file.to_path_buf()),
            ..Self::default()
        }
    }

    /// `secret "name"`, prefixed with the rules file when known.
    fn which(&self, name: &str) -> String {
        match &self.rules_file {
            Some(f) => format!("{}: secret {name:?}", f.display()),
            None => format!("secret {name:?}"),
        }
    }

    /// The recipients of the secret `name`; one line naming the secret and key if any is bad.
    pub fn parse_all(
        &self,
        name: &str,
        keys: &[String],
    ) -> std::result::Result<Vec<Arc<Recipient>>, String> {
        if keys.is_empty() {
            return Err(format!(
                "{}: publicKeys is empty: nobody could decrypt it",
                self.which(name)
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
                parsed.map_err(|e| format!("{}: {e}", self.which(name)))
            })
            .collect()
    }

    /// The recipients to encrypt a rule entry to; the entry's error if it is bad, or if it
    /// says `pq = true` and lists a classical recipient.
    pub fn of(&self, entry: &RuleEntry) -> Result<Vec<Arc<Recipient>>> {
        let rule = entry.rule.as_ref().map_err(Error::failed)?;
        let recipients = self
            .parse_all(&entry.name, &rule.public_keys)
            .map_err(Error::Failed)?;
        crate::policy::check(rule.pq, &refs(&recipients))
            .map_err(|e| Error::Failed(format!("{}: {e}", self.which(&entry.name))))?;
        Ok(recipients)
    }
}

/// Reads a secret file, naming it in the error.
pub fn read_secret(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_regular(path).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
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

/// Borrowed views of shared recipients, as `envelope` and `drift` take them.
pub fn refs(recipients: &[Arc<Recipient>]) -> Vec<&Recipient> {
    recipients.iter().map(|r| r.as_ref()).collect()
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
}
