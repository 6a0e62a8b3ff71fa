//! age identity files (`agefleet keygen`): a new X25519 (`AGE-SECRET-KEY-1…`) or hybrid
//! post-quantum (`AGE-SECRET-KEY-PQ-1…`) identity, written as age-keygen writes one
//! (`# created:`, `# public key:`, the key line), 0600, never replacing a file; and the
//! recipients of an existing identity file (`keygen -y`).

use std::path::Path;
use std::time::SystemTime;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::check::strip_path_str;
use super::files::{backup, utc_timestamp, walk_error, write_new_file};
use super::{Backup, KeyError};
use crate::identity::{IdentitySet, MlKem768X25519Identity};
use crate::platform::walk::{self, Missing};

/// Which identity to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeKeyKind {
    /// The classical X25519 identity (`AGE-SECRET-KEY-1…`), as `age-keygen` makes.
    X25519,
    /// The hybrid post-quantum `mlkem768x25519` identity.
    PostQuantum,
}

/// A generated identity: its recipient and the identity file's text (zeroized).
pub struct GeneratedIdentity {
    /// The identity's public recipient (`age1…` or `age1pq1…`).
    pub recipient: String,
    /// The whole identity file: `# created:`, `# public key:` and the secret key line.
    pub file_text: Zeroizing<String>,
}

/// Generates an identity of `kind`; `now` goes into the `# created:` line.
pub fn generate(kind: AgeKeyKind, now: SystemTime) -> GeneratedIdentity {
    let (recipient, secret) = match kind {
        AgeKeyKind::X25519 => {
            let id = age::x25519::Identity::generate();
            let secret = Zeroizing::new(id.to_string().expose_secret().to_string());
            (id.to_public().to_string(), secret)
        }
        AgeKeyKind::PostQuantum => {
            let id = MlKem768X25519Identity::generate();
            (id.recipient(), id.to_secret_string())
        }
    };
    // Built in one allocation of its final size: growing it would leave copies of the secret
    // in freed memory.
    let created = utc_timestamp(now);
    let mut file_text = Zeroizing::new(String::with_capacity(
        created.len() + recipient.len() + secret.len() + 32,
    ));
    for part in [
        "# created: ",
        &created,
        "\n# public key: ",
        &recipient,
        "\n",
        secret.as_str(),
        "\n",
    ] {
        file_text.push_str(part);
    }
    GeneratedIdentity {
        recipient,
        file_text,
    }
}

/// Writes `id` to a new file at `path` (0600; [`KeyError::Exists`] if anything is there).
pub fn write_new(path: &Path, id: &GeneratedIdentity) -> Result<(), KeyError> {
    let abs = std::path::absolute(path).map_err(|e| KeyError::io(path, e))?;
    let (dir, _) = walk::open_parent(&abs, Missing::Fail).map_err(walk_error)?;
    write_new_file(&dir, &abs, id.file_text.as_bytes(), 0o600, None)
}

/// The host's post-quantum identity in its SSH directory, next to `id_ed25519_agenix`
/// (`create-keys --pq`, `check-keys`).
pub const PQ_IDENTITY_FILE: &str = "id_mlkem768x25519_agenix";

/// Creates the host's post-quantum identity in `ssh_dir` (which must exist). An existing
/// file is refused ([`KeyError::Exists`]) unless `force`, which first moves it into a
/// timestamped backup directory (never deleting it).
pub fn create_pq_identity(
    ssh_dir: &Path,
    force: bool,
) -> Result<(GeneratedIdentity, Option<Backup>), KeyError> {
    let abs = std::path::absolute(ssh_dir).map_err(|e| KeyError::io(ssh_dir, e))?;
    let dir = walk::open_dir(&abs, Missing::Fail).map_err(walk_error)?;
    let path = abs.join(PQ_IDENTITY_FILE);
    let mut moved = None;
    if super::files::exists_no_follow(&path)? {
        if !force {
            return Err(KeyError::Exists { path });
        }
        moved = Some(backup(&dir, &abs, std::slice::from_ref(&path))?);
    }
    let id = generate(AgeKeyKind::PostQuantum, SystemTime::now());
    write_new_file(&dir, &path, id.file_text.as_bytes(), 0o600, None)?;
    Ok((id, moved))
}

/// The recipients (`age1…`, `age1pq1…`) of the age identity file at `path`, in file order.
pub fn recipients_of(path: &Path) -> Result<Vec<String>, KeyError> {
    let (set, _) = IdentitySet::load(&[path.to_path_buf()], None)
        .map_err(|e| KeyError::invalid(path, strip_path_str(&e.to_string(), path)))?;
    let recipients: Vec<String> = set
        .identities
        .iter()
        .flat_map(|id| id.age_recipients())
        .collect();
    if recipients.is_empty() {
        return Err(KeyError::invalid(
            path,
            "not an age identity file (AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1… lines)",
        ));
    }
    Ok(recipients)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_files_load_back_and_are_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        for kind in [AgeKeyKind::X25519, AgeKeyKind::PostQuantum] {
            let path = tmp.path().join(format!("{kind:?}.key"));
            let id = generate(kind, SystemTime::UNIX_EPOCH);
            write_new(&path, &id).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert_eq!(
                recipients_of(&path).unwrap(),
                std::slice::from_ref(&id.recipient)
            );
            let prefix = match kind {
                AgeKeyKind::X25519 => "age1",
                AgeKeyKind::PostQuantum => "age1pq1",
            };
            assert!(id.recipient.starts_with(prefix));
            let before = std::fs::read(&path).unwrap();
            let again = generate(kind, SystemTime::now());
            assert!(write_new(&path, &again).unwrap_err().is_refusal());
            assert_eq!(std::fs::read(&path).unwrap(), before);
        }
    }
}
