//! Differential tests against the age crate (rage's library, the reference Rust
//! implementation): random keys, file contents and armor; agefleet encrypts and the age crate
//! decrypts, and the other way round, for ssh-ed25519, ssh-rsa and X25519. This is the
//! evidence that agefleet's hand-written ssh-ed25519 / X25519 paths (the Edwards-form
//! exchange in `src/recipient/`, the combined scalar in `src/identity/ssh_ed25519.rs`) agree
//! with the reference on every input, not just on the cases someone thought of.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use age::secrecy::ExposeSecret;
use agefleet::envelope;
use agefleet::identity::IdentitySet;
use agefleet::recipient::Recipient;
use proptest::prelude::*;

/// A key of one kind, in every form the two sides need.
struct Key {
    /// The public key line as `secrets.nix` holds it.
    public: String,
    /// The private key file as `-i` takes it.
    private_text: String,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    SshEd25519,
    SshRsa,
    X25519,
}

fn ssh_key_of(private: ssh_key::PrivateKey) -> Key {
    Key {
        public: private.public_key().to_openssh().unwrap(),
        private_text: private
            .to_openssh(ssh_key::LineEnding::LF)
            .unwrap()
            .to_string(),
    }
}

/// RSA key generation is slow; one key serves every case (the random file keys and
/// payloads still differ).
fn rsa_key() -> &'static Key {
    static RSA: OnceLock<Key> = OnceLock::new();
    RSA.get_or_init(|| {
        let keypair = ssh_key::private::RsaKeypair::random(&mut rand::rngs::OsRng, 2048).unwrap();
        ssh_key_of(ssh_key::PrivateKey::from(keypair))
    })
}

fn key(kind: Kind, seed: [u8; 32]) -> Key {
    match kind {
        Kind::SshEd25519 => ssh_key_of(ssh_key::PrivateKey::from(
            ssh_key::private::Ed25519Keypair::from_seed(&seed),
        )),
        Kind::SshRsa => {
            let k = rsa_key();
            Key {
                public: k.public.clone(),
                private_text: k.private_text.clone(),
            }
        }
        Kind::X25519 => {
            let id = age::x25519::Identity::generate();
            Key {
                public: id.to_public().to_string(),
                private_text: format!("{}\n", id.to_string().expose_secret()),
            }
        }
    }
}

/// The age crate's identity for `key`.
fn age_identity(kind: Kind, key: &Key) -> Box<dyn age::Identity> {
    match kind {
        Kind::X25519 => Box::new(
            key.private_text
                .trim()
                .parse::<age::x25519::Identity>()
                .unwrap(),
        ),
        _ => Box::new(age::ssh::Identity::from_buffer(key.private_text.as_bytes(), None).unwrap()),
    }
}

/// The age crate's recipient for `key`.
fn age_recipient(kind: Kind, key: &Key) -> Box<dyn age::Recipient + Send> {
    match kind {
        Kind::X25519 => Box::new(key.public.parse::<age::x25519::Recipient>().unwrap()),
        _ => Box::new(key.public.parse::<age::ssh::Recipient>().unwrap()),
    }
}

/// agefleet's identity set for `key`, loaded from a file as `-i` loads it.
fn agefleet_identities(dir: &std::path::Path, key: &Key) -> IdentitySet {
    let path: PathBuf = dir.join("identity");
    std::fs::write(&path, &key.private_text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    IdentitySet::load(&[path], None).unwrap().0
}

fn age_crate_encrypt(recipient: &dyn age::Recipient, plaintext: &[u8], armor: bool) -> Vec<u8> {
    let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient)).unwrap();
    let mut out = Vec::new();
    let format = if armor {
        age::armor::Format::AsciiArmor
    } else {
        age::armor::Format::Binary
    };
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, format).unwrap();
    let mut w = encryptor.wrap_output(armored).unwrap();
    w.write_all(plaintext).unwrap();
    w.finish().unwrap().finish().unwrap();
    out
}

fn age_crate_decrypt(identity: &dyn age::Identity, ciphertext: &[u8]) -> Vec<u8> {
    let reader = age::armor::ArmoredReader::new(ciphertext);
    let d = age::Decryptor::new(reader).unwrap();
    let mut out = Vec::new();
    d.decrypt(std::iter::once(identity))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::SshEd25519),
        Just(Kind::SshRsa),
        Just(Kind::X25519)
    ]
}

/// Payloads around the STREAM chunk size (64 KiB) as well as small ones.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<u8>(), 65_530..65_545),
        proptest::collection::vec(any::<u8>(), 131_070..131_075),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn agefleet_encrypts_and_the_age_crate_decrypts(
        kind in kind(), seed in any::<[u8; 32]>(), plaintext in payload(), armor in any::<bool>()
    ) {
        let key = key(kind, seed);
        let recipient = Recipient::parse(&key.public).unwrap();
        let ciphertext = envelope::encrypt(&plaintext, &[&recipient], armor).unwrap();
        let identity = age_identity(kind, &key);
        prop_assert_eq!(age_crate_decrypt(identity.as_ref(), &ciphertext), plaintext);
    }

    #[test]
    fn the_age_crate_encrypts_and_agefleet_decrypts(
        kind in kind(), seed in any::<[u8; 32]>(), plaintext in payload(), armor in any::<bool>()
    ) {
        let key = key(kind, seed);
        let recipient = age_recipient(kind, &key);
        let ciphertext = age_crate_encrypt(recipient.as_ref(), &plaintext, armor);
        let dir = tempfile::tempdir().unwrap();
        let ids = agefleet_identities(dir.path(), &key);
        let decrypted = envelope::decrypt(&ciphertext, &ids).unwrap();
        prop_assert_eq!(&decrypted[..], &plaintext[..]);
    }

    /// A file for two recipients of different kinds opens with either key on the other side.
    #[test]
    fn mixed_recipients_open_with_each_key(
        a in kind(), b in kind(), sa in any::<[u8; 32]>(), sb in any::<[u8; 32]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        let (ka, kb) = (key(a, sa), key(b, sb));
        let (ra, rb) = (Recipient::parse(&ka.public).unwrap(), Recipient::parse(&kb.public).unwrap());
        let ciphertext = envelope::encrypt(&plaintext, &[&ra, &rb], false).unwrap();
        for (kind, key) in [(a, &ka), (b, &kb)] {
            let identity = age_identity(kind, key);
            prop_assert_eq!(age_crate_decrypt(identity.as_ref(), &ciphertext), plaintext.clone());
        }
    }
}
