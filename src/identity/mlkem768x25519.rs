//! The hybrid post-quantum identity (`AGE-SECRET-KEY-PQ-1…`): a 32-byte X-Wing seed that
//! unwraps `mlkem768x25519` stanzas (format in `recipient/mlkem768x25519.rs`).
//!
//! Unwrapping is as strict as the spec and the Go reference: a stanza of this type with
//! other than one argument, an `enc` that is not canonical base64 of 1120 bytes, a body that
//! is not 32 bytes, or an X25519 share of small order is a header error; a body that does not
//! open (another recipient's stanza) is not ours.

use age::DecryptError;
use age_core::format::{FileKey, Stanza};
use age_core::secrecy::zeroize::Zeroize;
use hpke::Kem;
use zeroize::Zeroizing;

use crate::recipient::mlkem768x25519::{self as pq, PrivateKey, XWing};

/// Bech32 HRP of identities (written upper case).
const IDENTITY_HRP: &str = "age-secret-key-pq-";

/// A hybrid post-quantum identity.
#[derive(Clone)]
pub struct MlKem768X25519Identity {
    sk: PrivateKey,
}

impl MlKem768X25519Identity {
    /// A new random identity.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut seed = Zeroizing::new([0u8; pq::SEED_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut seed[..]);
        MlKem768X25519Identity {
            sk: PrivateKey::from_seed(*seed),
        }
    }

    /// Parses `AGE-SECRET-KEY-PQ-1…` (upper or lower case, not mixed). The error is a
    /// one-line reason that never repeats key material.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        age_core::primitives::bech32_decode(
            s,
            |_| "invalid post-quantum identity (bad bech32 encoding or checksum)",
            |hrp| {
                (hrp.to_lowercase() == IDENTITY_HRP)
                    .then_some(())
                    .ok_or("not an AGE-SECRET-KEY-PQ-1… identity")
            },
            |_, data| {
                let mut seed = Zeroizing::new([0u8; pq::SEED_LEN]);
                let mut n = 0;
                for b in data {
                    if n == pq::SEED_LEN {
                        return Err("invalid post-quantum identity (longer than 32 bytes)");
                    }
                    seed[n] = b;
                    n += 1;
                }
                if n != pq::SEED_LEN {
                    return Err("invalid post-quantum identity (shorter than 32 bytes)");
                }
                Ok(MlKem768X25519Identity {
                    sk: PrivateKey::from_seed(*seed),
                })
            },
        )
    }

    /// The identity as written in an identity file (upper case), in zeroized memory.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let mut lower = age_core::primitives::bech32_encode(
            bech32::Hrp::parse_unchecked(IDENTITY_HRP),
            self.sk.seed(),
        );
        let upper = Zeroizing::new(lower.to_ascii_uppercase());
        lower.zeroize();
        upper
    }

    /// The `age1pq1…` recipient of this identity.
    pub fn recipient(&self) -> String {
        pq::encode_recipient(XWing::sk_to_pk(&self.sk).bytes())
    }
}

impl age::Identity for MlKem768X25519Identity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        if stanza.tag != pq::STANZA_TYPE {
            return None;
        }
        let Ok((enc, body)) = pq::check_stanza(stanza) else {
            return Some(Err(DecryptError::InvalidHeader));
        };
        match age_core::primitives::hpke_open::<XWing>(&enc, &self.sk, pq::INFO, &body) {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                let Ok(key) = <[u8; age_core::format::FILE_KEY_BYTES]>::try_from(&plain[..]) else {
                    // A 32-byte body always opens to 16 bytes; keep the check local anyway.
                    return Some(Err(DecryptError::InvalidHeader));
                };
                Some(Ok(FileKey::init_with_mut(|k| *k = key)))
            }
            // The X25519 share is of small order: the spec's disallowed all-zero secret.
            Err(hpke::HpkeError::DecapError) => Some(Err(DecryptError::InvalidHeader)),
            // ML-KEM rejects implicitly: another recipient's stanza fails only here.
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_text_round_trips() {
        let id = MlKem768X25519Identity::generate();
        let text = id.to_secret_string();
        assert!(text.starts_with("AGE-SECRET-KEY-PQ-1"));
        let back = MlKem768X25519Identity::parse(&text).unwrap();
        assert_eq!(back.recipient(), id.recipient());
        assert!(MlKem768X25519Identity::parse(&text.to_lowercase()).is_ok());
        // A changed character: checksum error, no key material in the message.
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'Q' { 'P' } else { 'Q' };
        let e = MlKem768X25519Identity::parse(&chars.iter().collect::<String>())
            .err()
            .unwrap();
        assert!(e.contains("checksum"));
        assert!(MlKem768X25519Identity::parse("AGE-SECRET-KEY-1QQQQ").is_err());
    }
}
