//! OpenSSH key material: generate ed25519 keys, parse private and public key files, compare
//! pairs, and render fingerprints the way `ssh-keygen -lf` prints them.

use std::path::Path;

use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::KeyError;

/// A freshly generated key, ready to be written.
pub struct GeneratedKey {
    /// The private key file's contents (OpenSSH format, LF line endings).
    pub private_openssh: Zeroizing<String>,
    /// The public key line without trailing newline: `ssh-ed25519 AAAA… comment`.
    pub public_line: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// As `ssh-keygen -lf` prints it: `256 SHA256:… comment (ED25519)`.
    pub fingerprint_line: String,
    /// Whether the private key file is passphrase-protected.
    pub encrypted: bool,
}

/// A comment must fit on the public key line: no control characters (a newline would
/// split the line), no leading/trailing whitespace, at most 1024 bytes.
pub fn validate_comment(comment: &str) -> Result<(), KeyError> {
    let reason = if comment.chars().any(char::is_control) {
        Some("control characters (such as newlines) cannot be part of a key comment")
    } else if comment.trim() != comment {
        Some("leading or trailing whitespace would be lost in the public key line")
    } else if comment.len() > 1024 {
        Some("longer than 1024 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(KeyError::Comment {
            comment: comment.chars().take(64).collect(),
            reason: reason.to_string(),
        }),
        None => Ok(()),
    }
}

/// Generates an ed25519 key with `comment`; encrypted (bcrypt-pbkdf + aes256-ctr, as
/// `ssh-keygen` does) when a non-empty `passphrase` is given.
pub fn generate_ed25519(
    comment: &str,
    passphrase: Option<&[u8]>,
) -> Result<GeneratedKey, KeyError> {
    validate_comment(comment)?;
    let gen_err = |what: &str, e: ssh_key::Error| KeyError::Generate {
        what: what.to_string(),
        reason: e.to_string(),
    };
    let mut rng = rand::rngs::OsRng;
    let mut key = PrivateKey::random(&mut rng, Algorithm::Ed25519)
        .map_err(|e| gen_err("ed25519 key generation", e))?;
    key.set_comment(comment);
    // The public line comes from the unencrypted key: encryption moves the comment into the
    // encrypted section.
    let public = key.public_key().clone();
    let written = match passphrase {
        Some(p) if !p.is_empty() => key
            .encrypt(&mut rng, p)
            .map_err(|e| gen_err("passphrase encryption", e))?,
        _ => key,
    };
    let private_openssh = written
        .to_openssh(LineEnding::LF)
        .map_err(|e| gen_err("OpenSSH encoding", e))?;
    let public_line = public
        .to_openssh()
        .map_err(|e| gen_err("OpenSSH encoding", e))?;
    Ok(GeneratedKey {
        private_openssh,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        fingerprint_line: fingerprint_line(&public),
        public_line,
        encrypted: written.is_encrypted(),
    })
}

/// Parses an OpenSSH private key file's contents. Errors name `path` and say what the file
/// looks like instead (public key, legacy PEM) when that is recognisable.
pub fn parse_private(path: &Path, bytes: &[u8]) -> Result<PrivateKey, KeyError> {
    PrivateKey::from_openssh(bytes).map_err(|e| {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
        let reason = if head.starts_with("-----BEGIN RSA PRIVATE KEY")
            || head.starts_with("-----BEGIN EC PRIVATE KEY")
            || head.starts_with("-----BEGIN DSA PRIVATE KEY")
            || head.starts_with("-----BEGIN PRIVATE KEY")
            || head.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY")
        {
            "legacy PEM private key: convert it with `ssh-keygen -p -f FILE` (OpenSSH format)"
                .to_string()
        } else if head.starts_with("ssh-") || head.starts_with("ecdsa-") {
            "a public key, not a private key".to_string()
        } else {
            format!(
                "not an OpenSSH private key ({})",
                newlines_to_spaces(&e.to_string())
            )
        };
        KeyError::invalid(path, reason)
    })
}

/// Parses a `.pub` file's contents (one public key line).
pub fn parse_public(path: &Path, bytes: &[u8]) -> Result<PublicKey, KeyError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| KeyError::invalid(path, "not an OpenSSH public key (not UTF-8)"))?;
    PublicKey::from_openssh(text.trim()).map_err(|e| {
        KeyError::invalid(
            path,
            format!(
                "not an OpenSSH public key ({})",
                newlines_to_spaces(&e.to_string())
            ),
        )
    })
}

/// Whether `private` and `public` are the same key (comments are not compared).
pub fn same_key(private: &PrivateKey, public: &PublicKey) -> bool {
    private.public_key().key_data() == public.key_data()
}

/// The public key line (`type base64 comment`, no newline).
pub fn public_line(public: &PublicKey) -> Result<String, KeyError> {
    public.to_openssh().map_err(|e| KeyError::Generate {
        what: "OpenSSH encoding".into(),
        reason: e.to_string(),
    })
}

/// `<bits> SHA256:<hash> <comment or "no comment"> (<TYPE>)`, as `ssh-keygen -lf` prints it.
pub fn fingerprint_line(public: &PublicKey) -> String {
    let comment = match public.comment() {
        "" => "no comment",
        c => c,
    };
    format!(
        "{} {} {} ({})",
        key_bits(public),
        public.fingerprint(HashAlg::Sha256),
        comment,
        type_label(&public.algorithm())
    )
}

fn key_bits(public: &PublicKey) -> usize {
    match public.algorithm() {
        Algorithm::Ed25519 | Algorithm::SkEd25519 => 256,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        }
        | Algorithm::SkEcdsaSha2NistP256 => 256,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        } => 384,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        } => 521,
        Algorithm::Dsa => 1024,
        Algorithm::Rsa { .. } => public
            .key_data()
            .rsa()
            .and_then(|k| k.n.as_positive_bytes())
            .map(bit_length)
            .unwrap_or(0),
        _ => 0,
    }
}

/// Bit length of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|&b| b != 0) {
        Some(i) => &bytes[i..],
        None => return 0,
    };
    (bytes.len() - 1) * 8 + (8 - bytes[0].leading_zeros() as usize)
}

fn type_label(alg: &Algorithm) -> String {
    match alg {
        Algorithm::Ed25519 => "ED25519".into(),
        Algorithm::SkEd25519 => "ED25519-SK".into(),
        Algorithm::Ecdsa { .. } => "ECDSA".into(),
        Algorithm::SkEcdsaSha2NistP256 => "ECDSA-SK".into(),
        Algorithm::Rsa { .. } => "RSA".into(),
        Algorithm::Dsa => "DSA".into(),
        other => other.as_str().to_uppercase(),
    }
}

/// `s` with line breaks turned into spaces: ssh-key's parse errors inside a one-line message.
fn newlines_to_spaces(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_and_matches() {
        let k = generate_ed25519("alice@box", None).unwrap();
        assert!(!k.encrypted);
        assert!(k.public_line.starts_with("ssh-ed25519 AAAA"));
        assert!(k.public_line.ends_with(" alice@box"));
        assert!(k.fingerprint.starts_with("SHA256:"));
        assert_eq!(
            k.fingerprint_line,
            format!("256 {} alice@box (ED25519)", k.fingerprint)
        );
        let p = Path::new("k");
        let private = parse_private(p, k.private_openssh.as_bytes()).unwrap();
        let public = parse_public(p, k.public_line.as_bytes()).unwrap();
        assert!(same_key(&private, &public));
        assert_eq!(private.comment(), "alice@box");
        let other = generate_ed25519("x", None).unwrap();
        let other_pub = parse_public(p, other.public_line.as_bytes()).unwrap();
        assert!(!same_key(&private, &other_pub));
    }

    #[test]
    fn passphrase_encrypts_and_keeps_the_public_line() {
        let k = generate_ed25519("git", Some(b"hunter2")).unwrap();
        assert!(k.encrypted);
        let p = Path::new("k");
        let private = parse_private(p, k.private_openssh.as_bytes()).unwrap();
        assert!(private.is_encrypted());
        let public = parse_public(p, k.public_line.as_bytes()).unwrap();
        assert!(same_key(&private, &public));
        let opened = private.decrypt(b"hunter2").unwrap();
        assert_eq!(opened.comment(), "git");
        assert!(private.decrypt(b"wrong").is_err());
        // An empty passphrase means no encryption.
        assert!(!generate_ed25519("c", Some(b"")).unwrap().encrypted);
    }

    #[test]
    fn bad_comments_are_rejected() {
        for c in ["a\nb", "tab\there", " lead", "trail ", &"x".repeat(1025)] {
            let e = generate_ed25519(c, None).err().unwrap();
            assert!(e.to_string().starts_with("comment "), "{e}");
        }
        validate_comment("").unwrap();
        validate_comment("root@host (agenix) \"quoted\" ${x}").unwrap();
    }

    #[test]
    fn parse_errors_name_the_file_and_say_what_it_is() {
        let p = Path::new("/x/id");
        let e = parse_private(p, b"ssh-ed25519 AAAA comment").unwrap_err();
        assert_eq!(e.to_string(), "/x/id: a public key, not a private key");
        let e = parse_private(p, b"-----BEGIN RSA PRIVATE KEY-----\nxx\n").unwrap_err();
        assert!(e.to_string().contains("legacy PEM"), "{e}");
        let e = parse_private(p, b"\x00\xffgarbage").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/x/id: not an OpenSSH private key"),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'));
        let e = parse_public(p, b"\xff\xfe").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        let e = parse_public(p, b"ssh-ed25519 !!!").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/x/id: not an OpenSSH public key"),
            "{e}"
        );
    }

    #[test]
    fn empty_comment_prints_like_ssh_keygen() {
        let k = generate_ed25519("", None).unwrap();
        assert!(k.fingerprint_line.ends_with(" no comment (ED25519)"));
    }

    #[test]
    fn bit_length_of_big_endian_numbers() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0x7f, 0]), 15);
    }
}
