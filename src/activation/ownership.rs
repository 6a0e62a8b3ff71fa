//! Owner and group resolution: a number is taken as is, a name is looked up in the passwd
//! and group files (read directly; no NSS, so users only known to LDAP/userdb are not found).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The group that owns the mount point and generation directories where it exists, as with
/// agenix: `keys` (NixOS creates it), `admin` on macOS.
pub const KEYS_GROUP: &str = if cfg!(target_os = "macos") {
    "admin"
} else {
    "keys"
};

/// Users and groups by name.
#[derive(Debug, Default, Clone)]
pub struct UserDb {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
}

impl UserDb {
    /// Reads `passwd` and `group` under `etc` (normally `/etc`). A missing file counts as
    /// empty, so numeric owners still work; an unreadable one is an error naming it.
    pub fn load(etc: &Path) -> Result<Self, (PathBuf, std::io::Error)> {
        let read = |name: &str| -> Result<String, (PathBuf, std::io::Error)> {
            let path = etc.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err((path, e)),
            }
        };
        #[allow(unused_mut)]
        let mut db = UserDb {
            users: parse_db(&read("passwd")?),
            groups: parse_db(&read("group")?),
        };
        // macOS keeps regular users in Open Directory, not in /etc/passwd.
        #[cfg(target_os = "macos")]
        {
            merge_dscl(&mut db.users, "/Users", "UniqueID");
            merge_dscl(&mut db.groups, "/Groups", "PrimaryGroupID");
        }
        Ok(db)
    }

    /// The uid of `owner` (a number or a user name).
    pub fn uid(&self, owner: &str) -> Result<u32, String> {
        resolve(owner, &self.users, "user")
    }

    /// The gid of `group` (a number or a group name).
    pub fn gid(&self, group: &str) -> Result<u32, String> {
        resolve(group, &self.groups, "group")
    }

    /// The gid of [`KEYS_GROUP`], if the system has one.
    pub fn keys_gid(&self) -> Option<u32> {
        self.groups.get(KEYS_GROUP).copied()
    }
}

fn resolve(who: &str, db: &HashMap<String, u32>, what: &str) -> Result<u32, String> {
    if who.is_empty() {
        return Err(format!("empty {what}"));
    }
    if who.bytes().all(|b| b.is_ascii_digit()) {
        return who
            .parse::<u32>()
            .ok()
            .filter(|&id| id != u32::MAX)
            .ok_or_else(|| format!("{what} id {who} out of range"));
    }
    db.get(who)
        .copied()
        .ok_or_else(|| format!("unknown {what} `{who}`"))
}

/// Adds the entries of `dscl . -list PATH KEY` ("name   id" lines) missing from `map`. A
/// failing `dscl` adds nothing: names it would have known are then reported as unknown.
#[cfg(target_os = "macos")]
fn merge_dscl(map: &mut HashMap<String, u32>, path: &str, key: &str) {
    let Ok(out) = std::process::Command::new("/usr/bin/dscl")
        .args([".", "-list", path, key])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return;
    };
    if !out.status.success() {
        return;
    }
    for (name, id) in parse_dscl(&String::from_utf8_lossy(&out.stdout)) {
        map.entry(name).or_insert(id);
    }
}

/// "name   id" lines as printed by `dscl . -list /Users UniqueID`.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn parse_dscl(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            let id = parts.next()?.parse::<u32>().ok()?;
            parts.next().is_none().then(|| (name.to_string(), id))
        })
        .collect()
}

/// `name:x:id:...` lines (passwd and group share the first three fields). Comments, blank
/// and malformed lines are skipped; the first entry of a name wins, as in NSS files.
fn parse_db(text: &str) -> HashMap<String, u32> {
    let mut map = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with('+') || name.starts_with('-') {
            continue;
        }
        if let Ok(id) = id.parse::<u32>() {
            map.entry(name.to_string()).or_insert(id);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> UserDb {
        UserDb {
            users: parse_db(
                "root:x:0:0:root:/root:/bin/sh\n# c\nalice:x:1000:100::/home/alice:/bin/sh\n\
                 broken line\nalice:x:2000:100::/:/bin/sh\n+nis::::\n",
            ),
            groups: parse_db("root:x:0:\nkeys:x:96:alice\nusers:x:100:\n"),
        }
    }

    #[test]
    fn names_and_numbers() {
        let db = db();
        assert_eq!(db.uid("alice"), Ok(1000));
        assert_eq!(db.uid("0"), Ok(0));
        assert_eq!(db.uid("4242"), Ok(4242));
        assert_eq!(db.gid("users"), Ok(100));
        assert_eq!(db.keys_gid(), Some(96));
        assert_eq!(db.uid("bob"), Err("unknown user `bob`".into()));
        assert_eq!(db.gid("nogroup"), Err("unknown group `nogroup`".into()));
        assert!(db.uid("").is_err());
        assert!(db.uid("4294967295").is_err());
        assert!(db.uid("99999999999").is_err());
        assert!(db.uid("+nis").is_err());
    }

    #[test]
    fn dscl_listing() {
        let parsed = parse_dscl("_www  70\nalice   501\nbroken\nbad x\nnobody -2\n");
        assert_eq!(
            parsed,
            vec![("_www".to_string(), 70), ("alice".to_string(), 501)]
        );
    }

    #[test]
    fn loads_files_and_tolerates_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("passwd"), "u:x:5:5::/:/bin/sh\n").unwrap();
        let db = UserDb::load(tmp.path()).unwrap();
        assert_eq!(db.uid("u"), Ok(5));
        assert_eq!(db.keys_gid(), None);
    }
}
