//! `host add --keyscan HOST[:PORT]`: a host's ed25519 key fetched with `ssh-keyscan`, and
//! its OpenSSH SHA256 fingerprint for the operator to check.
//!
//! Everything `ssh-keyscan` prints is hostile input: only `<host> ssh-ed25519 <base64>`
//! lines for the scanned host are accepted, the key must be a valid (not small-order)
//! ed25519 public key as `--key` requires, and exactly one distinct key may be offered.
//! The host is checked before anything runs, so it can never become an option; the tool is
//! run from an argv, never a shell. Library code: never prints, never prompts.

use std::io::Read;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::recipient::{Recipient, RecipientError, SSH_BASE64};

/// The scanning tool, looked up on `PATH`.
pub const TOOL: &str = "ssh-keyscan";
/// Seconds `ssh-keyscan` waits for the host (`-T`).
pub const TIMEOUT_SECS: u32 = 10;
/// Seconds past `-T` after which a scan that has not finished is killed.
pub const GRACE_SECS: u64 = 2;
/// Most bytes of `ssh-keyscan` output read; more is refused.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Longest accepted output line (an ed25519 line for a 255-byte name is ~350 bytes).
pub const MAX_LINE: usize = 1024;
/// Longest accepted host name (DNS names are at most 253 characters).
const MAX_HOST: usize = 255;
/// The SSH wire form of an ed25519 public key: string "ssh-ed25519", string of 32 bytes.
const ED25519_WIRE_LEN: usize = 4 + 11 + 4 + 32;

/// Where to scan: `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The SSH port (22 unless given).
    pub port: u16,
}

impl Target {
    /// Parses `HOST[:PORT]` (IPv6 in brackets). The host may only hold letters, digits and
    /// `.` `-` `_` (plus `:` and `%` inside brackets) and may not start with `-`, so it can
    /// never be read as an option, a second host or a list.
    pub fn parse(s: &str) -> Result<Target, KeyscanError> {
        let bad = |why: &str| KeyscanError::BadTarget {
            target: s.to_string(),
            why: why.to_string(),
        };
        let (host, port, bracketed) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("no closing ] after the IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected :PORT after ]"))?,
                ),
            };
            (host, port, true)
        } else {
            match s.matches(':').count() {
                0 => (s, None, false),
                1 => {
                    let (h, p) = s.split_once(':').unwrap_or((s, ""));
                    (h, Some(p), false)
                }
                _ => {
                    return Err(bad(
                        "write an IPv6 address in brackets: [ADDR] or [ADDR]:PORT",
                    ))
                }
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.starts_with('-') {
            return Err(bad("a host may not start with -"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "a host may not contain whitespace or control characters",
            ));
        }
        if host.len() > MAX_HOST {
            return Err(bad("host name too long"));
        }
        let allowed = |c: char| {
            c.is_ascii_alphanumeric()
                || matches!(c, '.' | '-' | '_')
                || (bracketed && matches!(c, ':' | '%'))
        };
        if !host.chars().all(allowed) {
            return Err(bad(if bracketed {
                "an IPv6 address holds only hex digits, : . and a %zone"
            } else {
                "a host holds only letters, digits, . - and _"
            }));
        }
        if bracketed && !host.contains(':') {
            return Err(bad("brackets are for IPv6 addresses"));
        }
        let port = match port {
            None => 22,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(bad("PORT must be a number from 1 to 65535")),
            },
        };
        Ok(Target {
            host: host.to_string(),
            port,
        })
    }

    /// The name `ssh-keyscan` (and known_hosts) prints for this target: `host` on port
    /// 22, `[host]:port` otherwise.
    pub fn known_hosts_name(&self) -> String {
        crate::ssh::known_hosts::host_name(&self.host, self.port)
    }

    /// The argv `ssh-keyscan` is run with (after the tool name).
    pub fn args(&self) -> Vec<String> {
        self.args_with_timeout(TIMEOUT_SECS)
    }

    /// [`Target::args`] with `-T secs`.
    pub fn args_with_timeout(&self, secs: u32) -> Vec<String> {
        vec![
            "-T".into(),
            secs.to_string(),
            "-t".into(),
            "ed25519".into(),
            "-p".into(),
            self.port.to_string(),
            "--".into(),
            self.host.clone(),
        ]
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A host key as scanned and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedKey {
    /// The public key line to bind: `ssh-ed25519 <base64>`.
    pub line: String,
    /// Its OpenSSH fingerprint, `SHA256:<base64>` (as `ssh-keygen -lf` prints it).
    pub fingerprint: String,
}

/// Why no key was scanned or trusted. `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyscanError {
    /// `HOST[:PORT]` is not usable.
    #[error("--keyscan {target:?}: {why}")]
    BadTarget {
        /// The argument as given.
        target: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--fingerprint` is not of the form `SHA256:<43 base64 characters>`.
    #[error(
        "--fingerprint {0:?}: expected SHA256:<43 base64 characters>, as `ssh-keygen -lf` prints"
    )]
    BadFingerprint(String),
    /// `ssh-keyscan` could not be run.
    #[error("cannot run {TOOL}: {source}")]
    Spawn {
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// Reading `ssh-keyscan`'s output failed.
    #[error("reading {TOOL}'s output: {source}")]
    Read {
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The output is not what `ssh-keyscan -t ed25519` prints.
    #[error("{target}: {TOOL} output refused: {why}")]
    BadOutput {
        /// The scanned host.
        target: String,
        /// What is wrong with it (with the line number when one line is).
        why: String,
    },
    /// An offered key is not a valid ed25519 public key.
    #[error("{target}: {TOOL} output line {line}: {source}")]
    BadKey {
        /// The scanned host.
        target: String,
        /// 1-based output line.
        line: usize,
        /// Why the key is refused (as `--key` refuses it).
        #[source]
        source: RecipientError,
    },
    /// The host offered more than one ed25519 key.
    #[error("{target}: offered {count} different ed25519 host keys; refusing to pick one")]
    Ambiguous {
        /// The scanned host.
        target: String,
        /// How many distinct keys.
        count: usize,
    },
    /// No ed25519 key came back.
    #[error("{target}: no ed25519 host key{}", detail.as_deref().map(|d| format!(" ({TOOL}: {d})")).unwrap_or_default())]
    NoKey {
        /// The scanned host.
        target: String,
        /// The tool's last stderr line, if any.
        detail: Option<String>,
        /// Whether the server answered (its SSH banner was seen): it offers no ed25519
        /// key, rather than being unreachable.
        banner: bool,
    },
    /// The scanned key's fingerprint is not the one given.
    #[error("fingerprint mismatch: expected {expected}, got {got}")]
    Mismatch {
        /// `--fingerprint`.
        expected: String,
        /// The scanned key's.
        got: String,
    },
}

/// The OpenSSH SHA256 fingerprint of an SSH wire-format public key: `SHA256:` and the
/// unpadded base64 of its SHA-256 (what `ssh-keygen -lf` prints).
pub fn fingerprint(wire: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(wire)))
}

/// Checks that `s` is a SHA256 fingerprint as `ssh-keygen -lf` prints it.
pub fn parse_fingerprint(s: &str) -> Result<String, KeyscanError> {
    let bad = || KeyscanError::BadFingerprint(s.to_string());
    let b64 = s.strip_prefix("SHA256:").ok_or_else(bad)?;
    match STANDARD_NO_PAD.decode(b64) {
        Ok(digest) if digest.len() == 32 && b64.len() == 43 => Ok(s.to_string()),
        _ => Err(bad()),
    }
}

/// Refuses `key` unless its fingerprint is exactly `expected` (from [`parse_fingerprint`]).
pub fn check_fingerprint(key: &ScannedKey, expected: &str) -> Result<(), KeyscanError> {
    if key.fingerprint == expected {
        Ok(())
    } else {
        Err(KeyscanError::Mismatch {
            expected: expected.to_string(),
            got: key.fingerprint.clone(),
        })
    }
}

/// Runs `ssh-keyscan -T 10 -t ed25519 -p PORT -- HOST` (from `PATH`, no shell) and returns
/// the one ed25519 key it offers; see [`parse_output`].
pub fn scan(target: &Target) -> Result<ScannedKey, KeyscanError> {
    scan_within(target, TIMEOUT_SECS)
}

/// [`scan`] with `-T secs`, and a hard bound: the tool is killed when it has not finished
/// `secs` + [`GRACE_SECS`] seconds after it started (a name that takes long to resolve).
pub fn scan_within(target: &Target, secs: u32) -> Result<ScannedKey, KeyscanError> {
    let mut child = Command::new(TOOL)
        .args(target.args_with_timeout(secs))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KeyscanError::Spawn { source })?;
    let stderr = child.stderr.take();
    // Kept to a bounded size; the rest is drained so the tool never blocks on a full pipe.
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut s) = stderr {
            let _ = (&mut s).take(4096).read_to_end(&mut buf);
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        }
        buf
    });
    let stdout = child.stdout.take();
    let (done, finished) = std::sync::mpsc::channel();
    let stdout_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = match stdout {
            Some(s) => s
                .take(MAX_OUTPUT as u64 + 1)
                .read_to_end(&mut out)
                .map(|_| ()),
            None => Ok(()),
        };
        let _ = done.send(());
        (out, read)
    });
    let limit = std::time::Duration::from_secs(u64::from(secs) + GRACE_SECS);
    let timed_out = finished.recv_timeout(limit).is_err();
    if timed_out {
        let _ = child.kill();
    }
    let (out, read) = stdout_reader
        .join()
        .unwrap_or_else(|_| (Vec::new(), Ok(())));
    if read.is_err() || out.len() > MAX_OUTPUT {
        let _ = child.kill();
    }
    let _ = child.wait();
    let stderr = stderr_reader.join().unwrap_or_default();
    if timed_out {
        return Err(KeyscanError::NoKey {
            target: target.to_string(),
            detail: Some(format!(
                "no answer within {} s",
                u64::from(secs) + GRACE_SECS
            )),
            banner: false,
        });
    }
    read.map_err(|source| KeyscanError::Read { source })?;
    if out.len() > MAX_OUTPUT {
        return Err(KeyscanError::BadOutput {
            target: target.to_string(),
            why: format!("more than {MAX_OUTPUT} bytes"),
        });
    }
    let stderr = String::from_utf8_lossy(&stderr);
    let lines = || stderr.lines().map(str::trim);
    // `# host:port SSH-2.0-…`: the server answered (its key types are another matter).
    let banner = lines().any(|l| l.starts_with('#') && l.contains(" SSH-"));
    let detail = lines()
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| crate::text::escape_controls(l).chars().take(200).collect());
    parse_output(target, &out).map_err(|e| match e {
        KeyscanError::NoKey { target, .. } => KeyscanError::NoKey {
            target,
            detail,
            banner,
        },
        other => other,
    })
}

/// Parses what `ssh-keyscan -t ed25519` printed for `target`. Blank lines and `#` comments
/// are skipped; every other line must be `<host> ssh-ed25519 <base64>` with `<host>` the
/// target's known_hosts name and a valid ed25519 key. A NUL, invalid UTF-8, an overlong or
/// any other line, or more than one distinct key, refuses the whole output.
pub fn parse_output(target: &Target, out: &[u8]) -> Result<ScannedKey, KeyscanError> {
    let refuse = |why: String| KeyscanError::BadOutput {
        target: target.to_string(),
        why,
    };
    if out.contains(&0) {
        return Err(refuse("it contains a NUL byte".into()));
    }
    let text = std::str::from_utf8(out).map_err(|_| refuse("it is not UTF-8".into()))?;
    let name = target.known_hosts_name();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        if raw.len() > MAX_LINE {
            return Err(refuse(format!("line {n} is longer than {MAX_LINE} bytes")));
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some((col, c)) = crate::text::first_control(line) {
            return Err(refuse(format!(
                "line {n} holds the control character {} at column {col}",
                crate::text::char_code(c)
            )));
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [host, kind, data] = fields.as_slice() else {
            return Err(refuse(format!(
                "line {n} is not `<host> ssh-ed25519 <key>`"
            )));
        };
        if *kind != "ssh-ed25519" {
            return Err(refuse(format!(
                "line {n} is a {} key, not ssh-ed25519",
                crate::text::escape_controls(&kind.chars().take(40).collect::<String>())
            )));
        }
        if !host.eq_ignore_ascii_case(&name) {
            return Err(refuse(format!(
                "line {n} is for {:?}, not {name:?}",
                host.chars().take(80).collect::<String>()
            )));
        }
        let wire = SSH_BASE64
            .decode(data)
            .map_err(|_| refuse(format!("line {n}: the key is not valid base64")))?;
        if wire.len() != ED25519_WIRE_LEN
            || crate::ssh::known_hosts::key_type(&wire) != Some("ssh-ed25519")
            || wire[15..19] != 32u32.to_be_bytes()
        {
            return Err(refuse(format!(
                "line {n}: the key data is not an ssh-ed25519 public key"
            )));
        }
        // The checks `--key` makes (a point on the curve, not of small order).
        let canonical = format!("ssh-ed25519 {}", STANDARD.encode(&wire));
        Recipient::parse(&canonical).map_err(|source| KeyscanError::BadKey {
            target: target.to_string(),
            line: n,
            source,
        })?;
        if !keys.contains(&wire) {
            keys.push(wire);
        }
    }
    match keys.as_slice() {
        [] => Err(KeyscanError::NoKey {
            target: target.to_string(),
            detail: None,
            banner: false,
        }),
        [wire] => Ok(ScannedKey {
            line: format!("ssh-ed25519 {}", STANDARD.encode(wire)),
            fingerprint: fingerprint(wire),
        }),
        more => Err(KeyscanError::Ambiguous {
            target: target.to_string(),
            count: more.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ed25519 key made by ssh-keygen (`ssh-keygen -lf` prints the fingerprint below).
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe";
    const KEY2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFFPG3Kmr84FWS1gUFTWoLTBd+ZJL7l0EdU5zPuc9khI";

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn targets_parse_with_ports_and_ipv6_brackets() {
        assert_eq!(
            t("web1"),
            Target {
                host: "web1".into(),
                port: 22
            }
        );
        assert_eq!(t("web1.example.org:2222").port, 2222);
        assert_eq!(t("127.0.0.1:2222").host, "127.0.0.1");
        assert_eq!(
            t("[::1]:2222"),
            Target {
                host: "::1".into(),
                port: 2222
            }
        );
        assert_eq!(t("[fe80::1%eth0]").port, 22);
        assert_eq!(t("[::1]:2222").known_hosts_name(), "[::1]:2222");
        assert_eq!(t("web1").known_hosts_name(), "web1");
        assert_eq!(t("web1:22").known_hosts_name(), "web1");
        assert_eq!(t("[::1]:2222").to_string(), "[::1]:2222");
        let args = t("host:23").args();
        assert_eq!(args[args.len() - 2..], ["--".to_string(), "host".into()]);
    }

    #[test]
    fn hostile_targets_are_refused() {
        for bad in [
            "",
            "-oProxyCommand=touch /tmp/pwned",
            "-p1",
            "--",
            "host name",
            "host\tx",
            "host\nx",
            "host\u{1b}[2J",
            "a,b",
            "user@host",
            "host:",
            "host:0",
            "host:65536",
            "host:+22",
            "host:2x",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[host]",
            "[-::1]",
            "[::1 ]",
            "$(id)",
            "host;id",
            "../etc",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = Target::parse("-oProxyCommand=x").unwrap_err().to_string();
        assert!(e.contains("may not start with -"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn fingerprint_is_openssh_sha256() {
        let wire = SSH_BASE64.decode(KEY).unwrap();
        // ssh-keygen -lf of "ssh-ed25519 <KEY>".
        assert_eq!(
            fingerprint(&wire),
            "SHA256:twIezcb4G9n2jIjFxiXZ2zHciBbW1hhL7JZtbXyZsQo"
        );
        assert_eq!(
            fingerprint(b""),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn fingerprints_are_checked_for_form_and_exactly() {
        let good = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        assert_eq!(parse_fingerprint(good).unwrap(), good);
        for bad in [
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF",
            "MD5:d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e",
            "SHA256:",
            "",
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad:?} accepted");
        }
        let key = parse_output(&t("h"), format!("h ssh-ed25519 {KEY}\n").as_bytes()).unwrap();
        check_fingerprint(&key, &key.fingerprint.clone()).unwrap();
        let e = check_fingerprint(&key, good).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "fingerprint mismatch: expected {good}, got {}",
                key.fingerprint
            )
        );
    }

    #[test]
    fn output_with_one_key_and_comments_gives_it() {
        let out = format!(
            "# 127.0.0.1:2222 SSH-2.0-OpenSSH_9.2\n\n[127.0.0.1]:2222 ssh-ed25519 {KEY}\r\n[127.0.0.1]:2222 ssh-ed25519 {KEY}\n"
        );
        let key = parse_output(&t("127.0.0.1:2222"), out.as_bytes()).unwrap();
        assert_eq!(key.line, format!("ssh-ed25519 {KEY}"));
        assert_eq!(
            key.fingerprint,
            "SHA256:twIezcb4G9n2jIjFxiXZ2zHciBbW1hhL7JZtbXyZsQo"
        );
    }

    /// The wire form of an ed25519 "key" with these 32 point bytes.
    fn wire_of(point: &[u8]) -> String {
        let mut wire = Vec::new();
        for field in [&b"ssh-ed25519"[..], point] {
            wire.extend_from_slice(&(field.len() as u32).to_be_bytes());
            wire.extend_from_slice(field);
        }
        STANDARD.encode(wire)
    }

    #[test]
    fn hostile_output_is_refused_with_one_line() {
        let small_order = wire_of(&{
            let mut p = [0u8; 32];
            p[0] = 1; // the identity point
            p
        });
        let mut trailing = SSH_BASE64.decode(KEY).unwrap();
        trailing.push(0);
        let trailing = STANDARD.encode(trailing);
        let rsa = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQCYdoGX7H/tHJ2esRHIvm4pXRNsiRoQ6rO10+mdTBes/OMfhzJlMh0go0NkyvCL9CtiX4wWRk72uuCyFlz1dZnLo5TfqimBVBLlqFW13Rnv0ib3XrEErFXrk6fg84raUGC6TeH5WcHGBc/WgVxcI1S+yDvWU26pXUvX+iXErH+kvw==";
        let cases: Vec<(String, &str)> = vec![
            (
                format!("h ssh-ed25519 {KEY}\nh ssh-ed25519 {KEY2}\n"),
                "2 different",
            ),
            (format!("h ssh-ed25519 {small_order}\n"), "weak key"),
            (
                "h ssh-ed25519 !!!not-base64!!!\n".into(),
                "not valid base64",
            ),
            (format!("h ssh-ed25519 {rsa}\n"), "not an ssh-ed25519"),
            (format!("h ssh-rsa {rsa}\n"), "ssh-rsa key, not ssh-ed25519"),
            (format!("h ssh-ed25519 {trailing}\n"), "not an ssh-ed25519"),
            (format!("h ssh-ed25519 {KEY}\0\n"), "NUL"),
            (
                format!("h ssh-ed25519 {}\n", "A".repeat(2000)),
                "longer than",
            ),
            (format!("h ssh-ed25519 {KEY} comment\n"), "not `<host>"),
            (format!("other ssh-ed25519 {KEY}\n"), "not \"h\""),
            (
                format!("h ssh-ed25519 {KEY}\u{1b}[2J\n"),
                "control character",
            ),
            (format!("h\u{85} ssh-ed25519 {KEY}\n"), "control character"),
            ("garbage\n".into(), "not `<host>"),
            ("".into(), "no ed25519 host key"),
            ("# only a comment\n".into(), "no ed25519 host key"),
        ];
        for (out, needle) in cases {
            let e = parse_output(&t("h"), out.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{out:?}: {e}");
            assert!(!e.contains('\n') && !e.contains('\0'), "{out:?}: {e:?}");
        }
        let e = parse_output(&t("h"), b"h ssh-ed25519 \xff\n").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
