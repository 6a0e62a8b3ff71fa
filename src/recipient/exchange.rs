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
//! recipient's own u-coordinate. [`ReusedPoint`] is how a recipient's point is multiplied by
//! the ephemeral scalars of many wraps, here and in the X25519 half of the post-quantum
//! recipient.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use age::secrecy::ExposeSecret;
use age_core::format::FileKey;
use age_core::primitives::{aead_encrypt, hkdf};
use curve25519_dalek::edwards::EdwardsBasepointTable;
use curve25519_dalek::traits::BasepointTable;
use curve25519_dalek::EdwardsPoint;
use rand::RngCore;
use zeroize::Zeroizing;

/// Multiplications after which a [`ReusedPoint`] builds its fixed-base table: the table
/// (256 affine multiples, one field inversion each) costs about as much as 30
/// variable-base multiplications and makes each later one about three times cheaper, so it
/// pays for itself only in a run that multiplies the same point many times (a rekey wraps a
/// file key for every recipient of every file).
pub(super) const TABLE_AFTER: u32 = 32;

/// A recipient's point, multiplied by a fresh ephemeral scalar for every file key wrapped to
/// it: by variable-base multiplication at first, from a table of its multiples once it has
/// been multiplied [`TABLE_AFTER`] times. Both give the same point for the same scalar: the
/// table multiplies by the clamped integer itself, not reduced mod ℓ, so a point with a
/// torsion component gets the same result too.
#[derive(Clone)]
pub(super) struct ReusedPoint {
    point: EdwardsPoint,
    /// Shared by the clones (the recipient cache hands one recipient to every file's
    /// thread); built by the first thread past [`TABLE_AFTER`], the others wait for it.
    table: Arc<OnceLock<EdwardsBasepointTable>>,
    uses: Arc<AtomicU32>,
}

impl ReusedPoint {
    pub(super) fn new(point: EdwardsPoint) -> Self {
        ReusedPoint {
            point,
            table: Arc::default(),
            uses: Arc::default(),
        }
    }

    /// `[clamp(bytes)]·P`.
    pub(super) fn mul_clamped(&self, bytes: [u8; 32]) -> EdwardsPoint {
        if let Some(table) = self.table.get() {
            return table.mul_base_clamped(bytes);
        }
        if self.uses.fetch_add(1, Ordering::Relaxed) < TABLE_AFTER {
            return self.point.mul_clamped(bytes);
        }
        self.table
            .get_or_init(|| EdwardsBasepointTable::create(&self.point))
            .mul_base_clamped(bytes)
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
    point: &ReusedPoint,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_point_give_the_same_multiples() {
        let mut rng = rand::rngs::OsRng;
        for torsion in curve25519_dalek::constants::EIGHT_TORSION {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            // Any point: a torsion component too, which a reduced scalar would get wrong.
            let point = EdwardsPoint::mul_base_clamped(bytes) + torsion;
            let reused = ReusedPoint::new(point);
            for i in 0..2 * TABLE_AFTER {
                rng.fill_bytes(&mut bytes);
                assert_eq!(
                    reused.mul_clamped(bytes),
                    point.mul_clamped(bytes),
                    "multiplication {i}"
                );
            }
            assert!(reused.table.get().is_some(), "the table was never used");
        }
    }
}
