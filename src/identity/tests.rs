//! Unit tests of identity loading and unlocking, on fixed test-only keys made by
//! `ssh-keygen` (never used anywhere else).

use super::*;
use crate::envelope::{self, StanzaKind};
use crate::recipient::Recipient;
use age::secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicUsize, Ordering};

const PLAIN_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBRyznFXqOzISO7pSjmr3zM6cYMh1eS4QTodMraz5xlvwAAAIjup2PC7qdj\nwgAAAAtzc2gtZWQyNTUxOQAAACBRyznFXqOzISO7pSjmr3zM6cYMh1eS4QTodMraz5xlvw\nAAAEDBwf5/Y9j8HUx2wi39e7F4rGaSb1olkcnsvjWRAp0EKlHLOcVeo7MhI7ulKOavfMzp\nxgyHV5LhBOh0ytrPnGW/AAAABXBsYWlu\n-----END OPENSSH PRIVATE KEY-----\n";
const PLAIN_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFHLOcVeo7MhI7ulKOavfMzpxgyHV5LhBOh0ytrPnGW/ plain";
const LOCKED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABDANfiR2i\nJLkCxaSZszTaZpAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIPt9tTUo27ekpuvz\nsmo4cpUuq0grjZS6G5bsQQhlFilVAAAAkDvI47nj6RaELK6TjERTPpC5SdGJr82bVW6RDH\nRujthl192FvcgkJfUw2/kVW8aVdZ3ofQCXl/3Q0YWphbmzt8nQELHnvfUt8MCl9gM9eqSG\n0/XKvnkMgJtYOXd91dGrNx4awh0x2AeJNTH6HgPpmWEOl9D6kvLouQzKiXdMY2KQ8HTrR2\nZsXt/iq3wE/F+bgw==\n-----END OPENSSH PRIVATE KEY-----\n";
const LOCKED_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPt9tTUo27ekpuvzsmo4cpUuq0grjZS6G5bsQQhlFilV locked";
const LOCKED_PASSPHRASE: &str = "correct horse";
const ECDSA_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAaAAAABNlY2RzYS\n1zaGEyLW5pc3RwMjU2AAAACG5pc3RwMjU2AAAAQQRU/hGKoo6ljZyWuFyTTYDLnBYEigr6\nGJYFg+Qt2iQhtcC1dhAGygeK7VznObPnzUqmMMVTrhMMg6f95ji19+ZLAAAAoDFDSowxQ0\nqMAAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFT+EYqijqWNnJa4\nXJNNgMucFgSKCvoYlgWD5C3aJCG1wLV2EAbKB4rtXOc5s+fNSqYwxVOuEwyDp/3mOLX35k\nsAAAAhAJn54BPlHOxC8ydYDsEsHIBpXmTYGQDEQtNnntOMeOmuAAAAAmVjAQIDBAU=\n-----END OPENSSH PRIVATE KEY-----\n";

/// A prompt answering from a list (then repeating the last answer), counting calls.
struct Scripted {
    answers: Vec<Option<&'static str>>,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(answers: &[Option<&'static str>]) -> Self {
        Scripted {
            answers: answers.to_vec(),
            calls: AtomicUsize::new(0),
        }
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl PassphrasePrompt for Scripted {
    fn passphrase(&self, _: &Path) -> Option<SecretString> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers[n.min(self.answers.len() - 1)];
        answer.map(|a| SecretString::from(a.to_string()))
    }
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn tag(public: &str) -> String {
    Recipient::parse(public).unwrap().tag.unwrap()
}

fn header_with(tags: &[&str]) -> crate::envelope::Header {
    crate::envelope::Header {
        armored: false,
        stanzas: tags
            .iter()
            .map(|t| StanzaKind::SshEd25519 { tag: t.to_string() })
            .chain([StanzaKind::X25519])
            .collect(),
    }
}

#[test]
fn loads_plain_and_locked_ssh_keys_with_their_tags() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain", PLAIN_KEY);
    let locked = write(dir.path(), "locked", LOCKED_KEY);
    let (set, warnings) = IdentitySet::load(&[plain.clone(), locked.clone()], None).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(set.identities.len(), 2);
    assert_eq!(
        set.identities[0].tag.as_deref(),
        Some(tag(PLAIN_PUB).as_str())
    );
    assert_eq!(set.identities[0].kind, IdentityKind::SshEd25519);
    assert!(!set.identities[0].is_locked());
    // Unencrypted ed25519 keys take the precomputed path.
    assert!(matches!(set.identities[0].key, Key::SshEd25519(_)));
    assert_eq!(
        set.identities[1].tag.as_deref(),
        Some(tag(LOCKED_PUB).as_str())
    );
    assert!(set.identities[1].is_locked());
    assert_eq!(set.age_identities().len(), 1);
    assert_eq!(set.tags().count(), 2);
    assert!(set.has_any());
}

#[test]
fn age_identity_files_with_comments_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let a = age::x25519::Identity::generate();
    let b = age::x25519::Identity::generate();
    let text = format!(
        "# created: now\r\n# public key: {}\r\n{}\r\n\r\n{}\n",
        a.to_public(),
        a.to_string().expose_secret(),
        b.to_string().expose_secret()
    );
    let path = write(dir.path(), "keys.txt", &text);
    let (set, _) = IdentitySet::load(&[path], None).unwrap();
    assert_eq!(set.identities[0].kind, IdentityKind::Age);
    assert_eq!(set.identities[0].tag, None);
    assert_eq!(set.age_identities().len(), 2);
    assert_eq!(set.tags().count(), 0);
    let r = Recipient::parse(&b.to_public().to_string()).unwrap();
    let ct = envelope::encrypt(b"two keys", &[&r], false).unwrap();
    assert_eq!(&envelope::decrypt(&ct, &set).unwrap()[..], b"two keys");
}

#[test]
fn invalid_explicit_identities_name_the_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let age_id = age::x25519::Identity::generate();
    let secret = age_id.to_string().expose_secret().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "pub",
            PLAIN_PUB.to_string(),
            "public key, not a private key",
        ),
        (
            "agepub",
            format!("{}\n", age_id.to_public()),
            "age public key",
        ),
        ("empty", String::new(), "empty file"),
        ("blank", "  \n\n".into(), "empty file"),
        (
            "garbage",
            "hello world\n".into(),
            "not a private key or age identity file",
        ),
        ("comments", "# nothing here\n".into(), "no identity"),
        (
            "pkcs8",
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".into(),
            "unsupported private key format",
        ),
        (
            "ecdsa",
            ECDSA_KEY.into(),
            "unsupported key type ecdsa-sha2-nistp256",
        ),
        (
            "cut",
            PLAIN_KEY[..PLAIN_KEY.len() / 2].to_string(),
            "not a valid OpenSSH",
        ),
        ("mixed", format!("{secret}\nnot a key\n"), "line 2"),
        (
            "badsecret",
            // Swap the last Bech32 character for a different one: the checksum then fails
            // (replacing it with a fixed letter was a no-op whenever the key ended in it).
            {
                let last = if secret.ends_with('Q') { 'P' } else { 'Q' };
                format!("{}{last}\n", &secret[..secret.len() - 1])
            },
            "invalid age identity",
        ),
    ];
    for (name, content, reason) in &cases {
        let p = write(dir.path(), name, content);
        let e = IdentitySet::load(std::slice::from_ref(&p), None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&p.display().to_string()), "{msg}");
        assert!(msg.contains(reason), "{name}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(!msg.contains(&secret[15..30]), "secret leaked: {msg}");
    }
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xffu8, 0xfe, 0, 1]).unwrap();
    assert!(IdentitySet::load(&[binary], None).is_err());
    let missing = dir.path().join("missing");
    let e = IdentitySet::load(&[missing], None).unwrap_err();
    assert!(e.to_string().contains("no such file"), "{e}");
    let e = IdentitySet::load(&[dir.path().to_path_buf()], None).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
}

#[test]
fn defaults_in_agenix_order_skip_missing_silently_and_bad_ones_with_warning() {
    let home = tempfile::tempdir().unwrap();
    let (set, warnings) = IdentitySet::load(&[], Some(home.path())).unwrap();
    assert!(!set.has_any() && warnings.is_empty());
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    write(&ssh, "id_ed25519", PLAIN_KEY);
    let (set, warnings) = IdentitySet::load(&[], Some(home.path())).unwrap();
    assert_eq!(set.identities.len(), 1);
    assert!(warnings.is_empty());
    write(&ssh, "id_rsa", PLAIN_PUB);
    let (set, warnings) = IdentitySet::load(&[], Some(home.path())).unwrap();
    assert_eq!(set.identities.len(), 1);
    assert_eq!(set.identities[0].path, ssh.join("id_ed25519"));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("id_rsa") && warnings[0].contains("public key"));
    write(&ssh, "id_rsa", LOCKED_KEY);
    let (set, _) = IdentitySet::load(&[], Some(home.path())).unwrap();
    let names: Vec<_> = set
        .identities
        .iter()
        .map(|i| i.path.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["id_rsa", "id_ed25519"]);
    let (set, _) = IdentitySet::load(&[], None).unwrap();
    assert!(!set.has_any());
}

#[test]
fn lenient_loading_skips_unusable_files_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good", PLAIN_KEY);
    let empty = write(dir.path(), "empty", "");
    let public = write(dir.path(), "public", PLAIN_PUB);
    let missing = dir.path().join("missing");
    let (set, warnings) = IdentitySet::load_lenient(&[missing, empty, good.clone(), public]);
    assert_eq!(set.identities.len(), 1);
    assert_eq!(set.identities[0].path, good);
    assert_eq!(warnings.len(), 3);
    assert!(warnings.iter().all(|w| w.starts_with("skipping ")));
}

#[test]
fn unlock_prompts_once_and_only_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let locked = write(dir.path(), "locked", LOCKED_KEY);
    let (mut set, _) = IdentitySet::load(&[locked], None).unwrap();
    let locked_tag = tag(LOCKED_PUB);
    let prompt = Scripted::new(&[Some(LOCKED_PASSPHRASE)]);

    // No header has its tag: never asked.
    set.unlock_for(&[&header_with(&["AAAAAA"])], &prompt)
        .unwrap();
    set.unlock_for(&[], &prompt).unwrap();
    assert_eq!(prompt.calls(), 0);
    assert!(set.identities[0].is_locked());

    // Several headers need it: asked once.
    let h1 = header_with(&[&locked_tag]);
    let h2 = header_with(&["AAAAAA", &locked_tag]);
    set.unlock_for(&[&h1, &h2], &prompt).unwrap();
    assert_eq!(prompt.calls(), 1);
    assert!(!set.identities[0].is_locked());
    set.unlock_for(&[&h1, &h2], &prompt).unwrap();
    assert_eq!(prompt.calls(), 1);

    // And the unlocked key decrypts.
    let r = Recipient::parse(LOCKED_PUB).unwrap();
    let ct = envelope::encrypt(b"unlocked", &[&r], true).unwrap();
    assert_eq!(&envelope::decrypt(&ct, &set).unwrap()[..], b"unlocked");
}

#[test]
fn no_prompt_when_an_unencrypted_key_covers_every_header() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain", PLAIN_KEY);
    let locked = write(dir.path(), "locked", LOCKED_KEY);
    let (mut set, _) = IdentitySet::load(&[locked, plain], None).unwrap();
    let both = header_with(&[&tag(LOCKED_PUB), &tag(PLAIN_PUB)]);
    let no_terminal = Scripted::new(&[None]);
    set.unlock_for(&[&both, &both], &no_terminal).unwrap();
    assert_eq!(no_terminal.calls(), 0);
    // A header only the locked key opens needs the prompt: without a terminal, an error.
    let only_locked = header_with(&[&tag(LOCKED_PUB)]);
    let e = set
        .unlock_for(&[&both, &only_locked], &no_terminal)
        .unwrap_err();
    assert!(matches!(e, IdentityError::NoTerminal { .. }), "{e}");
    assert!(e.to_string().contains("no terminal"));
    assert_eq!(no_terminal.calls(), 1);
}

#[test]
fn wrong_passphrase_three_times_then_never_again() {
    let dir = tempfile::tempdir().unwrap();
    let locked = write(dir.path(), "locked", LOCKED_KEY);
    let (mut set, _) = IdentitySet::load(std::slice::from_ref(&locked), None).unwrap();
    let h = header_with(&[&tag(LOCKED_PUB)]);
    let wrong = Scripted::new(&[Some("wrong"), Some(""), Some("nope")]);
    let e = set.unlock_for(&[&h], &wrong).unwrap_err();
    assert!(
        matches!(&e, IdentityError::WrongPassphrase { path } if *path == locked),
        "{e}"
    );
    assert_eq!(wrong.calls(), 3);
    let again = set.unlock_for(&[&h], &wrong).unwrap_err();
    assert!(matches!(again, IdentityError::WrongPassphrase { .. }));
    assert_eq!(wrong.calls(), 3);
    assert!(set.age_identities().is_empty());

    // A wrong passphrase then the right one unlocks.
    let (mut set, _) = IdentitySet::load(&[locked], None).unwrap();
    let second_try = Scripted::new(&[Some("wrong"), Some(LOCKED_PASSPHRASE)]);
    set.unlock_for(&[&h], &second_try).unwrap();
    assert_eq!(second_try.calls(), 2);
    assert_eq!(set.age_identities().len(), 1);
}

#[test]
fn unlock_all_records_each_failure_and_keeps_the_usable_keys() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain", PLAIN_KEY);
    let locked = write(dir.path(), "locked", LOCKED_KEY);
    let (mut set, _) = IdentitySet::load(&[locked.clone(), plain], None).unwrap();
    let only_locked = header_with(&[&tag(LOCKED_PUB)]);
    let only_plain = header_with(&[&tag(PLAIN_PUB)]);
    let no_terminal = Scripted::new(&[None]);
    let failures = set.unlock_all(&[&only_plain, &only_locked], &no_terminal);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        matches!(&failures[0], IdentityError::NoTerminal { path } if *path == locked),
        "{failures:?}"
    );
    // The header that needs the locked key says why it cannot be opened; the other has no
    // unavailable key and the plain key still decrypts.
    let why = set.unavailable_for(&only_locked);
    assert_eq!(why.len(), 1);
    assert!(why[0].to_string().contains("no terminal"));
    assert!(set.unavailable_for(&only_plain).is_empty());
    assert_eq!(set.age_identities().len(), 1);
    // Asked again in the same run: not prompted again, same failure.
    let failures = set.unlock_all(&[&only_locked], &no_terminal);
    assert_eq!(failures.len(), 1);
    assert_eq!(no_terminal.calls(), 1);
}
