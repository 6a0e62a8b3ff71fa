//! `check-keys`: the state of each expected key, and which secrets of the rules the agenix
//! identity can open (from header tags; optionally proven by decrypting to nowhere).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ssh_key::PublicKey;

use super::files;
use super::openssh;
use super::{KeyError, Role};

/// The SSH directory's state: `Tighten` means it has group/other bits, `Create` that it is
/// absent.
pub fn dir_state(dir: &Path) -> Result<super::DirAction, KeyError> {
    files::inspect_dir(dir)
}

/// The state of one expected key. `problems` is empty exactly when every check passed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyCheck {
    /// The private key's file name.
    pub name: &'static str,
    /// Which of the fleet's keys this is.
    pub role: Role,
    /// The private key's path.
    pub path: PathBuf,
    /// The public key's path.
    pub public_path: PathBuf,
    /// Something exists at the private key's path.
    pub present: bool,
    /// It is a regular file (not a symlink).
    pub regular_file: bool,
    /// Permission bits, octal (`"0600"`).
    pub mode: Option<String>,
    /// No group/other bits.
    pub mode_ok: bool,
    /// Parses as an OpenSSH private key.
    pub parses: bool,
    /// Passphrase-protected (`None` when it did not parse).
    pub encrypted: Option<bool>,
    /// The `.pub` matches the private key (`None` when either could not be read).
    pub matches_public: Option<bool>,
    /// As `ssh-keygen -lf` prints it.
    pub fingerprint: Option<String>,
    /// The public key line.
    pub public_key: Option<String>,
    /// One line per failed check (empty when all passed).
    pub problems: Vec<String>,
    /// `problems` is empty.
    pub ok: bool,
}

/// Checks the key of `role` in `ssh_dir`. Returns its public key when the private key parsed.
pub fn check_key(ssh_dir: &Path, role: Role) -> (KeyCheck, Option<PublicKey>) {
    let mut c = KeyCheck {
        name: role.file_name(),
        role,
        path: ssh_dir.join(role.file_name()),
        public_path: ssh_dir.join(role.public_file_name()),
        present: false,
        regular_file: false,
        mode: None,
        mode_ok: false,
        parses: false,
        encrypted: None,
        matches_public: None,
        fingerprint: None,
        public_key: None,
        problems: Vec::new(),
        ok: false,
    };
    let public = check_private(&mut c);
    c.ok = c.problems.is_empty();
    (c, public)
}

fn check_private(c: &mut KeyCheck) -> Option<PublicKey> {
    let meta = match std::fs::symlink_metadata(&c.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            c.problems.push("missing".into());
            return None;
        }
        Err(e) => {
            c.problems.push(format!("cannot stat: {e}"));
            return None;
        }
    };
    c.present = true;
    if meta.file_type().is_symlink() {
        c.problems
            .push("a symbolic link, not a regular file".into());
        return None;
    }
    if !meta.file_type().is_file() {
        c.problems.push("not a regular file".into());
        return None;
    }
    c.regular_file = true;
    let mode = meta.mode() & 0o7777;
    c.mode = Some(format!("{mode:04o}"));
    c.mode_ok = mode & 0o077 == 0;
    if !c.mode_ok {
        c.problems.push(format!(
            "mode {mode:04o} gives group/other access (want 0600)"
        ));
    }
    let private = match files::read_key_file(&c.path, false)
        .and_then(|f| openssh::parse_private(&c.path, &f.bytes))
    {
        Ok(k) => k,
        Err(e) => {
            c.problems.push(strip_path(&e, &c.path));
            return None;
        }
    };
    c.parses = true;
    c.encrypted = Some(private.is_encrypted());
    if c.role == Role::Agenix && private.is_encrypted() {
        c.problems
            .push("passphrase-protected: activation cannot prompt for it".into());
    }
    let mut shown = private.public_key().clone();
    match files::exists_no_follow(&c.public_path) {
        Ok(false) => c.problems.push(format!("no {}", c.role.public_file_name())),
        Ok(true) => match files::read_key_file(&c.public_path, true)
            .and_then(|f| openssh::parse_public(&c.public_path, &f.bytes))
        {
            Ok(public) if openssh::same_key(&private, &public) => {
                c.matches_public = Some(true);
                shown = public;
            }
            Ok(_) => {
                c.matches_public = Some(false);
                c.problems
                    .push(format!("does not match {}", c.role.public_file_name()));
            }
            Err(e) => c.problems.push(format!(
                "{}: {}",
                c.role.public_file_name(),
                strip_path(&e, &c.public_path)
            )),
        },
        Err(e) => c.problems.push(e.to_string()),
    }
    if shown.comment().is_empty() && !private.comment().is_empty() {
        shown.set_comment(private.comment());
    }
    c.fingerprint = Some(openssh::fingerprint_line(&shown));
    c.public_key = openssh::public_line(&shown).ok();
    Some(shown)
}

/// The error without its leading `<path>: `, for a table row that already names the file.
fn strip_path(e: &KeyError, path: &Path) -> String {
    let s = e.to_string();
    let prefix = format!("{}: ", path.display());
    s.strip_prefix(&prefix).map(str::to_string).unwrap_or(s)
}

/// Whether the agenix identity can open one secret of the rules.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecretCheck {
    /// The rule's name (relative to the rules file's directory).
    pub file: String,
    /// The secret's file on disk.
    pub path: PathBuf,
    /// The identity can open it: its tag is in the header, or (with `--try-decrypt`) it
    /// decrypted.
    pub decryptable: bool,
    /// `"header"` (tags) or `"decryption"` (proven).
    pub method: &'static str,
    /// The outcome, as a kind.
    pub status: SecretStatus,
    /// What went wrong, for `missing` and `error`.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
/// The outcome of checking one secret against the agenix identity.
pub enum SecretStatus {
    /// The identity is a recipient (and, when tried, decryption worked).
    Openable,
    /// The header does not name the identity.
    NotRecipient,
    /// The rules name a file that does not exist (not this check's failure: `status`
    /// reports it).
    Missing,
    /// Unreadable file, unparsable header, or a decryption that failed although the header
    /// names the identity.
    Error,
}

/// For every entry of `rules`, whether the agenix identity (public key `agenix_public`,
/// private key file `agenix_private`) can open its file. Headers only, unless
/// `try_decrypt`: then each file whose header names the identity is decrypted and the
/// plaintext dropped at once (zeroized).
pub fn check_secrets(
    rules: &crate::rules::Rules,
    agenix_public: &PublicKey,
    agenix_private: &Path,
    try_decrypt: bool,
) -> Result<Vec<SecretCheck>, KeyError> {
    let line = openssh::public_line(agenix_public)?;
    let recipient = crate::recipient::Recipient::parse(&line)
        .map_err(|e| KeyError::invalid(agenix_private, e.to_string()))?;
    let tag = recipient
        .tag
        .ok_or_else(|| KeyError::invalid(agenix_private, "not an SSH key: no stanza tag"))?;
    let identities = if try_decrypt {
        let (set, _warnings) =
            crate::identity::IdentitySet::load(&[agenix_private.to_path_buf()], None).map_err(
                |e| KeyError::Invalid {
                    path: agenix_private.to_path_buf(),
                    reason: strip_path_str(&e.to_string(), agenix_private),
                },
            )?;
        Some(set)
    } else {
        None
    };
    let method = if try_decrypt { "decryption" } else { "header" };
    let checks = rules
        .entries
        .iter()
        .map(|entry| {
            let path = rules.file_of(&entry.name);
            let (status, error) = check_one(&path, &tag, identities.as_ref());
            SecretCheck {
                file: entry.name.clone(),
                path,
                decryptable: status == SecretStatus::Openable,
                method,
                status,
                error,
            }
        })
        .collect();
    Ok(checks)
}

/// `s` without its leading `<path>: ` (for messages that name the file already).
pub(crate) fn strip_path_str(s: &str, path: &Path) -> String {
    let prefix = format!("{}: ", path.display());
    s.strip_prefix(&prefix).unwrap_or(s).to_string()
}

fn check_one(
    path: &Path,
    tag: &str,
    identities: Option<&crate::identity::IdentitySet>,
) -> (SecretStatus, Option<String>) {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (SecretStatus::Missing, Some("no such file".into()))
        }
        Err(e) => return (SecretStatus::Error, Some(e.to_string())),
    };
    // Without decryption only the header is read, not the payload.
    let parsed = match identities {
        None => crate::envelope::Header::read_from(file).map(|h| (h, Vec::new())),
        Some(_) => {
            let mut bytes = Vec::new();
            match std::io::Read::read_to_end(&mut &file, &mut bytes) {
                Ok(_) => crate::envelope::Header::parse(&bytes).map(|h| (h, bytes)),
                Err(e) => return (SecretStatus::Error, Some(e.to_string())),
            }
        }
    };
    let (header, bytes) = match parsed {
        Ok(hb) => hb,
        Err(e) => return (SecretStatus::Error, Some(e.to_string())),
    };
    if !header.ssh_tags().any(|t| t == tag) {
        return (SecretStatus::NotRecipient, None);
    }
    let Some(ids) = identities else {
        return (SecretStatus::Openable, None);
    };
    match crate::envelope::decrypt(&bytes, ids) {
        // The plaintext is zeroized as it drops here.
        Ok(_plaintext) => (SecretStatus::Openable, None),
        Err(e) => (
            SecretStatus::Error,
            Some(format!(
                "the header names this identity but decryption failed: {e}"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::openssh::generate_ed25519;
    use std::os::unix::fs::PermissionsExt;

    fn write_key(dir: &Path, role: Role, pass: Option<&[u8]>) -> String {
        let k = generate_ed25519("c", pass).unwrap();
        let p = dir.join(role.file_name());
        std::fs::write(&p, k.private_openssh.as_bytes()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join(role.public_file_name()), &k.public_line).unwrap();
        k.fingerprint_line
    }

    #[test]
    fn good_keys_pass_every_check() {
        let tmp = tempfile::tempdir().unwrap();
        let fp = write_key(tmp.path(), Role::Git, Some(b"pw"));
        write_key(tmp.path(), Role::Agenix, None);
        let (git, public) = check_key(tmp.path(), Role::Git);
        assert!(git.ok, "{:?}", git.problems);
        assert_eq!(git.encrypted, Some(true));
        assert_eq!(git.fingerprint.as_deref(), Some(fp.as_str()));
        assert!(public.is_some());
        let (agenix, _) = check_key(tmp.path(), Role::Agenix);
        assert!(agenix.ok, "{:?}", agenix.problems);
        assert_eq!(agenix.mode.as_deref(), Some("0600"));
    }

    #[test]
    fn each_problem_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (c, _) = check_key(d, Role::Git);
        assert!(!c.present && c.problems == ["missing"]);

        write_key(d, Role::Agenix, Some(b"pw"));
        std::fs::set_permissions(
            d.join("id_ed25519_agenix"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let (c, _) = check_key(d, Role::Agenix);
        assert!(c.present && c.regular_file && !c.mode_ok && c.parses);
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert!(c.problems[0].starts_with("mode 0640"));
        assert!(c.problems[1].starts_with("passphrase-protected"));

        let other = generate_ed25519("o", None).unwrap();
        write_key(d, Role::Git, None);
        std::fs::write(d.join("id_ed25519.pub"), &other.public_line).unwrap();
        let (c, _) = check_key(d, Role::Git);
        assert_eq!(c.matches_public, Some(false));
        assert_eq!(c.problems, ["does not match id_ed25519.pub"]);

        std::fs::remove_file(d.join("id_ed25519.pub")).unwrap();
        let (c, _) = check_key(d, Role::Git);
        assert_eq!(c.problems, ["no id_ed25519.pub"]);

        std::fs::write(d.join("id_ed25519"), b"garbage").unwrap();
        let (c, _) = check_key(d, Role::Git);
        assert!(!c.parses);
        assert!(
            c.problems[0].starts_with("not an OpenSSH private key"),
            "{:?}",
            c.problems
        );

        std::fs::remove_file(d.join("id_ed25519")).unwrap();
        std::os::unix::fs::symlink(d.join("id_ed25519_agenix"), d.join("id_ed25519")).unwrap();
        let (c, _) = check_key(d, Role::Git);
        assert!(c.present && !c.regular_file);
        assert_eq!(c.problems, ["a symbolic link, not a regular file"]);
    }
}
