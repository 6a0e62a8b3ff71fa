//! Placing files under the target root: the flake's files, the host key, extra files.
//!
//! Invariants: a file is created with its final mode at open (never widened afterwards);
//! symlinks are recreated, not followed; the report ([`Placed`]) holds paths, modes and key
//! fingerprints, never contents.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use super::{HostIdentity, InstallError};
use crate::fsutil::CreateNew;

/// One placed file, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    /// Where it was placed.
    pub path: PathBuf,
    /// Octal permission bits, e.g. `"0600"` (none for symlinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `file` or `symlink`.
    pub kind: &'static str,
    /// `SHA256:…` when the file is an OpenSSH key (private or public).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// The files of a flake directory as a flake sees them: git-tracked files when the directory
/// is in a git work tree, else every file and symlink except `.git`. Relative, sorted.
pub fn flake_files(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    match crate::git::tracked_files(dir)? {
        Some(files) => Ok(files),
        None => walk(dir, true),
    }
}

/// Every non-directory entry below `dir`, relative and sorted; `.git` at the top skipped
/// when `skip_git`.
pub fn walk(dir: &Path, skip_git: bool) -> Result<Vec<PathBuf>, InstallError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let entries = fs::read_dir(&abs).map_err(|e| InstallError::io(&abs, "", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| InstallError::io(&abs, "", e))?;
            let child = rel.join(entry.file_name());
            if skip_git && rel.as_os_str().is_empty() && entry.file_name() == ".git" {
                continue;
            }
            let ft = entry
                .file_type()
                .map_err(|e| InstallError::io(&entry.path(), "", e))?;
            if ft.is_dir() {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `bytes` hold private key material: a PEM/OpenSSH private key block, or an age
/// secret key in either case (Bech32 is case-insensitive, and `age-keygen` output may be
/// lowercased by hand or by a tool).
pub fn holds_private_key(bytes: &[u8]) -> bool {
    const PEM: &[u8] = b"PRIVATE KEY-----";
    const AGE: &[u8] = b"AGE-SECRET-KEY-1";
    // The post-quantum identity's prefix does not contain the X25519 one.
    const AGE_PQ: &[u8] = b"AGE-SECRET-KEY-PQ-1";
    bytes.windows(PEM.len()).any(|w| w == PEM)
        || [AGE, AGE_PQ]
            .iter()
            .any(|m| bytes.windows(m.len()).any(|w| w.eq_ignore_ascii_case(m)))
}

/// Which of `files` (relative to `dir`) hold private key material ([`holds_private_key`]).
/// Unreadable files are reported too: they cannot be vouched for.
pub fn files_with_private_keys(dir: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|rel| {
            let p = dir.join(rel);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => false,
                Ok(_) => match fs::read(&p) {
                    Ok(bytes) => holds_private_key(&bytes),
                    Err(_) => true,
                },
                Err(_) => true,
            }
        })
        .cloned()
        .collect()
}

/// Paths under the target root that the install writes itself (and their parents).
const PLACED_BY_INSTALL: [&str; 3] = [
    "etc/nixos",
    "etc/ssh/ssh_host_ed25519_key",
    "etc/ssh/id_mlkem768x25519_agenix",
];

/// What is wrong with the `--extra-files` of `dir` before anything is touched: errors
/// (each naming the file) for anything that is not a regular file or symlink, for a file
/// where the install places its own, and for a symlink at one of their parent directories
/// (`etc -> …` would send the host key through it); warnings for private keys that group or
/// other could read once placed.
pub fn check_extra_files(dir: &Path, files: &[PathBuf]) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for rel in files {
        let shown = dir.join(rel);
        let shown = shown.display();
        let meta = match fs::symlink_metadata(dir.join(rel)) {
            Ok(m) => m,
            Err(e) => {
                errors.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let placed_below = PLACED_BY_INSTALL
            .iter()
            .any(|p| Path::new(p).starts_with(rel) && Path::new(p) != rel.as_path());
        if PLACED_BY_INSTALL.iter().any(|p| rel.starts_with(p)) {
            errors.push(format!(
                "{shown}: would overwrite what the install places itself"
            ));
        } else if meta.file_type().is_symlink() {
            if placed_below {
                errors.push(format!(
                    "{shown}: is a symbolic link where the install places its own files below"
                ));
            }
        } else if !meta.is_file() {
            errors.push(format!("{shown}: not a regular file or symlink"));
        } else if meta.mode() & 0o077 != 0
            && files_with_private_keys(dir, std::slice::from_ref(rel)).len() == 1
        {
            warnings.push(format!(
                "{shown}: private key with mode {} will be placed readable by group or other",
                mode_string(meta.mode())
            ));
        }
    }
    (errors, warnings)
}

fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Creates the directories from `base` down to `dir` (exclusive of existing ones), each with
/// the mode of the matching directory under `mode_from` when given, else 0755.
fn create_dirs(base: &Path, rel_dir: &Path, mode_from: Option<&Path>) -> Result<(), InstallError> {
    let mut cur = base.to_path_buf();
    let mut src = mode_from.map(Path::to_path_buf);
    for c in rel_dir.components() {
        cur.push(c);
        if let Some(s) = src.as_mut() {
            s.push(c);
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => return Err(InstallError::refused(&cur, "exists and is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(InstallError::io(&cur, "", e)),
        }
        let mode = src
            .as_ref()
            .and_then(|s| fs::metadata(s).ok())
            .map(|m| m.mode() & 0o7777)
            .unwrap_or(0o755);
        fs::DirBuilder::new()
            .mode(mode)
            .create(&cur)
            .and_then(|()| fs::set_permissions(&cur, fs::Permissions::from_mode(mode)))
            .map_err(|e| InstallError::io(&cur, "cannot create directory: ", e))?;
    }
    Ok(())
}

/// Removes whatever non-directory is at `path`, so a new file can be created there.
fn clear(path: &Path) -> Result<(), InstallError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(InstallError::refused(path, "is a directory")),
        Ok(_) => fs::remove_file(path).map_err(|e| InstallError::io(path, "", e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(InstallError::io(path, "", e)),
    }
}

/// Creates `path` with exactly `mode` (set at open, umask undone on the open file) and
/// fills it from `fill`.
fn create_file(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> Result<(), InstallError> {
    clear(path)?;
    crate::fsutil::create_new_exact(path, mode, fill).map_err(|e| match e {
        CreateNew::Create(e) => InstallError::io(path, "cannot create: ", e),
        CreateNew::Write(e) => InstallError::io(path, "cannot write: ", e),
    })
}

/// Copies `files` (relative to `src`) to the same relative paths under `dest`. Regular
/// files keep their permission bits (`mode_mask` applied), symlinks are recreated; new
/// directories take the source directory's mode when `dir_modes` is set, else 0755.
pub fn copy_files(
    src: &Path,
    files: &[PathBuf],
    dest: &Path,
    mode_mask: u32,
    dir_modes: bool,
) -> Result<Vec<Placed>, InstallError> {
    if !dest.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dest)
            .map_err(|e| InstallError::io(dest, "cannot create directory: ", e))?;
    }
    let mut placed = Vec::with_capacity(files.len());
    for rel in files {
        let from = src.join(rel);
        let to = dest.join(rel);
        if let Some(parent) = rel.parent() {
            create_dirs(dest, parent, dir_modes.then_some(src))?;
        }
        let meta = fs::symlink_metadata(&from).map_err(|e| InstallError::io(&from, "", e))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&from).map_err(|e| InstallError::io(&from, "", e))?;
            clear(&to)?;
            std::os::unix::fs::symlink(&target, &to)
                .map_err(|e| InstallError::io(&to, "cannot create symlink: ", e))?;
            placed.push(Placed {
                path: to,
                mode: None,
                kind: "symlink",
                fingerprint: None,
            });
        } else if meta.is_file() {
            let mode = meta.mode() & mode_mask;
            let mut input = OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&from)
                .map_err(|e| InstallError::io(&from, "", e))?;
            create_file(&to, mode, |out| io::copy(&mut input, out).map(|_| ()))?;
            placed.push(Placed {
                fingerprint: key_fingerprint(&to),
                path: to,
                mode: Some(mode_string(mode)),
                kind: "file",
            });
        } else {
            return Err(InstallError::refused(
                &from,
                "not a regular file or symlink; refusing to copy",
            ));
        }
    }
    Ok(placed)
}

/// Where the host key goes under `root`.
pub fn host_key_path(root: &Path) -> PathBuf {
    root.join("etc/ssh/ssh_host_ed25519_key")
}

/// Places the host key at `<root>/etc/ssh/ssh_host_ed25519_key` (0600) and its `.pub`
/// (0644), owned by the running user (root during an install).
pub fn place_host_key(root: &Path, id: &HostIdentity) -> Result<Vec<Placed>, InstallError> {
    create_dirs(root, Path::new("etc/ssh"), None)?;
    let key = host_key_path(root);
    let private = Zeroizing::new(id.private_openssh().as_bytes().to_vec());
    create_file(&key, 0o600, |f| io::Write::write_all(f, &private))?;
    let public = key.with_extension("pub");
    let line = format!("{}\n", id.public_line);
    create_file(&public, 0o644, |f| io::Write::write_all(f, line.as_bytes()))?;
    Ok(vec![
        Placed {
            path: key,
            mode: Some(mode_string(0o600)),
            kind: "file",
            fingerprint: Some(id.fingerprint.clone()),
        },
        Placed {
            path: public,
            mode: Some(mode_string(0o644)),
            kind: "file",
            fingerprint: Some(id.fingerprint.clone()),
        },
    ])
}

/// Where the host's post-quantum identity goes under `root` (for `age.identityPaths`).
pub fn pq_key_path(root: &Path) -> PathBuf {
    root.join("etc/ssh")
        .join(crate::keys::age_identity::PQ_IDENTITY_FILE)
}

/// Places the post-quantum identity at [`pq_key_path`] (0600), owned by the running user.
pub fn place_pq_key(root: &Path, id: &super::pq::PqHostIdentity) -> Result<Placed, InstallError> {
    create_dirs(root, Path::new("etc/ssh"), None)?;
    let key = pq_key_path(root);
    let text = id.file_text();
    create_file(&key, 0o600, |f| io::Write::write_all(f, text.as_bytes()))?;
    Ok(Placed {
        path: key,
        mode: Some(mode_string(0o600)),
        kind: "file",
        fingerprint: None,
    })
}

/// The SHA-256 fingerprint of `path` when it is an OpenSSH private or public key.
pub fn key_fingerprint(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > 64 * 1024 {
        return None;
    }
    let bytes = Zeroizing::new(fs::read(path).ok()?);
    let text = std::str::from_utf8(&bytes).ok()?;
    if let Ok(k) = ssh_key::PrivateKey::from_openssh(text) {
        return Some(
            k.public_key()
                .fingerprint(ssh_key::HashAlg::Sha256)
                .to_string(),
        );
    }
    ssh_key::PublicKey::from_openssh(text.trim())
        .ok()
        .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_found_in_any_case() {
        assert!(holds_private_key(b"x\nAGE-SECRET-KEY-1QQQ\n"));
        assert!(holds_private_key(b"age-secret-key-1qqq"));
        assert!(holds_private_key(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(!holds_private_key(b"age1qqq ssh-ed25519 AAAA"));
        assert!(!holds_private_key(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    }

    #[test]
    fn extra_files_are_checked_before_anything_is_placed() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path();
        fs::create_dir_all(s.join("var/lib")).unwrap();
        fs::write(s.join("var/lib/ok"), "ok").unwrap();
        fs::write(
            s.join("var/lib/key"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        fs::set_permissions(s.join("var/lib/key"), fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("/tmp", s.join("etc")).unwrap();
        std::os::unix::fs::symlink("/x", s.join("var/link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            s.join("var/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let files = walk(s, false).unwrap();
        let (errors, warnings) = check_extra_files(s, &files);
        let name = |rel: &str| s.join(rel).display().to_string();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with(&format!("{}: is a symbolic link", name("etc"))));
        assert!(errors[1].starts_with(&format!("{}: not a regular file", name("var/fifo"))));
        assert_eq!(
            warnings,
            [format!(
                "{}: private key with mode 0644 will be placed readable by group or other",
                name("var/lib/key")
            )]
        );
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn walk_skips_top_git_and_copy_keeps_modes_and_links() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join(".git/objects")).unwrap();
        fs::write(s.join(".git/config"), "x").unwrap();
        fs::create_dir_all(s.join("sub/.git")).unwrap();
        fs::write(s.join("sub/.git/keep"), "k").unwrap();
        fs::write(s.join("flake.nix"), "{}").unwrap();
        fs::write(s.join("run.sh"), "#!/bin/sh").unwrap();
        fs::set_permissions(s.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(s.join("private")).unwrap();
        fs::set_permissions(s.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(s.join("private/f"), "f").unwrap();
        fs::set_permissions(s.join("private/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("flake.nix", s.join("link")).unwrap();
        let files = walk(s, true).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            ["flake.nix", "link", "private/f", "run.sh", "sub/.git/keep"]
        );

        let dst = tempfile::tempdir().unwrap();
        let placed = copy_files(s, &files, dst.path(), 0o7777, true).unwrap();
        assert_eq!(placed.len(), 5);
        assert_eq!(mode(&dst.path().join("run.sh")), 0o755);
        assert_eq!(mode(&dst.path().join("private")), 0o700);
        assert_eq!(mode(&dst.path().join("private/f")), 0o640);
        assert_eq!(
            fs::read_link(dst.path().join("link")).unwrap(),
            Path::new("flake.nix")
        );
        // Copying again replaces files in place.
        copy_files(s, &files, dst.path(), 0o7777, true).unwrap();
        let placed = copy_files(s, &files, &dst.path().join("x"), 0o777, false).unwrap();
        assert!(placed
            .iter()
            .all(|p| p.path.starts_with(dst.path().join("x"))));
        assert_eq!(mode(&dst.path().join("x/private")), 0o755);
    }

    #[test]
    fn private_key_scan() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("ok.nix"), "{ }").unwrap();
        fs::write(
            d.path().join("key"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
        )
        .unwrap();
        fs::write(d.path().join("age.txt"), "AGE-SECRET-KEY-1QQQ").unwrap();
        // The post-quantum identity's prefix does not contain the X25519 one.
        fs::write(d.path().join("host.pq"), "# c\nAGE-SECRET-KEY-PQ-1QQQ\n").unwrap();
        let files = walk(d.path(), true).unwrap();
        let found = files_with_private_keys(d.path(), &files);
        assert_eq!(
            found,
            [
                PathBuf::from("age.txt"),
                PathBuf::from("host.pq"),
                PathBuf::from("key")
            ]
        );
    }

    #[test]
    fn the_pq_key_path_is_one_the_install_places_itself() {
        let rel = pq_key_path(Path::new(""));
        assert!(PLACED_BY_INSTALL.iter().any(|p| Path::new(p) == rel));
    }

    #[test]
    fn host_key_placed_with_modes() {
        let root = tempfile::tempdir().unwrap();
        let id = HostIdentity::generate_or_reuse(&root.path().join("unused"), "h", false).unwrap();
        let placed = place_host_key(root.path(), &id).unwrap();
        let key = host_key_path(root.path());
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&key.with_extension("pub")), 0o644);
        assert_eq!(
            placed[0].fingerprint.as_deref(),
            Some(id.fingerprint.as_str())
        );
        assert_eq!(
            key_fingerprint(&key).as_deref(),
            Some(id.fingerprint.as_str())
        );
        assert_eq!(
            key_fingerprint(&key.with_extension("pub")).as_deref(),
            Some(id.fingerprint.as_str())
        );
        let text = fs::read_to_string(&key).unwrap();
        assert!(text.contains("OPENSSH PRIVATE KEY"));
    }
}
