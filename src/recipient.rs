//! Recipient strings (as written in `secrets.nix`) -> age recipients, with the stanza tag
//! each one puts into a header.
//!
//! INTERFACE CONTRACT:
//! - [`Recipient::parse`] accepts `ssh-ed25519 AAAA… [comment]`, `ssh-rsa AAAA… [comment]`,
//!   `age1…` (X25519) and `age1<plugin>1…` (age plugins, see `plugin.rs`). Anything else is a [`RecipientError`] naming the key (abbreviated).
//! - [`Recipient::tag`] is the SSH stanza tag: base64 (standard alphabet, no padding) of the
//!   first 4 bytes of SHA-256 of the SSH wire public key; `None` for X25519 and plugins
//!   (a plugin's stanzas cannot be matched to its recipients without running it).
//! - [`Recipient::as_age`] is what `envelope::encrypt` hands to the age crate.
//!
//! ssh-ed25519 recipients wrap file keys with their per-key work precomputed
//! (`ssh_ed25519.rs`: byte-identical stanzas to the age crate's, 2.4x cheaper per wrap in
//! `cargo bench --bench core`); ssh-rsa and X25519 keys use the age crate's recipients (a
//! hand-written X25519 wrap measured only ~5% faster: not worth its own code). Weak keys of
//! either curve form are refused here, before any of them sees one.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// What kind of key a recipient is; also the stanza type it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecipientKind {
    /// An OpenSSH `ssh-ed25519` public key.
    SshEd25519,
    /// An OpenSSH `ssh-rsa` public key.
    SshRsa,
    /// A native age X25519 recipient (`age1…`).
    X25519,
    /// An age plugin recipient (`age1<name>1…`); its stanza types are the plugin's choice.
    Plugin,
    /// The hybrid post-quantum `mlkem768x25519` recipient (`age1pq1…`).
    MlKem768X25519,
}

impl RecipientKind {
    /// The key type as written in a public key line (`ssh-ed25519`, `ssh-rsa`, `X25519`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::SshEd25519 => "ssh-ed25519",
            RecipientKind::SshRsa => "ssh-rsa",
            RecipientKind::X25519 => "X25519",
            RecipientKind::Plugin => "age plugin",
            RecipientKind::MlKem768X25519 => "mlkem768x25519",
        }
    }

    /// Whether this kind resists a quantum computer (only the hybrid recipient does).
    pub fn is_post_quantum(self) -> bool {
        self == RecipientKind::MlKem768X25519
    }
}

/// A parsed recipient. Parsing (RSA key decoding in particular) happens once; encrypting to
/// the same recipient many times reuses it.
#[derive(Clone)]
pub struct Recipient {
    /// The key as written, trimmed (comment included).
    pub text: String,
    /// What kind of key it is.
    pub kind: RecipientKind,
    /// SSH stanza tag; `None` for X25519.
    pub tag: Option<String>,
    inner: Inner,
}

mod exchange;
pub(crate) mod mlkem768x25519;
pub mod plugin;
mod ssh_ed25519;
mod x25519;

#[derive(Clone)]
enum Inner {
    SshEd25519(ssh_ed25519::SshEd25519),
    SshRsa(age::ssh::Recipient),
    X25519(age::x25519::Recipient),
    Plugin(plugin::PluginRecipient),
    /// Boxed: the expanded ML-KEM key is a few KiB.
    MlKem768X25519(Box<mlkem768x25519::MlKem768X25519>),
}

/// `"ssh-ed25519 AAAA… comment".parse::<Recipient>()` is [`Recipient::parse`].
impl std::str::FromStr for Recipient {
    type Err = RecipientError;

    fn from_str(s: &str) -> Result<Self, RecipientError> {
        Recipient::parse(s)
    }
}

/// The key as written (trimmed, comment included): what [`Recipient::parse`] read, so
/// printing and parsing again gives the same recipient.
impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient")
            .field("kind", &self.kind)
            .field("tag", &self.tag)
            .field("text", &self.text)
            .finish()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid public key {key:?}: {reason}")]
/// A public key line that cannot be encrypted to.
pub struct RecipientError {
    /// The key, abbreviated for messages.
    pub key: String,
    /// Why it was refused.
    pub reason: String,
}

/// Why a weak key (small-order, or a twist point of small order) is refused.
const WEAK_KEY: &str =
    "weak key: a low-order point, which makes the shared secret all zeros (anyone could decrypt)";

/// How many characters of a key an error message shows.
const ABBREVIATED_CHARS: usize = 20;

/// The first `ABBREVIATED_CHARS` characters of `key` (trimmed), with `…` when cut.
pub fn abbreviate(key: &str) -> String {
    let key = key.trim();
    let mut chars = key.chars();
    let head: String = chars.by_ref().take(ABBREVIATED_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// SSH stanza tag of an SSH wire-format public key (what age writes as the first argument of
/// `ssh-ed25519` / `ssh-rsa` stanzas).
pub fn ssh_tag(wire: &[u8]) -> String {
    let digest = Sha256::digest(wire);
    BASE64_STANDARD_NO_PAD.encode(&digest[..4])
}

/// The SSH stanza tag of a public key line (`ssh-ed25519 AAAA… [comment]` or `ssh-rsa …`);
/// `Ok(None)` for an X25519 recipient.
pub fn tag_of(public_line: &str) -> Result<Option<String>, RecipientError> {
    Recipient::parse(public_line).map(|r| r.tag)
}

/// Base64 as found in OpenSSH public key lines: standard alphabet, padding optional. The one
/// decoder of key lines (`--keyscan` output too).
pub(crate) const SSH_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Key material of a public key line, ignoring its comment: what [`Recipient::matches_key`]
/// compares.
#[derive(Debug, PartialEq, Eq)]
enum KeyMaterial {
    Ssh(Vec<u8>),
    Age(String),
}

fn key_material(s: &str) -> Option<KeyMaterial> {
    let mut fields = s.split_ascii_whitespace();
    let kind = fields.next()?;
    if kind.starts_with("age1") {
        return Some(KeyMaterial::Age(kind.to_ascii_lowercase()));
    }
    let wire = SSH_BASE64.decode(fields.next()?).ok()?;
    // The wire form starts with the key type as an SSH string; a line whose type field
    // disagrees with its data is not this key.
    let declared = wire_key_type(&wire)?;
    (declared == kind.as_bytes()).then_some(KeyMaterial::Ssh(wire))
}

/// The key type at the start of an SSH wire public key (`uint32 len || type`).
fn wire_key_type(wire: &[u8]) -> Option<&[u8]> {
    let len_bytes: [u8; 4] = wire.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    wire.get(4..4usize.checked_add(len)?)
}

/// SSH key types we recognise but age cannot encrypt to.
fn is_unsupported_ssh_type(kind: &str) -> bool {
    kind.starts_with("ecdsa-sha2-")
        || kind.starts_with("sk-")
        || kind == "ssh-dss"
        || kind.contains("-cert-v01@openssh.com")
}

impl Recipient {
    /// Sends what an age plugin recipient asks of the user while encrypting (a touch, a
    /// confirmation) to `ui`; no effect on other kinds. Without a UI, every plugin request
    /// fails (the plugin reports that as its error).
    pub fn with_plugin_ui(mut self, ui: std::sync::Arc<dyn plugin::PluginUi>) -> Self {
        if let Inner::Plugin(p) = &mut self.inner {
            p.set_ui(ui);
        }
        self
    }

    /// Parses one public key as written in `secrets.nix`.
    pub fn parse(s: &str) -> Result<Self, RecipientError> {
        let text = s.trim();
        let error = |reason: String| RecipientError {
            key: abbreviate(text),
            reason,
        };
        let mut fields = text.split_ascii_whitespace();
        let Some(kind) = fields.next() else {
            return Err(error("empty key".into()));
        };
        if kind.starts_with("AGE-SECRET-KEY-") || kind.starts_with("-----BEGIN") {
            // Never echo private key material, not even abbreviated.
            return Err(RecipientError {
                key: "<private key>".into(),
                reason: "this is a private key, not a public key".into(),
            });
        }
        match kind {
            "ssh-ed25519" | "ssh-rsa" => {
                let Some(data) = fields.next() else {
                    return Err(error(
                        "missing the base64 key data after the key type".into(),
                    ));
                };
                let wire = SSH_BASE64
                    .decode(data)
                    .map_err(|_| error("key data is not valid base64".into()))?;
                if wire_key_type(&wire) != Some(kind.as_bytes()) {
                    return Err(error(format!("key data is not an {kind} key")));
                }
                // Hand age the canonical form: its parser would silently ignore trailing
                // characters glued to the base64, which we reject above by decoding it whole.
                let canonical = format!("{kind} {}", BASE64_STANDARD_NO_PAD.encode(&wire));
                let parsed: age::ssh::Recipient = canonical.parse().map_err(|e| {
                    error(match e {
                        age::ssh::ParseRecipientKeyError::RsaModulusTooLarge => {
                            "RSA key is too large for age".into()
                        }
                        age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                            "RSA key is smaller than 2048 bits".into()
                        }
                        age::ssh::ParseRecipientKeyError::Unsupported(t) => {
                            format!("unsupported key type {t}")
                        }
                        _ => format!("invalid {kind} key data"),
                    })
                })?;
                let tag = ssh_tag(&wire);
                let (kind, inner) = match parsed {
                    // A small-order point (the identity, or of order 2, 4 or 8) makes every
                    // shared secret the same all-zero value: anyone could open the stanza.
                    // Go's age refuses these ("low order point"); we refuse them here, once.
                    age::ssh::Recipient::SshEd25519(_, point) if point.is_small_order() => {
                        return Err(error(WEAK_KEY.into()))
                    }
                    age::ssh::Recipient::SshEd25519(_, point) => (
                        RecipientKind::SshEd25519,
                        Inner::SshEd25519(ssh_ed25519::SshEd25519::new(&wire, point, tag.clone())),
                    ),
                    rsa @ age::ssh::Recipient::SshRsa(..) => {
                        (RecipientKind::SshRsa, Inner::SshRsa(rsa))
                    }
                };
                Ok(Recipient {
                    text: text.to_string(),
                    kind,
                    tag: Some(tag),
                    inner,
                })
            }
            k if k
                .get(..mlkem768x25519::RECIPIENT_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(mlkem768x25519::RECIPIENT_PREFIX)) =>
            {
                if fields.next().is_some() {
                    return Err(error("unexpected text after an age1pq1… recipient".into()));
                }
                let parsed =
                    mlkem768x25519::MlKem768X25519::parse(k).map_err(|e| error(e.into()))?;
                Ok(Recipient {
                    text: text.to_string(),
                    kind: RecipientKind::MlKem768X25519,
                    tag: None,
                    inner: Inner::MlKem768X25519(Box::new(parsed)),
                })
            }
            k if k.starts_with("age1") => {
                if fields.next().is_some() {
                    return Err(error("unexpected text after an age1… recipient".into()));
                }
                let parsed: age::x25519::Recipient = match k.parse() {
                    Ok(parsed) => parsed,
                    Err(_) => {
                        if let Some(p) = plugin::PluginRecipient::parse(k) {
                            return Ok(Recipient {
                                text: text.to_string(),
                                kind: RecipientKind::Plugin,
                                tag: None,
                                inner: Inner::Plugin(p),
                            });
                        }
                        return Err(error(if k.len() > 62 || k[4..].contains('1') {
                            "invalid age plugin recipient (bad bech32 encoding, checksum or plugin name)"
                                .into()
                        } else {
                            "invalid age1… recipient (bad bech32 encoding or checksum)".into()
                        }));
                    }
                };
                let pk = x25519::decode(k)
                    .ok_or_else(|| error("invalid age1… recipient (not 32 bytes)".into()))?;
                if x25519::is_weak(&pk) {
                    return Err(error(WEAK_KEY.into()));
                }
                let inner = Inner::X25519(parsed);
                Ok(Recipient {
                    text: text.to_string(),
                    kind: RecipientKind::X25519,
                    tag: None,
                    inner,
                })
            }
            k if is_unsupported_ssh_type(k) => Err(error(format!(
                "unsupported key type {k} (age encrypts to ssh-ed25519, ssh-rsa and age1… keys)"
            ))),
            _ => Err(error(
                "not an ssh-ed25519, ssh-rsa or age1… public key".into(),
            )),
        }
    }

    /// The recipient as the age crate encrypts to it.
    pub fn as_age(&self) -> &dyn age::Recipient {
        match &self.inner {
            Inner::SshEd25519(r) => r,
            Inner::SshRsa(r) => r,
            Inner::X25519(r) => r,
            Inner::Plugin(r) => r,
            Inner::MlKem768X25519(r) => r.as_ref(),
        }
    }

    /// Whether `key` (a public key line, comment optional) is this same key: compares the
    /// key material, not the text.
    pub fn matches_key(&self, key: &str) -> bool {
        match (key_material(&self.text), key_material(key)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// Test support: a round trip through the age crate's own encryptor and decryptor, which is
/// the reference our recipient implementations must match.
#[cfg(test)]
pub(crate) fn age_crate_round_trip(
    r: &Recipient,
    identity: &dyn age::Identity,
    plaintext: &[u8],
) -> Vec<u8> {
    use std::io::{Read, Write};
    let encryptor = age::Encryptor::with_recipients(std::iter::once(r.as_age())).unwrap();
    let mut ct = Vec::new();
    let mut w = encryptor.wrap_output(&mut ct).unwrap();
    w.write_all(plaintext).unwrap();
    w.finish().unwrap();
    let d = age::Decryptor::new_buffered(&ct[..]).unwrap();
    let mut out = Vec::new();
    d.decrypt(std::iter::once(identity))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[cfg(test)]
/// u-coordinates of small-order points on the curve (0, 1, and the order-8 points of
/// the curve's published list) and on the twist (p-1), plus a non-canonical encoding
/// (p), as in the CCTV `x25519_low_order` family.
pub(crate) fn small_order_u() -> Vec<[u8; 32]> {
    let hex = |s: &str| -> [u8; 32] {
        let v: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    };
    vec![
        [0u8; 32],
        hex("0100000000000000000000000000000000000000000000000000000000000000"),
        hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the age crate's own test vectors.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDE7nIXTGNuaRBN9toI/wNALuQec8mvlt0iJ7o3OaD2UvoKHJ7S8rmIn4FiQDUed/Vac3OhUibei1k+TBmm16u2Rj3klgWZOIDgi8d4vXKI5N3YBhxr3jsQ+kz1c+iZ4z/tTtz306+4K46XViVMWwyyg9j82Jn41mOAy9vdeDIfQ5fLeaGqn5KwlT61GNkZ+ozWK/ZNlQIlNCcoXxhJULIs9XrtczWyVBAea1nlDo0WHODePxoJjmsNHrpQXn5mf9O83xs10qfTUjnRUt48jRmedFy4tcra3QGmSTQ3KZne+wXXSb0cIpXLGvZjQSPHgG1hc4r3uBpiSzvesGLv79XL alice@rust";
    const X25519: &str = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHFliOyIZs1gxGF3fmDxFykQhE88wy6AKDGFBfn0R6ZuvRmENABZQa9+pj9hMki+LX0qDJbmHTiWDbYv/cmFt/Q=";

    fn expected_tag(line: &str) -> String {
        let b64 = line.split_whitespace().nth(1).unwrap();
        let wire = SSH_BASE64.decode(b64).unwrap();
        let d = Sha256::digest(&wire);
        BASE64_STANDARD_NO_PAD.encode(&d[..4])
    }

    #[test]
    fn parses_ed25519_with_comment() {
        let r = Recipient::parse(&format!("  {ED25519}\n")).unwrap();
        assert_eq!(r.kind, RecipientKind::SshEd25519);
        assert_eq!(r.text, ED25519);
        let tag = r.tag.as_deref().unwrap();
        assert_eq!(tag.len(), 6);
        assert_eq!(tag, expected_tag(ED25519));
    }

    #[test]
    fn from_str_and_display_round_trip_every_kind() {
        for line in [ED25519, RSA, X25519] {
            let r: Recipient = format!("  {line}\n").parse().unwrap();
            assert_eq!(r.to_string(), line);
            let again: Recipient = r.to_string().parse().unwrap();
            assert_eq!((again.kind, again.tag), (r.kind, r.tag));
        }
        let err = "ssh-ed25519 AAAA".parse::<Recipient>().unwrap_err();
        assert!(err.to_string().starts_with("invalid public key"), "{err}");
    }

    #[test]
    fn parses_without_comment() {
        let no_comment = ED25519.rsplit_once(' ').unwrap().0;
        let a = Recipient::parse(no_comment).unwrap();
        let b = Recipient::parse(ED25519).unwrap();
        assert_eq!(a.tag, b.tag);
        assert!(a.matches_key(ED25519));
    }

    /// An ssh-rsa 3072 public key (407-byte wire form): OpenSSH writes its base64 with one
    /// `=` of padding. (ed25519 and ssh-rsa 2048 wire forms are multiples of 3 bytes: never
    /// padded, so they cannot show this.)
    const RSA_3072: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDP2Wr15bhEvO+soQKB+LW8RhYyBfc2DhFNtW5OqB/glVhiNzh65hKreqm1tBxqhJ2GH2juaIWd3cQLTIYa+4lcrNEQzSC7F3nYNv0Y3telvBwYfLS3Y238cZGVsDgAKi9oqE6cTuwHvD6d63d+7lu0akFasCA7UtcStGNSP0uZnwL3N8ZPHQoL/70rw0Ptkk+3yry+RsX7YqW1iN5nuKRuaZU69cbZxSGRsk0tpeOYwwLzKOQWwTdax4sSohIfO7qOl/K8oBOIm74uRdYFzin5gAO0rjFVkqFAD0deeoX2UbWFbtvxlwz5Z3HxctayjwVCVJApiPdx3tI102Pif5gwVs56ZOJPTwyMVdHfytCqFEqdrGzAQEUf1YAaRjMW0EVYbt7Ekp5WABkgxgFlX2CesRtCd6cKp2jLq3dnB5+4/csNYvUBlYi5mBOJ4N4VluGJ5/1IOM8d13VFGegq0rSzFY6rCx1A5wcAF5FkKWj45KuReh+UDZVeFP5s6usmAEc=";

    #[test]
    fn padded_and_unpadded_base64_are_the_same_key() {
        let padded = RSA_3072.split_whitespace().nth(1).unwrap();
        assert!(padded.ends_with('=') && !padded.ends_with("=="), "{padded}");
        let a = Recipient::parse(RSA_3072).unwrap();
        assert_eq!(a.kind, RecipientKind::SshRsa);
        let unpadded = format!("ssh-rsa {}", padded.trim_end_matches('='));
        let b = Recipient::parse(&unpadded).unwrap();
        assert_eq!(b.tag, a.tag);
        assert!(b.matches_key(RSA_3072) && a.matches_key(&unpadded));
        // Padding that does not fit the length is not the same key written differently.
        let overpadded = format!("ssh-rsa {padded}=");
        assert!(Recipient::parse(&overpadded).is_err());
        assert!(!a.matches_key(&overpadded));
    }

    #[test]
    fn parses_rsa_and_x25519() {
        let r = Recipient::parse(RSA).unwrap();
        assert_eq!(r.kind, RecipientKind::SshRsa);
        assert_eq!(r.tag.as_deref(), Some(expected_tag(RSA).as_str()));
        let x = Recipient::parse(X25519).unwrap();
        assert_eq!(x.kind, RecipientKind::X25519);
        assert_eq!(x.tag, None);
        assert_eq!(tag_of(X25519).unwrap(), None);
        assert_eq!(tag_of(RSA).unwrap(), r.tag);
    }

    #[test]
    fn rejects_bad_keys_with_abbreviated_key_and_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty key"),
            ("   ", "empty key"),
            (ECDSA, "unsupported key type ecdsa-sha2-nistp256"),
            (
                "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAI",
                "unsupported key type sk-ssh-ed25519",
            ),
            ("hello world", "not an ssh-ed25519, ssh-rsa or age1"),
            ("ssh-ed25519", "missing the base64"),
            ("ssh-ed25519 !!!notbase64!!!", "not valid base64"),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGNxyz", "not valid base64"),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW", "invalid ssh-ed25519 key data"),
            ("age1xyz", "invalid age1"),
            ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCYdoGX7H/tHJ2esRHIvm4pXRNsiRoQ6rO10+mdTBes/OMfhzJlMh0go0NkyvCL9CtiX4wWRk72uuCyFlz1dZnLo5TfqimBVBLlqFW13Rnv0ib3XrEErFXrk6fg84raUGC6TeH5WcHGBc/WgVxcI1S+yDvWU26pXUvX+iXErH+kvw== small", "smaller than 2048 bits"),
            ("age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3x", "invalid age plugin recipient"),
            ("age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pb", "invalid age1"),
            // A multi-byte character where the age1pq1 prefix would end.
            ("age1pq€", "invalid age1"),
            ("age1pq1", "age1pq1"),
        ];
        for (input, reason) in cases {
            let e = Recipient::parse(input).unwrap_err();
            assert!(
                e.reason.contains(reason),
                "{input:?}: reason {:?} lacks {reason:?}",
                e.reason
            );
            assert!(
                e.key.chars().count() <= ABBREVIATED_CHARS + 1,
                "{:?}",
                e.key
            );
            assert!(!e.to_string().contains('\n'));
        }
        // A key type that disagrees with its data.
        let swapped = ED25519.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(Recipient::parse(&swapped)
            .unwrap_err()
            .reason
            .contains("not an ssh-rsa key"));
        let long = Recipient::parse(ECDSA).unwrap_err();
        assert_eq!(long.key, "ecdsa-sha2-nistp256 …");
    }

    #[test]
    fn private_keys_are_never_echoed() {
        let secret = "AGE-SECRET-KEY-1QQPQQFQ8PJWMXCDFGHJKLMNPQRSTUVWXYZ";
        let e = Recipient::parse(secret).unwrap_err();
        assert!(!e.to_string().contains("QQPQ"));
        assert!(e.reason.contains("private key"));
    }

    #[test]
    fn matches_key_ignores_comments() {
        let r = Recipient::parse(ED25519).unwrap();
        let bare = ED25519.rsplit_once(' ').unwrap().0;
        assert!(r.matches_key(bare));
        assert!(r.matches_key(&format!("{bare} other@host")));
        assert!(!r.matches_key(RSA));
        assert!(!r.matches_key("garbage"));
        let x = Recipient::parse(X25519).unwrap();
        assert!(x.matches_key(X25519));
        assert!(!x.matches_key(ED25519));
    }

    /// The age spec's stanza computed the age crate's way (Montgomery ladders, from
    /// x25519-dalek, which the age crate uses): the reference for the known-answer tests.
    fn reference_stanza(
        label: &[u8],
        pk: [u8; 32],
        second_ladder: Option<[u8; 32]>,
        esk: [u8; 32],
        file_key: &[u8; 16],
    ) -> (Vec<u8>, [u8; 32]) {
        use x25519_dalek::{x25519, X25519_BASEPOINT_BYTES};
        let epk = x25519(esk, X25519_BASEPOINT_BYTES);
        let mut shared = x25519(esk, pk);
        if let Some(tweak) = second_ladder {
            shared = x25519(tweak, shared);
        }
        let mut salt = epk.to_vec();
        salt.extend_from_slice(&pk);
        let key = age_core::primitives::hkdf(&salt, label, &shared);
        (age_core::primitives::aead_encrypt(&key, file_key), epk)
    }

    fn random_bytes<const N: usize>() -> [u8; N] {
        use rand::RngCore;
        let mut b = [0u8; N];
        rand::rngs::OsRng.fill_bytes(&mut b);
        b
    }

    fn file_key(bytes: [u8; 16]) -> age_core::format::FileKey {
        age_core::format::FileKey::init_with_mut(|k| k.copy_from_slice(&bytes))
    }

    /// Our ssh-ed25519 stanza (tweaked point precomputed) is byte for byte the age crate's
    /// computation `X25519(tweak, X25519(esk, pk))`, and the age crate's identity unwraps it.
    #[test]
    fn ssh_ed25519_stanzas_are_byte_identical_to_the_reference() {
        use age::secrecy::ExposeSecret;
        use age::Identity as _;
        for _ in 0..32 {
            let keypair = ssh_key::private::Ed25519Keypair::from_seed(&random_bytes::<32>());
            let private = ssh_key::PrivateKey::from(keypair);
            let line = private.public_key().to_openssh().unwrap();
            let pem = private.to_openssh(ssh_key::LineEnding::LF).unwrap();
            let identity = age::ssh::Identity::from_buffer(pem.as_bytes(), None).unwrap();
            let r = Recipient::parse(&line).unwrap();
            let Inner::SshEd25519(ours) = &r.inner else {
                panic!("an ed25519 key")
            };
            let (fk, esk) = (random_bytes::<16>(), random_bytes::<32>());
            let stanza = ours
                .stanza(&file_key(fk), &zeroize::Zeroizing::new(esk))
                .unwrap();
            let wire = SSH_BASE64
                .decode(line.split_whitespace().nth(1).unwrap())
                .unwrap();
            let label = b"age-encryption.org/v1/ssh-ed25519";
            let tweak = age_core::primitives::hkdf(&wire, label, &[]);
            let point = curve25519_dalek::edwards::CompressedEdwardsY(
                wire[wire.len() - 32..].try_into().unwrap(),
            )
            .decompress()
            .unwrap();
            let pk = point.to_montgomery().to_bytes();
            let (body, epk) = reference_stanza(label, pk, Some(tweak), esk, &fk);
            assert_eq!(stanza.tag, "ssh-ed25519");
            assert_eq!(
                stanza.args,
                vec![ssh_tag(&wire), BASE64_STANDARD_NO_PAD.encode(epk)]
            );
            assert_eq!(stanza.body, body);
            let unwrapped = identity.unwrap_stanza(&stanza).unwrap().unwrap();
            assert_eq!(unwrapped.expose_secret(), &fk);
        }
    }

    /// Every small-order point, as an ssh-ed25519 key or an X25519 key (curve and twist,
    /// canonical or not), is refused when parsed: no stanza is ever made for it.
    #[test]
    fn small_order_and_twist_keys_are_refused_when_parsed() {
        // The Edwards points of order 1, 2, 4 and 8 (curve25519-dalek's EIGHT_TORSION).
        for (i, point) in curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .enumerate()
        {
            let mut wire = Vec::new();
            for field in [&b"ssh-ed25519"[..], point.compress().as_bytes()] {
                wire.extend_from_slice(&(field.len() as u32).to_be_bytes());
                wire.extend_from_slice(field);
            }
            let line = format!(
                "ssh-ed25519 {} torsion{i}",
                BASE64_STANDARD_NO_PAD.encode(&wire)
            );
            let e = Recipient::parse(&line).unwrap_err();
            assert!(
                e.reason.contains("weak key"),
                "torsion point {i}: {}",
                e.reason
            );
        }
        // The identity point (y = 1) as an OpenSSH public key line.
        let e = Recipient::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .unwrap_err();
        assert!(e.reason.contains("low-order point"), "{}", e.reason);
        // X25519: every u whose shared secret is all zeros, incl. u = p-1 (the twist) which
        // made the age crate panic, and the non-canonical p and p+1.
        let mut weak = small_order_u();
        weak.push({
            let mut u = [0xffu8; 32];
            u[0] = 0xee;
            u[31] = 0x7f;
            u
        });
        for u in weak {
            let text =
                bech32::encode::<bech32::Bech32>(bech32::Hrp::parse("age").unwrap(), &u).unwrap();
            let e = Recipient::parse(&text).unwrap_err();
            assert!(e.reason.contains("weak key"), "{text}: {}", e.reason);
        }
        let e = Recipient::parse("age1anlllllllllllllllllllllllllllllllllllllllllllllllals4n2t7m")
            .unwrap_err();
        assert!(e.reason.contains("weak key"), "{}", e.reason);
        // A strong key is still accepted, twist or not: a twist point of large order has no
        // Edwards form and goes to the age crate.
        assert!(Recipient::parse(X25519).is_ok());
    }

    #[test]
    fn abbreviation() {
        assert_eq!(abbreviate("short"), "short");
        assert_eq!(abbreviate("12345678901234567890"), "12345678901234567890");
        assert_eq!(abbreviate("123456789012345678901"), "12345678901234567890…");
    }
}
