//! The "not tracked by git" warning shared by the verbs that create secrets: a flake only
//! sees tracked files, so an untracked secret silently does not exist for `nixos-rebuild`.

use std::path::Path;

use super::{ui, Context};

/// Warns when `path` is inside a git work tree but not tracked; with `add`, adds it with
/// intent-to-add instead.
pub fn warn_untracked(ctx: &Context, path: &Path, add: bool) {
    match crate::git::is_tracked(path) {
        Ok(Some(true)) | Ok(None) => {}
        Ok(Some(false)) if add => match crate::git::add_intent_to_add(path) {
            Ok(()) => ctx.verbose(&format!("git add --intent-to-add {}", path.display())),
            Err(e) => ui::warn(&format!("cannot git add {}: {e}", path.display())),
        },
        Ok(Some(false)) => ui::warn(&format!(
            "{} is not tracked by git, so a flake will not see it: run `git add {}` (or pass --git-add)",
            path.display(),
            shell_words::quote(&path.to_string_lossy())
        )),
        Err(e) => ctx.verbose(&format!("git check skipped: {e}")),
    }
}
