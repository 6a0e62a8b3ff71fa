//! `edit FILE` / `-e FILE`: create or edit a secret.
//!
//! The plaintext goes to a 0700 directory on tmpfs (file 0600, the secret's basename kept so
//! editors pick the right mode), the editor runs, and the result is encrypted to the rule's
//! recipients and written atomically. Byte-identical content is not re-encrypted. A failing
//! editor leaves the secret untouched. When stdin is not a terminal it becomes the plaintext.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Command;

use zeroize::Zeroizing;

use super::common::refs;
use super::common::{
    cwd, header_of, identities_for, lock_for_writing, read_secret, read_to_end_zeroizing,
    RecipientCache,
};
use super::signals::{CleanupOnSignal, Interrupt};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::EditArgs;
use crate::envelope;
use crate::fsutil::{self, PrivateTempDir};

pub fn run(ctx: &Context, args: &EditArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    let entry = rules.resolve(&args.file, &cwd()?)?;
    let recipients = RecipientCache::for_rules(&rules.path).of(entry)?;
    let armor = entry.rule.as_ref().map(|r| r.armor).unwrap_or(false);
    let path = rules.file_of(&entry.name);
    let shown = path.display().to_string();

    // The current plaintext, when the secret exists (a new secret needs no identity).
    let old: Option<Zeroizing<Vec<u8>>> = if path.exists() {
        let bytes = read_secret(&path)?;
        let header = header_of(&path, &bytes)?;
        let ids = identities_for(ctx, &[&header])?;
        Some(envelope::decrypt(&bytes, &ids).map_err(|e| Error::Failed(format!("{shown}: {e}")))?)
    } else {
        None
    };

    let new = if std::io::stdin().is_terminal() {
        match edit_in_editor(&path, old.as_ref().map(|o| o.as_slice()))? {
            Some(p) => p,
            None => {
                ui::warn(&format!("{shown} wasn't created."));
                return Ok(Outcome::Success);
            }
        }
    } else {
        read_to_end_zeroizing(std::io::stdin().lock())
            .map_err(|e| Error::Failed(format!("cannot read the new plaintext from stdin: {e}")))?
    };

    if old.as_ref().is_some_and(|o| o.as_slice() == new.as_slice()) {
        ui::info(&format!("{shown} wasn't changed, skipping re-encryption."));
        return Ok(Outcome::Success);
    }

    let ciphertext = envelope::encrypt(&new, &refs(&recipients), armor)
        .map_err(|e| Error::Failed(format!("{shown}: {e}")))?;
    // The editor may run for long, so the lock is taken for the write only.
    let lock = lock_for_writing(ctx, &rules.dir, std::slice::from_ref(&path))?;
    fsutil::atomic_write(&path, &ciphertext, 0o644)?;
    drop(lock);
    ctx.verbose(&format!("wrote {shown}"));
    super::gitcheck::warn_untracked(ctx, &path, args.git_add);
    Ok(Outcome::Success)
}

/// Runs `$EDITOR` on the plaintext in a private RAM-backed directory. `None` when the editor
/// left no file (a new secret that was never saved).
fn edit_in_editor(secret: &Path, old: Option<&[u8]>) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let dir = PrivateTempDir::new()?;
    let name = secret.file_name().unwrap_or_else(|| "secret".as_ref());
    let file = dir.path().join(name);
    if let Some(old) = old {
        dir.write_new(name, old, 0o600)?;
    }
    let editor = std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let words = shell_words::split(&editor)
        .map_err(|e| Error::Usage(format!("EDITOR={editor:?} cannot be split into words: {e}")))?;
    let (program, editor_args) = words
        .split_first()
        .ok_or_else(|| Error::Usage("EDITOR is empty".into()))?;

    // While the editor runs, Ctrl-C belongs to it; a terminating signal removes the temp dir.
    let cleanup = CleanupOnSignal::install(
        dir.path(),
        Interrupt::LeaveToChild,
        "interrupted; plaintext removed, secret left untouched",
        1,
    )?;
    let status = Command::new(program)
        .args(editor_args)
        .arg(&file)
        .status()
        .map_err(|e| Error::Failed(format!("cannot run editor {program:?}: {e}")))?;
    drop(cleanup);
    if !status.success() {
        return Err(Error::Failed(format!(
            "editor {program:?} failed ({status}); {} left untouched",
            secret.display()
        )));
    }
    // Through the directory fd: a symlink or another user's file there is refused.
    dir.read_back(name)
        .map_err(|e| Error::Failed(format!("cannot read the edited plaintext: {e}")))
}
