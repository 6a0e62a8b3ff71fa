//! `host verify`: each host's live ed25519 key (fetched with `ssh-keyscan`, parsed as
//! hostile input by [`super::keyscan`], as `host add --keyscan` does) compared with the key
//! `secrets.nix` binds to it: a reinstalled host whose key changed can decrypt none of its
//! secrets at its next boot.
//!
//! A binding is checked when it is a literal `ssh-ed25519` key and is a host: named on the
//! command line, given an `--address`, or its name resolves. Scans run in parallel, each
//! bounded in time; an unreachable host is listed, never guessed at. Library code: plans
//! and reports, never prints.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::keyscan::{self, KeyscanError, ScannedKey, Target};
use super::syntax;

/// Default number of hosts scanned at once.
pub const DEFAULT_JOBS: usize = 8;

/// Why the hosts could not be checked at all. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The rules file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The rules file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The rules file does not parse.
    #[error("{}: cannot parse the file (rnix)", path.display())]
    Parse {
        /// The rules file.
        path: PathBuf,
    },
    /// A name given (as NAME or in `--address`) is not bound in the `let` block.
    #[error("{}: no let binding named {name:?}", path.display())]
    Unknown {
        /// The rules file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A name given is not bound to a literal ssh-ed25519 key.
    #[error("{}: {name:?} is not bound to a literal ssh-ed25519 key; only host keys can be verified", path.display())]
    NotHostKey {
        /// The rules file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// `--address NAME=HOST[:PORT]` is malformed.
    #[error("--address {0:?}: expected NAME=HOST[:PORT]")]
    BadAddress(String),
    /// The address is not a usable host.
    #[error(transparent)]
    BadTarget(#[from] KeyscanError),
}

/// One binding to check.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The binding's name.
    pub name: String,
    /// Where to scan, when known without resolving the name (`--address`, or the name
    /// itself when it was given on the command line).
    pub target: Option<Target>,
    /// The name as a host (port 22), tried when it resolves; `None` when it is no host name.
    pub by_name: Option<Target>,
    /// The key in `secrets.nix` (`ssh-ed25519 <base64>`).
    pub recorded: String,
    /// Its SHA256 fingerprint.
    pub recorded_fingerprint: String,
}

/// What [`execute`] scans.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The rules file.
    pub path: PathBuf,
    /// The bindings to check, in file order.
    pub candidates: Vec<Candidate>,
    /// Bindings that are not checked, with why.
    pub skipped: Vec<Skipped>,
}

/// A binding that is not checked.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The binding's name.
    pub name: String,
    /// Why it is not checked.
    pub why: String,
}

/// How a host's live key compares with `secrets.nix`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum HostStatus {
    /// The host offers the recorded key.
    Match,
    /// The host offers another key: its secrets will not decrypt there.
    Changed {
        /// The live key's fingerprint.
        live_fingerprint: String,
        /// The live key (`ssh-ed25519 <base64>`).
        live_key: String,
        /// The command that replaces the binding's key and rekeys, once the operator has
        /// checked the live fingerprint on the host itself.
        repair: String,
    },
    /// No answer (connection refused, timeout, name not resolved).
    Unreachable {
        /// What `ssh-keyscan` said, if anything.
        detail: Option<String>,
    },
    /// The server answered but offers no ed25519 host key.
    NoEd25519Key {
        /// What `ssh-keyscan` said, if anything.
        detail: Option<String>,
    },
    /// What the host sent was refused (hostile or malformed output, several ed25519 keys).
    Refused {
        /// Why.
        detail: String,
    },
}

/// One host's check.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// The binding's name.
    pub name: String,
    /// Where it was scanned (`host:port`).
    pub address: String,
    /// The recorded key's fingerprint.
    pub recorded_fingerprint: String,
    /// How the live key compares.
    #[serde(flatten)]
    pub status: HostStatus,
}

/// What `host verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every host checked, in file order.
    pub hosts: Vec<HostReport>,
    /// Bindings not checked, with why.
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// Whether a host's key changed, or its answer was refused.
    pub fn has_changed(&self) -> bool {
        self.hosts.iter().any(|h| {
            matches!(
                h.status,
                HostStatus::Changed { .. } | HostStatus::Refused { .. }
            )
        })
    }

    /// Whether a host could not be compared (unreachable, or no ed25519 key).
    pub fn has_unchecked(&self) -> bool {
        self.hosts.iter().any(|h| {
            matches!(
                h.status,
                HostStatus::Unreachable { .. } | HostStatus::NoEd25519Key { .. }
            )
        })
    }
}

/// The SHA256 fingerprint of a `ssh-ed25519 <base64>` line; `None` when it is not one.
fn ed25519_fingerprint(line: &str) -> Option<String> {
    use base64::Engine as _;
    let mut parts = line.split_whitespace();
    if parts.next() != Some("ssh-ed25519") {
        return None;
    }
    let wire = crate::recipient::SSH_BASE64.decode(parts.next()?).ok()?;
    crate::recipient::Recipient::parse(line).ok()?;
    Some(keyscan::fingerprint(&wire))
}

/// Plans the checks: `names` (all host-like bindings when empty), with `addresses`
/// (`NAME=HOST[:PORT]`) overriding where a name is scanned.
pub fn plan(
    path: &Path,
    text: &str,
    names: &[String],
    addresses: &[String],
) -> Result<Plan, VerifyError> {
    let layout = syntax::layout(text).ok_or_else(|| VerifyError::Parse {
        path: path.to_path_buf(),
    })?;
    let mut given: Vec<(String, Target)> = Vec::new();
    for a in addresses {
        let (name, addr) = a
            .split_once('=')
            .filter(|(n, h)| !n.is_empty() && !h.is_empty())
            .ok_or_else(|| VerifyError::BadAddress(a.clone()))?;
        if layout.binding(name).is_none() {
            return Err(VerifyError::Unknown {
                path: path.to_path_buf(),
                name: name.to_string(),
            });
        }
        given.push((name.to_string(), Target::parse(addr)?));
    }
    for n in names {
        if layout.binding(n).is_none() {
            return Err(VerifyError::Unknown {
                path: path.to_path_buf(),
                name: n.clone(),
            });
        }
    }
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    for b in &layout.bindings {
        let named = names.contains(&b.name);
        if !names.is_empty() && !named {
            continue;
        }
        let address = given
            .iter()
            .rev()
            .find(|(n, _)| *n == b.name)
            .map(|(_, t)| t.clone());
        let recorded = b.key.as_deref().map(str::trim).unwrap_or_default();
        let Some(fp) = ed25519_fingerprint(recorded) else {
            if named || address.is_some() {
                return Err(VerifyError::NotHostKey {
                    path: path.to_path_buf(),
                    name: b.name.clone(),
                });
            }
            continue;
        };
        let by_name = Target::parse(&b.name).ok();
        let target = address.or_else(|| by_name.clone().filter(|_| named));
        if target.is_none() && by_name.is_none() {
            skipped.push(Skipped {
                name: b.name.clone(),
                why: "not a host name; give --address NAME=HOST".into(),
            });
            continue;
        }
        let fields: Vec<&str> = recorded.split_whitespace().take(2).collect();
        candidates.push(Candidate {
            name: b.name.clone(),
            target,
            by_name,
            recorded: fields.join(" "),
            recorded_fingerprint: fp,
        });
    }
    Ok(Plan {
        path: path.to_path_buf(),
        candidates,
        skipped,
    })
}

/// Options of [`execute`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts scanned at once (at least 1).
    pub jobs: usize,
    /// `ssh-keyscan -T` per host; the scan is killed a little after.
    pub timeout_secs: u32,
    /// The `--rules FILE` the repair command names, when not the default.
    pub rules_arg: Option<PathBuf>,
}

/// Whether `t`'s host resolves to an address.
fn resolves(t: &Target) -> bool {
    (t.host.as_str(), t.port)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.next().is_some())
}

/// Scans every candidate (`jobs` at once) with `scan` and compares the keys.
pub fn execute(
    plan: Plan,
    opts: &Options,
    scan: impl Fn(&Target, u32) -> Result<ScannedKey, KeyscanError> + Sync,
) -> Report {
    let n = plan.candidates.len();
    let results: Mutex<Vec<Option<Result<HostReport, Skipped>>>> =
        Mutex::new((0..n).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(c) = plan.candidates.get(i) else {
            break;
        };
        let r = check(c, opts, &scan);
        if let Ok(mut v) = results.lock() {
            v[i] = Some(r);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, n.max(1)) {
            s.spawn(work);
        }
    });
    let mut hosts = Vec::new();
    let mut skipped = plan.skipped;
    for r in results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
    {
        match r {
            Ok(h) => hosts.push(h),
            Err(s) => skipped.push(s),
        }
    }
    Report { hosts, skipped }
}

/// One candidate: resolve (when no address was given), scan, compare.
fn check(
    c: &Candidate,
    opts: &Options,
    scan: &impl Fn(&Target, u32) -> Result<ScannedKey, KeyscanError>,
) -> Result<HostReport, Skipped> {
    let target = match (&c.target, &c.by_name) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) if resolves(t) => t.clone(),
        _ => {
            return Err(Skipped {
                name: c.name.clone(),
                why: "the name does not resolve; give --address NAME=HOST".into(),
            })
        }
    };
    let status = match scan(&target, opts.timeout_secs) {
        // The same wire bytes, however the recorded key's base64 is spelled.
        Ok(key) if key.fingerprint == c.recorded_fingerprint => HostStatus::Match,
        Ok(key) => HostStatus::Changed {
            repair: repair(
                &c.name,
                &target,
                &key.fingerprint,
                opts.rules_arg.as_deref(),
            ),
            live_fingerprint: key.fingerprint,
            live_key: key.line,
        },
        Err(KeyscanError::NoKey {
            detail,
            banner: true,
            ..
        }) => HostStatus::NoEd25519Key { detail },
        Err(KeyscanError::NoKey { detail, .. }) => HostStatus::Unreachable { detail },
        Err(e @ (KeyscanError::Spawn { .. } | KeyscanError::Read { .. })) => {
            HostStatus::Unreachable {
                detail: Some(e.to_string()),
            }
        }
        Err(e) => HostStatus::Refused {
            detail: e.to_string(),
        },
    };
    Ok(HostReport {
        name: c.name.clone(),
        address: target.to_string(),
        recorded_fingerprint: c.recorded_fingerprint.clone(),
        status,
    })
}

/// `agefleet [--rules FILE] host add NAME --replace --keyscan HOST:PORT --fingerprint FP`,
/// shell-quoted.
pub fn repair(name: &str, target: &Target, fingerprint: &str, rules: Option<&Path>) -> String {
    let mut argv: Vec<String> = vec!["agefleet".into()];
    if let Some(r) = rules {
        argv.push("--rules".into());
        argv.push(r.to_string_lossy().into_owned());
    }
    let keyscan = if target.port == 22 && !target.host.contains(':') {
        target.host.clone()
    } else {
        target.to_string()
    };
    argv.extend([
        "host".into(),
        "add".into(),
        name.into(),
        "--replace".into(),
        "--keyscan".into(),
        keyscan,
        "--fingerprint".into(),
        fingerprint.into(),
    ]);
    shell_words::join(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe";
    const KEY2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFPG3Kmr84FWS1gUFTWoLTBd+ZJL7l0EdU5zPuc9khI";

    fn rules() -> String {
        format!(
            "let\n  web1 = \"{KEY} root@web1\";\n  web2 = \"{KEY2}\";\n  alice = \"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\";\n  bad_name' = \"{KEY2}\";\nin {{ \"a.age\".publicKeys = [ web1 web2 alice ]; }}\n"
        )
    }

    fn scanned(line: &str) -> ScannedKey {
        use base64::Engine as _;
        let b64 = line.split_whitespace().nth(1).unwrap();
        ScannedKey {
            line: line.to_string(),
            fingerprint: keyscan::fingerprint(&crate::recipient::SSH_BASE64.decode(b64).unwrap()),
        }
    }

    #[test]
    fn hosts_are_compared_and_the_repair_names_the_live_fingerprint() {
        let p = Path::new("secrets.nix");
        let plan = plan(
            p,
            &rules(),
            &[],
            &["web1=127.0.0.1:2222".into(), "web2=[::1]:2200".into()],
        )
        .unwrap();
        let names: Vec<_> = plan.candidates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["web1", "web2"]);
        assert_eq!(plan.skipped.len(), 1, "{:?}", plan.skipped);
        assert_eq!(plan.skipped[0].name, "bad_name'");
        let opts = Options {
            jobs: 8,
            timeout_secs: 1,
            rules_arg: None,
        };
        // Both hosts answer with web1's key: web1 matches, web2 changed.
        let report = execute(plan, &opts, |_, _| Ok(scanned(KEY)));
        assert!(matches!(report.hosts[0].status, HostStatus::Match));
        let HostStatus::Changed {
            live_fingerprint,
            repair,
            ..
        } = &report.hosts[1].status
        else {
            panic!("{:?}", report.hosts[1]);
        };
        assert_eq!(
            *live_fingerprint,
            "SHA256:twIezcb4G9n2jIjFxiXZ2zHciBbW1hhL7JZtbXyZsQo"
        );
        assert_eq!(
            repair,
            &format!("agefleet host add web2 --replace --keyscan '[::1]:2200' --fingerprint {live_fingerprint}")
        );
        assert_ne!(report.hosts[1].recorded_fingerprint, *live_fingerprint);
        assert!(report.has_changed());
    }

    #[test]
    fn named_bindings_must_be_host_keys() {
        let p = Path::new("secrets.nix");
        let e = plan(p, &rules(), &["alice".into()], &[]).unwrap_err();
        assert!(
            e.to_string().contains("not bound to a literal ssh-ed25519"),
            "{e}"
        );
        let e = plan(p, &rules(), &["nobody".into()], &[]).unwrap_err();
        assert!(
            e.to_string().contains("no let binding named \"nobody\""),
            "{e}"
        );
        for bad in ["web1", "=x", "web1=", "web1=-oProxyCommand=x"] {
            assert!(plan(p, &rules(), &[], &[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn scan_failures_are_classified() {
        let p = Path::new("secrets.nix");
        let opts = Options {
            jobs: 1,
            timeout_secs: 1,
            rules_arg: Some("fleet/secrets.nix".into()),
        };
        let cases: Vec<(KeyscanError, &str)> = vec![
            (
                KeyscanError::NoKey {
                    target: "x".into(),
                    detail: None,
                    banner: false,
                },
                "unreachable",
            ),
            (
                KeyscanError::NoKey {
                    target: "x".into(),
                    detail: None,
                    banner: true,
                },
                "no-ed25519-key",
            ),
            (
                KeyscanError::Ambiguous {
                    target: "x".into(),
                    count: 2,
                },
                "refused",
            ),
        ];
        for (err, want) in cases {
            let plan = plan(p, &rules(), &["web1".into()], &[]).unwrap();
            let err = std::sync::Mutex::new(Some(err));
            let r = execute(plan, &opts, |_, _| Err(err.lock().unwrap().take().unwrap()));
            let j = serde_json::to_value(&r.hosts[0]).unwrap();
            assert_eq!(j["status"], want, "{j}");
        }
    }
}
