//! The C2SP CCTV age test vectors (the spec's conformance suite), through the library and
//! through `agefleet -d -i`.
//!
//! The vectors are `cctv-age/testdata` of the reference data ([`common::reference`];
//! `AGEFLEET_CCTV_DIR` overrides it; the npm package `cctv-age` carries the same files). A
//! plain `cargo test` lists the test as ignored; with `--include-ignored` (as CI runs) missing
//! vectors fail it. Vector format (its README): `key: value` lines, a blank line, the age file
//! (zlib-compressed when `compressed: zlib`).
//!
//! Each vector's `expect` is checked exactly: success (and the payload's SHA-256), no match,
//! HMAC failure, header failure, payload failure, armor failure. On a payload failure the
//! vector's hash covers what a streaming decryptor may release; agefleet releases nothing of
//! a file whose payload fails, which the test asserts (an empty release).
//!
//! Scrypt vectors are skipped and counted (agenix has no passphrase files, and agefleet
//! refuses them by design); the classical and the hybrid post-quantum (`mlkem768x25519`)
//! vectors are counted separately, so a changed set of either is noticed.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};

use agefleet::envelope::{self, EnvelopeError};
use agefleet::identity::IdentitySet;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    NoMatch,
    HmacFailure,
    HeaderFailure,
    PayloadFailure,
    ArmorFailure,
}

struct Vector {
    name: String,
    expect: Expect,
    payload: Option<String>,
    identities: Vec<String>,
    passphrase: bool,
    file: Vec<u8>,
}

fn parse_vector(name: &str, raw: &[u8]) -> Vector {
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or_else(|| panic!("{name}: no blank line after the vector header"));
    let text = std::str::from_utf8(&raw[..split]).expect("vector header is UTF-8");
    let mut body = raw[split + 2..].to_vec();
    let mut v = Vector {
        name: name.to_string(),
        expect: Expect::Success,
        payload: None,
        identities: Vec::new(),
        passphrase: false,
        file: Vec::new(),
    };
    let mut expect = None;
    for line in text.lines() {
        let (key, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{name}: bad header line {line:?}"));
        match key {
            "expect" => {
                expect = Some(match value {
                    "success" => Expect::Success,
                    "no match" => Expect::NoMatch,
                    "HMAC failure" => Expect::HmacFailure,
                    "header failure" => Expect::HeaderFailure,
                    "payload failure" => Expect::PayloadFailure,
                    "armor failure" => Expect::ArmorFailure,
                    other => panic!("{name}: unknown expect {other:?}"),
                })
            }
            "payload" => v.payload = Some(value.to_string()),
            "identity" => v.identities.push(value.to_string()),
            "passphrase" => v.passphrase = true,
            "compressed" => {
                assert_eq!(value, "zlib", "{name}");
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap_or_else(|e| panic!("{name}: zlib: {e}"));
                body = out;
            }
            // Informational keys: armored, file key, comment.
            _ => {}
        }
    }
    v.expect = expect.unwrap_or_else(|| panic!("{name}: no expect"));
    v.file = body;
    v
}

fn load_vectors() -> Vec<Vector> {
    let dir = common::reference("cctv-age/testdata", "AGEFLEET_CCTV_DIR");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| parse_vector(n, &std::fs::read(dir.join(n)).unwrap()))
        .collect()
}

fn is_hybrid(v: &Vector) -> bool {
    v.identities
        .iter()
        .any(|i| i.starts_with("AGE-SECRET-KEY-PQ-"))
}

/// What the library says of a vector, in the vectors' terms.
fn classify(result: &Result<zeroize::Zeroizing<Vec<u8>>, EnvelopeError>) -> Expect {
    match result {
        Ok(_) => Expect::Success,
        Err(EnvelopeError::NoMatchingIdentity) => Expect::NoMatch,
        Err(EnvelopeError::HeaderMac) => Expect::HmacFailure,
        Err(EnvelopeError::Armor(_)) => Expect::ArmorFailure,
        Err(EnvelopeError::Payload(_)) => Expect::PayloadFailure,
        Err(EnvelopeError::NotAge(_)) | Err(EnvelopeError::Corrupt(_)) => Expect::HeaderFailure,
        Err(other) => panic!("unexpected error class: {other}"),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The identities of a vector, as one identity file (what `-i` takes).
fn identity_file(dir: &Path, v: &Vector) -> PathBuf {
    let path = dir.join(format!("{}.key", v.name));
    let mut text = String::from("# CCTV vector identities\n");
    if v.identities.is_empty() {
        // A vector that names no identity (an empty file, say) still needs one to be tried.
        use age::secrecy::ExposeSecret;
        text.push_str(
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret(),
        );
        text.push('\n');
    }
    for id in &v.identities {
        text.push_str(id);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

#[test]
#[ignore = "needs the reference data (the CCTV vectors)"]
fn every_classical_and_hybrid_cctv_vector_through_the_library_and_the_cli() {
    let vectors = load_vectors();
    let dir = tempfile::tempdir().unwrap();
    let (mut classical, mut scrypt, mut hybrid) = (0, 0, 0);
    let mut failures = Vec::new();
    for v in &vectors {
        if v.passphrase {
            scrypt += 1;
            continue;
        }
        if is_hybrid(v) {
            hybrid += 1;
        } else {
            classical += 1;
        }
        let id_path = identity_file(dir.path(), v);
        let (ids, _) = IdentitySet::load(std::slice::from_ref(&id_path), None)
            .unwrap_or_else(|e| panic!("{}: identity: {e}", v.name));

        // Library.
        let result = envelope::decrypt(&v.file, &ids);
        let got = classify(&result);
        if got != v.expect {
            failures.push(format!(
                "{}: library: expected {:?}, got {got:?} ({})",
                v.name,
                v.expect,
                match &result {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.to_string(),
                }
            ));
            continue;
        }
        if let Ok(plaintext) = &result {
            let want = v
                .payload
                .as_deref()
                .expect("success vectors carry a payload hash");
            if sha256_hex(plaintext) != want {
                failures.push(format!("{}: library: payload hash differs", v.name));
            }
        }

        // CLI: `agefleet -d FILE -i ID`, no rules file.
        let file = dir.path().join(format!("{}.age", v.name));
        std::fs::write(&file, &v.file).unwrap();
        let out = common::run(
            common::agefleet(dir.path())
                .current_dir(dir.path())
                .arg("-d")
                .arg(&file)
                .arg("-i")
                .arg(&id_path),
        );
        let err = common::stderr(&out);
        match &result {
            Ok(plaintext) => {
                if !out.status.success() || out.stdout != **plaintext {
                    failures.push(format!("{}: cli: exit {:?}: {err}", v.name, out.status));
                }
            }
            Err(e) => {
                let one_line = err.trim_end().lines().count() == 1;
                if out.status.code() != Some(1)
                    || !out.stdout.is_empty()
                    || !one_line
                    || !err.contains(&file.display().to_string())
                    || !err.contains(&e.to_string())
                {
                    failures.push(format!(
                        "{}: cli: exit {:?}, {} stdout bytes, stderr {err:?} (library said {e})",
                        v.name,
                        out.status.code(),
                        out.stdout.len()
                    ));
                }
            }
        }
    }
    eprintln!(
        "CCTV: {classical} classical and {hybrid} hybrid (post-quantum) vectors run, {scrypt} \
         scrypt skipped"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(classical, 98, "the classical vector count changed");
    assert_eq!(hybrid, 19, "the hybrid vector count changed");
    assert_eq!(classical + scrypt + hybrid, vectors.len());
}
