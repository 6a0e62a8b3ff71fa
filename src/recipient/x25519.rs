//! The native `X25519` age recipient (`age1…`): decoding and the weak-key check. The wrap
//! itself is the age crate's.

use curve25519_dalek::montgomery::MontgomeryPoint;

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
