//! `check-keys` for the host's post-quantum identity (`id_mlkem768x25519_agenix`, made by
//! `create-keys --pq`): the file's checks, and which secrets it can open. Post-quantum
//! stanzas carry no tag, so without decryption a secret counts as openable when its rule
//! lists the identity's recipient and its header has a post-quantum stanza; `--try-decrypt`
//! proves it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::age_identity::{recipients_of, PQ_IDENTITY_FILE};
use super::check::{strip_path_str, SecretCheck, SecretStatus};
use crate::identity::IdentitySet;

/// The state of the post-quantum identity file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PqIdentityCheck {
    /// The identity's file name.
    pub name: &'static str,
    /// The identity file's path.
    pub path: PathBuf,
    /// It is a regular file (not a symlink).
    pub regular_file: bool,
    /// Permission bits, octal (`"0600"`).
    pub mode: Option<String>,
    /// No group/other bits.
    pub mode_ok: bool,
    /// Its `age1pq1…` recipient, when it parsed.
    pub recipient: Option<String>,
    /// One line per failed check (empty when all passed).
    pub problems: Vec<String>,
    /// `problems` is empty.
    pub ok: bool,
}

/// Checks `ssh_dir`'s post-quantum identity; `None` when there is none (it is optional).
pub fn check_pq_identity(ssh_dir: &Path) -> Option<PqIdentityCheck> {
    let path = ssh_dir.join(PQ_IDENTITY_FILE);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    let mut c = PqIdentityCheck {
        name: PQ_IDENTITY_FILE,
        path,
        regular_file: meta.file_type().is_file(),
        mode: None,
        mode_ok: false,
        recipient: None,
        problems: Vec::new(),
        ok: false,
    };
    if meta.file_type().is_symlink() {
        c.problems
            .push("a symbolic link, not a regular file".into());
    } else if !c.regular_file {
        c.problems.push("not a regular file".into());
    } else {
        let mode = meta.mode() & 0o7777;
        c.mode = Some(format!("{mode:04o}"));
        c.mode_ok = mode & 0o077 == 0;
        if !c.mode_ok {
            c.problems.push(format!(
                "mode {mode:04o} gives group/other access (want 0600)"
            ));
        }
        match recipients_of(&c.path) {
            Ok(rs) => match rs.iter().find(|r| r.starts_with("age1pq1")) {
                Some(r) => c.recipient = Some(r.clone()),
                None => c.problems.push("holds no post-quantum identity".into()),
            },
            Err(e) => c.problems.push(strip_path_str(&e.to_string(), &c.path)),
        }
    }
    c.ok = c.problems.is_empty();
    Some(c)
}

/// For every entry of `rules`, whether the identity at `path` (recipient `recipient`) can
/// open its file; see the module comment for how.
pub fn check_pq_secrets(
    rules: &crate::rules::Rules,
    path: &Path,
    recipient: &str,
    try_decrypt: bool,
) -> Vec<SecretCheck> {
    let identities = try_decrypt
        .then(|| IdentitySet::load(&[path.to_path_buf()], None).ok())
        .flatten()
        .map(|(set, _)| set);
    let method = if try_decrypt { "decryption" } else { "header" };
    rules
        .entries
        .iter()
        .map(|entry| {
            let file = rules.file_of(&entry.name);
            let listed = entry.rule.as_ref().is_ok_and(|r| {
                r.public_keys.iter().any(|k| {
                    k.split_ascii_whitespace()
                        .next()
                        .is_some_and(|k| k.eq_ignore_ascii_case(recipient))
                })
            });
            let (status, error) = check_one(&file, listed, identities.as_ref());
            SecretCheck {
                file: entry.name.clone(),
                path: file,
                decryptable: status == SecretStatus::Openable,
                method,
                status,
                error,
            }
        })
        .collect()
}

fn check_one(
    path: &Path,
    listed: bool,
    identities: Option<&IdentitySet>,
) -> (SecretStatus, Option<String>) {
    let bytes = match crate::fsutil::read_regular(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (SecretStatus::Missing, Some("no such file".into()))
        }
        Err(e) => return (SecretStatus::Error, Some(e.to_string())),
    };
    let header = match crate::envelope::Header::parse(&bytes) {
        Ok(h) => h,
        Err(e) => return (SecretStatus::Error, Some(e.to_string())),
    };
    if header.mlkem768x25519_count() == 0 {
        return (SecretStatus::NotRecipient, None);
    }
    let Some(ids) = identities else {
        return if listed {
            (SecretStatus::Openable, None)
        } else {
            (SecretStatus::NotRecipient, None)
        };
    };
    match crate::envelope::decrypt(&bytes, ids) {
        // The plaintext is zeroized as it drops here.
        Ok(_plaintext) => (SecretStatus::Openable, None),
        Err(crate::envelope::EnvelopeError::NoMatchingIdentity) if !listed => {
            (SecretStatus::NotRecipient, None)
        }
        Err(e) => (
            SecretStatus::Error,
            Some(format!(
                "the rule lists this identity but decryption failed: {e}"
            )),
        ),
    }
}
