//! `check-keys`: [`plan`] checks each expected key (and the post-quantum identity) and picks
//! the identity to check secrets with; [`execute`] finds which secrets of the rules it can
//! open (from header tags; optionally proven by decrypting to nowhere) → [`CheckReport`].

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use ssh_key::PublicKey;

use super::check_pq::{self, PqIdentityCheck};
use super::files;
use super::openssh;
use super::{DirAction, KeyError, Role};
use crate::rules::Rules;

/// The key files of an SSH directory, checked, and the identities the secrets are checked
/// with: what [`execute`] needs, found without the rules.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// The SSH directory.
    pub ssh_dir: PathBuf,
    /// What preparing the directory would do (`Tighten` means it has group/other bits),
    /// `None` when it could not be inspected.
    pub dir_action: Option<DirAction>,
    /// Each of the fleet's keys, in [`Role::ALL`] order.
    pub keys: Vec<KeyCheck>,
    /// The post-quantum identity, when the directory has one.
    pub pq_identity: Option<PqIdentityCheck>,
    /// The agenix identity the secrets are checked with: its public key and private key file.
    agenix: Option<(PublicKey, PathBuf)>,
}

impl CheckPlan {
    /// The private key file the secrets are checked with: the agenix key when it parses and
    /// has no passphrase, even if other checks of it (mode, `.pub`) failed.
    pub fn agenix_identity(&self) -> Option<&Path> {
        self.agenix.as_ref().map(|(_, path)| path.as_path())
    }
}

/// Checks the keys in `ssh_dir` (and its post-quantum identity, if any) and picks the
/// identity [`execute`] checks the secrets with. Reads only; never fails: every problem is
/// in the checks.
pub fn plan(ssh_dir: &Path) -> CheckPlan {
    let mut keys = Vec::with_capacity(Role::ALL.len());
    let mut agenix = None;
    for role in Role::ALL {
        let (c, public) = check_key(ssh_dir, role);
        // Secrets can be checked with any parsable, unencrypted agenix key, even one whose
        // other checks (mode, .pub) failed: those are reported with the key anyway.
        if role == Role::Agenix && c.encrypted == Some(false) {
            agenix = public.map(|p| (p, c.path.clone()));
        }
        keys.push(c);
    }
    CheckPlan {
        ssh_dir: ssh_dir.to_path_buf(),
        dir_action: files::inspect_dir(ssh_dir).ok(),
        keys,
        pq_identity: check_pq::check_pq_identity(ssh_dir),
        agenix,
    }
}

/// With `rules`, checks which of its secrets the agenix identity (and the post-quantum
/// identity, when there is a usable one) can open, headers only unless `try_decrypt`; then
/// reports. Without `rules`, reports the key checks alone.
pub fn execute(
    plan: CheckPlan,
    rules: Option<&Rules>,
    try_decrypt: bool,
) -> Result<CheckReport, KeyError> {
    let mut secrets = None;
    let mut pq_secrets = None;
    let mut secrets_unchecked = false;
    if let Some(rules) = rules {
        if let Some((path, recipient)) = plan
            .pq_identity
            .as_ref()
            .and_then(|k| Some((&k.path, k.recipient.as_ref()?)))
        {
            pq_secrets = Some(check_pq::check_pq_secrets(
                rules,
                path,
                recipient,
                try_decrypt,
            ));
        }
        match &plan.agenix {
            Some((public, path)) => {
                secrets = Some(check_secrets(rules, public, path, try_decrypt)?);
            }
            None => secrets_unchecked = true,
        }
    }
    Ok(report(plan, secrets, pq_secrets, secrets_unchecked))
}

/// The report of a plan and the secret checks; decides [`CheckReport::ok`].
fn report(
    plan: CheckPlan,
    secrets: Option<Vec<SecretCheck>>,
    pq_secrets: Option<Vec<SecretCheck>>,
    secrets_unchecked: bool,
) -> CheckReport {
    let mut r = CheckReport {
        all_present: plan.keys.iter().all(|k| k.present),
        ok: false,
        ssh_dir: plan.ssh_dir,
        keys: plan.keys,
        secrets,
        pq_identity: plan.pq_identity,
        pq_secrets,
        secrets_unchecked,
    };
    r.ok = r.keys.iter().all(|k| k.ok)
        && r.pq_identity.as_ref().is_none_or(|k| k.ok)
        && !r.secrets_unchecked
        && r.secret_errors().next().is_none();
    r
}

/// What `check-keys` found.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// Every key's private key file exists.
    pub all_present: bool,
    /// Nothing failed: every key check passed, the post-quantum identity's (if any) too, the
    /// secrets could be checked when the rules were given, and no secret check ended in
    /// an error (a missing file or a secret for others is no failure).
    pub ok: bool,
    /// The SSH directory.
    pub ssh_dir: PathBuf,
    /// Each of the fleet's keys, in [`Role::ALL`] order.
    pub keys: Vec<KeyCheck>,
    /// What the agenix identity can open, per rule; `None` when the secrets were not
    /// checked (an empty list in JSON).
    #[serde(serialize_with = "none_as_empty")]
    pub secrets: Option<Vec<SecretCheck>>,
    /// The post-quantum identity, when the directory has one.
    pub pq_identity: Option<PqIdentityCheck>,
    /// What the post-quantum identity can open, when it was checked against the rules.
    pub pq_secrets: Option<Vec<SecretCheck>>,
    /// The rules were given but there is no usable (parsable, unencrypted) agenix identity
    /// to check the secrets with (a failure; not in JSON).
    #[serde(skip)]
    pub secrets_unchecked: bool,
}

impl CheckReport {
    /// The secret checks that ended in an error: the agenix identity's, then the
    /// post-quantum identity's.
    pub fn secret_errors(&self) -> impl Iterator<Item = &SecretCheck> {
        self.secrets
            .iter()
            .chain(self.pq_secrets.iter())
            .flatten()
            .filter(|s| s.status == SecretStatus::Error)
    }
}

fn none_as_empty<S: Serializer>(v: &Option<Vec<SecretCheck>>, s: S) -> Result<S::Ok, S::Error> {
    v.as_deref().unwrap_or_default().serialize(s)
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

    /// A rules directory with `mine.age` (to `public`), `theirs.age` (to another key) and
    /// `later.age` (to `public`, no file yet).
    fn rules_for(dir: &Path, public: &str) -> Rules {
        let other = generate_ed25519("o", None).unwrap().public_line;
        std::fs::write(
            dir.join("secrets.nix"),
            format!(
                "{{ \"mine.age\".publicKeys = [ \"{public}\" ]; \
                 \"theirs.age\".publicKeys = [ \"{other}\" ]; \
                 \"later.age\".publicKeys = [ \"{public}\" ]; }}\n"
            ),
        )
        .unwrap();
        for (name, to) in [("mine.age", public), ("theirs.age", other.as_str())] {
            let r = crate::recipient::Recipient::parse(to).unwrap();
            let file = crate::envelope::encrypt(b"v", &[&r], false).unwrap();
            std::fs::write(dir.join(name), file).unwrap();
        }
        crate::rules::load(&dir.join("secrets.nix"), crate::rules::EvalMode::Builtin).unwrap()
    }

    fn public_line(dir: &Path, role: Role) -> String {
        std::fs::read_to_string(dir.join(role.public_file_name()))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn ok_needs_good_keys_and_no_secret_error_but_not_every_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = tmp.path().join("ssh");
        std::fs::create_dir(&ssh).unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700)).unwrap();
        write_key(&ssh, Role::Git, None);
        write_key(&ssh, Role::Agenix, None);
        let rules = rules_for(tmp.path(), &public_line(&ssh, Role::Agenix));

        let p = plan(&ssh);
        assert_eq!(p.dir_action, Some(DirAction::Keep));
        assert_eq!(
            p.agenix_identity(),
            Some(ssh.join("id_ed25519_agenix").as_path())
        );
        let r = execute(p, None, false).unwrap();
        assert!(r.ok && r.all_present && r.secrets.is_none());
        // Secrets asked for but not checked fail even with good keys (with good keys the
        // agenix identity is usable, so this is only the decision's own guard).
        assert!(!report(plan(&ssh), None, None, true).ok);

        // A missing file and a secret for others are reported, not failures.
        let r = execute(plan(&ssh), Some(&rules), false).unwrap();
        let statuses: Vec<_> = r
            .secrets
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| (s.file.as_str(), s.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("later.age", SecretStatus::Missing),
                ("mine.age", SecretStatus::Openable),
                ("theirs.age", SecretStatus::NotRecipient),
            ]
        );
        assert!(r.ok, "{r:?}");
        assert_eq!(r.secret_errors().count(), 0);

        // An unreadable header is.
        std::fs::write(tmp.path().join("later.age"), b"not age").unwrap();
        let r = execute(plan(&ssh), Some(&rules), false).unwrap();
        assert!(!r.ok);
        let errors: Vec<_> = r.secret_errors().map(|s| s.file.as_str()).collect();
        assert_eq!(errors, ["later.age"]);

        // So is a key that fails a check.
        std::fs::remove_file(tmp.path().join("later.age")).unwrap();
        std::fs::remove_file(ssh.join("id_ed25519.pub")).unwrap();
        let r = execute(plan(&ssh), Some(&rules), false).unwrap();
        assert!(!r.ok && r.all_present);

        // And a post-quantum identity that fails one.
        write_key(&ssh, Role::Git, None);
        crate::keys::age_identity::create_pq_identity(&ssh, false).unwrap();
        let pq = ssh.join(crate::keys::age_identity::PQ_IDENTITY_FILE);
        assert!(execute(plan(&ssh), Some(&rules), false).unwrap().ok);
        std::fs::set_permissions(&pq, std::fs::Permissions::from_mode(0o640)).unwrap();
        let r = execute(plan(&ssh), Some(&rules), false).unwrap();
        assert!(!r.pq_identity.as_ref().unwrap().ok && !r.ok);
        assert_eq!(r.pq_secrets.as_ref().map(Vec::len), Some(3));
    }

    #[test]
    fn secrets_are_checked_with_any_parsable_unencrypted_agenix_key() {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = tmp.path();
        write_key(ssh, Role::Agenix, None);
        let rules = rules_for(ssh, &public_line(ssh, Role::Agenix));
        // A wide mode fails the key's check, but the secrets are still checked with it.
        std::fs::set_permissions(
            ssh.join("id_ed25519_agenix"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let p = plan(ssh);
        assert!(p.agenix_identity().is_some());
        let r = execute(p, Some(&rules), false).unwrap();
        assert!(!r.ok && !r.all_present && !r.secrets_unchecked);
        assert_eq!(r.secrets.as_ref().map(Vec::len), Some(3));

        // A passphrase-protected one cannot be used: the secrets are not checked, a failure.
        write_key(ssh, Role::Agenix, Some(b"pw"));
        let p = plan(ssh);
        assert_eq!(p.agenix_identity(), None);
        let r = execute(p, Some(&rules), false).unwrap();
        assert!(r.secrets_unchecked && r.secrets.is_none() && !r.ok);
        // Without the rules nothing was asked of it.
        let r = execute(plan(ssh), None, false).unwrap();
        assert!(!r.secrets_unchecked);
    }

    #[test]
    fn report_json_keeps_its_fields() {
        let tmp = tempfile::tempdir().unwrap();
        write_key(tmp.path(), Role::Git, None);
        let r = execute(plan(tmp.path()), None, false).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        let mut fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "all_present",
                "keys",
                "ok",
                "pq_identity",
                "pq_secrets",
                "secrets",
                "ssh_dir"
            ]
        );
        // Secrets not checked: an empty list; no post-quantum identity: null.
        assert_eq!(v["secrets"], serde_json::json!([]));
        assert!(v["pq_identity"].is_null() && v["pq_secrets"].is_null());
        assert_eq!(v["all_present"], false);
        assert_eq!(v["keys"][0]["mode"], "0600");
        assert_eq!(v["keys"][1]["problems"], serde_json::json!(["missing"]));
    }
}
