//! Making one value of each generator kind, from the OS CSPRNG, into zeroized memory; and
//! deriving the public companion of a value (for `status -i`'s mismatch check).
//!
//! Every buffer that holds a secret is allocated at its final size before it is filled, so
//! no reallocation leaves a copy of it in freed memory.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use rand::{rngs::OsRng, Rng as _, RngCore as _};
use zeroize::Zeroizing;

use crate::keys::age_identity::{self, AgeKeyKind};
use crate::rules::Generator;

/// The most a `command` generator may print: more is a failure, nothing is written.
pub const COMMAND_OUTPUT_LIMIT: usize = 1 << 20;

/// Characters of a password without `symbols`.
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Added with `symbols`: ASCII punctuation except quotes, backslash and backtick (which
/// configuration formats and shells treat specially).
const SYMBOLS: &[u8] = b"!#$%&()*+,-./:;<=>?@[]^_{|}~";

/// A new value and, for kinds with a public half, the companion file's content.
pub struct Made {
    /// The secret value (the plaintext to encrypt).
    pub value: Zeroizing<Vec<u8>>,
    /// The public half, one line with its newline, for the `.pub` companion.
    pub public: Option<String>,
}

/// Why a value could not be made. `Display` is one line, without the secret's name.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// The command could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// `argv[0]`, control characters escaped.
        program: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// Reading the command's output failed.
    #[error("cannot read the output of {program:?}: {source}")]
    Read {
        /// `argv[0]`, control characters escaped.
        program: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("{program:?} failed ({status}){}", stderr_suffix(stderr))]
    Failed {
        /// `argv[0]`, control characters escaped.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The first line of its standard error, control characters escaped.
        stderr: String,
    },
    /// The command printed nothing.
    #[error("{program:?} printed nothing: an empty secret is not written")]
    Empty {
        /// `argv[0]`, control characters escaped.
        program: String,
    },
    /// The command printed more than [`COMMAND_OUTPUT_LIMIT`].
    #[error("{program:?} printed more than 1 MiB: not a secret value, nothing written")]
    TooLarge {
        /// `argv[0]`, control characters escaped.
        program: String,
    },
    /// A key could not be generated or encoded.
    #[error("{0}")]
    Key(#[from] crate::keys::KeyError),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// Makes a value of `generator`'s kind. `comment` names an SSH key (its public line's
/// comment); `dir` is where a `command` runs.
pub fn make(generator: &Generator, comment: &str, dir: &Path) -> Result<Made, MakeError> {
    let secret = |value| Made {
        value,
        public: None,
    };
    Ok(match generator {
        Generator::Password { length, symbols } => secret(password(*length, *symbols)),
        Generator::Hex { bytes } => secret(hex(&random(*bytes))),
        Generator::Base64 { bytes } => secret(base64(&random(*bytes), false)),
        Generator::Wireguard => {
            let mut key = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(&mut key[..]);
            // As `wg genkey`: the scalar clamped as X25519 uses it.
            key[0] &= 248;
            key[31] &= 127;
            key[31] |= 64;
            Made {
                public: Some(wireguard_public(&key)),
                value: base64(&key[..], true),
            }
        }
        Generator::SshEd25519 => {
            let comment = if crate::keys::openssh::validate_comment(comment).is_ok() {
                comment
            } else {
                ""
            };
            let key = crate::keys::openssh::generate_ed25519(comment, None)?;
            Made {
                value: Zeroizing::new(key.private_openssh.as_bytes().to_vec()),
                public: Some(format!("{}\n", key.public_line)),
            }
        }
        Generator::Age | Generator::AgePq => {
            let kind = if matches!(generator, Generator::Age) {
                AgeKeyKind::X25519
            } else {
                AgeKeyKind::PostQuantum
            };
            let id = age_identity::generate(kind, std::time::SystemTime::now());
            Made {
                value: Zeroizing::new(id.file_text.as_bytes().to_vec()),
                public: Some(format!("{}\n", id.recipient)),
            }
        }
        Generator::Command { argv } => secret(run_command(argv, dir)?),
    })
}

/// `n` bytes from the OS CSPRNG.
fn random(n: usize) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// `length` characters, each uniformly chosen (rejection sampling, no modulo bias).
fn password(length: usize, symbols: bool) -> Zeroizing<Vec<u8>> {
    let n = ALNUM.len() + if symbols { SYMBOLS.len() } else { 0 };
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    for _ in 0..length {
        let i = OsRng.gen_range(0..n);
        out.push(if i < ALNUM.len() {
            ALNUM[i]
        } else {
            SYMBOLS[i - ALNUM.len()]
        });
    }
    out
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() * 2));
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
    out
}

/// Standard padded base64 of `bytes`, with a final newline when `newline`.
fn base64(bytes: &[u8], newline: bool) -> Zeroizing<Vec<u8>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let len = bytes.len().div_ceil(3) * 4;
    let mut out = Zeroizing::new(vec![0u8; len + usize::from(newline)]);
    let written = engine
        .encode_slice(bytes, &mut out[..len])
        .expect("the buffer has the encoded length");
    debug_assert_eq!(written, len);
    if newline {
        out[len] = b'\n';
    }
    out
}

/// The WireGuard public key of a private scalar: X25519(key, 9), base64, newline.
fn wireguard_public(key: &[u8; 32]) -> String {
    let public = curve25519_dalek::MontgomeryPoint::mul_base_clamped(*key);
    format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(public.to_bytes())
    )
}

/// Why a value is not one of its generator's kind, so that no public half can be derived
/// from it. `Display` is one line, without the secret's name or any of the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompanionError {
    /// A kind whose values are text, and the value is not UTF-8.
    #[error("the value is not UTF-8")]
    NotUtf8,
    /// Not the base64 of 32 bytes.
    #[error("not a WireGuard key (base64 of 32 bytes)")]
    NotWireguardKey,
    /// Not an OpenSSH private key (or its public line cannot be encoded).
    #[error(transparent)]
    SshKey(#[from] crate::keys::KeyError),
    /// No line of an age identity file.
    #[error("no AGE-SECRET-KEY- line in the value")]
    NoAgeSecretKey,
    /// The `AGE-SECRET-KEY-` line is not an X25519 identity.
    #[error("not an age X25519 identity: {0}")]
    NotX25519Identity(&'static str),
    /// The `AGE-SECRET-KEY-` line is not a hybrid post-quantum identity.
    #[error("not a post-quantum age identity: {0}")]
    NotPqIdentity(&'static str),
}

/// The companion a `value` of `generator`'s kind implies (one line with its newline), or why
/// the value is not one of that kind. `None` for kinds without a public half.
pub fn public_of(generator: &Generator, value: &[u8]) -> Result<Option<String>, CompanionError> {
    let text = || std::str::from_utf8(value).map_err(|_| CompanionError::NotUtf8);
    Ok(Some(match generator {
        Generator::Wireguard => {
            let mut key = Zeroizing::new([0u8; 32]);
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(text()?.trim())
                    .map_err(|_| CompanionError::NotWireguardKey)?,
            );
            if decoded.len() != 32 {
                return Err(CompanionError::NotWireguardKey);
            }
            key.copy_from_slice(&decoded);
            wireguard_public(&key)
        }
        Generator::SshEd25519 => {
            let key = crate::keys::openssh::parse_private(Path::new("the value"), value)?;
            let line = crate::keys::openssh::public_line(key.public_key())?;
            format!("{line}\n")
        }
        Generator::Age | Generator::AgePq => {
            let line = text()?
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                .ok_or(CompanionError::NoAgeSecretKey)?;
            let recipient = if matches!(generator, Generator::Age) {
                line.parse::<age::x25519::Identity>()
                    .map_err(CompanionError::NotX25519Identity)?
                    .to_public()
                    .to_string()
            } else {
                crate::identity::MlKem768X25519Identity::parse(line)
                    .map_err(CompanionError::NotPqIdentity)?
                    .recipient()
            };
            format!("{recipient}\n")
        }
        _ => return Ok(None),
    }))
}

/// Runs `argv` without a shell in `dir`, stdin closed: its standard output, at most
/// [`COMMAND_OUTPUT_LIMIT`] bytes, not empty, and only when it exits 0.
fn run_command(argv: &[String], dir: &Path) -> Result<Zeroizing<Vec<u8>>, MakeError> {
    let program = crate::text::escape_controls(&argv[0]).into_owned();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| MakeError::Spawn {
            program: program.clone(),
            source,
        })?;
    // Drained beside stdout, so a chatty command cannot block on a full stderr pipe.
    let stderr = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            let mut first = Vec::new();
            let mut e = e;
            let _ = (&mut e).take(4096).read_to_end(&mut first);
            let _ = std::io::copy(&mut e, &mut std::io::sink());
            first
        })
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let limit = u64::try_from(COMMAND_OUTPUT_LIMIT + 1).unwrap_or(u64::MAX);
    let read = crate::secrets::read_to_end_zeroizing(stdout.take(limit));
    let too_large = read
        .as_ref()
        .is_ok_and(|out| out.len() > COMMAND_OUTPUT_LIMIT);
    if too_large {
        let _ = child.kill();
    }
    let status = child.wait();
    let stderr = stderr
        .and_then(|t| t.join().ok())
        .map(|b| {
            let text = String::from_utf8_lossy(&b);
            let first = text.lines().map(str::trim).find(|l| !l.is_empty());
            crate::text::escape_controls(first.unwrap_or("")).into_owned()
        })
        .unwrap_or_default();
    let out = read.map_err(|source| MakeError::Read {
        program: program.clone(),
        source,
    })?;
    if too_large {
        return Err(MakeError::TooLarge { program });
    }
    let status = status.map_err(|source| MakeError::Read {
        program: program.clone(),
        source,
    })?;
    if !status.success() {
        return Err(MakeError::Failed {
            program,
            status,
            stderr,
        });
    }
    if out.is_empty() {
        return Err(MakeError::Empty { program });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_their_kinds_shapes_and_companions_derive_back() {
        let dir = Path::new("/");
        let p = make(
            &Generator::Password {
                length: 4096,
                symbols: true,
            },
            "",
            dir,
        )
        .unwrap();
        assert_eq!(p.value.len(), 4096);
        assert!(p
            .value
            .iter()
            .all(|c| ALNUM.contains(c) || SYMBOLS.contains(c)));
        assert!(p.value.iter().any(|c| SYMBOLS.contains(c)));
        let h = make(&Generator::Hex { bytes: 5 }, "", dir).unwrap();
        assert_eq!(h.value.len(), 10);
        assert!(h
            .value
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)));
        let b = make(&Generator::Base64 { bytes: 4 }, "", dir).unwrap();
        assert_eq!(b.value.len(), 8);
        assert!(b.value.ends_with(b"=="));
        for g in [
            Generator::Wireguard,
            Generator::SshEd25519,
            Generator::Age,
            Generator::AgePq,
        ] {
            let m = make(&g, "deploy", dir).unwrap();
            let public = m.public.clone().unwrap();
            assert!(
                public.ends_with('\n') && public.lines().count() == 1,
                "{g:?}"
            );
            assert_eq!(public_of(&g, &m.value).unwrap(), Some(public), "{g:?}");
            let other = make(&g, "deploy", dir).unwrap();
            assert_ne!(public_of(&g, &other.value).unwrap(), m.public, "{g:?}");
            assert!(public_of(&g, b"garbage").is_err(), "{g:?}");
        }
        let e = public_of(&Generator::Age, b"\xff").unwrap_err();
        assert!(matches!(e, CompanionError::NotUtf8), "{e}");
        let e = public_of(&Generator::AgePq, b"AGE-SECRET-KEY-1X\n").unwrap_err();
        assert!(matches!(e, CompanionError::NotPqIdentity(_)), "{e}");
        assert_eq!(
            public_of(&Generator::Hex { bytes: 1 }, b"00").unwrap(),
            None
        );
    }

    /// Chi-square over 102,400 characters against the uniform distribution on the alphabet.
    /// The thresholds are far in the tail (a correct generator fails about once in 10^8
    /// runs); taking a random byte modulo the alphabet size, say, fails every time.
    #[test]
    fn password_characters_are_uniform_over_the_alphabet() {
        for (symbols, alphabet, threshold) in [(false, 62usize, 130.0), (true, 90, 175.0)] {
            let mut counts = std::collections::HashMap::<u8, f64>::new();
            let mut n = 0.0;
            for _ in 0..25 {
                for c in password(4096, symbols).iter() {
                    *counts.entry(*c).or_default() += 1.0;
                    n += 1.0;
                }
            }
            assert_eq!(counts.len(), alphabet, "symbols = {symbols}");
            let expected = n / alphabet as f64;
            let chi2: f64 = counts
                .values()
                .map(|o| (o - expected).powi(2) / expected)
                .sum();
            assert!(chi2 < threshold, "symbols = {symbols}: chi-square {chi2}");
        }
    }

    #[test]
    fn wireguard_keys_are_clamped_as_wg_genkey_makes_them() {
        let m = make(&Generator::Wireguard, "", Path::new("/")).unwrap();
        assert_eq!(m.value.len(), 45);
        assert_eq!(m.value[44], b'\n');
        let key = base64::engine::general_purpose::STANDARD
            .decode(&m.value[..44])
            .unwrap();
        assert_eq!(key[0] & 7, 0);
        assert_eq!(key[31] & 0xc0, 0x40);
    }

    #[test]
    fn commands_run_without_a_shell_and_fail_on_status_silence_or_excess() {
        let dir = Path::new("/");
        let run = |argv: &[&str]| {
            let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            run_command(&argv, dir)
        };
        assert_eq!(
            &run(&["printf", "%s", "a b;$(x)"]).unwrap()[..],
            b"a b;$(x)"
        );
        let e = run(&["sh", "-c", "echo oops >&2; echo out; exit 3"]).unwrap_err();
        assert!(matches!(e, MakeError::Failed { .. }), "{e}");
        assert!(e.to_string().contains("oops"), "{e}");
        assert!(matches!(
            run(&["true"]).unwrap_err(),
            MakeError::Empty { .. }
        ));
        let e = run(&["head", "-c", "1048577", "/dev/zero"]).unwrap_err();
        assert!(matches!(e, MakeError::TooLarge { .. }), "{e}");
        assert_eq!(
            run(&["head", "-c", "1048576", "/dev/zero"]).unwrap().len(),
            1 << 20
        );
        let e = run(&["/nonexistent/program"]).unwrap_err();
        assert!(matches!(e, MakeError::Spawn { .. }), "{e}");
        // stdin is closed: cat reads nothing and prints nothing.
        assert!(matches!(
            run(&["cat"]).unwrap_err(),
            MakeError::Empty { .. }
        ));
    }
}
