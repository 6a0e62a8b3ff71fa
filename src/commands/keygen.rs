//! `keygen [--pq] [-o FILE]` / `keygen -y FILE`: age identities, as age-keygen makes them.
//! With `-o` the identity goes to a new 0600 file (never replacing one: exit 3) and the
//! recipient to stdout; without it the identity file text goes to stdout and the recipient
//! to stderr. `-y` prints the recipients of an identity file, one a line.

use std::io::Write;
use std::time::SystemTime;

use super::{ui, Error, Outcome, Result};
use crate::cli::KeygenArgs;
use crate::keys::age_identity::{self, AgeKeyKind};

pub fn run(args: &KeygenArgs) -> Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let write_failed =
        |e: std::io::Error| Error::Failed(format!("writing to standard output: {e}"));
    if let Some(path) = &args.recipients_of {
        let recipients = age_identity::recipients_of(path).map_err(Error::failed)?;
        for r in recipients {
            writeln!(out, "{r}").map_err(write_failed)?;
        }
        return out.flush().map_err(write_failed).map(|()| Outcome::Success);
    }
    let kind = if args.pq {
        AgeKeyKind::PostQuantum
    } else {
        AgeKeyKind::X25519
    };
    let id = age_identity::generate(kind, SystemTime::now());
    match &args.output {
        Some(path) => {
            age_identity::write_new(path, &id).map_err(|e| {
                if e.is_refusal() {
                    Error::Refused(e.to_string())
                } else {
                    Error::failed(e)
                }
            })?;
            writeln!(out, "{}", id.recipient).map_err(write_failed)?;
        }
        None => {
            out.write_all(id.file_text.as_bytes())
                .map_err(write_failed)?;
            ui::info(&format!("Public key: {}", id.recipient));
        }
    }
    out.flush().map_err(write_failed)?;
    Ok(Outcome::Success)
}
