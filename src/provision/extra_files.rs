//! `host add NAME --generate-key DIR`: a new host's keys in a directory tree that
//! `nixos-anywhere --extra-files DIR` copies onto the target's root before its first boot:
//! `DIR/etc/ssh/ssh_host_ed25519_key` (0600) with its `.pub` (0644), and with `--pq` the
//! post-quantum identity `DIR/etc/ssh/id_mlkem768x25519_agenix` (0600).
//!
//! Plan generates the keys in memory and refuses when any target exists; execute writes them
//! through the root-safe walk ([`crate::platform::walk`]: no symlink another user could have
//! planted is followed, and `DIR` must be ours or root's and not writable by others) and the
//! atomic writer ([`crate::platform::atomic`]: exact mode, never replacing a file). Library
//! code: never prints.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::pq::PqHostIdentity;
use super::stage::{self, Placed};
use super::HostIdentity;
use crate::platform::atomic::{self, WriteOptions};
use crate::platform::walk::{self, Missing, WalkError};

/// Mode of the directories created under `DIR` (and of `DIR` when created).
pub const DIR_MODE: u32 = 0o755;

/// Why the keys were not generated or placed. `Display` is one line naming the path.
#[derive(Debug, thiserror::Error)]
pub enum ExtraFilesError {
    /// A directory on the way could not be opened safely.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// `DIR` belongs to someone else, or others can write into it.
    #[error("{}: {why}; refusing to put a host key there", dir.display())]
    Untrusted {
        /// The directory.
        dir: PathBuf,
        /// Why it is not trusted.
        why: String,
    },
    /// A key file is already there.
    #[error("{}: already exists; refusing to overwrite it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Generating the host key failed.
    #[error("cannot generate the host key: {0}")]
    Generate(#[from] crate::keys::KeyError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExtraFilesError + '_ {
    move |source| ExtraFilesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The keys to place, generated in memory.
pub struct Plan {
    /// The extra-files directory (absolute).
    pub dir: PathBuf,
    /// The host's SSH host key.
    pub host_key: HostIdentity,
    /// The host's post-quantum identity, with `--pq`.
    pub pq: Option<PqHostIdentity>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("dir", &self.dir)
            .field("host_key", &self.host_key)
            .field("pq", &self.pq.as_ref().map(|p| &p.recipient))
            .finish()
    }
}

impl Plan {
    /// Where the host key goes.
    pub fn host_key_path(&self) -> PathBuf {
        stage::host_key_path(&self.dir)
    }

    /// Where the post-quantum identity goes.
    pub fn pq_path(&self) -> PathBuf {
        stage::pq_key_path(&self.dir)
    }

    /// The public key line to bind (`ssh-ed25519 <base64> root@NAME`).
    pub fn public_line(&self) -> &str {
        &self.host_key.public_line
    }
}

/// Whether anything (even a dangling symlink) is at `path`.
fn exists(path: &Path) -> Result<bool, ExtraFilesError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Generates host `name`'s keys for `dir`, refusing when one of their files exists.
pub fn plan(dir: &Path, name: &str, pq: bool) -> Result<Plan, ExtraFilesError> {
    let dir = std::path::absolute(dir).map_err(io_err(dir))?;
    let host_key_path = stage::host_key_path(&dir);
    let mut targets = vec![host_key_path.clone(), host_key_path.with_extension("pub")];
    if pq {
        targets.push(stage::pq_key_path(&dir));
    }
    for t in targets {
        if exists(&t)? {
            return Err(ExtraFilesError::Exists { path: t });
        }
    }
    let host_key = HostIdentity::generate(&format!("root@{name}"))?;
    Ok(Plan {
        dir,
        host_key,
        pq: pq.then(PqHostIdentity::generate),
    })
}

/// Why a directory with this owner and mode cannot hold a host key; `None` when it can.
fn distrust(fd: impl AsFd) -> io::Result<Option<String>> {
    let st = rustix::fs::fstat(fd).map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != me {
        return Ok(Some(format!("is owned by uid {}", st.st_uid)));
    }
    if st.st_mode & 0o022 != 0 {
        return Ok(Some(format!(
            "is writable by group or other (mode {:04o})",
            st.st_mode & 0o7777
        )));
    }
    Ok(None)
}

/// Opens (creating it 0755 when missing) the directory `name` in `parent`, never through a
/// symlink, and checks it as [`distrust`] does.
fn subdir(parent: &OwnedFd, name: &str, shown: &Path) -> Result<OwnedFd, ExtraFilesError> {
    let created = match crate::sys::mkdir_at(parent, Path::new(name), DIR_MODE) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io_err(shown)(e)),
    };
    let fd = walk::open_subdir(parent, OsStr::new(name), shown)?;
    if created {
        // The umask may have narrowed it; the target's /etc and /etc/ssh are 0755.
        crate::sys::fchmod(&fd, DIR_MODE).map_err(io_err(shown))?;
    }
    trusted(&fd, shown)?;
    Ok(fd)
}

fn trusted(fd: &OwnedFd, shown: &Path) -> Result<(), ExtraFilesError> {
    match distrust(fd).map_err(io_err(shown))? {
        None => Ok(()),
        Some(why) => Err(ExtraFilesError::Untrusted {
            dir: shown.to_path_buf(),
            why,
        }),
    }
}

/// Writes a new file `name` in `dir` with exactly `mode`; an existing one is never replaced.
fn write_new(dir: &OwnedFd, path: &Path, data: &[u8], mode: u32) -> Result<(), ExtraFilesError> {
    let name = path.file_name().unwrap_or_default();
    match atomic::write_at(dir, name, data, WriteOptions::create_new(mode)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(ExtraFilesError::Exists {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Creates `DIR/etc/ssh` (0755 each) and writes the keys into it.
pub fn execute(plan: &Plan) -> Result<Vec<Placed>, ExtraFilesError> {
    let top = walk::open_dir(&plan.dir, Missing::Create(DIR_MODE))?;
    trusted(&top, &plan.dir)?;
    let etc = subdir(&top, "etc", &plan.dir.join("etc"))?;
    let ssh = subdir(&etc, "ssh", &plan.dir.join("etc/ssh"))?;
    let key = plan.host_key_path();
    let public = key.with_extension("pub");
    let private = zeroize::Zeroizing::new(plan.host_key.private_openssh().as_bytes().to_vec());
    write_new(&ssh, &key, &private, 0o600)?;
    write_new(
        &ssh,
        &public,
        format!("{}\n", plan.host_key.public_line).as_bytes(),
        0o644,
    )?;
    let fingerprint = Some(plan.host_key.fingerprint.clone());
    let mut placed = vec![
        Placed {
            path: key,
            mode: Some("0600".into()),
            kind: "file",
            fingerprint: fingerprint.clone(),
        },
        Placed {
            path: public,
            mode: Some("0644".into()),
            kind: "file",
            fingerprint,
        },
    ];
    if let Some(pq) = &plan.pq {
        let path = plan.pq_path();
        write_new(&ssh, &path, pq.file_text().as_bytes(), 0o600)?;
        placed.push(Placed {
            path,
            mode: Some("0600".into()),
            kind: "file",
            fingerprint: None,
        });
    }
    Ok(placed)
}

/// The nixos-anywhere command that carries `dir` onto the target and installs `.#name`
/// (`HOST` is the target's address, for the operator to fill in).
pub fn nixos_anywhere_command(dir: &Path, name: &str) -> String {
    format!(
        "nixos-anywhere --extra-files {} --flake {} root@HOST",
        shell_words::quote(&dir.to_string_lossy()),
        shell_words::quote(&format!(".#{name}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn keys_are_placed_with_modes_and_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("extra");
        let plan = plan(&dir, "web3", true).unwrap();
        assert!(plan.public_line().ends_with(" root@web3"));
        let placed = execute(&plan).unwrap();
        assert_eq!(placed.len(), 3);
        assert_eq!(mode(&dir.join("etc")), 0o755);
        assert_eq!(mode(&dir.join("etc/ssh")), 0o755);
        assert_eq!(mode(&dir.join("etc/ssh/ssh_host_ed25519_key")), 0o600);
        assert_eq!(mode(&dir.join("etc/ssh/ssh_host_ed25519_key.pub")), 0o644);
        assert_eq!(mode(&dir.join("etc/ssh/id_mlkem768x25519_agenix")), 0o600);
        let public = std::fs::read_to_string(dir.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
        assert_eq!(public, format!("{}\n", plan.public_line()));
        let e = super::plan(&dir, "web3", false).unwrap_err().to_string();
        assert!(e.contains("ssh_host_ed25519_key: already exists"), "{e}");
        // A file that appears between plan and execute is not replaced either.
        let d2 = tempfile::tempdir().unwrap();
        let late = plan_then_plant(d2.path());
        assert!(
            matches!(late, Err(ExtraFilesError::Exists { .. })),
            "{late:?}"
        );
        assert_eq!(
            std::fs::read(d2.path().join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
            b"planted"
        );
    }

    fn plan_then_plant(dir: &Path) -> Result<Vec<Placed>, ExtraFilesError> {
        let p = plan(dir, "x", false).unwrap();
        std::fs::create_dir_all(dir.join("etc/ssh")).unwrap();
        std::fs::write(dir.join("etc/ssh/ssh_host_ed25519_key"), "planted").unwrap();
        execute(&p)
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let p = plan(d.path(), "x", false).unwrap();
        let e = execute(&p).unwrap_err().to_string();
        assert!(e.contains("writable by group or other"), "{e}");
        assert!(!d.path().join("etc").exists());
    }

    #[test]
    fn the_command_is_quoted() {
        assert_eq!(
            nixos_anywhere_command(Path::new("/tmp/web 3"), "web3"),
            "nixos-anywhere --extra-files '/tmp/web 3' --flake '.#web3' root@HOST"
        );
    }
}
