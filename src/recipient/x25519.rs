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
use zeroize::Zeroizing;

const LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const STANZA_TYPE: &str = "X25519";

#[derive(Clone)]
pub(super) struct X25519 {
    pk: [u8; 32],
    point: EdwardsPoint,
}

/// The 32-byte u-coordinate of `age1…` text already validated by the age crate.
pub(super) fn decode(text: &str) -> Option<[u8; 32]> {
    let bytes: Vec<u8> =
        age_core::primitives::bech32_decode(text, |_| (), |_| Ok(()), |_, data| Ok(data.collect()))
            .ok()?;
    bytes.try_into().ok()
}

/// Whether `X25519(esk, pk)` is all zeros for every ephemeral key: exactly when `pk` has
/// small order on the curve or on its twist (a clamped scalar is a multiple of 8, which
/// kills every small-order component and, being below both large prime orders times 8,
/// no large-order one). So one multiplication by any clamped scalar decides it. The age
/// crate panics when it meets such a key ("Generated the all-zero esk"); we refuse it when
/// parsing.
pub(super) fn is_weak(pk: &[u8; 32]) -> bool {
    MontgomeryPoint(*pk).mul_clamped([0x5a; 32]).to_bytes() == [0u8; 32]
}

impl X25519 {
    /// The recipient with its point decoded; `None` when `pk` is not the u-coordinate of a
    /// point of the curve (a twist point: left to the age crate).
    pub(super) fn new(pk: [u8; 32]) -> Option<Self> {
        let point = MontgomeryPoint(pk).to_edwards(0)?;
        Some(X25519 { pk, point })
    }
}

impl X25519 {
    /// The stanza for `file_key` with the ephemeral secret `esk`.
    pub(super) fn stanza(
        &self,
        file_key: &FileKey,
        esk: &Zeroizing<[u8; 32]>,
    ) -> Result<Stanza, age::EncryptError> {
        let sealed = super::exchange::seal(&self.point, &self.pk, LABEL, file_key, esk);
        // Parsing refuses small-order keys; never emit a stanza an all-zero secret sealed.
        if sealed.shared_is_zero {
            return Err(age::EncryptError::Io(std::io::Error::other(
                "X25519 recipient is a low-order point",
            )));
        }
        Ok(Stanza {
            tag: STANZA_TYPE.to_owned(),
            args: vec![BASE64_STANDARD_NO_PAD.encode(sealed.epk)],
            body: sealed.body,
        })
    }
}

impl age::Recipient for X25519 {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let esk = super::exchange::ephemeral_secret()?;
        Ok((vec![self.stanza(file_key, &esk)?], HashSet::new()))
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
            assert!(super::X25519::new(super::decode(&r.text).unwrap()).is_some());
            let out = crate::recipient::age_crate_round_trip(&r, &identity, b"edwards form");
            assert_eq!(out, b"edwards form");
        }
    }
}
