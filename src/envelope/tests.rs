//! Unit tests of the envelope: header parser on hand-made and generated input, round trips.

use super::*;
use crate::identity::IdentitySet;
use crate::recipient::Recipient;
use age::secrecy::ExposeSecret;
use proptest::prelude::*;

const MAC: &str = "SsO6AXswDhAjV0WyEjyWxCL8lVYbOnM1IiYCHrh7a8k";

fn hand_made(stanzas: &str) -> Vec<u8> {
    format!("age-encryption.org/v1\n{stanzas}--- {MAC}\n").into_bytes()
}

/// An identity set holding one fresh X25519 identity, and its recipient.
fn x25519_pair(dir: &std::path::Path) -> (IdentitySet, Recipient) {
    let id = age::x25519::Identity::generate();
    let path = dir.join("key.txt");
    std::fs::write(
        &path,
        format!("# test\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    let (set, _) = IdentitySet::load(&[path], None).unwrap();
    (set, Recipient::parse(&id.to_public().to_string()).unwrap())
}

#[test]
fn parses_hand_made_header_with_every_stanza_kind() {
    let body64 = "A".repeat(64);
    let h = hand_made(&format!(
        "-> ssh-ed25519 Ab3d/w AAAA\n{body64}\nAAAA\n\
         -> ssh-rsa XyZ+0g\n\n\
         -> X25519 abc\nAAAA\n\
         -> scrypt salt 18\nAAAA\n\
         -> z#-grease a b c\n\n"
    ));
    let header = Header::parse(&h).unwrap();
    assert!(!header.armored);
    assert_eq!(
        header.stanzas,
        vec![
            StanzaKind::SshEd25519 {
                tag: "Ab3d/w".into()
            },
            StanzaKind::SshRsa {
                tag: "XyZ+0g".into()
            },
            StanzaKind::X25519,
            StanzaKind::Scrypt,
            StanzaKind::Other {
                kind: "z#-grease".into()
            },
        ]
    );
    assert_eq!(header.ssh_tags().collect::<Vec<_>>(), ["Ab3d/w", "XyZ+0g"]);
    assert_eq!(header.x25519_count(), 1);
}

#[test]
fn every_stanza_body_ends_with_a_short_line() {
    let body64 = "A".repeat(64);
    // The spec requires the final short (possibly empty) body line; the payload after the
    // header may be any bytes.
    let mut h = hand_made(&format!("-> X25519 a\n{body64}\n\n-> X25519 b\n\n"));
    h.extend_from_slice(&[0u8, 255, 10, 13, 1, 2, 3]);
    assert_eq!(Header::parse(&h).unwrap().x25519_count(), 2);
    // Legacy forms (a full last line without the empty one, a stanza without any body
    // line) are header errors, as in Go's age (CCTV stanza_missing_final_line/_body).
    for legacy in [
        format!("-> X25519 a\n{body64}\n-> X25519 b\n\n"),
        "-> X25519 a\n-> X25519 b\n\n".to_string(),
        format!("-> X25519 a\n{body64}\n"),
    ] {
        assert!(
            matches!(
                Header::parse(&hand_made(&legacy)),
                Err(EnvelopeError::Corrupt(_))
            ),
            "{legacy:?}"
        );
    }
}

#[test]
fn not_age_inputs() {
    for input in [
        &b""[..],
        b"hello world\n",
        b"\x00\x01\x02",
        b"age-encryption.org/v2\n-> X25519 a\n\n--- x\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
        b"   \n\t ",
    ] {
        match Header::parse(input) {
            Err(EnvelopeError::NotAge(_)) => {}
            other => panic!("{input:?}: {other:?}"),
        }
    }
}

#[test]
fn corrupt_inputs() {
    let good = hand_made("-> X25519 abc\nAAAA\n");
    let mut cases: Vec<Vec<u8>> = (1..good.len() - 1)
        .filter(|&n| n > "age-encryption.org/".len())
        .map(|n| good[..n].to_vec())
        .collect();
    cases.extend([
        hand_made(""),
        hand_made("-> X25519 abc\nAA*A\n"),
        hand_made("-> X25519 abc\nAAAAA\n"),
        hand_made(&format!("-> X25519 abc\n{}\n", "A".repeat(65))),
        hand_made("-> X25519 abc\nAB\n"),
        hand_made("->  X25519\n\n"),
        hand_made("-> X25519 \n\n"),
        hand_made("-> \n\n"),
        hand_made("-> ssh-ed25519\n\n"),
        hand_made("garbage\n"),
        b"age-encryption.org/v1\n-> X25519 a\n\n---\n".to_vec(),
        b"age-encryption.org/v1\n-> X25519 a\n\n--- short\n".to_vec(),
        b"age-encryption.org/v1\r\n-> X25519 a\n\n--- short\n".to_vec(),
    ]);
    for c in &cases {
        match Header::parse(c) {
            Err(EnvelopeError::Corrupt(m)) => assert!(!m.to_string().contains('\n')),
            Err(EnvelopeError::NotAge(_)) if c.starts_with(b"age-encryption.org/v1\r") => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(c)),
        }
    }
}

#[test]
fn huge_header_is_refused_quickly() {
    let mut h = b"age-encryption.org/v1\n".to_vec();
    while h.len() <= header::MAX_HEADER_BYTES {
        h.extend_from_slice(b"-> X25519 a\n\n");
    }
    assert!(matches!(Header::parse(&h), Err(EnvelopeError::Corrupt(_))));
    let mut line = b"age-encryption.org/v1\n-> ".to_vec();
    line.resize(3 << 20, b'a');
    assert!(matches!(
        Header::parse(&line),
        Err(EnvelopeError::Corrupt(_))
    ));
    let many: String = "-> a\n\n".repeat(header::MAX_STANZAS + 1);
    assert!(matches!(
        Header::parse(&hand_made(&many)),
        Err(EnvelopeError::Corrupt(_))
    ));
}

#[test]
fn round_trip_binary_and_armored_with_grease() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, recipient) = x25519_pair(dir.path());
    let other = Recipient::parse(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice",
    )
    .unwrap();
    let recipients = [&recipient, &other];
    for armor in [false, true] {
        for plaintext in [&b""[..], b"secret\n", &[7u8; 200_000][..]] {
            let ct = encrypt(plaintext, &recipients, armor).unwrap();
            assert_eq!(
                ct.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----\n"),
                armor
            );
            let header = Header::parse(&ct).unwrap();
            assert_eq!(header.armored, armor);
            assert_eq!(header.x25519_count(), 1);
            assert_eq!(
                header.ssh_tags().collect::<Vec<_>>(),
                [other.tag.as_deref().unwrap()]
            );
            // The age crate's grease stanza.
            assert!(header
                .stanzas
                .iter()
                .any(|s| matches!(s, StanzaKind::Other { .. })));
            assert_eq!(Header::read_from(&ct[..]).unwrap(), header);
            let pt = decrypt(&ct, &ids).unwrap();
            assert_eq!(&pt[..], plaintext);
        }
    }
}

#[test]
fn armored_with_crlf_and_whitespace_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, recipient) = x25519_pair(dir.path());
    let ct = encrypt(b"crlf", &[&recipient], true).unwrap();
    let crlf = String::from_utf8(ct).unwrap().replace('\n', "\r\n");
    let wrapped = format!("\n\n  {crlf}  \n");
    assert!(Header::parse(wrapped.as_bytes()).unwrap().armored);
    assert_eq!(&decrypt(wrapped.as_bytes(), &ids).unwrap()[..], b"crlf");
}

#[test]
fn decrypt_errors_are_precise() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, recipient) = x25519_pair(dir.path());
    let (_, stranger) = x25519_pair(&{
        let d = dir.path().join("other");
        std::fs::create_dir(&d).unwrap();
        d
    });
    let ct = encrypt(b"payload", &[&stranger], false).unwrap();
    assert!(matches!(
        decrypt(&ct, &ids),
        Err(EnvelopeError::NoMatchingIdentity)
    ));
    assert!(matches!(
        decrypt(&ct, &IdentitySet::default()),
        Err(EnvelopeError::NoMatchingIdentity)
    ));
    let ct = encrypt(b"payload", &[&recipient], false).unwrap();
    // A payload error says which failure it was and keeps the age crate's I/O error as
    // its source; the one-line message is unchanged.
    // Cut after the payload nonce: no chunk at all is left.
    let mac_line = ct.windows(4).position(|w| w == b"--- ").unwrap();
    let header_end = mac_line + ct[mac_line..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let truncated = &ct[..header_end + 16];
    let e = decrypt(truncated, &ids).unwrap_err();
    assert!(matches!(
        e,
        EnvelopeError::Payload(PayloadFailure::Truncated(_))
    ));
    assert_eq!(
        e.to_string(),
        "corrupt or truncated age file (truncated payload)"
    );
    let source = std::error::Error::source(&e).unwrap();
    assert!(std::error::Error::source(source)
        .unwrap()
        .is::<std::io::Error>());
    assert!(matches!(
        decrypt(&ct[..ct.len() - 5], &ids),
        Err(EnvelopeError::Payload(_))
    ));
    let mut flipped = ct.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let e = decrypt(&flipped, &ids).unwrap_err();
    assert!(matches!(
        e,
        EnvelopeError::Payload(PayloadFailure::Unauthenticated(_))
    ));
    assert_eq!(
        e.to_string(),
        "corrupt or truncated age file (payload authentication failed)"
    );
    // The slice form of the keys decrypts as the set does.
    let keys = ids.age_identities();
    assert_eq!(&decrypt(&ct, &keys[..]).unwrap()[..], b"payload");
    // Header MAC damaged.
    let text = ct.clone();
    let mac_at = text.windows(4).position(|w| w == b"--- ").unwrap() + 4;
    let mut bad_mac = ct.clone();
    bad_mac[mac_at] = if bad_mac[mac_at] == b'A' { b'B' } else { b'A' };
    assert!(matches!(
        decrypt(&bad_mac, &ids),
        Err(EnvelopeError::HeaderMac)
    ));
    assert!(matches!(
        decrypt(b"plain text", &ids),
        Err(EnvelopeError::NotAge(_))
    ));
    assert!(matches!(decrypt(b"", &ids), Err(EnvelopeError::NotAge(_))));
    let armored = encrypt(b"payload", &[&recipient], true).unwrap();
    let cut = &armored[..armored.len() - 40];
    assert!(matches!(decrypt(cut, &ids), Err(EnvelopeError::Armor(_))));
    assert!(matches!(
        encrypt(b"x", &[], false),
        Err(EnvelopeError::NoRecipients)
    ));
}

#[test]
fn scrypt_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, _) = x25519_pair(dir.path());
    let enc = age::Encryptor::with_user_passphrase("pw".to_string().into());
    let mut ct = Vec::new();
    let mut w = enc.wrap_output(&mut ct).unwrap();
    std::io::Write::write_all(&mut w, b"x").unwrap();
    w.finish().unwrap();
    assert_eq!(
        Header::parse(&ct).unwrap().stanzas,
        vec![StanzaKind::Scrypt]
    );
    assert!(matches!(decrypt(&ct, &ids), Err(EnvelopeError::Passphrase)));
}

fn sample_header(armor: bool) -> Vec<u8> {
    let r = Recipient::parse(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN a",
    )
    .unwrap();
    encrypt(b"sample", &[&r], armor).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Header::parse(&bytes);
        let _ = Header::read_from(&bytes[..]);
        let mut prefixed = b"age-encryption.org/v1\n".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = Header::parse(&prefixed);
        let mut armored = b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec();
        armored.extend_from_slice(&bytes);
        let _ = Header::parse(&armored);
    }

    #[test]
    fn parse_never_panics_on_mutated_headers(
        armor in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = sample_header(armor);
        for (at, byte, op) in edits {
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        let _ = Header::parse(&bytes);
        let end = cut.index(bytes.len() + 1);
        let _ = Header::parse(&bytes[..end]);
        let _ = decrypt(&bytes[..end], &IdentitySet::default());
    }
}

#[test]
fn identity_set_is_sync() {
    fn assert_sync<T: Sync + Send>() {}
    assert_sync::<IdentitySet>();
    assert_sync::<Recipient>();
}
