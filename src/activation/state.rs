//! What an install phase wrote, kept next to its generation as
//! `secretsMountPoint/.agefleet-N.json` (root-only, in the RAM-backed mount; not a number,
//! so agenix's numbering ignores it): for each secret and template, the identity (device,
//! inode, birth time) and a salted digest of the content of the file written, for
//! `symlink = false` ones the path outside the mount, and its units (restarted or reloaded
//! when it leaves the manifest).
//!
//! The chown phase acts only on those inodes, so a file or directory swapped in between
//! the phases (by a user who owns a parent of a custom `path`) is never given away; the
//! next install removes the outside files the new manifest no longer lists, again only if
//! they are still the inodes written. The record lives in RAM: after a reboot the files
//! written before it are no longer known (see SECURITY.md).

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::platform::atomic::{self, FileId, Fingerprint, WriteOptions};
use crate::sys;

/// One secret as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Written {
    /// The secret's name from the manifest.
    pub name: String,
    /// The custom `path` of a `symlink = false` secret; `None` for a file in the generation.
    pub outside: Option<PathBuf>,
    /// The identity of the file written.
    pub id: FileId,
    /// What it held (an inode number can be reused within one birth-time tick).
    pub content: Fingerprint,
    /// Its units to restart, listed when it leaves the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_units: Vec<String>,
    /// Its units to reload, listed when it leaves the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reload_units: Vec<String>,
}

/// The record of one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    /// Every secret installed in the generation.
    pub secrets: Vec<Written>,
}

impl Record {
    /// The identity and content of the file written for secret `name`, if it was installed.
    pub(crate) fn written_as(&self, name: &str) -> Option<(FileId, Fingerprint)> {
        self.secrets
            .iter()
            .find(|w| w.name == name)
            .map(|w| (w.id, w.content))
    }
}

/// The record's file name for generation `n`.
pub(crate) fn file_name(n: u64) -> OsString {
    OsString::from(format!(".agefleet-{n}.json"))
}

/// The generation a record file name belongs to.
pub(crate) fn generation_of(name: &std::ffi::OsStr) -> Option<u64> {
    name.to_str()?
        .strip_prefix(".agefleet-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Writes the record of generation `n` into the mount point `mp`.
pub(crate) fn save(mp: &OwnedFd, n: u64, record: &Record) -> std::io::Result<()> {
    let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    atomic::write_at(
        mp,
        &file_name(n),
        &json,
        WriteOptions {
            sync_dir: false,
            ..WriteOptions::replace(0o600)
        },
    )
    .map(|_| ())
}

/// The record of generation `n`; `None` when there is none (installed by agenix or an
/// older agefleet). A record that cannot be read or parsed is an error.
pub(crate) fn load(mp: &OwnedFd, n: u64) -> std::io::Result<Option<Record>> {
    let name = file_name(n);
    let fd = match sys::open_read_nofollow_at(mp, Path::new(&name)) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if sys::regular_file_links(&fd)?.is_none() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut bytes)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_names() {
        let tmp = tempfile::tempdir().unwrap();
        let mp = sys::open_dir_nofollow(tmp.path()).unwrap();
        assert_eq!(load(&mp, 3).unwrap(), None);
        let r = Record {
            secrets: vec![Written {
                name: "a".into(),
                outside: Some("/etc/a".into()),
                id: FileId {
                    dev: 1,
                    ino: 2,
                    birth: Some((3, 4)),
                },
                content: Fingerprint::of(b"a"),
                restart_units: vec!["a.service".into()],
                reload_units: vec![],
            }],
        };
        save(&mp, 3, &r).unwrap();
        assert_eq!(load(&mp, 3).unwrap(), Some(r.clone()));
        assert_eq!(
            r.written_as("a"),
            r.secrets.first().map(|w| (w.id, w.content))
        );
        assert_eq!(generation_of(&file_name(3)), Some(3));
        assert_eq!(generation_of(std::ffi::OsStr::new("3")), None);
        std::fs::write(tmp.path().join(file_name(4)), b"{").unwrap();
        assert!(load(&mp, 4).is_err());
    }
}
