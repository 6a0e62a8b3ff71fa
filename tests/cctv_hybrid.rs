//! The C2SP CCTV age vectors of the hybrid post-quantum recipient (`mlkem768x25519`): every
//! one through the library (`envelope::decrypt`) and through `agefleet -d -i`.
//!
//! The vector directory comes from `AGEFLEET_CCTV_DIR` (default `../shared/cctv-age/testdata`
//! beside the repository). Each vector: `key: value` lines, a blank line, the age file
//! (zlib-compressed when `compressed: zlib`).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use agefleet::envelope::{self, EnvelopeError};
use agefleet::identity::IdentitySet;
use sha2::{Digest, Sha256};

/// How many hybrid vectors the pinned CCTV copy has; a different count means the directory
/// is not the one these tests were written against.
const HYBRID_VECTORS: usize = 19;

fn vector_dir() -> PathBuf {
    match std::env::var_os("AGEFLEET_CCTV_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cctv-age/testdata"),
    }
}

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
    /// SHA-256 of the payload, hex.
    payload: Option<String>,
    identities: Vec<String>,
    file: Vec<u8>,
}

fn parse_vector(name: &str, raw: &[u8]) -> Vector {
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or_else(|| panic!("{name}: no blank line after the vector header"));
    let head = std::str::from_utf8(&raw[..split]).expect("vector header is text");
    let mut file = raw[split + 2..].to_vec();
    let mut expect = None;
    let mut payload = None;
    let mut identities = Vec::new();
    let mut compressed = false;
    for line in head.lines() {
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
                    other => panic!("{name}: unknown expectation {other:?}"),
                })
            }
            "payload" => payload = Some(value.to_string()),
            "identity" => identities.push(value.to_string()),
            "compressed" => {
                assert_eq!(value, "zlib", "{name}: unknown compression");
                compressed = true;
            }
            // armored, file key, comment, passphrase: not needed to judge the result.
            _ => {}
        }
    }
    if compressed {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&file[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{name}: zlib: {e}"));
        file = out;
    }
    Vector {
        name: name.to_string(),
        expect: expect.unwrap_or_else(|| panic!("{name}: no expect line")),
        payload,
        identities,
        file,
    }
}

/// The vectors that exercise the hybrid recipient (their names say `hybrid`).
fn hybrid_vectors() -> Vec<Vector> {
    let dir = vector_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "CCTV vectors not found at {} ({e}); set AGEFLEET_CCTV_DIR",
            dir.display()
        )
    });
    let mut vectors: Vec<Vector> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("hybrid"))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            parse_vector(&name, &std::fs::read(&p).unwrap())
        })
        .collect();
    vectors.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        vectors.len(),
        HYBRID_VECTORS,
        "hybrid vectors in {}",
        dir.display()
    );
    vectors
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the vector's identities as one identity file and its age file; returns both paths.
fn stage(dir: &Path, v: &Vector) -> (PathBuf, PathBuf) {
    let ids = dir.join(format!("{}.key", v.name));
    let mut text = String::from("# identities of a CCTV vector\n");
    for id in &v.identities {
        text.push_str(id);
        text.push('\n');
    }
    std::fs::write(&ids, text).unwrap();
    std::fs::set_permissions(&ids, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let file = dir.join(format!("{}.age", v.name));
    std::fs::write(&file, &v.file).unwrap();
    (ids, file)
}

/// What the library's result says, in the vectors' terms.
fn classify(result: &Result<zeroize::Zeroizing<Vec<u8>>, EnvelopeError>) -> Expect {
    match result {
        Ok(_) => Expect::Success,
        Err(EnvelopeError::NoMatchingIdentity) => Expect::NoMatch,
        Err(EnvelopeError::Corrupt(m)) if m.contains("MAC") => Expect::HmacFailure,
        Err(EnvelopeError::Corrupt(m)) if m.contains("payload") => Expect::PayloadFailure,
        Err(EnvelopeError::Corrupt(m)) if m.contains("armor") => Expect::ArmorFailure,
        Err(_) => Expect::HeaderFailure,
    }
}

#[test]
fn hybrid_vectors_through_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for v in hybrid_vectors() {
        let (ids, _) = stage(tmp.path(), &v);
        let (set, warnings) = IdentitySet::load(&[ids], None)
            .unwrap_or_else(|e| panic!("{}: identities do not load: {e}", v.name));
        assert!(warnings.is_empty(), "{}: {warnings:?}", v.name);
        let result = envelope::decrypt(&v.file, &set);
        let got = classify(&result);
        if got != v.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?} ({:?})",
                v.name,
                v.expect,
                got,
                result.as_ref().err()
            ));
            continue;
        }
        if let Ok(plain) = &result {
            assert_eq!(
                Some(hex_sha256(plain)),
                v.payload,
                "{}: payload hash",
                v.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hybrid_vectors_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut failures = Vec::new();
    for v in hybrid_vectors() {
        let (ids, file) = stage(tmp.path(), &v);
        let out = common::run(
            common::agefleet(&home)
                .arg("-d")
                .arg(&file)
                .arg("-i")
                .arg(&ids),
        );
        let err = common::stderr(&out);
        assert!(!err.contains("panicked"), "{}: {err}", v.name);
        match v.expect {
            Expect::Success => {
                if !out.status.success() {
                    failures.push(format!("{}: failed: {err}", v.name));
                } else if Some(hex_sha256(&out.stdout)) != v.payload {
                    failures.push(format!("{}: wrong payload", v.name));
                }
            }
            expect => {
                let one_line = err.lines().filter(|l| !l.trim().is_empty()).count() == 1;
                if out.status.code() != Some(1)
                    || !out.stdout.is_empty()
                    || !one_line
                    || !err.contains(&format!("{}.age", v.name))
                {
                    failures.push(format!(
                        "{} ({expect:?}): exit {:?}, {} bytes out, stderr {err:?}",
                        v.name,
                        out.status.code(),
                        out.stdout.len()
                    ));
                }
                if expect == Expect::NoMatch && !err.contains("no identity matches") {
                    failures.push(format!("{}: not reported as no match: {err}", v.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
