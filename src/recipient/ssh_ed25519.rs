//! The `ssh-ed25519` age recipient, with its per-key work done once.
//!
//! Why not `age::ssh::Recipient`: rekey wraps one file key per file for every recipient, and
//! the age crate's wrap costs two X25519 ladders plus one fixed-base multiplication each time.
//! The stanza (age spec, ssh-ed25519):
//!
//! ```text
//! tweak  = HKDF-SHA256(salt = ssh_key, info = LABEL, ikm = "")
//! pk     = the recipient's Ed25519 point, as a Montgomery u-coordinate
//! esk    = 32 random bytes;   epk = X25519(esk, basepoint)
//! shared = X25519(tweak, X25519(esk, pk))
//! key    = HKDF-SHA256(salt = epk || pk, info = LABEL, ikm = shared)
//! body   = ChaCha20-Poly1305(key, nonce 0, file_key)
//! stanza = "-> ssh-ed25519 <tag> <base64(epk)>" + body
//! ```
//!
//! Scalar multiplication commutes, so `shared = X25519(esk, X25519(tweak, pk))`: the point
//! `[clamp(tweak)]·A` is computed once per recipient, and each wrap costs one fixed-base and
//! one variable-base multiplication (done on the Edwards form, where curve25519-dalek uses its
//! vectorised backend when the CPU has one; in a rekey, from a table of the tweaked point's
//! multiples: [`super::exchange::ReusedPoint`]). Both sides of the equality are clamped-scalar
//! multiples of the same curve point, so the bytes are exactly those the age crate would
//! produce for the same `esk`; the interop tests check this against the `age` CLI both ways
//! and the unit test below against the age crate's own identity.

use std::collections::HashSet;

use age_core::format::{FileKey, Stanza};
use age_core::primitives::hkdf;
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use curve25519_dalek::EdwardsPoint;
use zeroize::Zeroizing;

use super::exchange::ReusedPoint;

const LABEL: &[u8] = b"age-encryption.org/v1/ssh-ed25519";
const STANZA_TYPE: &str = "ssh-ed25519";

/// An ssh-ed25519 recipient with the tweaked point precomputed.
#[derive(Clone)]
pub(super) struct SshEd25519 {
    /// The recipient's key as a Montgomery u-coordinate (part of the HKDF salt).
    pk: [u8; 32],
    /// `[clamp(tweak)]·A`, A the recipient's Ed25519 point.
    tweaked: ReusedPoint,
    tag: String,
}

impl SshEd25519 {
    /// `wire` is the SSH wire public key, `point` its decoded Ed25519 point, `tag` its
    /// stanza tag.
    pub(super) fn new(wire: &[u8], point: EdwardsPoint, tag: String) -> Self {
        // Everything here is public: the tweak is derived from the public key alone.
        let tweak = hkdf(wire, LABEL, &[]);
        SshEd25519 {
            pk: point.to_montgomery().to_bytes(),
            tweaked: ReusedPoint::new(point.mul_clamped(tweak)),
            tag,
        }
    }
}

impl SshEd25519 {
    /// The stanza for `file_key` with the ephemeral secret `esk`.
    pub(super) fn stanza(
        &self,
        file_key: &FileKey,
        esk: &Zeroizing<[u8; 32]>,
    ) -> Result<Stanza, age::EncryptError> {
        let sealed = super::exchange::seal(&self.tweaked, &self.pk, LABEL, file_key, esk);
        // Parsing refuses small-order keys; never emit a stanza an all-zero secret sealed.
        if sealed.shared_is_zero {
            return Err(age::EncryptError::Io(std::io::Error::other(
                "ssh-ed25519 recipient is a low-order point",
            )));
        }
        Ok(Stanza {
            tag: STANZA_TYPE.to_owned(),
            args: vec![self.tag.clone(), BASE64_STANDARD_NO_PAD.encode(sealed.epk)],
            body: sealed.body,
        })
    }
}

impl age::Recipient for SshEd25519 {
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

    // A test-only key made by ssh-keygen for this test.
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBRyznFXqOzISO7pSjmr3zM6cYMh1eS4QTodMraz5xlvwAAAIjup2PC7qdj\nwgAAAAtzc2gtZWQyNTUxOQAAACBRyznFXqOzISO7pSjmr3zM6cYMh1eS4QTodMraz5xlvw\nAAAEDBwf5/Y9j8HUx2wi39e7F4rGaSb1olkcnsvjWRAp0EKlHLOcVeo7MhI7ulKOavfMzp\nxgyHV5LhBOh0ytrPnGW/AAAABXBsYWlu\n-----END OPENSSH PRIVATE KEY-----\n";
    const PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFHLOcVeo7MhI7ulKOavfMzpxgyHV5LhBOh0ytrPnGW/ plain";

    #[test]
    fn the_age_crate_unwraps_our_stanzas() {
        let identity = age::ssh::Identity::from_buffer(KEY.as_bytes(), None).unwrap();
        let r = Recipient::parse(PUB).unwrap();
        assert_eq!(r.kind, RecipientKind::SshEd25519);
        // Past the wraps after which the tweaked point's table is used: both ways checked.
        for _ in 0..2 * super::super::exchange::TABLE_AFTER {
            let out = crate::recipient::age_crate_round_trip(&r, &identity, b"tweak commutes");
            assert_eq!(out, b"tweak commutes");
        }
    }
}
