//! The `ssh-ed25519` age identity, with its per-key work done once (the decrypt-side
//! counterpart of `recipient/ssh_ed25519.rs`).
//!
//! The age crate's unwrap costs a fixed-base multiplication and two X25519 ladders per file:
//! `shared = X25519(tweak, X25519(sk, epk))`. Here `pk` is computed once, and for an `epk` on
//! the curve (every honest one: it is `X25519(esk, basepoint)`) the two multiplications are
//! one: with `c_t = clamp(tweak)`, `c_s = clamp(sk)`, both multiples of 8, and every curve
//! point's order dividing `8ℓ`,
//!
//! ```text
//! [c_t]([c_s]P) = [c_t·c_s mod 8ℓ]P = [8]·[(c_t·c_s/8) mod ℓ]P = [8]·[s]P,
//! s = c_t · c_s · 8⁻¹ mod ℓ   (precomputed)
//! ```
//!
//! `P` is either point with `epk` as its u-coordinate (both give the same u). An `epk` not on
//! the curve (twist points, only in hostile files) takes the ladder path, exactly as age.
//! Error semantics mirror Go's age (the reference): a well-formed stanza with another tag is
//! "not mine" (`None`); a wrong argument count, a malformed share, a wrong body length, an
//! all-zero shared secret or a failed decryption is an error.

use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use age_core::primitives::{aead_decrypt, hkdf};
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use curve25519_dalek::EdwardsPoint;
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

const LABEL: &[u8] = b"age-encryption.org/v1/ssh-ed25519";
const STANZA_TYPE: &str = "ssh-ed25519";

/// An unencrypted ssh-ed25519 key ready to unwrap stanzas. Secret parts zeroize on drop.
pub(super) struct SshEd25519Identity {
    tag: [u8; 4],
    /// X25519 public key of `sk` (part of the HKDF salt).
    pk: [u8; 32],
    /// `clamp(sk)` bytes, for the ladder path.
    sk: Zeroizing<[u8; 32]>,
    /// `clamp(tweak)` bytes, for the ladder path. The tweak is derived from the public key
    /// alone: not secret.
    tweak: [u8; 32],
    /// `clamp(tweak)·clamp(sk)·8⁻¹ mod ℓ`.
    combined: Zeroizing<Scalar>,
}

impl SshEd25519Identity {
    /// `wire` is the SSH wire public key; `seed` the 32-byte Ed25519 private key.
    pub(super) fn new(wire: &[u8], seed: &[u8; 32]) -> Self {
        let mut digest = Sha512::digest(seed);
        let mut sk_bytes = [0u8; 32];
        sk_bytes.copy_from_slice(&digest[..32]);
        digest.as_mut_slice().zeroize();
        let sk = Zeroizing::new(clamp_integer(sk_bytes));
        sk_bytes.zeroize();
        let tweak = clamp_integer(hkdf(wire, LABEL, &[]));
        let pk = EdwardsPoint::mul_base_clamped(*sk)
            .to_montgomery()
            .to_bytes();
        let inv8 = Scalar::from(8u8).invert();
        let combined = Zeroizing::new(
            Scalar::from_bytes_mod_order(tweak)
                * *Zeroizing::new(Scalar::from_bytes_mod_order(*sk))
                * inv8,
        );
        let mut tag = [0u8; 4];
        tag.copy_from_slice(&Sha256::digest(wire)[..4]);
        SshEd25519Identity {
            tag,
            pk,
            sk,
            tweak,
            combined,
        }
    }

    /// `X25519(tweak, X25519(sk, epk))`.
    fn shared_secret(&self, epk: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let u = MontgomeryPoint(*epk);
        // The intermediate points are as secret as the result: zeroized too.
        match u.to_edwards(0) {
            Some(p) => {
                let shared = Zeroizing::new((*self.combined * p).mul_by_cofactor());
                Zeroizing::new(shared.to_montgomery().to_bytes())
            }
            None => {
                let inner = Zeroizing::new(u.mul_clamped(*self.sk));
                Zeroizing::new(inner.mul_clamped(self.tweak).to_bytes())
            }
        }
    }
}

/// A base64 (unpadded, canonical) argument of exactly `N` decoded bytes.
fn base64_arg<const N: usize>(arg: &str) -> Option<[u8; N]> {
    BASE64_STANDARD_NO_PAD
        .decode(arg)
        .ok()
        .and_then(|v| v.try_into().ok())
}

impl age::Identity for SshEd25519Identity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        if stanza.tag != STANZA_TYPE {
            return None;
        }
        // As Go's age: a malformed ssh-ed25519 stanza is a header error for any ssh-ed25519
        // identity, whatever its tag; only a well-formed stanza with another tag is "not
        // mine".
        let [tag, epk] = stanza.args.as_slice() else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        let Some(epk) = base64_arg::<32>(epk) else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        if base64_arg::<4>(tag)? != self.tag {
            return None;
        }
        if stanza.body.len() != FILE_KEY_BYTES + 16 {
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        let shared = self.shared_secret(&epk);
        // A small-order ephemeral share gives the all-zero secret, which the spec forbids
        // (it would let anyone who made the file without the recipient's key unwrap it).
        if shared.iter().all(|&b| b == 0) {
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(&epk);
        salt[32..].copy_from_slice(&self.pk);
        let key = Zeroizing::new(hkdf(&salt, LABEL, shared.as_ref()));
        // A failure is fatal, as in age: a 32-bit tag collision is not expected.
        Some(
            aead_decrypt(&key, FILE_KEY_BYTES, &stanza.body)
                .map_err(|_| age::DecryptError::DecryptionFailed)
                .map(|pt| {
                    let pt = Zeroizing::new(pt);
                    FileKey::init_with_mut(|k| k.copy_from_slice(&pt))
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::Identity as _;
    use rand::RngCore;

    #[test]
    fn combined_scalar_equals_two_ladders() {
        let mut rng = rand::rngs::OsRng;
        for i in 0..200 {
            let mut wire = [0u8; 51];
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut wire);
            rng.fill_bytes(&mut seed);
            let id = SshEd25519Identity::new(&wire, &seed);
            let mut epk = [0u8; 32];
            rng.fill_bytes(&mut epk);
            if i % 2 == 0 {
                // An honest ephemeral share (on the curve).
                epk = EdwardsPoint::mul_base_clamped(epk)
                    .to_montgomery()
                    .to_bytes();
            }
            let ladders = MontgomeryPoint(epk)
                .mul_clamped(*id.sk)
                .mul_clamped(id.tweak)
                .to_bytes();
            assert_eq!(*id.shared_secret(&epk), ladders, "epk {epk:?}");
        }
        // Small-order points.
        let id = SshEd25519Identity::new(b"wire", &[7u8; 32]);
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let ladders = MontgomeryPoint(u)
                .mul_clamped(*id.sk)
                .mul_clamped(id.tweak)
                .to_bytes();
            assert_eq!(*id.shared_secret(&u), ladders);
        }
    }

    #[test]
    fn unwrap_ignores_other_stanzas_and_rejects_bad_bodies() {
        let id = SshEd25519Identity::new(b"wire", &[1u8; 32]);
        let tag = BASE64_STANDARD_NO_PAD.encode(id.tag);
        let epk = BASE64_STANDARD_NO_PAD.encode([9u8; 32]);
        let stanza = |t: &str, args: Vec<String>, body: Vec<u8>| Stanza {
            tag: t.into(),
            args,
            body,
        };
        assert!(id
            .unwrap_stanza(&stanza("X25519", vec![epk.clone()], vec![0; 32]))
            .is_none());
        assert!(id
            .unwrap_stanza(&stanza(
                STANZA_TYPE,
                vec!["AAAAAA".into(), epk.clone()],
                vec![0; 32]
            ))
            .is_none());
        // A wrong argument count or a malformed share is a header error whatever the tag
        // (as in Go's age), not "not mine".
        for args in [
            vec![],
            vec![tag.clone()],
            vec![tag.clone(), epk.clone(), "extra".into()],
            vec!["AAAAAA".into(), epk.clone(), "extra".into()],
            vec![tag.clone(), "AAAA".into()],
            vec![tag.clone(), format!("{epk}=")],
        ] {
            assert!(
                matches!(
                    id.unwrap_stanza(&stanza(STANZA_TYPE, args.clone(), vec![0; 32])),
                    Some(Err(age::DecryptError::InvalidHeader))
                ),
                "{args:?}"
            );
        }
        // A small-order ephemeral share gives the all-zero secret: refused, not unwrapped.
        for small in crate::recipient::small_order_u() {
            assert!(matches!(
                id.unwrap_stanza(&stanza(
                    STANZA_TYPE,
                    vec![tag.clone(), BASE64_STANDARD_NO_PAD.encode(small)],
                    vec![0; 32]
                )),
                Some(Err(age::DecryptError::InvalidHeader))
            ));
        }
        assert!(matches!(
            id.unwrap_stanza(&stanza(
                STANZA_TYPE,
                vec![tag.clone(), epk.clone()],
                vec![0; 31]
            )),
            Some(Err(age::DecryptError::InvalidHeader))
        ));
        assert!(matches!(
            id.unwrap_stanza(&stanza(STANZA_TYPE, vec![tag, epk], vec![0; 32])),
            Some(Err(age::DecryptError::DecryptionFailed))
        ));
    }
}
