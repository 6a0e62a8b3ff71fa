//! Owner and group resolution: a number is taken as is, a name is looked up through the
//! system's name service ([`crate::platform::users`]; NSS, so LDAP/sssd/userdb users work as
//! with agenix's `chown`), with the passwd/group files only as the documented fallback.

use std::path::Path;

use crate::platform::users::{self, Accounts};

/// The group that owns the mount point and generation directories where it exists, as with
/// agenix: `keys` (NixOS creates it), `admin` on macOS.
pub(crate) const KEYS_GROUP: &str = if cfg!(target_os = "macos") {
    "admin"
} else {
    "keys"
};

/// Users and groups by name.
pub(crate) struct UserDb {
    accounts: Box<dyn Accounts>,
}

impl std::fmt::Debug for UserDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserDb")
    }
}

impl UserDb {
    /// The system's name service, falling back to `passwd` and `group` under `etc`
    /// (normally `/etc`) when it fails.
    pub(crate) fn system(etc: &Path) -> Self {
        UserDb {
            accounts: Box::new(users::System {
                fallback_etc: etc.to_path_buf(),
            }),
        }
    }

    /// Lookups in `accounts` (tests).
    #[cfg(test)]
    fn with(accounts: impl Accounts + 'static) -> Self {
        UserDb {
            accounts: Box::new(accounts),
        }
    }

    /// The uid of `owner` (a number or a user name).
    pub(crate) fn uid(&self, owner: &str) -> Result<u32, OwnerError> {
        resolve(owner, "user", |n| Ok(self.accounts.user(n)?.map(|a| a.uid)))
    }

    /// The gid of `group` (a number or a group name).
    pub(crate) fn gid(&self, group: &str) -> Result<u32, OwnerError> {
        resolve(group, "group", |n| self.accounts.group(n))
    }

    /// The gid of [`KEYS_GROUP`], if the system has one.
    pub(crate) fn keys_gid(&self) -> Option<u32> {
        self.accounts.group(KEYS_GROUP).ok().flatten()
    }
}

/// Why a secret's owner or group does not resolve to an id.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OwnerError {
    /// The manifest gives an empty name.
    #[error("empty {0}")]
    Empty(&'static str),
    /// A number that is not a usable id (`u32::MAX` or larger).
    #[error("{what} id {id} out of range")]
    OutOfRange {
        /// `user` or `group`.
        what: &'static str,
        /// The number as written.
        id: String,
    },
    /// No such user or group.
    #[error("unknown {what} `{name}`")]
    Unknown {
        /// `user` or `group`.
        what: &'static str,
        /// The name looked up.
        name: String,
    },
    /// The lookup itself failed.
    #[error(transparent)]
    Lookup(#[from] users::LookupError),
}

fn resolve(
    who: &str,
    what: &'static str,
    lookup: impl Fn(&str) -> Result<Option<u32>, users::LookupError>,
) -> Result<u32, OwnerError> {
    if who.is_empty() {
        return Err(OwnerError::Empty(what));
    }
    if who.bytes().all(|b| b.is_ascii_digit()) {
        return users::parse_id(who).ok_or_else(|| OwnerError::OutOfRange {
            what,
            id: who.to_string(),
        });
    }
    lookup(who)?.ok_or_else(|| OwnerError::Unknown {
        what,
        name: who.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::users::Files;

    fn db() -> UserDb {
        UserDb::with(Files::parse(
            "root:x:0:0:root:/root:/bin/sh\n# c\nalice:x:1000:100::/home/alice:/bin/sh\n\
             broken line\nalice:x:2000:100::/:/bin/sh\n+nis::::\n",
            "root:x:0:\nkeys:x:96:alice\nusers:x:100:\n",
        ))
    }

    #[test]
    fn names_and_numbers() {
        let db = db();
        assert_eq!(db.uid("alice").ok(), Some(1000));
        assert_eq!(db.uid("0").ok(), Some(0));
        assert_eq!(db.uid("4242").ok(), Some(4242));
        assert_eq!(db.gid("users").ok(), Some(100));
        assert_eq!(db.keys_gid(), Some(96));
        assert!(matches!(
            db.uid("bob"),
            Err(OwnerError::Unknown { what: "user", .. })
        ));
        assert_eq!(db.uid("bob").unwrap_err().to_string(), "unknown user `bob`");
        assert_eq!(
            db.gid("nogroup").unwrap_err().to_string(),
            "unknown group `nogroup`"
        );
        assert!(db.uid("").is_err());
        assert!(db.uid("4294967295").is_err());
        assert!(db.uid("99999999999").is_err());
        assert!(db.uid("+nis").is_err());
    }

    #[test]
    fn the_system_database_resolves_root_through_nss() {
        let db = UserDb::system(Path::new("/nonexistent-etc"));
        assert_eq!(db.uid("root").ok(), Some(0));
        assert_eq!(db.gid("root").ok(), Some(0));
    }
}
