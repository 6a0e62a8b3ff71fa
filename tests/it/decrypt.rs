//! `decrypt` / `-d`: raw bytes out, identities, file lookup, failure paths.

use crate::common::*;

const BINARY: &[u8] = b"\x00\x01binary\xffno newline";

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn decrypts_age_cli_file_to_raw_stdout_with_default_identity() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    f.age_file("x.age", &[&admin], BINARY);
    for args in [&["-d", "x.age"][..], &["decrypt", "./x.age"][..]] {
        let out = f.run(args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(out.stdout, BINARY);
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn default_identities_are_id_rsa_then_id_ed25519() {
    require_tool("age");
    let f = Fleet::new();
    let rsa = ssh_keygen(&f.home.join(".ssh"), "id_rsa", "rsa", "");
    let ed = f.admin.public_line.clone();
    f.rules(&[
        ("a.age", &[&ed], false),
        ("b.age", &[&rsa.public_line], false),
    ]);
    f.age_file("a.age", &[&ed], b"for ed25519");
    f.age_file("b.age", &[&rsa.public_line], b"for rsa");
    assert_eq!(f.run(&["-d", "a.age"]).stdout, b"for ed25519");
    assert_eq!(f.run(&["-d", "b.age"]).stdout, b"for rsa");
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn explicit_identity_and_age_identity_file() {
    require_tool("age");
    require_tool("age-keygen");
    let f = Fleet::new();
    let (age_id, age_rcpt) = age_keygen(f.tmp.path(), "age.key");
    f.rules(&[("x.age", &[&age_rcpt], false)]);
    f.age_file("x.age", &[&age_rcpt], b"native");
    let out = f.run(&["-i", age_id.to_str().unwrap(), "-d", "x.age"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"native");
    // Without -i only the SSH defaults are tried: no match.
    let out = f.run(&["-d", "x.age"]);
    assert_clean_failure(&out, "x.age");
    assert!(out.stdout.is_empty());
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn works_from_another_directory_with_rules_relative_names() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let rules = f.rules(&[("nested/dir/x.age", &[&admin], false)]);
    f.age_file("nested/dir/x.age", &[&admin], b"deep");
    let mut cmd = agefleet(&f.home);
    cmd.current_dir(f.tmp.path()).args([
        "--rules",
        rules.to_str().unwrap(),
        "-d",
        "nested/dir/x.age",
    ]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"deep");
    // RULES from the environment, the CWD-relative reading.
    let mut cmd = agefleet(&f.home);
    cmd.current_dir(f.tmp.path())
        .env("RULES", &rules)
        .args(["-d", "secrets/nested/dir/x.age"]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"deep");
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn output_file_is_0600_and_never_overwritten() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    f.age_file("x.age", &[&admin], b"s3cret");
    let out_path = f.tmp.path().join("plain");
    let out = f.run(&["decrypt", "x.age", "-o", out_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&out_path).unwrap(), b"s3cret");
    assert_eq!(mode_of(&out_path), 0o600);
    std::fs::write(&out_path, b"keep").unwrap();
    let out = f.run(&["decrypt", "x.age", "-o", out_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "agefleet: {}: already exists; not overwriting",
            out_path.display()
        )
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), b"keep");
    // A dangling symlink is something too: not followed, not replaced (the write is
    // exclusive, so there is no window between a check and the create).
    let link = f.tmp.path().join("link");
    let target = f.tmp.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = f.run(&["decrypt", "x.age", "-o", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!target.exists());
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn missing_file_fails() {
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let out = f.run(&["-d", "x.age"]);
    assert_eq!(out.status.code(), Some(1));
    assert_clean_failure(&out, "x.age: no such file");
    assert!(out.stdout.is_empty());
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn a_bad_rule_elsewhere_does_not_stop_decrypting() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[
        ("good.age", &[&admin], false),
        ("bad.age", &["ssh-ed25519 not-base64!!"], false),
    ]);
    f.age_file("good.age", &[&admin], b"ok");
    let out = f.run(&["-d", "good.age"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"ok");
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn bad_age_files_fail_cleanly() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let good = f.age_file("good.age", &[&admin], b"payload payload payload");
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.age", vec![]),
        ("plain.age", b"just some plaintext\n".to_vec()),
        ("truncated-header.age", bytes[..bytes.len() / 3].to_vec()),
        ("truncated-payload.age", bytes[..bytes.len() - 5].to_vec()),
        ("flipped.age", {
            let mut b = bytes.clone();
            let n = b.len();
            b[n - 3] ^= 0x55;
            b
        }),
        (
            "bad-armor.age",
            b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!!\n-----END AGE ENCRYPTED FILE-----\n"
                .to_vec(),
        ),
        ("wrong-version.age", {
            let mut b = b"age-encryption.org/v9".to_vec();
            b.extend_from_slice(&bytes[21..]);
            b
        }),
    ];
    for (name, content) in cases {
        std::fs::write(f.path(name), &content).unwrap();
        let out = f.run(&["-d", name]);
        assert_clean_failure(&out, name);
        assert!(out.stdout.is_empty(), "{name}: plaintext leaked on failure");
        assert_eq!(
            std::fs::read(f.path(name)).unwrap(),
            content,
            "{name} changed"
        );
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn bad_identity_files_fail_cleanly() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.age_file("x.age", &[&admin], b"x");
    let garbage = f.tmp.path().join("garbage");
    std::fs::write(&garbage, b"\x00\x01 not a key").unwrap();
    let public = f.home.join(".ssh/id_ed25519.pub");
    let missing = f.tmp.path().join("missing");
    for id in [&garbage, &public, &missing] {
        let out = f.run(&["-i", id.to_str().unwrap(), "-d", "x.age"]);
        let name = id.file_name().unwrap().to_str().unwrap();
        assert_clean_failure(&out, name);
        assert!(out.stdout.is_empty());
    }
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn no_action_is_a_usage_error() {
    let f = Fleet::new();
    let out = f.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let out = f.run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = f.run(&["-d", "x.age", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be combined"),
        "{}",
        stderr(&out)
    );
    let out = f.run(&["-d", "a.age", "-e", "b.age"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn global_flags_go_before_or_after_the_subcommand() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let rules = f.rules(&[("x.age", &[&admin], false)]);
    f.age_file("x.age", &[&admin], b"both ways");
    let key = f.admin.private.to_str().unwrap();
    let rules = rules.to_str().unwrap();
    for args in [
        &["--rules", rules, "-i", key, "decrypt", "x.age"][..],
        &["decrypt", "x.age", "--rules", rules, "-i", key][..],
        &["--nix-eval", "builtin", "-v", "decrypt", "x.age"][..],
    ] {
        let out = f.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(out.stdout, b"both ways");
    }
}

/// The small-order X25519 encodings (0, 1, the two points of order 8, p-1, p, p+1): an
/// exchange with any of them gives the all-zero shared secret, which anyone can compute.
const SMALL_ORDER: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

fn hex32(h: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// A recipient that writes the one stanza `make` builds from the file key: how a hostile
/// sender, who needs no one's private key, writes a file.
struct Hostile<F>(F);

impl<F: Fn(&[u8; 16]) -> age_core::format::Stanza> age::Recipient for Hostile<F> {
    fn wrap_file_key(
        &self,
        file_key: &age_core::format::FileKey,
    ) -> Result<
        (
            Vec<age_core::format::Stanza>,
            std::collections::HashSet<String>,
        ),
        age::EncryptError,
    > {
        use age::secrecy::ExposeSecret;
        Ok((vec![(self.0)(file_key.expose_secret())], Default::default()))
    }
}

/// A complete binary age file (header MAC and payload included) whose only stanza is the
/// one `make` builds.
fn hostile_file(make: impl Fn(&[u8; 16]) -> age_core::format::Stanza) -> Vec<u8> {
    use std::io::Write;
    let hostile = Hostile(make);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&hostile as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).unwrap();
    w.write_all(b"sealed under the all-zero key").unwrap();
    w.finish().unwrap();
    out
}

/// One hostile file per small-order share, named `{prefix}-{i}.age`: `stanza(share,
/// file_key)` builds its only stanza.
fn per_small_order_share(
    prefix: &str,
    stanza: impl Fn(&[u8; 32], &[u8; 16]) -> age_core::format::Stanza,
) -> Vec<(String, Vec<u8>)> {
    SMALL_ORDER
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let share = hex32(h);
            (
                format!("{prefix}-{i}.age"),
                hostile_file(|file_key| stanza(&share, file_key)),
            )
        })
        .collect()
}

/// The body of an X25519-style stanza (ssh-ed25519, X25519) sealed under the key derived
/// from the all-zero shared secret: `salt = share || pk`.
fn sealed_under_zero(share: &[u8; 32], pk: &[u8; 32], label: &[u8], file_key: &[u8]) -> Vec<u8> {
    let salt = [&share[..], &pk[..]].concat();
    let key = age_core::primitives::hkdf(&salt, label, &[0u8; 32]);
    age_core::primitives::aead_encrypt(&key, file_key)
}

/// A random 32-byte age identity with bech32 prefix `hrp`, written upper case to `name` in
/// the fleet's temp dir: its path and its bytes.
fn random_identity(f: &Fleet, name: &str, hrp: &str) -> (std::path::PathBuf, [u8; 32]) {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let text = age_core::primitives::bech32_encode(bech32::Hrp::parse(hrp).unwrap(), &key);
    let path = f.tmp.path().join(name);
    std::fs::write(&path, format!("{}\n", text.to_uppercase())).unwrap();
    (path, key)
}

/// `agefleet -d` of each file refuses it as a header error and prints nothing.
fn assert_each_refused(f: &Fleet, files: &[(String, Vec<u8>)], identity: &std::path::Path) {
    for (name, bytes) in files {
        std::fs::write(f.path(name), bytes).unwrap();
        let out = f.run(&["-d", name, "-i", identity.to_str().unwrap()]);
        assert_clean_failure(
            &out,
            &format!("{name}: corrupt or truncated age file (invalid header)"),
        );
        assert!(out.stdout.is_empty(), "{name}: plaintext printed");
    }
}

/// An ssh-ed25519 stanza whose ephemeral share has small order, its body sealed under the
/// key derived from the all-zero shared secret, is a header error: the file could have
/// been made by anyone, without the recipient's key.
#[test]
#[ignore = "needs `ssh-keygen`"]
fn ssh_ed25519_stanza_with_a_small_order_share_is_refused() {
    use sha2::Digest;
    let f = Fleet::new();
    let wire = {
        use base64::Engine;
        let b64 = f.admin.public_line.split(' ').nth(1).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    let tag: [u8; 4] = sha2::Sha256::digest(&wire)[..4].try_into().unwrap();
    let ed: [u8; 32] = wire[wire.len() - 32..].try_into().unwrap();
    let pk = curve25519_dalek::edwards::CompressedEdwardsY(ed)
        .decompress()
        .unwrap()
        .to_montgomery()
        .to_bytes();
    let files = per_small_order_share("ssh-zero", |share, file_key| age_core::format::Stanza {
        tag: "ssh-ed25519".into(),
        args: vec![b64(&tag), b64(share)],
        body: sealed_under_zero(share, &pk, b"age-encryption.org/v1/ssh-ed25519", file_key),
    });
    assert_each_refused(&f, &files, &f.admin.private);
}

/// The same for an X25519 stanza and an age identity.
#[test]
#[ignore = "needs `ssh-keygen`"]
fn x25519_stanza_with_a_small_order_share_is_refused() {
    let f = Fleet::new();
    let (identity, sk) = random_identity(&f, "x25519.key", "age-secret-key-");
    let pk = x25519_dalek::x25519(sk, x25519_dalek::X25519_BASEPOINT_BYTES);
    let files = per_small_order_share("x25519-zero", |share, file_key| age_core::format::Stanza {
        tag: "X25519".into(),
        args: vec![b64(share)],
        body: sealed_under_zero(share, &pk, b"age-encryption.org/v1/X25519", file_key),
    });
    assert_each_refused(&f, &files, &identity);
}

/// HPKE's key schedule run on a chosen shared secret: a KEM whose encapsulation returns
/// the secret and `enc` it carries in its "public key". It lets the test seal a body under
/// the secret the recipient's X-Wing decapsulation derives from a hostile `enc`.
mod rigged {
    use hpke::generic_array::typenum::{Sum, U1024, U32, U96};
    use hpke::{Deserializable, HpkeError, Serializable};

    pub const ENC_LEN: usize = 1120;

    /// The secret and `enc` to hand out (its serialisation is never used by the seal).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Chosen {
        pub secret: [u8; 32],
        pub enc: Vec<u8>,
    }

    impl Serializable for Chosen {
        type OutputSize = U32;
        fn write_exact(&self, buf: &mut [u8]) {
            buf.copy_from_slice(&self.secret);
        }
    }

    impl Deserializable for Chosen {
        fn from_bytes(_: &[u8]) -> Result<Self, HpkeError> {
            Err(HpkeError::ValidationError)
        }
    }

    #[derive(Clone)]
    pub struct Enc(pub Vec<u8>);

    impl Serializable for Enc {
        type OutputSize = Sum<U1024, U96>;
        fn write_exact(&self, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0);
        }
    }

    impl Deserializable for Enc {
        fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
            Ok(Enc(encoded.to_vec()))
        }
    }

    pub struct Kem;

    impl hpke::Kem for Kem {
        type PublicKey = Chosen;
        type PrivateKey = Chosen;
        type EncappedKey = Enc;
        type NSecret = U32;
        /// X-Wing's, which the suite id (and so the key schedule) includes.
        const KEM_ID: u16 = 0x647a;

        fn sk_to_pk(sk: &Chosen) -> Chosen {
            sk.clone()
        }

        fn derive_keypair(ikm: &[u8]) -> (Chosen, Chosen) {
            let mut secret = [0u8; 32];
            secret.copy_from_slice(&ikm[..32]);
            let c = Chosen {
                secret,
                enc: vec![0; ENC_LEN],
            };
            (c.clone(), c)
        }

        fn decap(
            _: &Chosen,
            _: Option<&Chosen>,
            _: &Enc,
        ) -> Result<hpke::kem::SharedSecret<Self>, HpkeError> {
            Err(HpkeError::DecapError)
        }

        fn encap<R: rand::CryptoRng + rand::RngCore>(
            pk: &Chosen,
            _: Option<(&Chosen, &Chosen)>,
            _: &mut R,
        ) -> Result<(hpke::kem::SharedSecret<Self>, Enc), HpkeError> {
            Ok((
                hpke::kem::SharedSecret(pk.secret.into()),
                Enc(pk.enc.clone()),
            ))
        }
    }
}

/// The same for the hybrid mlkem768x25519 stanza: a valid ML-KEM ciphertext with a
/// small-order X25519 share, the body sealed (HPKE) under the X-Wing secret the recipient
/// derives from it, in which the X25519 half contributes nothing. (The test takes that secret
/// from the recipient's key for brevity; a sender gets the same value without it, from its
/// own ML-KEM encapsulation and the all-zero X25519 secret.)
#[test]
#[ignore = "needs `ssh-keygen`"]
fn hybrid_stanza_with_a_small_order_share_is_refused() {
    use kem::{Decapsulate, Encapsulate};
    let f = Fleet::new();
    let (identity, seed) = random_identity(&f, "pq.key", "age-secret-key-pq-");
    let sk = x_wing::DecapsulationKey::from(seed);
    let (honest, _) = sk
        .encapsulation_key()
        .encapsulate(&mut rand::rngs::OsRng)
        .unwrap();
    let files = per_small_order_share("pq-zero", |share, file_key| {
        let mut enc = honest.as_bytes();
        enc[rigged::ENC_LEN - 32..].copy_from_slice(share);
        let chosen = rigged::Chosen {
            secret: sk.decapsulate(&x_wing::Ciphertext::from(&enc)).unwrap(),
            enc: enc.to_vec(),
        };
        let (enc, body) = age_core::primitives::hpke_seal::<rigged::Kem, _>(
            &chosen,
            b"age-encryption.org/mlkem768x25519",
            file_key,
            &mut rand::rngs::OsRng,
        );
        age_core::format::Stanza {
            tag: "mlkem768x25519".into(),
            args: vec![b64(&enc.0)],
            body,
        }
    });
    assert_each_refused(&f, &files, &identity);
}
