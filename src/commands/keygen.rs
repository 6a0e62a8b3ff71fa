//! `keygen [--pq] [-o FILE]` / `keygen -y FILE`: age identities, as age-keygen makes them.
//! With `-o` the identity goes to a new 0600 file (never replacing one: exit 3) and the
//! recipient to stdout; without it the identity file text goes to stdout and the recipient
//! to stderr. `-y` prints the recipients of an identity file, one a line.

use std::time::SystemTime;

use super::{ui, Error, Outcome, Result};
use crate::cli::KeygenArgs;
use crate::keys::age_identity::{self, AgeKeyKind};

pub fn run(args: &KeygenArgs) -> Result<Outcome> {
    if let Some(path) = &args.recipients_of {
        let recipients = age_identity::recipients_of(path)?;
        let lines: String = recipients.iter().map(|r| format!("{r}\n")).collect();
        ui::out_bytes(lines.as_bytes())?;
        return Ok(Outcome::Success);
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
                    Error::Key(e)
                }
            })?;
            ui::out(&id.recipient)?;
        }
        None => {
            // A closed stdout ends the run quietly (exit 0) before the public key is shown.
            ui::out_bytes(id.file_text.as_bytes())?;
            ui::info(&format!("Public key: {}", id.recipient));
        }
    }
    Ok(Outcome::Success)
}
