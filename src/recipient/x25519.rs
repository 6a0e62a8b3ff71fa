//! The native `X25519` age recipient (`age1…`), with its point decoded once.
//!
//! The age spec's stanza: `esk` random, `epk = X25519(esk, basepoint)`,
//! `shared = X25519(esk, pk)`, `key = HKDF-SHA256(salt = epk || pk, info = LABEL, shared)`,
//! body = ChaCha20-Poly1305(key, nonce 0, file_key), stanza `-> X25519 <base64(epk)>`.
//!
//! `X25519(esk, pk)` is the u-coordinate of `[clamp(esk)]·P` for either Edwards point `P`
//! with u-coordinate `pk`; decoding `P` once lets every wrap use curve25519-dalek's
//! vectorised variable-base multiplication instead of a Montgomery ladder. A `pk` that is not
//! on the curve has no such `P`: those keys stay with the age crate's recipient.

use std::collections::HashSet;

use age_core::format::{FileKey, Stanza};
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::EdwardsPoint;

const LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const STANZA_TYPE: &str = "X25519";

#[derive(Clone)]
pub(super) struct X25519 {
    pk: [u8; 32],
    point: EdwardsPoint,
}

impl X25519 {
    /// The decoded recipient for `age1…` text already validated by the age crate; `None`
    /// when the key is not a point of the curve (or does not decode).
    pub(super) fn new(text: &str) -> Option<Self> {
        let bytes: Vec<u8> = age_core::primitives::bech32_decode(
            text,
            |_| (),
            |_| Ok(()),
            |_, data| Ok(data.collect()),
        )
        .ok()?;
        let pk: [u8; 32] = bytes.try_into().ok()?;
        let point = MontgomeryPoint(pk).to_edwards(0)?;
        Some(X25519 { pk, point })
    }
}

impl age::Recipient for X25519 {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let sealed = super::exchange::seal(&self.point, &self.pk, LABEL, file_key)?;
        // Only a small-order recipient key gives an all-zero secret (age panics there).
        if sealed.shared_is_zero {
            return Err(age::EncryptError::Io(std::io::Error::other(
                "X25519 recipient is a low-order point",
            )));
        }
        Ok((
            vec![Stanza {
                tag: STANZA_TYPE.to_owned(),
                args: vec![BASE64_STANDARD_NO_PAD.encode(sealed.epk)],
                body: sealed.body,
            }],
            HashSet::new(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::recipient::{Recipient, RecipientKind};

    #[test]
    fn the_age_crate_unwraps_our_stanzas() {
        for _ in 0..10 {
            let identity = age::x25519::Identity::generate();
            let r = Recipient::parse(&identity.to_public().to_string()).unwrap();
            assert_eq!(r.kind, RecipientKind::X25519);
            assert!(super::X25519::new(&r.text).is_some());
            let out = crate::recipient::age_crate_round_trip(&r, &identity, b"edwards form");
            assert_eq!(out, b"edwards form");
        }
    }
}
