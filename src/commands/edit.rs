//! `edit FILE` / `-e FILE`: create or edit a secret.
//!
//! The plaintext goes to a 0700 directory on tmpfs (file 0600, the secret's basename kept so
//! editors pick the right mode), the editor runs, and the result is encrypted to the rule's
//! recipients and written atomically. Byte-identical content is not re-encrypted unless the
//! file's header disagrees with the rule (so `EDITOR=: agefleet -e x.age`, agenix's way of
//! re-encrypting one file, does that and nothing else). A failing editor leaves the secret
//! untouched. When stdin is not a terminal it becomes the plaintext, except with `EDITOR=:`;
//! an empty stdin does not empty an existing non-empty secret unless `--allow-empty` says so.
//!
//! `$EDITOR` runs through `sh -c` as git runs it (so `:` and `code --wait` work, as in
//! agenix, which expands `$EDITOR` as a command). The secret's parent directories are created
//! before the editor starts (agenix does `mkdir -p`), and removed again when nothing was
//! written. A new secret gets `0666 & ~umask`, as `age -o` gives it; an existing one keeps
//! its mode.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Command;

use zeroize::Zeroizing;

use super::common::{cwd, identities_for, lock_for_writing};
use super::signals::{CleanupOnSignal, Interrupt};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::EditArgs;
use crate::drift;
use crate::envelope;
use crate::fsutil::{self, PrivateTempDir};
use crate::secrets::{self, read_to_end_zeroizing, refs, RecipientCache};

pub fn run(ctx: &Context, args: &EditArgs) -> Result<Outcome> {
    sweep_stale_buffers();
    let rules = ctx.load_rules()?;
    let entry = rules.resolve(&args.file, &cwd()?)?;
    let recipients = RecipientCache::for_rules(&rules.path)
        .with_plugin_ui(Some(&ui::plugin_ui()))
        .of(entry)?;
    let armor = entry.rule.as_ref().map(|r| r.armor).unwrap_or(false);
    let path = rules.file_of(&entry.name);
    let shown = path.display().to_string();
    let editor = editor_command();
    // Refused before anything is typed: a rewrite would replace the link, not its target.
    if let Some(target) = fsutil::symlink_target(&path) {
        return Err(Error::Failed(format!(
            "{shown} is a symlink (to {}); agefleet does not write secrets through symlinks: \
             edit the file it points to",
            target.display()
        )));
    }

    // The current plaintext and header, when the secret exists (a new one needs no identity).
    let old: Option<(Zeroizing<Vec<u8>>, envelope::Header)> =
        if let Some(bytes) = secrets::read_if_present(&path)? {
            let header = secrets::header_of(&path, &bytes)?;
            let ids = identities_for(ctx, &[&header])?;
            let plaintext = secrets::decrypt(&path, &bytes, &header, &ids)?;
            Some((plaintext, header))
        } else {
            None
        };

    // Made before the editor runs, so what is typed can be saved; undone if nothing is.
    let made_dirs = fsutil::create_parent_dirs(&path)?;
    let new = if editor.trim() == ":" {
        // agenix's "no editing": neither an editor nor stdin; the content stays as it is.
        Ok(old.as_ref().map(|(o, _)| Zeroizing::new(o.to_vec())))
    } else if std::io::stdin().is_terminal() {
        edit_in_editor(&path, &editor, old.as_ref().map(|(o, _)| o.as_slice()))
    } else {
        read_to_end_zeroizing(std::io::stdin().lock())
            .map_err(|e| Error::Failed(format!("cannot read the new plaintext from stdin: {e}")))
            .and_then(|typed| {
                // `ssh host agefleet edit …` without -t, cron or CI give an empty stdin:
                // never let that silently empty a secret.
                let emptied = old.as_ref().is_some_and(|(o, _)| !o.is_empty());
                if typed.is_empty() && emptied && !args.allow_empty {
                    return Err(Error::Failed(
                        "standard input was empty; pass --allow-empty to store an empty secret"
                            .into(),
                    ));
                }
                Ok(Some(typed))
            })
    };
    let Some(new) = new.inspect_err(|_| fsutil::remove_empty_dirs(&made_dirs))? else {
        fsutil::remove_empty_dirs(&made_dirs);
        ui::warn(&format!("{shown} wasn't created."));
        return Ok(Outcome::Success);
    };

    if let Some((old, header)) = &old {
        if old.as_slice() == new.as_slice() {
            if !drift::compare(&refs(&recipients), armor, header).any() {
                ui::info(&format!("{shown} wasn't changed, skipping re-encryption."));
                return Ok(Outcome::Success);
            }
            ui::info(&format!(
                "{shown}: content unchanged; re-encrypting to the rule's recipients"
            ));
        }
    }

    let ciphertext = secrets::encrypt(&path, &new, &recipients, armor)?;
    // The editor may run for long, so the lock is taken for the write only.
    let lock = lock_for_writing(ctx, &rules.dir, std::slice::from_ref(&path))?;
    let written = fsutil::atomic_write(&path, &ciphertext, crate::sys::new_file_mode());
    drop(lock);
    if written.is_err() {
        fsutil::remove_empty_dirs(&made_dirs);
    }
    written?;
    ctx.verbose(&format!("wrote {shown}"));
    super::gitcheck::warn_untracked(ctx, &path, args.git_add);
    Ok(Outcome::Success)
}

/// Removes the plaintext buffers an edit of this user left when it was killed (SIGKILL,
/// which no handler sees), and says so once.
fn sweep_stale_buffers() {
    let sweep = fsutil::sweep_stale_private_dirs();
    if !sweep.removed.is_empty() {
        let shown: Vec<String> = sweep
            .removed
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        ui::warn(&format!(
            "removed {} plaintext buffer(s) left by an edit that was killed: {}",
            shown.len(),
            shown.join(", ")
        ));
    }
    for e in sweep.failed {
        ui::warn(&format!("a stale plaintext buffer is left: {e}"));
    }
}

/// `$EDITOR`, or `vi` when it is unset or blank.
fn editor_command() -> String {
    std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// Runs `editor` on the plaintext in a private RAM-backed directory. `None` when the editor
/// left no file (a new secret that was never saved).
fn edit_in_editor(
    secret: &Path,
    editor: &str,
    old: Option<&[u8]>,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let dir = PrivateTempDir::new()?;
    let name = secret.file_name().unwrap_or_else(|| "secret".as_ref());
    let file = dir.path().join(name);
    if let Some(old) = old {
        dir.write_new(name, old, 0o600)?;
    }

    // While the editor runs, Ctrl-C belongs to it; a terminating signal removes the temp dir.
    let cleanup = CleanupOnSignal::install(
        dir.path(),
        Interrupt::LeaveToChild,
        "interrupted; plaintext removed, secret left untouched",
        1,
    )?;
    // As git runs it: the value is shell code (`code --wait`, `:`, a quoted path), and the
    // file is passed as "$1", never pasted into that code.
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(editor)
        .arg(&file)
        .status()
        .map_err(|e| Error::Failed(format!("cannot run /bin/sh for the editor: {e}")));
    let outcome = match status {
        Err(e) => Err(e),
        Ok(status) if !status.success() => Err(Error::Failed(format!(
            "editor {editor:?} failed ({status}); {} left untouched",
            secret.display()
        ))),
        // Through the directory fd: a symlink or another user's file there is refused.
        Ok(_) => dir
            .read_back(name)
            .map_err(|e| Error::Failed(format!("cannot read the edited plaintext: {e}"))),
    };
    // The plaintext directory goes first, while the signal guard still stands: a signal that
    // comes late (the hangup of a terminal whose shell the same signal killed) still finds
    // the cleanup in place instead of ending the process before the directory is removed.
    drop(dir);
    drop(cleanup);
    outcome
}
