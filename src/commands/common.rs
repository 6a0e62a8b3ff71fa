//! What the secret verbs (edit, decrypt, rekey) share: identities loaded and unlocked with
//! their warnings rendered, and the write lock taken with its messages. The work itself is
//! in [`crate::secrets`].

use std::path::{Path, PathBuf};

use super::{ui, Context, Error, Result};
use crate::envelope::Header;
use crate::fsutil::{self, WriteLock};
use crate::identity::IdentitySet;
use crate::secrets::{self, IdentityWarning};

fn warn_all(warnings: Vec<IdentityWarning>) {
    for w in warnings {
        ui::warn(&w.to_string());
    }
}

/// Loads `-i` identities or the defaults, printing a warning for each skipped default key
/// and each key others can read.
fn load_identities(ctx: &Context) -> Result<IdentitySet> {
    let home = super::home_dir();
    let (ids, warnings) = secrets::load_identities(&ctx.global.identity, home.as_deref())?;
    warn_all(warnings);
    secrets::require_any(&ids)?;
    Ok(ids.with_plugin_ui(ui::plugin_ui()))
}

/// Takes the write lock on the rules directory `dir` (saying so when it has to wait for
/// another run), then removes the leftover temp files of killed runs beside `targets`. The
/// lock must be held until the new files are renamed into place (see [`WriteLock`]).
pub fn lock_for_writing(ctx: &Context, dir: &Path, targets: &[PathBuf]) -> Result<WriteLock> {
    let (lock, stale) = fsutil::lock_for_writing(dir, targets, || {
        ui::info(&format!(
            "waiting for another agefleet run writing secrets in {}",
            dir.display()
        ))
    })?;
    for p in stale.removed {
        ctx.verbose(&format!(
            "removed {} (left by an interrupted run)",
            p.display()
        ));
    }
    for e in stale.failed {
        ui::warn(&e.to_string());
    }
    Ok(lock)
}

/// Loads identities and unlocks those the given headers need (one prompt per key at most).
pub fn identities_for(ctx: &Context, headers: &[&Header]) -> Result<IdentitySet> {
    let mut ids = load_identities(ctx)?;
    ids.unlock_for(headers, &ui::TerminalPrompt)?;
    Ok(ids)
}

/// Loads identities and unlocks those the given headers need, like [`identities_for`], but a
/// key that cannot be unlocked (no terminal, wrong passphrase) is only warned about: the
/// files that need it fail one by one, the others go on.
pub fn identities_for_each(ctx: &Context, headers: &[&Header]) -> Result<IdentitySet> {
    let mut ids = load_identities(ctx)?;
    warn_all(secrets::unlock_each(&mut ids, headers, &ui::TerminalPrompt));
    Ok(ids)
}

/// The current directory, for resolving command-line names.
pub fn cwd() -> Result<PathBuf> {
    std::env::current_dir()
        .map_err(|e| Error::Failed(format!("cannot read the current directory: {e}")))
}
