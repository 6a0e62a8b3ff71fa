//! The age ASCII armor (RFC 7468 style): detection and decoding.
//!
//! Tolerant exactly where age's reference implementation is (whitespace before and after the
//! armor, CRLF line endings), strict everywhere else: the marker lines exactly as written, no
//! whitespace at the end of any line, 64-column base64 lines with only the last one short,
//! canonical padding (the CCTV `armor_*` vectors), so a damaged armor is reported rather than
//! guessed at.

use base64::prelude::{Engine, BASE64_STANDARD};

pub(crate) const BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
pub(crate) const END: &[u8] = b"-----END AGE ENCRYPTED FILE-----";
const COLUMNS: usize = 64;

/// What starts a PEM-style boundary line: input starting so (after whitespace) is meant as
/// armor, and a wrong marker (`BEGIN age …`, `BEGIN AGE ENCRYPTED MESSAGE`, `----- BEGIN`) is
/// an armor error rather than "not an age file".
const BOUNDARY: &[u8] = b"-----";
/// Longest boundary line waited for before deciding what a file is.
const MAX_BOUNDARY_LINE: usize = 128;
/// How far into a file a begin marker after other text is still looked for, to report
/// "text before the armor" instead of "not an age file".
const LEADING_GARBAGE_WINDOW: usize = 1024;

/// Where the armor begins, if `bytes` is armored (after leading whitespace).
pub(crate) enum Detected {
    Armored(usize),
    Binary,
    /// Only whitespace and a prefix of a boundary line so far; more input could decide.
    Undecided,
    /// Text that is not an age header, followed by the armor begin marker.
    TextBeforeArmor,
}

pub(crate) fn detect(bytes: &[u8]) -> Detected {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let rest = &bytes[start..];
    if rest.starts_with(BOUNDARY) {
        // A boundary line that mentions age (in any case) is meant as age armor; another
        // PEM file (an OpenSSH private key, say) is simply not an age file.
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        if line.len() == rest.len() && line.len() < MAX_BOUNDARY_LINE {
            Detected::Undecided
        } else if line.to_ascii_lowercase().windows(3).any(|w| w == b"age") {
            Detected::Armored(start)
        } else {
            Detected::Binary
        }
    } else if BOUNDARY.starts_with(rest) {
        Detected::Undecided
    } else if !rest.starts_with(b"age-encryption.org/")
        && rest[..rest.len().min(LEADING_GARBAGE_WINDOW)]
            .windows(BEGIN.len())
            .any(|w| w == BEGIN)
    {
        Detected::TextBeforeArmor
    } else {
        Detected::Binary
    }
}

/// What is wrong with an ASCII armor. The text names the line, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArmorError {
    /// Text that is not an age header comes before the begin marker.
    #[error("text before the armor BEGIN marker")]
    TextBeforeBegin,
    /// The begin marker line goes on after the marker.
    #[error("text after the armor BEGIN marker")]
    TextAfterBegin,
    /// The first line is a boundary line, but not age's begin marker.
    #[error("not an age armor BEGIN marker")]
    NotBegin,
    /// The input ends before the end marker.
    #[error("armor ends without its END marker")]
    MissingEnd,
    /// More base64 follows the final (short or padded) line.
    #[error("armor line {line}: data after the final (short) base64 line")]
    DataAfterFinalLine {
        /// 1-based line number, counting the begin marker.
        line: usize,
    },
    /// An empty line inside the armor.
    #[error("armor line {line}: empty line")]
    EmptyLine {
        /// 1-based line number, counting the begin marker.
        line: usize,
    },
    /// A base64 line longer than 64 columns.
    #[error("armor line {line}: line longer than 64 columns")]
    LineTooLong {
        /// 1-based line number, counting the begin marker.
        line: usize,
    },
    /// A base64 line whose length is not a multiple of 4.
    #[error("armor line {line}: base64 line with missing padding")]
    MissingPadding {
        /// 1-based line number, counting the begin marker.
        line: usize,
    },
    /// A line that is not canonical base64.
    #[error("armor line {line}: invalid base64")]
    InvalidBase64 {
        /// 1-based line number, counting the begin marker.
        line: usize,
    },
    /// Something other than whitespace follows the end marker.
    #[error("data after the armor END marker")]
    DataAfterEnd,
}

/// Why one step of decoding stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StepError {
    /// The input ends before the armor does (and more input may follow).
    Incomplete,
    /// The armor is malformed.
    Malformed(ArmorError),
}

/// What one step of decoding produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A body line was decoded and appended.
    Data,
    /// The end marker was reached.
    End,
}

/// Incremental decoder over armored input starting at the begin marker.
pub(crate) struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    /// Whether `input` is all there is (a missing final newline is then acceptable).
    at_eof: bool,
    began: bool,
    short_line_seen: bool,
    line_no: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(input: &'a [u8], at_eof: bool) -> Self {
        Decoder {
            input,
            pos: 0,
            at_eof,
            began: false,
            short_line_seen: false,
            line_no: 0,
        }
    }

    /// The next line, without its line ending (`\n` or `\r\n`; nothing else is trimmed).
    fn next_line(&mut self) -> Result<&'a [u8], StepError> {
        let rest = &self.input[self.pos..];
        let (line, advance) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], i + 1),
            None if self.at_eof && !rest.is_empty() => (rest, rest.len()),
            None if self.at_eof => return Err(StepError::Malformed(ArmorError::MissingEnd)),
            None => return Err(StepError::Incomplete),
        };
        self.pos += advance;
        self.line_no += 1;
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Decodes the next body line into `out`.
    pub(crate) fn step(&mut self, out: &mut Vec<u8>) -> Result<Step, StepError> {
        if !self.began {
            let line = self.next_line()?;
            if line != BEGIN {
                return Err(StepError::Malformed(if line.starts_with(BEGIN) {
                    ArmorError::TextAfterBegin
                } else {
                    ArmorError::NotBegin
                }));
            }
            self.began = true;
        }
        let line = self.next_line()?;
        if line == END {
            return Ok(Step::End);
        }
        let line_no = self.line_no;
        let malformed = |e| Err(StepError::Malformed(e));
        if self.short_line_seen {
            return malformed(ArmorError::DataAfterFinalLine { line: line_no });
        }
        if line.is_empty() {
            return malformed(ArmorError::EmptyLine { line: line_no });
        }
        if line.len() > COLUMNS {
            return malformed(ArmorError::LineTooLong { line: line_no });
        }
        if line.len() % 4 != 0 {
            return malformed(ArmorError::MissingPadding { line: line_no });
        }
        if line.len() < COLUMNS || line.ends_with(b"=") {
            self.short_line_seen = true;
        }
        let start = out.len();
        out.resize(start + line.len() / 4 * 3, 0);
        match BASE64_STANDARD.decode_slice(line, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(Step::Data)
            }
            Err(_) => {
                out.truncate(start);
                malformed(ArmorError::InvalidBase64 { line: line_no })
            }
        }
    }

    /// After the end marker: only whitespace may follow.
    pub(crate) fn check_trailer(&self) -> Result<(), ArmorError> {
        if self.input[self.pos..]
            .iter()
            .all(|b| b.is_ascii_whitespace())
        {
            Ok(())
        } else {
            Err(ArmorError::DataAfterEnd)
        }
    }
}

/// Decodes a whole armored file (`bytes` starting at the begin marker).
pub(crate) fn decode_all(bytes: &[u8]) -> Result<Vec<u8>, ArmorError> {
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let mut decoder = Decoder::new(bytes, true);
    loop {
        match decoder.step(&mut out) {
            Ok(Step::Data) => {}
            Ok(Step::End) => break,
            Err(StepError::Malformed(e)) => return Err(e),
            // The decoder knows it has the whole input: running out is a missing end.
            Err(StepError::Incomplete) => return Err(ArmorError::MissingEnd),
        }
    }
    decoder.check_trailer()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armor(data: &[u8], eol: &str) -> String {
        let b64 = BASE64_STANDARD.encode(data);
        let mut s = String::from("-----BEGIN AGE ENCRYPTED FILE-----");
        s.push_str(eol);
        for chunk in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap());
            s.push_str(eol);
        }
        s.push_str("-----END AGE ENCRYPTED FILE-----");
        s.push_str(eol);
        s
    }

    #[test]
    fn round_trips_lf_crlf_and_whitespace() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for eol in ["\n", "\r\n"] {
            let a = armor(&data, eol);
            assert_eq!(decode_all(a.as_bytes()).unwrap(), data);
            let padded = format!("\n  \t{a}\n\n  ");
            let Detected::Armored(start) = detect(padded.as_bytes()) else {
                panic!("not detected")
            };
            assert_eq!(decode_all(&padded.as_bytes()[start..]).unwrap(), data);
        }
        // No final newline after END.
        let a = armor(&data, "\n");
        assert_eq!(decode_all(a.trim_end().as_bytes()).unwrap(), data);
    }

    #[test]
    fn rejects_malformed_armor_saying_how() {
        // 100 bytes: two full lines of base64 (lines 2 and 3) and a padded short one (4).
        let data = [7u8; 100];
        let good = armor(&data, "\n");
        let cases = [
            (
                good.replace("-----END AGE ENCRYPTED FILE-----\n", ""),
                ArmorError::MissingEnd,
            ),
            (format!("{good}trailing"), ArmorError::DataAfterEnd),
            (good.replacen("AGE", "*GE", 1), ArmorError::NotBegin),
            (
                good.replace("FILE-----\n", "FILE----- x\n"),
                ArmorError::TextAfterBegin,
            ),
            (
                good.replacen("-----\n", "-----\n\n", 1),
                ArmorError::EmptyLine { line: 2 },
            ),
            (
                good.replacen("BwcH", "Bwc*", 1),
                ArmorError::InvalidBase64 { line: 2 },
            ),
            // The first line break dropped: lines 2 and 3 as one.
            (
                good.replacen(&good[36..100], &good[36..99], 1),
                ArmorError::LineTooLong { line: 2 },
            ),
            (
                good.replace("Bw==", "Bw="),
                ArmorError::MissingPadding { line: 4 },
            ),
            (
                good.replace("Bw==\n", "Bw==\nBwcH\n"),
                ArmorError::DataAfterFinalLine { line: 5 },
            ),
        ];
        for (c, expected) in &cases {
            assert_eq!(decode_all(c.as_bytes()).as_ref(), Err(expected), "{c:?}");
        }
        assert_eq!(
            ArmorError::InvalidBase64 { line: 2 }.to_string(),
            "armor line 2: invalid base64"
        );
    }

    #[test]
    fn detection() {
        assert!(matches!(detect(b""), Detected::Undecided));
        assert!(matches!(detect(b"  -----BEGIN AGE"), Detected::Undecided));
        assert!(matches!(
            detect(b"-----BEGIN age ENCRYPTED FILE-----\n"),
            Detected::Armored(0)
        ));
        assert!(matches!(
            detect(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"),
            Detected::Binary
        ));
        assert!(matches!(
            detect(b"garbage\n-----BEGIN AGE ENCRYPTED FILE-----\n"),
            Detected::TextBeforeArmor
        ));
        assert!(matches!(
            detect(b"age-encryption.org/v1\n"),
            Detected::Binary
        ));
        assert!(matches!(
            detect(b"-----BEGIN AGE ENCRYPTED FILE-----\n"),
            Detected::Armored(0)
        ));
    }
}
