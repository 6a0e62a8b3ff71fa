//! The ephemeral-static exchange of the native `ssh-ed25519` stanza (the age spec's X25519
//! exchange, done on the Edwards form):
//!
//! ```text
//! esk    = 32 random bytes;   epk = X25519(esk, basepoint)
//! shared = [clamp(esk)]·P, as a Montgomery u-coordinate
//! key    = HKDF-SHA256(salt = epk || pk, info = label, ikm = shared)
//! body   = ChaCha20-Poly1305(key, nonce 0, file_key)
//! ```
//!
//! `P` is the Edwards point multiplied (the recipient's point's tweaked multiple) and `pk` the
//! recipient's own u-coordinate.

use age::secrecy::ExposeSecret;
use age_core::format::FileKey;
use age_core::primitives::{aead_encrypt, hkdf};
use curve25519_dalek::edwards::EdwardsBasepointTable;
use curve25519_dalek::traits::BasepointTable;
use curve25519_dalek::EdwardsPoint;
use rand::RngCore;
use zeroize::Zeroizing;

/// The point `P` an exchange multiplies, with or without a precomputed table of its
/// multiples: both give the same point for the same scalar.
pub(super) enum Multiplier<'a> {
    /// Variable-base multiplication.
    Point(&'a EdwardsPoint),
    /// Fixed-base multiplication from the point's table (about three times faster, for a
    /// point multiplied many times in one run). The table multiplies by the clamped integer
    /// itself, not reduced mod ℓ, so a point with a torsion component gets the same result.
    Table(&'a EdwardsBasepointTable),
}

impl Multiplier<'_> {
    fn mul_clamped(&self, bytes: [u8; 32]) -> EdwardsPoint {
        match self {
            Multiplier::Point(p) => p.mul_clamped(bytes),
            Multiplier::Table(t) => t.mul_base_clamped(bytes),
        }
    }
}

/// The result of one exchange: what goes into the stanza.
pub(super) struct Sealed {
    /// The ephemeral public key (u-coordinate), the stanza's last argument.
    pub epk: [u8; 32],
    /// The sealed file key, the stanza's body.
    pub body: Vec<u8>,
    /// Whether the shared secret was all zeros (only a small-order `P` gives that); the
    /// stanza type decides whether that is an error.
    pub shared_is_zero: bool,
}

/// A fresh ephemeral secret from the OS.
pub(super) fn ephemeral_secret() -> Result<Zeroizing<[u8; 32]>, age::EncryptError> {
    let mut esk = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(esk.as_mut())
        .map_err(|e| age::EncryptError::Io(std::io::Error::other(e.to_string())))?;
    Ok(esk)
}

/// Seals `file_key` for the point `point` with recipient u-coordinate `pk` under `label`,
/// with the ephemeral secret `esk` (random in use; fixed in the known-answer tests).
pub(super) fn seal(
    point: &Multiplier<'_>,
    pk: &[u8; 32],
    label: &[u8],
    file_key: &FileKey,
    esk: &Zeroizing<[u8; 32]>,
) -> Sealed {
    let epk = EdwardsPoint::mul_base_clamped(**esk)
        .to_montgomery()
        .to_bytes();
    let shared_point = Zeroizing::new(point.mul_clamped(**esk));
    let shared = Zeroizing::new(shared_point.to_montgomery().to_bytes());
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&epk);
    salt[32..].copy_from_slice(pk);
    let key = Zeroizing::new(hkdf(&salt, label, shared.as_ref()));
    Sealed {
        epk,
        body: aead_encrypt(&key, file_key.expose_secret()),
        shared_is_zero: shared.iter().all(|&b| b == 0),
    }
}
