//! `decrypt FILE` / `-d FILE`: the plaintext's raw bytes to stdout (or `--output`, created
//! 0600 and never over an existing file).
//!
//! The file is found through the rules when they name it (so it works from any directory with
//! `--rules`); a file the rules do not name is still decrypted from the path given, because
//! decrypting needs only an identity. A missing file is an error (agenix exits 0 there).

use std::path::PathBuf;

use super::common::{cwd, identities_for};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::DecryptArgs;
use crate::secrets;

pub fn run(ctx: &Context, args: &DecryptArgs) -> Result<Outcome> {
    let path = locate(ctx, &args.file)?;
    let bytes = secrets::read_existing(&path)?;
    let header = secrets::header_of(&path, &bytes)?;
    let ids = identities_for(ctx, &[&header])?;
    let plaintext = secrets::decrypt(&path, &bytes, &header, &ids)?;
    match &args.output {
        Some(out) => match secrets::write_plaintext_new(out, &plaintext) {
            Ok(()) => {}
            Err(e @ secrets::WriteNewError::Exists { .. }) => {
                return Err(Error::Refused(e.to_string()))
            }
            Err(secrets::WriteNewError::Fs(e)) => return Err(e.into()),
            // A refusal the library may add later is still a refusal: nothing was written.
            Err(e) => return Err(Error::Refused(e.to_string())),
        },
        None => ui::out_bytes(&plaintext)?,
    }
    Ok(Outcome::Success)
}

/// The file to decrypt: the rule's file when the rules name the argument, else the argument
/// as a path.
fn locate(ctx: &Context, arg: &std::path::Path) -> Result<PathBuf> {
    if !ctx.rules_given() && !ctx.rules_path().exists() {
        return Ok(arg.to_path_buf());
    }
    match ctx.load_rules() {
        Ok(rules) => match rules.resolve(arg, &cwd()?) {
            Ok(entry) => Ok(rules.file_of(&entry.name)),
            Err(e) => {
                ctx.verbose(&e.to_string());
                Ok(arg.to_path_buf())
            }
        },
        Err(e) => {
            ui::warn(&format!("ignoring the rules file: {e}"));
            Ok(arg.to_path_buf())
        }
    }
}
