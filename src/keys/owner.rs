//! `--owner USER[:GROUP]` resolution through the system's name service, and the local user
//! and host names for default key comments.

use super::KeyError;
use crate::platform::users::{self, parse_id, Accounts};

/// A resolved owner. Never `u32::MAX` (that id means "unchanged" to chown(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Owner {
    /// User id the files are given to.
    pub uid: u32,
    /// Group id the files are given to.
    pub gid: u32,
}

/// Resolves `USER[:GROUP]` through the system's name service (see
/// [`crate::platform::users`]).
pub fn resolve_owner(spec: &str) -> Result<Owner, KeyError> {
    resolve_owner_in(spec, &users::System::default())
}

/// Resolves `USER[:GROUP]` like chown(1): names or numbers; `USER` or `USER:` alone means the
/// user's login group. A number not in the database is taken as is, but then its group must
/// be given.
pub(crate) fn resolve_owner_in(spec: &str, db: &dyn Accounts) -> Result<Owner, KeyError> {
    let err = |reason: &str| KeyError::Owner {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(err("no user named (expected USER[:GROUP])"));
    }
    let entry = match db.user(user).map_err(|e| err(&e.to_string()))? {
        Some(a) => Some(a),
        None => match parse_id(user) {
            Some(id) => db.user_by_uid(id).map_err(|e| err(&e.to_string()))?,
            None => None,
        },
    };
    let uid = match (&entry, parse_id(user)) {
        (Some(e), _) => e.uid,
        (None, Some(id)) => id,
        (None, None) => return Err(err(&format!("no user {user:?}"))),
    };
    let gid = match grp {
        Some(g) => match db.group(g).map_err(|e| err(&e.to_string()))? {
            Some(id) => id,
            None => parse_id(g).ok_or_else(|| err(&format!("no group {g:?}")))?,
        },
        None => match entry {
            Some(e) => e.gid,
            None => {
                return Err(err(
                    "numeric user unknown to the system: name its group too (USER:GROUP)",
                ))
            }
        },
    };
    Ok(Owner { uid, gid })
}

/// The effective user's name: the name service, else `$USER`, else the uid number.
pub fn current_user_name() -> String {
    let uid = rustix::process::geteuid().as_raw();
    users::System::default()
        .user_by_uid(uid)
        .ok()
        .flatten()
        .map(|a| a.name)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| uid.to_string())
}

/// The host name as `hostname` prints it: the kernel's (`/proc/sys/kernel/hostname`), else
/// `/etc/hostname`, else the `hostname` command, else `localhost`.
pub fn host_name() -> String {
    let clean = |s: String| {
        let s = s.trim().to_string();
        Some(s).filter(|s| !s.is_empty() && !s.contains(char::is_control))
    };
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().and_then(clean))
        .or_else(|| {
            std::process::Command::new("hostname")
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(clean)
        })
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
                          +nis::::::\n\
                          broken line\n\
                          bob:x:1001:100::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:\nalice:x:1000:\nwheel:x:10:alice\n";

    fn db() -> users::Files {
        users::Files::parse(PASSWD, GROUP)
    }

    fn ok(spec: &str) -> Owner {
        resolve_owner_in(spec, &db()).unwrap()
    }

    #[test]
    fn names_and_numbers_resolve_like_chown() {
        assert_eq!(
            ok("alice"),
            Owner {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            ok("alice:"),
            Owner {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(ok("alice:wheel"), Owner { uid: 1000, gid: 10 });
        assert_eq!(
            ok("bob"),
            Owner {
                uid: 1001,
                gid: 100
            }
        );
        assert_eq!(
            ok("1001"),
            Owner {
                uid: 1001,
                gid: 100
            }
        );
        assert_eq!(ok("alice:42"), Owner { uid: 1000, gid: 42 });
        assert_eq!(
            ok("5000:5000"),
            Owner {
                uid: 5000,
                gid: 5000
            }
        );
        assert_eq!(
            ok("5000:users"),
            Owner {
                uid: 5000,
                gid: 100
            }
        );
    }

    #[test]
    fn unknown_or_malformed_owners_are_errors() {
        for spec in [
            "nobody-here",
            "alice:nogroup",
            "5000",
            ":users",
            "",
            "4294967295:0",
            "alice:4294967295",
            "-1:0",
            "+nis",
        ] {
            let e = resolve_owner_in(spec, &db());
            assert!(e.is_err(), "{spec:?} resolved to {e:?}");
            let msg = e.unwrap_err().to_string();
            assert!(msg.starts_with("owner "), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn user_name_lookup() {
        assert!(!host_name().is_empty());
        assert!(!current_user_name().is_empty());
    }
}
