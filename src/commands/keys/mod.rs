//! `create-keys`, `copy-keys`, `check-keys`: the fleet's SSH keys.
//!
//! Data (fingerprints, public lines, the `secrets.nix` snippet, the check table, JSON) goes
//! to stdout; what was done and notes go to stderr.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use super::{ui, Error, Outcome, Result};
use crate::keys::{DirAction, KeyError};

mod check_keys;
mod copy_keys;
mod create_keys;

pub use check_keys::run as check;
pub use copy_keys::run as copy;
pub use create_keys::run as create;

pub(super) fn key_error(e: KeyError) -> Error {
    if e.is_refusal() {
        Error::Refused(format!("{e} (use --force to move it to a backup first)"))
    } else {
        Error::Key(e)
    }
}

/// `--ssh-dir`, else `~/.ssh`.
pub(super) fn ssh_dir(arg: Option<&Path>) -> Result<PathBuf> {
    match arg {
        Some(d) if !d.as_os_str().is_empty() => Ok(d.to_path_buf()),
        Some(_) => Err(Error::Usage("--ssh-dir is empty".into())),
        None => super::home_dir()
            .map(|h| h.join(".ssh"))
            .ok_or_else(|| Error::Usage("HOME is not set: pass --ssh-dir".into())),
    }
}

/// A verb's report as pretty-printed JSON on stdout.
pub(super) fn print_json(report: &impl Serialize) -> Result<Outcome> {
    let s = serde_json::to_string_pretty(report).map_err(Error::failed)?;
    ui::out(&s)?;
    Ok(Outcome::Success)
}

pub(super) fn say_dir_action(dir: &Path, action: DirAction, dry_run: bool) {
    match action {
        DirAction::Keep => {}
        DirAction::Create => ui::info(&format!(
            "{} {} (mode 0700)",
            if dry_run { "would create" } else { "created" },
            dir.display()
        )),
        DirAction::Tighten { from } => ui::warn(&format!(
            "{}: mode {from:04o} gives group/other access; {}",
            dir.display(),
            if dry_run {
                "would tighten it to 0700"
            } else {
                "tightened it to 0700"
            }
        )),
    }
}

/// Reads the passphrase: stdin up to the first newline (a trailing CR is dropped).
pub(super) fn read_passphrase_stdin() -> Result<Zeroizing<Vec<u8>>> {
    let all = crate::secrets::read_to_end_zeroizing(std::io::stdin().lock().take(64 * 1024))
        .map_err(|e| Error::Failed(format!("reading the passphrase from stdin: {e}")))?;
    let end = all.iter().position(|&b| b == b'\n').unwrap_or(all.len());
    let mut pass = Zeroizing::new(all[..end].to_vec());
    if pass.last() == Some(&b'\r') {
        pass.pop();
    }
    if pass.is_empty() {
        return Err(Error::Usage(
            "--passphrase-stdin: stdin held no passphrase (an empty passphrase means none)".into(),
        ));
    }
    Ok(pass)
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(super) fn table(header: &[&str; 3], rows: &[[String; 3]]) -> String {
    // Cells hold names from the rules and key comments: control characters escaped.
    let rows: Vec<[String; 3]> = rows
        .iter()
        .map(|r| r.clone().map(|c| ui::printable(&c).into_owned()))
        .collect();
    let rows = &rows[..];
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 3]| {
        let s = format!(
            "{:w0$}  {:w1$}  {}",
            cells[0],
            cells[1],
            cells[2],
            w0 = widths[0],
            w1 = widths[1]
        );
        format!("{}\n", s.trim_end())
    };
    let mut out = line(*header);
    for r in rows {
        out.push_str(&line([&r[0], &r[1], &r[2]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn table_aligns_columns_and_trims_line_ends() {
        let rows = [
            ["id_ed25519".to_string(), "/a".to_string(), "ok".to_string()],
            ["k".to_string(), "/long/path".to_string(), String::new()],
        ];
        assert_eq!(
            table(&["KEY", "PATH", "CHECKS"], &rows),
            "KEY         PATH        CHECKS\n\
             id_ed25519  /a          ok\n\
             k           /long/path\n"
        );
    }
}
