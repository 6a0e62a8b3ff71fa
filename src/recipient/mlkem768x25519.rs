//! The hybrid post-quantum `mlkem768x25519` age recipient (`age1pq1…`), as the C2SP age spec
//! defines it:
//!
//! - the KEM is X-Wing (ML-KEM-768 + X25519, HPKE KEM id 0x647a); a recipient is its
//!   1216-byte encapsulation key, Bech32 with HRP `age1pq` and no length limit; an identity
//!   is the 32-byte X-Wing seed (`AGE-SECRET-KEY-PQ-1…`, `identity/mlkem768x25519.rs`);
//! - the file key is wrapped with HPKE base mode, HKDF-SHA256, ChaCha20-Poly1305,
//!   info `age-encryption.org/mlkem768x25519`, empty AAD;
//! - the stanza is `-> mlkem768x25519 <base64(enc)>` (enc: 1120 bytes) with the 32-byte
//!   sealed file key as its body.
//!
//! HPKE is the `hpke` crate (the version age-core's own HPKE helpers use), to which [`XWing`]
//! plugs the KEM in. X-Wing is composed here from RustCrypto's `ml-kem` (ML-KEM-768) and
//! curve25519-dalek, exactly as draft-connolly-cfrg-xwing-kem (and RustCrypto's `x-wing`,
//! which the unit tests compare it with byte for byte) defines it, for two reasons of speed:
//! the X25519 half runs on the Edwards form (the fixed-base table and the vectorised
//! variable-base multiplication the ssh-ed25519 path uses, not the serial Montgomery ladder;
//! each recipient's point is converted once), and an identity's seed is expanded (SHAKE256,
//! ML-KEM key generation) once per identity per run, not once per file. The adapter also adds
//! the checks the spec and the Go reference make that X-Wing leaves out (a small-order X25519
//! share gives an all-zero X25519 secret: refused; an encapsulation key whose ML-KEM
//! coefficients are not reduced: refused).

use std::collections::HashSet;

use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use std::sync::{Arc, OnceLock};

use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::EdwardsPoint;
use hpke::generic_array::typenum::{Sum, U1024, U192, U32, U96};
use hpke::{Deserializable, HpkeError, Serializable};
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
use sha3::digest::{ExtendableOutput, Update, XofReader};
use zeroize::Zeroizing;

use super::exchange::ReusedPoint;

type MlKemEncapsulationKey = <MlKem768 as KemCore>::EncapsulationKey;
type MlKemDecapsulationKey = <MlKem768 as KemCore>::DecapsulationKey;

/// Stanza type.
pub(crate) const STANZA_TYPE: &str = "mlkem768x25519";
/// HPKE info.
pub(crate) const INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
/// Bech32 HRP of recipients.
pub(crate) const RECIPIENT_HRP: &str = "age1pq";
/// The recipient prefix as written (HRP + separator).
pub(crate) const RECIPIENT_PREFIX: &str = "age1pq1";
/// Encapsulation key (recipient) length.
pub(crate) const PUBLIC_KEY_LEN: usize = MLKEM_PUBLIC_KEY_LEN + 32;
/// X-Wing seed (identity) length.
pub(crate) const SEED_LEN: usize = 32;
/// Encapsulated key (`enc`, the stanza argument) length.
pub(crate) const ENC_LEN: usize = MLKEM_CIPHERTEXT_LEN + 32;
/// X-Wing's domain separator, the last input of its combiner.
const X_WING_LABEL: &[u8; 6] = br"\.//^\";
/// Stanza body length: a 16-byte file key and the 16-byte Poly1305 tag.
pub(crate) const BODY_LEN: usize = age_core::format::FILE_KEY_BYTES + 16;

/// ML-KEM-768 encapsulation key length; the X25519 key follows it.
const MLKEM_PUBLIC_KEY_LEN: usize = 1184;
/// ML-KEM-768 ciphertext length; the X25519 share follows it.
const MLKEM_CIPHERTEXT_LEN: usize = 1088;
/// ML-KEM's modulus: every coefficient of an encapsulation key must be below it.
const MLKEM_Q: u16 = 3329;

/// Whether the X25519 point `u` has small order: then X25519 with any private key is all
/// zeros. A clamped scalar is 8·k with 0 < k < the prime subgroup order, so `[k·8]P` is the
/// identity (encoded as zero) exactly when `8P` is.
pub(crate) fn x25519_is_small_order(u: &[u8; 32]) -> bool {
    const ANY_SCALAR: [u8; 32] = [0x5a; 32];
    MontgomeryPoint(*u).mul_clamped(ANY_SCALAR).to_bytes() == [0u8; 32]
}

/// FIPS 203's encapsulation key modulus check: each 12-bit coefficient of the encoded `t̂`
/// (all but the last 32 bytes) is below q.
fn mlkem_coefficients_reduced(ek: &[u8]) -> bool {
    let t_hat = &ek[..ek.len() - 32];
    t_hat.chunks_exact(3).all(|b| {
        let c0 = u16::from(b[0]) | (u16::from(b[1] & 0x0f) << 8);
        let c1 = u16::from(b[1] >> 4) | (u16::from(b[2]) << 4);
        c0 < MLKEM_Q && c1 < MLKEM_Q
    })
}

/// X-Wing as an `hpke` KEM.
pub(crate) struct XWing;

/// X-Wing's combiner: `SHA3-256(ss_M || ss_X || ct_X || pk_X || label)`.
fn combiner(ss_m: &[u8], ss_x: &[u8; 32], ct_x: &[u8; 32], pk_x: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    use sha3::Digest;
    let mut h = sha3::Sha3_256::new();
    Digest::update(&mut h, ss_m);
    Digest::update(&mut h, ss_x);
    Digest::update(&mut h, ct_x);
    Digest::update(&mut h, pk_x);
    Digest::update(&mut h, X_WING_LABEL);
    Zeroizing::new(h.finalize().into())
}

/// An X25519 public key with, when it is a canonical encoding of a point on the curve, that
/// point in Edwards form: `X25519(k, u)` is the u-coordinate of `[clamp(k)]·P` for either
/// point `P` with that u-coordinate, which the Edwards arithmetic computes faster than the
/// ladder. Points on the twist (and non-canonical encodings) keep the ladder.
/// The point is multiplied by a fresh scalar for every file key wrapped to this recipient, so
/// a rekey multiplies it from a table of its multiples ([`ReusedPoint`]).
#[derive(Clone)]
struct X25519Key {
    u: [u8; 32],
    edwards: Option<ReusedPoint>,
}

impl X25519Key {
    fn new(u: [u8; 32]) -> Self {
        let edwards = MontgomeryPoint(u)
            .to_edwards(0)
            .filter(|p| p.to_montgomery().to_bytes() == u)
            .map(ReusedPoint::new);
        X25519Key { u, edwards }
    }

    /// `X25519(k, u)`.
    fn mul(&self, k: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(match &self.edwards {
            Some(p) => p.mul_clamped(*k).to_montgomery().to_bytes(),
            None => MontgomeryPoint(self.u).mul_clamped(*k).to_bytes(),
        })
    }
}

/// `X25519(k, basepoint)`, from the fixed-base table.
fn x25519_base(k: &[u8; 32]) -> [u8; 32] {
    EdwardsPoint::mul_base_clamped(*k)
        .to_montgomery()
        .to_bytes()
}

/// What the seed expands to (X-Wing's `expandDecapsulationKey`).
struct Expanded {
    sk_m: MlKemDecapsulationKey,
    sk_x: Zeroizing<[u8; 32]>,
    pk: PublicKey,
}

impl Expanded {
    fn of(seed: &[u8; SEED_LEN]) -> Self {
        let mut xof = sha3::Shake256::default().chain(seed).finalize_xof();
        let mut read = || {
            let mut b = Zeroizing::new([0u8; 32]);
            xof.read(&mut b[..]);
            b
        };
        let (d, z, sk_x) = (read(), read(), read());
        let (sk_m, pk_m) = MlKem768::generate_deterministic(&(*d).into(), &(*z).into());
        let pk_x = x25519_base(&sk_x);
        let mut bytes = Box::new([0u8; PUBLIC_KEY_LEN]);
        bytes[..MLKEM_PUBLIC_KEY_LEN].copy_from_slice(&pk_m.as_bytes());
        bytes[MLKEM_PUBLIC_KEY_LEN..].copy_from_slice(&pk_x);
        Expanded {
            sk_m,
            sk_x,
            pk: PublicKey {
                bytes,
                pk_m: Box::new(pk_m),
                pk_x: X25519Key::new(pk_x),
            },
        }
    }
}

/// An X-Wing decapsulation key: the seed (zeroized on drop), and its expansion, made on
/// first use and shared by the clones.
#[derive(Clone)]
pub(crate) struct PrivateKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    expanded: Arc<OnceLock<Expanded>>,
}

impl PrivateKey {
    pub(crate) fn from_seed(seed: [u8; SEED_LEN]) -> Self {
        PrivateKey {
            seed: Zeroizing::new(seed),
            expanded: Arc::default(),
        }
    }

    pub(crate) fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    fn expanded(&self) -> &Expanded {
        self.expanded.get_or_init(|| Expanded::of(&self.seed))
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        // Without early exit: this is key material.
        self.seed()
            .iter()
            .zip(other.seed())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}
impl Eq for PrivateKey {}

impl Serializable for PrivateKey {
    type OutputSize = U32;
    fn write_exact(&self, buf: &mut [u8]) {
        buf.copy_from_slice(self.seed());
    }
}

impl Deserializable for PrivateKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        let seed: [u8; SEED_LEN] = encoded
            .try_into()
            .map_err(|_| HpkeError::IncorrectInputLength(SEED_LEN, encoded.len()))?;
        let seed = Zeroizing::new(seed);
        Ok(PrivateKey::from_seed(*seed))
    }
}

/// An X-Wing encapsulation key, with its encoding (for `Debug`, equality and Bech32).
#[derive(Clone)]
pub(crate) struct PublicKey {
    bytes: Box<[u8; PUBLIC_KEY_LEN]>,
    pk_m: Box<MlKemEncapsulationKey>,
    pk_x: X25519Key,
}

impl PublicKey {
    pub(crate) fn bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.bytes
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", encode_recipient(&self.bytes))
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for PublicKey {}

impl Serializable for PublicKey {
    type OutputSize = Sum<U1024, U192>;
    fn write_exact(&self, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[..]);
    }
}

impl Deserializable for PublicKey {
    /// Refuses what the Go reference refuses (unreduced ML-KEM coefficients) and what would
    /// make the X25519 half contribute nothing (a small-order point).
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        let bytes: Box<[u8; PUBLIC_KEY_LEN]> = Box::new(
            encoded
                .try_into()
                .map_err(|_| HpkeError::IncorrectInputLength(PUBLIC_KEY_LEN, encoded.len()))?,
        );
        let x25519: &[u8; 32] = bytes[MLKEM_PUBLIC_KEY_LEN..]
            .try_into()
            .map_err(|_| HpkeError::ValidationError)?;
        if !mlkem_coefficients_reduced(&bytes[..MLKEM_PUBLIC_KEY_LEN])
            || x25519_is_small_order(x25519)
        {
            return Err(HpkeError::ValidationError);
        }
        let mut pk_m = [0u8; MLKEM_PUBLIC_KEY_LEN];
        pk_m.copy_from_slice(&bytes[..MLKEM_PUBLIC_KEY_LEN]);
        let pk_m = Box::new(MlKemEncapsulationKey::from_bytes(&pk_m.into()));
        let pk_x = X25519Key::new(*x25519);
        Ok(PublicKey { bytes, pk_m, pk_x })
    }
}

/// An encapsulated key (`enc`).
#[derive(Clone)]
pub(crate) struct EncappedKey(Box<[u8; ENC_LEN]>);

impl Serializable for EncappedKey {
    type OutputSize = Sum<U1024, U96>;
    fn write_exact(&self, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[..]);
    }
}

impl Deserializable for EncappedKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        encoded
            .try_into()
            .map(|a: [u8; ENC_LEN]| EncappedKey(Box::new(a)))
            .map_err(|_| HpkeError::IncorrectInputLength(ENC_LEN, encoded.len()))
    }
}

impl hpke::Kem for XWing {
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;
    type EncappedKey = EncappedKey;
    type NSecret = U32;
    const KEM_ID: u16 = 0x647a;

    fn sk_to_pk(sk: &PrivateKey) -> PublicKey {
        sk.expanded().pk.clone()
    }

    /// draft-ietf-hpke-pq: `seed = SHAKE256.LabeledDerive(ikm, "DeriveKeyPair", "", 32)`.
    /// (HPKE's base mode never calls it; the trait requires it.)
    fn derive_keypair(ikm: &[u8]) -> (PrivateKey, PublicKey) {
        const LABEL: &[u8] = b"DeriveKeyPair";
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        sha3::Shake256::default()
            .chain(ikm)
            .chain(b"HPKE-v1")
            .chain(b"KEM")
            .chain(Self::KEM_ID.to_be_bytes())
            .chain((LABEL.len() as u16).to_be_bytes())
            .chain(LABEL)
            .chain((SEED_LEN as u16).to_be_bytes())
            .finalize_xof_into(&mut seed[..]);
        let sk = PrivateKey::from_seed(*seed);
        let pk = Self::sk_to_pk(&sk);
        (sk, pk)
    }

    fn decap(
        sk_recip: &PrivateKey,
        pk_sender_id: Option<&PublicKey>,
        encapped_key: &EncappedKey,
    ) -> Result<hpke::kem::SharedSecret<Self>, HpkeError> {
        if pk_sender_id.is_some() {
            // X-Wing has no authenticated mode; age uses base mode only.
            return Err(HpkeError::DecapError);
        }
        let share: &[u8; 32] = encapped_key.0[MLKEM_CIPHERTEXT_LEN..]
            .try_into()
            .map_err(|_| HpkeError::DecapError)?;
        if x25519_is_small_order(share) {
            return Err(HpkeError::DecapError);
        }
        let sk = sk_recip.expanded();
        let mut ct_m = [0u8; MLKEM_CIPHERTEXT_LEN];
        ct_m.copy_from_slice(&encapped_key.0[..MLKEM_CIPHERTEXT_LEN]);
        let Ok(ss_m) = sk.sk_m.decapsulate(&ct_m.into());
        let ss_m = Zeroizing::new(<[u8; 32]>::from(ss_m));
        // The share comes from the sender: the ladder, which takes any u-coordinate.
        let ss_x = Zeroizing::new(MontgomeryPoint(*share).mul_clamped(*sk.sk_x).to_bytes());
        let ss = combiner(&ss_m[..], &ss_x, share, &sk.pk.pk_x.u);
        Ok(hpke::kem::SharedSecret((*ss).into()))
    }

    fn encap<R: rand::CryptoRng + rand::RngCore>(
        pk_recip: &PublicKey,
        sender_id_keypair: Option<(&PrivateKey, &PublicKey)>,
        csprng: &mut R,
    ) -> Result<(hpke::kem::SharedSecret<Self>, EncappedKey), HpkeError> {
        if sender_id_keypair.is_some() {
            return Err(HpkeError::EncapError);
        }
        // In X-Wing's order of random draws: the ML-KEM message, then the X25519 secret.
        let Ok((ct_m, ss_m)) = pk_recip.pk_m.encapsulate(csprng);
        let ss_m = Zeroizing::new(<[u8; 32]>::from(ss_m));
        let mut ek_x = Zeroizing::new([0u8; 32]);
        csprng.fill_bytes(&mut ek_x[..]);
        let ct_x = x25519_base(&ek_x);
        let ss_x = pk_recip.pk_x.mul(&ek_x);
        let ss = combiner(&ss_m[..], &ss_x, &ct_x, &pk_recip.pk_x.u);
        let mut enc = Box::new([0u8; ENC_LEN]);
        enc[..MLKEM_CIPHERTEXT_LEN].copy_from_slice(&ct_m);
        enc[MLKEM_CIPHERTEXT_LEN..].copy_from_slice(&ct_x);
        Ok((hpke::kem::SharedSecret((*ss).into()), EncappedKey(enc)))
    }
}

/// Bech32 (no length limit) of an encapsulation key: the `age1pq1…` recipient string.
pub(crate) fn encode_recipient(bytes: &[u8; PUBLIC_KEY_LEN]) -> String {
    age_core::primitives::bech32_encode(bech32::Hrp::parse_unchecked(RECIPIENT_HRP), bytes)
}

/// The `mlkem768x25519` recipient.
#[derive(Clone)]
pub(crate) struct MlKem768X25519 {
    pk: PublicKey,
}

impl MlKem768X25519 {
    /// Parses `age1pq1…` (lower or upper case, not mixed); the error is a one-line reason.
    pub(crate) fn parse(s: &str) -> Result<Self, &'static str> {
        age_core::primitives::bech32_decode(
            s,
            |_| "invalid age1pq1… recipient (bad bech32 encoding or checksum)",
            |hrp| {
                (hrp.to_lowercase() == RECIPIENT_HRP)
                    .then_some(())
                    .ok_or("not an age1pq1… recipient")
            },
            |_, data| {
                let bytes: Vec<u8> = data.collect();
                if bytes.len() != PUBLIC_KEY_LEN {
                    return Err("an age1pq1… recipient holds 1216 bytes (truncated or padded key)");
                }
                PublicKey::from_bytes(&bytes)
                    .map(Self::from_public_key)
                    .map_err(|_| {
                        "invalid post-quantum key (ML-KEM part not reduced, or X25519 part of small order)"
                    })
            },
        )
    }

    pub(crate) fn from_public_key(pk: PublicKey) -> Self {
        MlKem768X25519 { pk }
    }
}

impl age::Recipient for MlKem768X25519 {
    /// No labels: a rule may mix post-quantum and classical recipients while a fleet moves
    /// over (`pq = true` in the rule is what forbids it; see SECURITY.md).
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let (enc, body) = age_core::primitives::hpke_seal::<XWing, _>(
            &self.pk,
            INFO,
            file_key.expose_secret(),
            &mut rand::rngs::OsRng,
        );
        Ok((
            vec![Stanza {
                tag: STANZA_TYPE.to_owned(),
                args: vec![BASE64_STANDARD_NO_PAD.encode(&enc.0[..])],
                body,
            }],
            HashSet::new(),
        ))
    }
}

/// Why a stanza of type `mlkem768x25519` is malformed (a header error, not a mismatch).
pub(crate) fn check_stanza(stanza: &Stanza) -> Result<(EncappedKey, [u8; BODY_LEN]), ()> {
    let [arg] = &stanza.args[..] else {
        return Err(());
    };
    // The engine refuses padding and non-zero trailing bits: canonical base64 only.
    let enc = BASE64_STANDARD_NO_PAD.decode(arg).map_err(|_| ())?;
    let enc = EncappedKey::from_bytes(&enc).map_err(|_| ())?;
    let body: [u8; BODY_LEN] = stanza.body[..].try_into().map_err(|_| ())?;
    Ok((enc, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::Kem;

    #[test]
    fn small_order_points_are_recognised() {
        // The known small-order encodings: 0, 1, the two of order 8, p-1, p, p+1.
        let hex = |h: &str| -> [u8; 32] {
            let v: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            v.try_into().unwrap()
        };
        for h in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            assert!(x25519_is_small_order(&hex(h)), "{h}");
        }
        let basepoint = {
            let mut b = [0u8; 32];
            b[0] = 9;
            b
        };
        assert!(!x25519_is_small_order(&basepoint));
    }

    #[test]
    fn recipient_round_trips_and_refuses_bad_keys() {
        let (_, pk) = XWing::derive_keypair(b"recipient test");
        let text = encode_recipient(pk.bytes());
        assert!(text.starts_with(RECIPIENT_PREFIX));
        let parsed = MlKem768X25519::parse(&text).unwrap();
        assert_eq!(encode_recipient(parsed.pk.bytes()), text);
        assert!(MlKem768X25519::parse(&text.to_uppercase()).is_ok());

        // Unreduced ML-KEM coefficient (0xfff).
        let mut bad = *pk.bytes();
        bad[0] = 0xff;
        bad[1] |= 0x0f;
        let e = MlKem768X25519::parse(&encode_recipient(&bad))
            .err()
            .unwrap();
        assert!(e.contains("not reduced"), "{e}");
        // Small-order X25519 half.
        let mut bad = *pk.bytes();
        bad[MLKEM_PUBLIC_KEY_LEN..].fill(0);
        assert!(MlKem768X25519::parse(&encode_recipient(&bad)).is_err());
        // Truncated data with a valid checksum.
        let short = age_core::primitives::bech32_encode(
            bech32::Hrp::parse_unchecked(RECIPIENT_HRP),
            &pk.bytes()[..1215],
        );
        let e = MlKem768X25519::parse(&short).err().unwrap();
        assert!(e.contains("1216 bytes"), "{e}");
        // One changed character breaks the checksum.
        let mut chars: Vec<char> = text.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let e = MlKem768X25519::parse(&chars.into_iter().collect::<String>())
            .err()
            .unwrap();
        assert!(e.contains("checksum"), "{e}");
    }

    /// Our X-Wing is RustCrypto's, byte for byte: the same keys from a seed, the same
    /// ciphertext and shared secret from the same random draws, and each decapsulates the
    /// other's ciphertexts; on the Edwards path and on the ladder (a twist point).
    #[test]
    fn x_wing_matches_the_reference_crate() {
        use rand::{RngCore, SeedableRng};
        let mut seeds = rand::rngs::StdRng::seed_from_u64(0x5eed);
        // Encapsulates to `pk` on both sides with the same random draws; the results agree.
        let encap_both = |pk: &PublicKey, round: u64| {
            let their_pk = x_wing::EncapsulationKey::from(&*pk.bytes);
            let mut a = rand::rngs::StdRng::seed_from_u64(round);
            let mut b = rand::rngs::StdRng::seed_from_u64(round);
            let (ss, enc) = <XWing as hpke::Kem>::encap(pk, None, &mut a).unwrap();
            let (ct, their_ss) = their_pk.encapsulate(&mut b).unwrap();
            assert_eq!(enc.0[..], ct.as_bytes()[..], "round {round}");
            assert_eq!(ss.0[..], their_ss[..], "round {round}");
            (ss, enc, ct, their_ss)
        };
        for round in 0..16 {
            let mut seed = [0u8; SEED_LEN];
            seeds.fill_bytes(&mut seed);
            let ours = PrivateKey::from_seed(seed);
            let theirs = x_wing::DecapsulationKey::from(seed);
            let pk = XWing::sk_to_pk(&ours);
            assert_eq!(pk.bytes[..], theirs.encapsulation_key().as_bytes()[..]);
            let (ss, enc, ct, their_ss) = encap_both(&pk, round);
            let back = <XWing as hpke::Kem>::decap(&ours, None, &enc).unwrap();
            assert_eq!(back.0[..], their_ss[..]);
            assert_eq!(theirs.decapsulate(&ct).unwrap()[..], ss.0[..]);
        }
        // One recipient many times: past the multiplications after which its X25519 point is
        // multiplied from a table, still the reference crate's answers.
        let mut seed = [0u8; SEED_LEN];
        seeds.fill_bytes(&mut seed);
        let pk = XWing::sk_to_pk(&PrivateKey::from_seed(seed));
        for round in 0..2 * u64::from(super::super::exchange::TABLE_AFTER) {
            encap_both(&pk, round);
        }
        // A recipient whose X25519 half is on the twist (not on the curve): the ladder path.
        let (twist, k) = (2u8..)
            .map(|small| {
                let mut u = [0u8; 32];
                u[0] = small;
                (u, X25519Key::new(u))
            })
            .find(|(_, k)| k.edwards.is_none())
            .unwrap();
        let esk = [7u8; 32];
        assert_eq!(*k.mul(&esk), x25519_dalek::x25519(esk, twist));
        // And one on the curve: the Edwards path gives the ladder's answer.
        let on_curve = x25519_base(&[9u8; 32]);
        let k = X25519Key::new(on_curve);
        assert!(k.edwards.is_some());
        assert_eq!(*k.mul(&esk), x25519_dalek::x25519(esk, on_curve));
    }

    #[test]
    fn hpke_round_trip_and_small_order_share_is_refused() {
        let (sk, pk) = XWing::derive_keypair(b"hpke test");
        let (enc, ct) = age_core::primitives::hpke_seal::<XWing, _>(
            &pk,
            INFO,
            b"0123456789abcdef",
            &mut rand::rngs::OsRng,
        );
        assert_eq!(ct.len(), BODY_LEN);
        let pt = age_core::primitives::hpke_open::<XWing>(&enc, &sk, INFO, &ct).unwrap();
        assert_eq!(pt, b"0123456789abcdef");
        let mut low = enc.clone();
        low.0[MLKEM_CIPHERTEXT_LEN..].fill(0);
        assert_eq!(
            age_core::primitives::hpke_open::<XWing>(&low, &sk, INFO, &ct).unwrap_err(),
            HpkeError::DecapError
        );
    }
}
