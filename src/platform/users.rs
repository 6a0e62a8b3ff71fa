//! The one user/group lookup: the system's name service (NSS: `getpwnam_r`/`getgrnam_r`
//! through the `nix` crate), so users and groups known only to LDAP, sssd or
//! systemd-userdb resolve exactly as they do for agenix's `chown`. The passwd and group
//! files are read directly only as a fallback, when the name service itself fails (not
//! when it answers "no such user"), e.g. in a static build or a broken chroot.

use std::path::{Path, PathBuf};

/// A user account: name, uid and login group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// The login group's id.
    pub gid: u32,
}

/// A user or group lookup that failed: the name service failed and the fallback file
/// could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct LookupError {
    /// The passwd or group file that could not be read.
    pub path: PathBuf,
    /// The system error.
    #[source]
    pub source: std::io::Error,
}

/// Where user and group names are looked up.
pub trait Accounts: Sync {
    /// The user named `name`; `Ok(None)` when there is none, `Err` when the lookup failed.
    fn user(&self, name: &str) -> Result<Option<Account>, LookupError>;
    /// The user with id `uid`; `Ok(None)` when there is none, `Err` when the lookup failed.
    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, LookupError>;
    /// The id of the group named `name`; `Ok(None)` when there is none, `Err` when the lookup
    /// failed.
    fn group(&self, name: &str) -> Result<Option<u32>, LookupError>;
}

/// The system's name service, with `passwd`/`group` under `fallback_etc` (normally `/etc`)
/// read when the name service fails.
#[derive(Debug, Clone)]
pub struct System {
    /// Directory holding the `passwd` and `group` files read when the name service fails.
    pub fallback_etc: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System {
            fallback_etc: PathBuf::from("/etc"),
        }
    }
}

impl System {
    fn files(&self) -> Result<Files, LookupError> {
        Files::load(&self.fallback_etc)
    }
}

fn account(u: nix::unistd::User) -> Account {
    Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }
}

impl Accounts for System {
    fn user(&self, name: &str) -> Result<Option<Account>, LookupError> {
        match nix::unistd::User::from_name(name) {
            Ok(u) => Ok(u.map(account)),
            Err(_) => self.files()?.user(name),
        }
    }

    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, LookupError> {
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(u) => Ok(u.map(account)),
            Err(_) => self.files()?.user_by_uid(uid),
        }
    }

    fn group(&self, name: &str) -> Result<Option<u32>, LookupError> {
        match nix::unistd::Group::from_name(name) {
            Ok(g) => Ok(g.map(|g| g.gid.as_raw())),
            Err(_) => self.files()?.group(name),
        }
    }
}

/// Users and groups parsed from passwd/group text (the fallback, and tests).
#[derive(Debug, Clone, Default)]
pub struct Files {
    users: Vec<Account>,
    groups: Vec<(String, u32)>,
}

impl Files {
    /// Reads `passwd` and `group` under `etc`. A missing file counts as empty (numeric
    /// owners still work); an unreadable one is an error naming it.
    pub fn load(etc: &Path) -> Result<Files, LookupError> {
        let read = |name: &str| -> Result<String, LookupError> {
            let path = etc.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(source) => Err(LookupError { path, source }),
            }
        };
        Ok(Files::parse(&read("passwd")?, &read("group")?))
    }

    /// `name:x:uid:gid:...` passwd lines and `name:x:gid:...` group lines. Comments,
    /// malformed lines and NIS `+`/`-` lines are skipped; the first entry of a name wins.
    pub fn parse(passwd: &str, group: &str) -> Files {
        let fields = |text: &str, min: usize| -> Vec<Vec<String>> {
            text.lines()
                .filter(|l| !l.starts_with(['+', '-', '#']))
                .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
                .filter(|f| f.len() >= min && !f[0].is_empty())
                .collect()
        };
        let users = fields(passwd, 4)
            .into_iter()
            .filter_map(|f| {
                Some(Account {
                    uid: parse_id(&f[2])?,
                    gid: parse_id(&f[3])?,
                    name: f[0].clone(),
                })
            })
            .collect();
        let groups = fields(group, 3)
            .into_iter()
            .filter_map(|f| Some((f[0].clone(), parse_id(&f[2])?)))
            .collect();
        Files { users, groups }
    }
}

impl Accounts for Files {
    fn user(&self, name: &str) -> Result<Option<Account>, LookupError> {
        Ok(self.users.iter().find(|a| a.name == name).cloned())
    }

    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, LookupError> {
        Ok(self.users.iter().find(|a| a.uid == uid).cloned())
    }

    fn group(&self, name: &str) -> Result<Option<u32>, LookupError> {
        Ok(self.groups.iter().find(|(n, _)| n == name).map(|(_, g)| *g))
    }
}

/// A numeric id usable with chown: decimal digits only, and not `u32::MAX` (which means
/// "unchanged" to chown(2)).
pub fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&id| id != u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_like_nss_files() {
        let f = Files::parse(
            "root:x:0:0:root:/root:/bin/sh\n# c\nalice:x:1000:100::/home/alice:/bin/sh\n\
             broken line\nalice:x:2000:100::/:/bin/sh\n+nis::::\nbad:x:4294967295:1::/:/\n",
            "root:x:0:\nkeys:x:96:alice\nusers:x:100:\n",
        );
        assert_eq!(
            f.user("alice").unwrap().map(|a| (a.uid, a.gid)),
            Some((1000, 100))
        );
        assert_eq!(
            f.user_by_uid(0).unwrap().map(|a| a.name),
            Some("root".into())
        );
        assert_eq!(f.user("+nis").unwrap(), None);
        assert_eq!(f.user("bad").unwrap(), None);
        assert_eq!(f.group("keys").unwrap(), Some(96));
        assert_eq!(f.group("nogroup").unwrap(), None);
    }

    #[test]
    fn the_name_service_knows_root() {
        let sys = System::default();
        assert_eq!(sys.user("root").unwrap().map(|a| a.uid), Some(0));
        assert_eq!(
            sys.user_by_uid(0).unwrap().map(|a| a.name),
            Some("root".into())
        );
        assert_eq!(sys.user("no-such-user-agefleet").unwrap(), None);
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("0"), Some(0));
        for bad in ["", "-1", "4294967295", "99999999999", "1a", "+1"] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
