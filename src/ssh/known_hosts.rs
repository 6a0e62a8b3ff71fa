//! A known_hosts reader, as OpenSSH reads it: plain host patterns (comma-separated, `*` and
//! `?` wildcards, `!` negation, `[host]:port` for ports other than 22), hashed entries
//! (`|1|salt|hmac-sha1`), the `@revoked` marker. `@cert-authority` lines are skipped: the
//! SSH library used for fetching does not do host certificates.
//!
//! Invariant: [`KnownHosts::check`] answers [`Verdict::Match`] only when a non-revoked entry
//! for the host name carries exactly the presented key.

use base64::Engine as _;
use hmac::{Hmac, Mac};

use crate::names::glob;

/// The name known_hosts lists a server under: `host` on port 22, `[host]:port` otherwise.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The key type named inside an SSH wire-format public key (`ssh-ed25519`, …).
pub fn key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
}

#[derive(Debug, Clone)]
enum Hosts {
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    Patterns(Vec<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    blob: Vec<u8>,
}

/// What known_hosts says about a presented host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for the host lists this key.
    Match,
    /// The key is listed as `@revoked` for the host.
    Revoked,
    /// Entries for the host list a different key of the same type.
    Mismatch,
    /// No entry for the host lists a key of this type.
    Unknown,
}

/// The parsed entries of a known_hosts file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Parses the text of a known_hosts file. Lines that do not parse are ignored, as
    /// OpenSSH ignores them.
    pub fn parse(text: &str) -> Self {
        let entries = text.lines().filter_map(parse_line).collect();
        KnownHosts { entries }
    }

    /// How many usable entries the file has.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The key types listed (not revoked) for the server known as `name`, sorted.
    pub fn types_for(&self, name: &str) -> Vec<String> {
        let mut types: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.marker == Marker::None && hosts_match(&e.hosts, name))
            .map(|e| e.key_type.clone())
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// Checks the wire-format key `blob` presented by the server known as `name` (see
    /// [`host_name`]).
    pub fn check(&self, name: &str, blob: &[u8]) -> Verdict {
        let presented_type = key_type(blob).unwrap_or("");
        let mut matched = false;
        let mut mismatched = false;
        for e in self.entries.iter().filter(|e| hosts_match(&e.hosts, name)) {
            let same_key = e.blob == blob;
            match e.marker {
                Marker::Revoked if same_key => return Verdict::Revoked,
                Marker::Revoked => {}
                Marker::None if same_key => matched = true,
                Marker::None if e.key_type == presented_type => mismatched = true,
                Marker::None => {}
            }
        }
        if matched {
            Verdict::Match
        } else if mismatched {
            Verdict::Mismatch
        } else {
            Verdict::Unknown
        }
    }
}

fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => {
            first = fields.next()?;
            Marker::Revoked
        }
        "@cert-authority" => return None,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    let key_type = fields.next()?.to_owned();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    let hosts = if let Some(rest) = first.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Hosts::Hashed {
            salt: b64.decode(salt).ok()?,
            hash: b64.decode(hash).ok()?,
        }
    } else if first.starts_with('|') {
        return None;
    } else {
        Hosts::Patterns(first.split(',').map(|p| p.to_ascii_lowercase()).collect())
    };
    Some(Entry {
        marker,
        hosts,
        key_type,
        blob,
    })
}

fn hosts_match(hosts: &Hosts, name: &str) -> bool {
    match hosts {
        Hosts::Hashed { salt, hash } => {
            let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        Hosts::Patterns(patterns) => {
            let name = name.to_ascii_lowercase();
            let mut positive = false;
            for p in patterns {
                if let Some(neg) = p.strip_prefix('!') {
                    if glob(neg.as_bytes(), name.as_bytes()) {
                        return false;
                    }
                } else if glob(p.as_bytes(), name.as_bytes()) {
                    positive = true;
                }
            }
            positive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn blob(kind: &str, fill: u8) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(kind.len() as u32).to_be_bytes());
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(&32u32.to_be_bytes());
        b.extend_from_slice(&[fill; 32]);
        b
    }

    fn line(hosts: &str, kind: &str, fill: u8) -> String {
        format!("{hosts} {kind} {} comment\n", B64.encode(blob(kind, fill)))
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        let hash = mac.finalize().into_bytes();
        format!("|1|{}|{}", B64.encode(salt), B64.encode(hash))
    }

    #[test]
    fn plain_entries_with_port() {
        let kh = KnownHosts::parse(&format!(
            "# comment\n\n{}{}garbage line\n",
            line("[127.0.0.1]:2222", "ssh-ed25519", 1),
            line("example.org,192.0.2.1", "ssh-ed25519", 2)
        ));
        assert_eq!(kh.len(), 2);
        let k1 = blob("ssh-ed25519", 1);
        let k2 = blob("ssh-ed25519", 2);
        assert_eq!(kh.check("[127.0.0.1]:2222", &k1), Verdict::Match);
        assert_eq!(kh.check("[127.0.0.1]:2222", &k2), Verdict::Mismatch);
        // The port is part of the name: port 22 is a different entry.
        assert_eq!(kh.check("127.0.0.1", &k1), Verdict::Unknown);
        assert_eq!(kh.check("[127.0.0.1]:2223", &k1), Verdict::Unknown);
        assert_eq!(kh.check("EXAMPLE.org", &k2), Verdict::Match);
        assert_eq!(kh.types_for("example.org"), ["ssh-ed25519"]);
        assert!(kh.types_for("other.org").is_empty());
        assert_eq!(kh.check("192.0.2.1", &k2), Verdict::Match);
        // Another key type for a known host is unknown, not a mismatch (as OpenSSH).
        assert_eq!(
            kh.check("example.org", &blob("ecdsa-sha2-nistp256", 2)),
            Verdict::Unknown
        );
    }

    #[test]
    fn hashed_entries() {
        let kh = KnownHosts::parse(&line(
            &hashed("[127.0.0.1]:2222", b"0123456789abcdefghij"),
            "ssh-ed25519",
            7,
        ));
        assert_eq!(
            kh.check("[127.0.0.1]:2222", &blob("ssh-ed25519", 7)),
            Verdict::Match
        );
        assert_eq!(
            kh.check("[127.0.0.1]:2222", &blob("ssh-ed25519", 8)),
            Verdict::Mismatch
        );
        assert_eq!(
            kh.check("127.0.0.1", &blob("ssh-ed25519", 7)),
            Verdict::Unknown
        );
    }

    #[test]
    fn wildcards_negation_revoked_and_ca() {
        let mut text = line("*.example.org,!bad.example.org", "ssh-ed25519", 3);
        text += &line("h?st", "ssh-ed25519", 4);
        text += &format!(
            "@cert-authority *.corp ssh-ed25519 {}\n",
            B64.encode(blob("ssh-ed25519", 9))
        );
        text += "@revoked ";
        text += &line("host", "ssh-ed25519", 4);
        let kh = KnownHosts::parse(&text);
        let k3 = blob("ssh-ed25519", 3);
        assert_eq!(kh.check("a.example.org", &k3), Verdict::Match);
        assert_eq!(kh.check("bad.example.org", &k3), Verdict::Unknown);
        assert_eq!(kh.check("example.org", &k3), Verdict::Unknown);
        assert_eq!(kh.check("hast", &blob("ssh-ed25519", 4)), Verdict::Match);
        assert_eq!(kh.check("host", &blob("ssh-ed25519", 4)), Verdict::Revoked);
        // A CA line never vouches for a plain key.
        assert_eq!(
            kh.check("x.corp", &blob("ssh-ed25519", 9)),
            Verdict::Unknown
        );
    }

    #[test]
    fn key_type_of_blob() {
        assert_eq!(key_type(&blob("ssh-ed25519", 0)), Some("ssh-ed25519"));
        assert_eq!(key_type(&[0, 0, 0, 99, b'x']), None);
        assert_eq!(key_type(&[]), None);
    }
}
