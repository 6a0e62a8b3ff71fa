//! `--owner USER[:GROUP]` resolution from `/etc/passwd` and `/etc/group` (parsed here, no libc
//! calls), and the local user and host names for default key comments.

use std::path::Path;

use super::KeyError;

/// A resolved owner. Never `u32::MAX` (that id means "unchanged" to chown(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub(crate) fn uid(self) -> rustix::fs::Uid {
        rustix::fs::Uid::from_raw(self.uid)
    }
    pub(crate) fn gid(self) -> rustix::fs::Gid {
        rustix::fs::Gid::from_raw(self.gid)
    }
}

/// One `/etc/passwd` entry (the fields used here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Parses `/etc/passwd` text; malformed lines and NIS `+`/`-` lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with(['+', '-', '#']))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: parse_id(f[2])?,
                gid: parse_id(f[3])?,
            })
        })
        .collect()
}

/// Parses `/etc/group` text into (name, gid); malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter(|l| !l.starts_with(['+', '-', '#']))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            Some((f[0].to_string(), parse_id(f[2])?))
        })
        .collect()
}

/// A numeric id usable with chown: decimal, and not `u32::MAX`.
fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&id| id != u32::MAX)
}

/// Resolves `USER[:GROUP]` against the system's `/etc/passwd` and `/etc/group`.
pub fn resolve_owner(spec: &str) -> Result<Owner, KeyError> {
    let passwd = read_db(Path::new("/etc/passwd"))?;
    let group = read_db(Path::new("/etc/group"))?;
    resolve_owner_in(spec, &passwd, &group)
}

fn read_db(path: &Path) -> Result<String, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        // Numeric ids still work without the databases.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(KeyError::io(path, e)),
    }
}

/// Resolves `USER[:GROUP]` like chown(1): names or numbers; `USER` or `USER:` alone means the
/// user's login group. A number not in the database is taken as is, but then its group must
/// be given.
pub fn resolve_owner_in(spec: &str, passwd: &str, group: &str) -> Result<Owner, KeyError> {
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
    let users = parse_passwd(passwd);
    let entry = users
        .iter()
        .find(|e| e.name == user)
        .or_else(|| parse_id(user).and_then(|id| users.iter().find(|e| e.uid == id)));
    let uid = match (entry, parse_id(user)) {
        (Some(e), _) => e.uid,
        (None, Some(id)) => id,
        (None, None) => return Err(err(&format!("no user {user:?} in /etc/passwd"))),
    };
    let gid = match grp {
        Some(g) => {
            let groups = parse_group(group);
            match groups.iter().find(|(n, _)| n == g) {
                Some((_, id)) => *id,
                None => parse_id(g).ok_or_else(|| err(&format!("no group {g:?} in /etc/group")))?,
            }
        }
        None => match entry {
            Some(e) => e.gid,
            None => {
                return Err(err(
                    "numeric user not in /etc/passwd: name its group too (USER:GROUP)",
                ))
            }
        },
    };
    Ok(Owner { uid, gid })
}

/// The user name of `uid` in `/etc/passwd` text.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    parse_passwd(passwd)
        .into_iter()
        .find(|e| e.uid == uid)
        .map(|e| e.name)
}

/// The effective user's name: `/etc/passwd`, else `$USER`, else the uid number.
pub fn current_user_name() -> String {
    let uid = rustix::process::geteuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| user_name(&p, uid))
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

    fn ok(spec: &str) -> Owner {
        resolve_owner_in(spec, PASSWD, GROUP).unwrap()
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
            let e = resolve_owner_in(spec, PASSWD, GROUP);
            assert!(e.is_err(), "{spec:?} resolved to {e:?}");
            let msg = e.unwrap_err().to_string();
            assert!(msg.starts_with("owner "), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn user_name_lookup() {
        assert_eq!(user_name(PASSWD, 1001).as_deref(), Some("bob"));
        assert_eq!(user_name(PASSWD, 7), None);
        assert!(!host_name().is_empty());
        assert!(!current_user_name().is_empty());
    }
}
