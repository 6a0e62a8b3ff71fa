//! Parser of the age v1 header (the age crate keeps its own private), binary or armored.
//!
//! Invariants: never panics on any input; looks at no more than [`MAX_HEADER_BYTES`] of
//! (decoded) header and keeps at most [`MAX_STANZAS`] stanzas, so work is bounded whatever
//! the file size.

use super::armor::{self, ArmorError, Detected, StepError};
use super::{Header, StanzaKind};

/// Largest header accepted (a header with hundreds of RSA recipients is far below this).
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Most stanzas accepted in one header.
pub const MAX_STANZAS: usize = 20_000;

const MAGIC: &[u8] = b"age-encryption.org/";
const V1_LINE: &[u8] = b"age-encryption.org/v1";
const STANZA_PREFIX: &[u8] = b"-> ";
const MAC_PREFIX: &[u8] = b"---";
const ENCODED_MAC_LEN: usize = 43;
const BODY_COLUMNS: usize = 64;

/// Why a header could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// More input is needed (only reported when the input is not known to be complete).
    Incomplete,
    /// Not an age file at all (plaintext, empty, another format or version).
    NotAge(String),
    /// An age file, but damaged.
    Corrupt(String),
    /// The ASCII armor is malformed before the header could be read.
    Armor(ArmorError),
}

/// Parses the header at the start of `bytes`, binary or armored. `at_eof` says `bytes` is
/// the whole file; otherwise a header running past the end gives `Incomplete`.
pub(crate) fn parse(bytes: &[u8], at_eof: bool) -> Result<Header, ParseError> {
    match armor::detect(bytes) {
        Detected::Armored(start) => parse_armored(&bytes[start..], at_eof),
        Detected::TextBeforeArmor => Err(ParseError::Armor(ArmorError::TextBeforeBegin)),
        Detected::Undecided if !at_eof => Err(ParseError::Incomplete),
        Detected::Undecided | Detected::Binary => {
            parse_binary(bytes, at_eof).map(|(stanzas, _)| Header {
                armored: false,
                stanzas,
            })
        }
    }
}

fn parse_armored(bytes: &[u8], at_eof: bool) -> Result<Header, ParseError> {
    let mut decoded = Vec::with_capacity(1024);
    let mut decoder = armor::Decoder::new(bytes, at_eof);
    // Try the binary parser each time the decoded prefix doubles: the header is found
    // after decoding little more than itself, with amortised linear work.
    let mut next_attempt = 256;
    loop {
        let ended = match decoder.step(&mut decoded) {
            Ok(armor::Step::Data) => false,
            Ok(armor::Step::End) => true,
            Err(StepError::Incomplete) => return Err(ParseError::Incomplete),
            Err(StepError::Malformed(e)) => {
                // A damaged armor after a complete header still has a readable header;
                // decrypting will report the damage.
                return match parse_binary(&decoded, true) {
                    Ok((stanzas, _)) => Ok(Header {
                        armored: true,
                        stanzas,
                    }),
                    Err(_) => Err(ParseError::Armor(e)),
                };
            }
        };
        if ended || decoded.len() >= next_attempt {
            match parse_binary(&decoded, ended) {
                Ok((stanzas, _)) => {
                    return Ok(Header {
                        armored: true,
                        stanzas,
                    })
                }
                Err(ParseError::Incomplete) if !ended => {
                    next_attempt = decoded.len().saturating_mul(2);
                }
                Err(ParseError::NotAge(m)) => {
                    return Err(ParseError::Corrupt(format!("armored data: {m}")))
                }
                Err(ParseError::Incomplete) => {
                    return Err(ParseError::Corrupt("truncated header".into()))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Splits the next `\n`-terminated line off `bytes[pos..]`.
fn line_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(pos..)?;
    let i = rest.iter().position(|&b| b == b'\n')?;
    Some((&rest[..i], pos + i + 1))
}

fn is_base64_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

/// Whether `s` is canonical unpadded base64 by length and trailing bits (chars checked
/// separately).
fn canonical_unpadded_tail(s: &[u8]) -> bool {
    let Some(&last) = s.last() else {
        return true;
    };
    match s.len() % 4 {
        0 => true,
        1 => false,
        // The last character carries 4 (resp. 2) unused bits, which must be zero.
        2 => matches!(last, b'A' | b'Q' | b'g' | b'w'),
        _ => b"AEIMQUYcgkosw048".contains(&last),
    }
}

fn is_arbitrary_string(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| (33..=126).contains(&c))
}

/// Parses a binary v1 header; returns the stanzas and the header length in bytes.
pub(crate) fn parse_binary(
    bytes: &[u8],
    at_eof: bool,
) -> Result<(Vec<StanzaKind>, usize), ParseError> {
    let window = &bytes[..bytes.len().min(MAX_HEADER_BYTES)];
    let capped = window.len() < bytes.len();
    match parse_window(window) {
        Err(ParseError::Incomplete) if capped => Err(ParseError::Corrupt(format!(
            "header larger than {} KiB",
            MAX_HEADER_BYTES / 1024
        ))),
        Err(ParseError::Incomplete) if at_eof => {
            if bytes.is_empty() {
                Err(ParseError::NotAge("empty file".into()))
            } else if !bytes.starts_with(MAGIC) {
                Err(ParseError::NotAge("no age header".into()))
            } else {
                Err(ParseError::Corrupt("truncated header".into()))
            }
        }
        other => other,
    }
}

fn parse_window(bytes: &[u8]) -> Result<(Vec<StanzaKind>, usize), ParseError> {
    use ParseError::{Corrupt, Incomplete, NotAge};

    if !bytes.starts_with(MAGIC) {
        return if MAGIC.starts_with(bytes) {
            Err(Incomplete)
        } else {
            Err(NotAge("no age header".into()))
        };
    }
    let (version, mut pos) = line_at(bytes, 0).ok_or(Incomplete)?;
    if version != V1_LINE {
        return Err(NotAge("unsupported age format version".into()));
    }

    let mut stanzas = Vec::new();
    let mut line_no = 1usize;
    loop {
        let (line, next) = line_at(bytes, pos).ok_or(Incomplete)?;
        line_no += 1;
        if let Some(args) = line.strip_prefix(STANZA_PREFIX) {
            if stanzas.len() >= MAX_STANZAS {
                return Err(Corrupt(format!(
                    "more than {MAX_STANZAS} recipient stanzas"
                )));
            }
            let mut fields = args.split(|&b| b == b' ');
            let kind = fields.next().unwrap_or_default();
            if !is_arbitrary_string(kind) {
                return Err(Corrupt(format!("header line {line_no}: malformed stanza")));
            }
            let first_arg = fields.next();
            for arg in first_arg.iter().copied().chain(fields) {
                if !is_arbitrary_string(arg) {
                    return Err(Corrupt(format!("header line {line_no}: malformed stanza")));
                }
            }
            pos = next;
            // Body: full 64-column lines, then one shorter (possibly empty) line. The spec
            // (C2SP age, and Go's age) requires that final short line: a stanza or MAC line
            // right after a full body line (or after the arguments) is a header error, not
            // the end of the body (CCTV `stanza_missing_body`, `stanza_missing_final_line`).
            loop {
                let (body, after) = line_at(bytes, pos).ok_or(Incomplete)?;
                line_no += 1;
                pos = after;
                if !body.iter().all(|&c| is_base64_char(c)) {
                    return Err(Corrupt(format!(
                        "header line {line_no}: invalid base64 in stanza body"
                    )));
                }
                match body.len() {
                    BODY_COLUMNS => continue,
                    n if n > BODY_COLUMNS => {
                        return Err(Corrupt(format!(
                            "header line {line_no}: stanza body line longer than 64 columns"
                        )))
                    }
                    _ if !canonical_unpadded_tail(body) => {
                        return Err(Corrupt(format!(
                            "header line {line_no}: invalid base64 in stanza body"
                        )))
                    }
                    _ => break,
                }
            }
            let kind_str = String::from_utf8_lossy(kind);
            let tag = || match first_arg {
                Some(t) => Ok(String::from_utf8_lossy(t).into_owned()),
                None => Err(Corrupt(format!("{kind_str} stanza without a key tag"))),
            };
            stanzas.push(match kind {
                b"ssh-ed25519" => StanzaKind::SshEd25519 { tag: tag()? },
                b"ssh-rsa" => StanzaKind::SshRsa { tag: tag()? },
                b"X25519" => StanzaKind::X25519,
                b"mlkem768x25519" => StanzaKind::MlKem768X25519,
                b"scrypt" => StanzaKind::Scrypt,
                _ => StanzaKind::Other {
                    kind: kind_str.into_owned(),
                },
            });
        } else if let Some(mac) = line.strip_prefix(MAC_PREFIX) {
            let mac = mac.strip_prefix(b" ").unwrap_or_default();
            if mac.len() != ENCODED_MAC_LEN
                || !mac.iter().all(|&c| is_base64_char(c))
                || !canonical_unpadded_tail(mac)
            {
                return Err(Corrupt("malformed header MAC".into()));
            }
            if stanzas.is_empty() {
                return Err(Corrupt("header has no recipient stanzas".into()));
            }
            return Ok((stanzas, next));
        } else {
            return Err(Corrupt(format!(
                "header line {line_no}: expected a recipient stanza or the MAC"
            )));
        }
    }
}
