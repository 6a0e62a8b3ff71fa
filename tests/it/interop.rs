//! Interop of the library (recipient, identity, envelope) with the reference `age` CLI and
//! keys made by `ssh-keygen` / `age-keygen`, both ways: binary and armored; ssh-ed25519,
//! ssh-rsa and X25519; mixed recipients; passphrase-protected keys.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{
    age_decrypt, age_encrypt, age_keygen, require_tool, ssh_keygen, stderr, SshKey,
};
use age::secrecy::SecretString;
use agefleet::envelope::{self, EnvelopeError, Header, StanzaKind};
use agefleet::identity::{IdentityError, IdentitySet, PassphrasePrompt};
use agefleet::recipient::Recipient;

/// Keys of every kind, made by the reference tools.
struct Keys {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ed25519: SshKey,
    rsa: SshKey,
    x25519: (PathBuf, String),
}

fn keys() -> Keys {
    require_tool("age");
    require_tool("age-keygen");
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    Keys {
        ed25519: ssh_keygen(&dir, "ed", "ed25519", ""),
        rsa: ssh_keygen(&dir, "rsa", "rsa", ""),
        x25519: age_keygen(&dir, "age.txt"),
        dir,
        _tmp: tmp,
    }
}

fn ids(paths: &[&Path]) -> IdentitySet {
    let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    IdentitySet::load(&paths, None).unwrap().0
}

fn refs(recipients: &[Recipient]) -> Vec<&Recipient> {
    recipients.iter().collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A prompt that always answers `answer`, counting calls.
struct Counting {
    answer: &'static str,
    calls: AtomicUsize,
}

impl PassphrasePrompt for Counting {
    fn passphrase(&self, _: &Path) -> Option<SecretString> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Some(SecretString::from(self.answer.to_string()))
    }
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn library_output_decrypts_with_age_cli() {
    let k = keys();
    let plaintext: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let cases: [(&str, &Path); 3] = [
        (&k.ed25519.public_line, &k.ed25519.private),
        (&k.rsa.public_line, &k.rsa.private),
        (&k.x25519.1, &k.x25519.0),
    ];
    for (public, private) in cases {
        let r = Recipient::parse(public).unwrap();
        for armor in [false, true] {
            let ct = envelope::encrypt(&plaintext, &[&r], armor).unwrap();
            let file = write(&k.dir, "out.age", &ct);
            let out = age_decrypt(private, &file);
            assert!(
                out.status.success(),
                "{:?} armor={armor}: {}",
                r.kind,
                stderr(&out)
            );
            assert_eq!(out.stdout, plaintext);
        }
    }
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn mixed_recipients_in_one_file_each_decrypt_with_age_cli() {
    let k = keys();
    let recipients: Vec<Recipient> = [&k.ed25519.public_line, &k.rsa.public_line, &k.x25519.1]
        .iter()
        .map(|p| Recipient::parse(p).unwrap())
        .collect();
    for armor in [false, true] {
        let ct = envelope::encrypt(b"for everyone\n", &refs(&recipients), armor).unwrap();
        let file = write(&k.dir, "mixed.age", &ct);
        for private in [&k.ed25519.private, &k.rsa.private, &k.x25519.0] {
            let out = age_decrypt(private, &file);
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(out.stdout, b"for everyone\n");
        }
        // The library reads it with each identity alone too.
        for private in [&k.ed25519.private, &k.rsa.private, &k.x25519.0] {
            let pt = envelope::decrypt(&ct, &ids(&[private])).unwrap();
            assert_eq!(&pt[..], b"for everyone\n");
        }
    }
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn age_cli_output_decrypts_with_library() {
    let k = keys();
    let plaintext = b"written by the reference implementation\n";
    let cases: [(&str, &Path); 3] = [
        (&k.ed25519.public_line, &k.ed25519.private),
        (&k.rsa.public_line, &k.rsa.private),
        (&k.x25519.1, &k.x25519.0),
    ];
    for (public, private) in cases {
        for armor in [false, true] {
            let file = k.dir.join("from-age.age");
            age_encrypt(&[public], armor, plaintext, &file);
            let ct = std::fs::read(&file).unwrap();
            let pt = envelope::decrypt(&ct, &ids(&[private])).unwrap();
            assert_eq!(&pt[..], plaintext);
            let header = Header::parse(&ct).unwrap();
            assert_eq!(header.armored, armor);
        }
    }
    // Empty plaintext, and a file for all three at once.
    let file = k.dir.join("empty.age");
    age_encrypt(
        &[&k.ed25519.public_line, &k.rsa.public_line, &k.x25519.1],
        false,
        b"",
        &file,
    );
    let ct = std::fs::read(&file).unwrap();
    let all = ids(&[&k.x25519.0, &k.rsa.private, &k.ed25519.private]);
    assert!(envelope::decrypt(&ct, &all).unwrap().is_empty());
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn age_cli_with_ssh_recipients_file_decrypts_with_library() {
    let k = keys();
    // `age -R` reads recipients (with comments) from a file, as from authorized_keys.
    let recipients_file = write(
        &k.dir,
        "recipients.txt",
        format!("{}\n{}\n", k.ed25519.public_line, k.rsa.public_line).as_bytes(),
    );
    let out_file = k.dir.join("r.age");
    let mut cmd = std::process::Command::new("age");
    cmd.arg("-e")
        .arg("-R")
        .arg(&recipients_file)
        .arg("-o")
        .arg(&out_file)
        .arg(&recipients_file);
    let out = common::run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    let ct = std::fs::read(&out_file).unwrap();
    for private in [&k.ed25519.private, &k.rsa.private] {
        let pt = envelope::decrypt(&ct, &ids(&[private])).unwrap();
        assert_eq!(&pt[..], std::fs::read(&recipients_file).unwrap());
    }
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn header_tags_agree_with_recipient_tags_for_both_writers() {
    let k = keys();
    let publics = [&k.ed25519.public_line, &k.rsa.public_line, &k.x25519.1];
    let recipients: Vec<Recipient> = publics
        .iter()
        .map(|p| Recipient::parse(p).unwrap())
        .collect();
    let mut expected: Vec<&str> = recipients.iter().filter_map(|r| r.tag.as_deref()).collect();
    expected.sort();

    // The reference `age` writes no grease stanza.
    let file = k.dir.join("age.age");
    let publics_str: Vec<&str> = publics.iter().map(|s| s.as_str()).collect();
    age_encrypt(&publics_str, true, b"x", &file);
    let header = Header::parse(&std::fs::read(&file).unwrap()).unwrap();
    let mut tags: Vec<&str> = header.ssh_tags().collect();
    tags.sort();
    assert_eq!(tags, expected);
    assert_eq!(header.x25519_count(), 1);
    assert!(header.armored);
    assert_eq!(header.stanzas.len(), 3, "{:?}", header.stanzas);
    assert!(matches!(header.stanzas[0], StanzaKind::SshEd25519 { .. }));
    assert!(matches!(header.stanzas[1], StanzaKind::SshRsa { .. }));

    // agefleet (the age crate) adds one grease stanza, which is ignored.
    let ct = envelope::encrypt(b"x", &refs(&recipients), false).unwrap();
    let header = Header::parse(&ct).unwrap();
    let mut tags: Vec<&str> = header.ssh_tags().collect();
    tags.sort();
    assert_eq!(tags, expected);
    assert_eq!(header.x25519_count(), 1);
    assert_eq!(header.stanzas.len(), 4, "{:?}", header.stanzas);
    assert!(header
        .stanzas
        .iter()
        .any(|s| matches!(s, StanzaKind::Other { kind } if kind.ends_with("-grease"))));

    // The identity files' tags are the same ones.
    let set = ids(&[&k.ed25519.private, &k.rsa.private]);
    let mut id_tags: Vec<&str> = set.tags().collect();
    id_tags.sort();
    assert_eq!(id_tags, expected);
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn passphrase_key_is_asked_once_for_many_files_and_never_when_unneeded() {
    let k = keys();
    let locked = ssh_keygen(&k.dir, "locked", "ed25519", "hunter22");
    let plain_recipient = Recipient::parse(&k.ed25519.public_line).unwrap();
    let locked_recipient = Recipient::parse(&locked.public_line).unwrap();

    // Files written by age (no grease) and by the library, all needing the locked key.
    let mut files = Vec::new();
    for i in 0..3 {
        let file = k.dir.join(format!("l{i}.age"));
        age_encrypt(
            &[&locked.public_line],
            i % 2 == 0,
            format!("secret {i}").as_bytes(),
            &file,
        );
        files.push(std::fs::read(&file).unwrap());
    }
    files.push(envelope::encrypt(b"secret 3", &[&locked_recipient], true).unwrap());
    let headers: Vec<Header> = files.iter().map(|f| Header::parse(f).unwrap()).collect();
    let header_refs: Vec<&Header> = headers.iter().collect();

    let mut set = ids(&[&locked.private]);
    let prompt = Counting {
        answer: "hunter22",
        calls: AtomicUsize::new(0),
    };
    set.unlock_for(&header_refs, &prompt).unwrap();
    set.unlock_for(&header_refs, &prompt).unwrap();
    assert_eq!(prompt.calls.load(Ordering::SeqCst), 1);
    for (i, f) in files.iter().enumerate() {
        let pt = envelope::decrypt(f, &set).unwrap();
        assert_eq!(&pt[..], format!("secret {i}").as_bytes());
    }

    // No file has its tag: never asked, even with the key loaded beside another one.
    let other = envelope::encrypt(b"not for you", &[&plain_recipient], false).unwrap();
    let other_header = Header::parse(&other).unwrap();
    let mut set = ids(&[&locked.private, &k.ed25519.private]);
    let prompt = Counting {
        answer: "hunter22",
        calls: AtomicUsize::new(0),
    };
    set.unlock_for(&[&other_header, &other_header], &prompt)
        .unwrap();
    assert_eq!(prompt.calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        &envelope::decrypt(&other, &set).unwrap()[..],
        b"not for you"
    );
    // Still locked: a file only it opens does not decrypt without unlocking.
    assert!(matches!(
        envelope::decrypt(&files[0], &set),
        Err(EnvelopeError::NoMatchingIdentity)
    ));

    // A wrong passphrase is WrongPassphrase (after the allowed retries).
    let mut set = ids(&[&locked.private]);
    let wrong = Counting {
        answer: "not it",
        calls: AtomicUsize::new(0),
    };
    let e = set.unlock_for(&header_refs, &wrong).unwrap_err();
    assert!(matches!(e, IdentityError::WrongPassphrase { .. }), "{e}");
    assert!(e.to_string().contains("locked"), "{e}");
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `script`, `ssh-keygen`"]
fn age_cli_decrypts_library_output_with_passphrase_key_through_a_pty() {
    let k = keys();
    require_tool("script");
    let locked = ssh_keygen(&k.dir, "locked", "ed25519", "hunter22");
    let r = Recipient::parse(&locked.public_line).unwrap();
    let ct = envelope::encrypt(b"via a terminal\n", &[&r], true).unwrap();
    let file = write(&k.dir, "p.age", &ct);
    let out_file = k.dir.join("p.txt");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let run = common::pty::run_in_pty(
        &[("PATH", path.as_os_str())],
        &k.dir,
        &[
            "age",
            "-d",
            "-i",
            locked.private.to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        b"hunter22\n",
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "{}", run.screen);
    assert!(
        run.screen.to_lowercase().contains("passphrase"),
        "age did not prompt: {}",
        run.screen
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), b"via a terminal\n");
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn damaged_age_cli_files_give_precise_errors() {
    let k = keys();
    let file = k.dir.join("d.age");
    age_encrypt(&[&k.ed25519.public_line], false, b"payload", &file);
    let ct = std::fs::read(&file).unwrap();
    let set = ids(&[&k.ed25519.private]);
    let stranger = ids(&[&k.rsa.private]);
    assert!(matches!(
        envelope::decrypt(&ct, &stranger),
        Err(EnvelopeError::NoMatchingIdentity)
    ));
    // Cut in the header, then in the payload.
    for cut in [25, 40] {
        let r = envelope::decrypt(&ct[..cut], &set);
        assert!(
            matches!(r, Err(EnvelopeError::Corrupt(_))),
            "cut at {cut}: {r:?}"
        );
    }
    for cut in [ct.len() - 20, ct.len() - 1] {
        let r = envelope::decrypt(&ct[..cut], &set);
        assert!(
            matches!(r, Err(EnvelopeError::Payload(_))),
            "cut at {cut}: {r:?}"
        );
    }
    assert!(matches!(
        envelope::decrypt(b"just some text\n", &set),
        Err(EnvelopeError::NotAge(_))
    ));
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn pem_rsa_identity_decrypts_age_cli_output() {
    let k = keys();
    // `ssh-keygen -m PEM` writes the old "BEGIN RSA PRIVATE KEY" form.
    let pem = k.dir.join("pem");
    let out = common::run(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f"])
            .arg(&pem),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&pem)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let public = std::fs::read_to_string(pem.with_extension("pub")).unwrap();
    let file = k.dir.join("pem.age");
    age_encrypt(&[public.trim()], false, b"old format", &file);
    let set = ids(&[&pem]);
    assert_eq!(
        set.tags().collect::<Vec<_>>(),
        [Recipient::parse(&public).unwrap().tag.unwrap().as_str()]
    );
    let pt = envelope::decrypt(&std::fs::read(&file).unwrap(), &set).unwrap();
    assert_eq!(&pt[..], b"old format");
}
