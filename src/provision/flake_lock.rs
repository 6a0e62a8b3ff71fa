//! The secrets input of a flake, read from its `flake.lock`.
//!
//! Accepted: the root node's input `<name>` pointing (directly, not through `follows`) at a
//! node whose `locked` (else `original`) is `{"type": "git", "url": "ssh://…"}` (the lock's
//! spelling of a `git+ssh://` input), or `git+ssh://…`, or scp-like `user@host:path`. The
//! `ref` (branch) and `rev` are returned as well. Other input types (github, path, tarball,
//! https) are refused: pass `--secrets-url`.
//!
//! [`root_inputs`] reads every root input as locked, whatever its type, for `pin`.

use std::path::Path;

use serde_json::Value;

use crate::git::SshRemote;

/// The secrets input as locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedInput {
    /// The input's URL, as `git` would fetch it.
    pub url: String,
    /// Branch name (a `refs/heads/` prefix removed).
    pub branch: Option<String>,
    /// Locked commit.
    pub rev: Option<String>,
}

/// Why the secrets input could not be read from the lock file. One line, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {what}")]
pub struct LockError {
    /// The lock file.
    pub file: String,
    /// What is wrong with it (one line).
    pub what: String,
}

/// Largest `flake.lock` read (a large fleet's is well under 1 MiB).
const MAX_LOCK: usize = 16 << 20;

/// A flake's `flake.lock`, parsed (the one reader of it: `install-with-secrets` and `pin`).
struct Lock {
    /// The lock file, as errors name it.
    file: String,
    /// Its JSON.
    json: Value,
}

impl Lock {
    fn read(flake_dir: &Path) -> Result<Lock, LockError> {
        let file = flake_dir.join("flake.lock").display().to_string();
        let err = |what: String| LockError {
            file: file.clone(),
            what,
        };
        // A FIFO or device is refused, not read forever; a lock is small.
        let bytes = crate::fsutil::read_regular(&flake_dir.join("flake.lock"))
            .map_err(|e| err(format!("cannot read: {e}")))?;
        if bytes.len() > MAX_LOCK {
            return Err(err(format!(
                "larger than {} MiB; not a flake lock",
                MAX_LOCK >> 20
            )));
        }
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
            err(format!(
                "not valid JSON: {}",
                crate::text::collapse_whitespace(&e.to_string())
            ))
        })?;
        if !json.get("nodes").is_some_and(Value::is_object) {
            return Err(err("not a flake lock: no \"nodes\" object".into()));
        }
        Ok(Lock { file, json })
    }

    fn err(&self, what: String) -> LockError {
        LockError {
            file: self.file.clone(),
            what,
        }
    }

    fn root(&self) -> &str {
        self.json
            .get("root")
            .and_then(Value::as_str)
            .unwrap_or("root")
    }

    /// The root node's input names, in the lock's order.
    fn input_names(&self) -> Vec<String> {
        self.json
            .pointer(&format!("/nodes/{}/inputs", escape(self.root())))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The node input `name` points at: `Ok(None)` when it follows another input.
    fn input_node(&self, name: &str) -> Result<Option<&Value>, LockError> {
        let node = self
            .json
            .pointer(&format!(
                "/nodes/{}/inputs/{}",
                escape(self.root()),
                escape(name)
            ))
            .ok_or_else(|| self.err(format!("the flake has no input {name:?}")))?;
        let Value::String(node_name) = node else {
            return Ok(None);
        };
        self.json
            .pointer(&format!("/nodes/{}", escape(node_name)))
            .map(Some)
            .ok_or_else(|| {
                self.err(format!(
                    "input {name:?} points at a missing node {node_name:?}"
                ))
            })
    }
}

/// Reads input `name` of the flake in `flake_dir`.
pub fn secrets_input(flake_dir: &Path, name: &str) -> Result<LockedInput, LockError> {
    let lock = Lock::read(flake_dir)?;
    let node = lock.input_node(name)?.ok_or_else(|| {
        lock.err(format!(
            "input {name:?} follows another input; pass --secrets-url"
        ))
    })?;
    let mut why = String::from("not locked");
    for part in ["locked", "original"] {
        let Some(spec) = node.get(part) else { continue };
        let kind = spec.get("type").and_then(Value::as_str).unwrap_or("");
        let url = spec.get("url").and_then(Value::as_str).unwrap_or("");
        if kind != "git" {
            why = format!("its {part} type is {kind:?}, not a git+ssh input");
            continue;
        }
        if SshRemote::parse(url).is_err() {
            why = format!("its {part} url {url:?} is not an SSH URL");
            continue;
        }
        let text_of = |k: &str| spec.get(k).and_then(Value::as_str).map(str::to_owned);
        return Ok(LockedInput {
            url: url.to_owned(),
            branch: text_of("ref").map(|r| r.trim_start_matches("refs/heads/").to_owned()),
            rev: text_of("rev"),
        });
    }
    Err(lock.err(format!("input {name:?}: {why}; pass --secrets-url")))
}

/// One input of the flake's root, as locked: what `pin` compares with a repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RootInput {
    /// The input's name in the flake (`secrets`).
    pub name: String,
    /// The locked source type (`git`, `github`, `gitlab`, `path`, …); `None` when the input
    /// follows another one or has no `locked` entry.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Where it is fetched from: the `url` of a `git` input, `github:OWNER/REPO` (and the
    /// like) for a forge input.
    pub url: Option<String>,
    /// The locked commit, when the lock names one.
    pub rev: Option<String>,
    /// The branch (a `refs/heads/` prefix removed), when the lock names one.
    pub branch: Option<String>,
    /// The locked forge host (`github.com`, or the `host` of the lock entry).
    #[serde(skip)]
    pub forge: Option<(String, String)>,
}

/// Every input of the root of the flake in `flake_dir`, as locked (inputs that follow
/// another one come with no type, URL or commit).
pub fn root_inputs(flake_dir: &Path) -> Result<Vec<RootInput>, LockError> {
    let lock = Lock::read(flake_dir)?;
    let mut out = Vec::new();
    for name in lock.input_names() {
        let locked = lock.input_node(&name)?.and_then(|n| n.get("locked"));
        let text_of = |k: &str| {
            locked
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let kind = text_of("type");
        let forge_host = match kind.as_deref() {
            Some("github") => Some("github.com"),
            Some("gitlab") => Some("gitlab.com"),
            Some("sourcehut") => Some("git.sr.ht"),
            _ => None,
        };
        let forge = match (forge_host, text_of("owner"), text_of("repo")) {
            (Some(default), Some(owner), Some(repo)) => Some((
                text_of("host").unwrap_or_else(|| default.to_string()),
                format!("{owner}/{repo}"),
            )),
            _ => None,
        };
        let url = match (&forge, kind.as_deref()) {
            (Some((_, path)), Some(k)) => Some(format!("{k}:{path}")),
            _ => text_of("url"),
        };
        out.push(RootInput {
            name: name.clone(),
            url,
            rev: text_of("rev"),
            branch: text_of("ref").map(|r| r.trim_start_matches("refs/heads/").to_owned()),
            kind,
            forge,
        });
    }
    Ok(out)
}

/// JSON pointer escaping of one path segment.
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(dir: &Path, json: &str) {
        std::fs::write(dir.join("flake.lock"), json).unwrap();
    }

    #[test]
    fn locked_git_ssh_input() {
        let d = tempfile::tempdir().unwrap();
        lock(
            d.path(),
            r#"{"nodes":{"root":{"inputs":{"secrets":"secrets_2","nixpkgs":"nixpkgs"}},
               "nixpkgs":{"locked":{"type":"github","owner":"NixOS","repo":"nixpkgs"}},
               "secrets_2":{"locked":{"type":"git","url":"ssh://git@example.org/me/secrets",
                 "ref":"refs/heads/main","rev":"0123456789abcdef0123456789abcdef01234567"},
                 "original":{"type":"git","url":"ssh://git@example.org/me/secrets"}}},
               "root":"root","version":7}"#,
        );
        let i = secrets_input(d.path(), "secrets").unwrap();
        assert_eq!(i.url, "ssh://git@example.org/me/secrets");
        assert_eq!(i.branch.as_deref(), Some("main"));
        assert_eq!(
            i.rev.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        let e = secrets_input(d.path(), "nixpkgs").unwrap_err().to_string();
        assert!(e.contains("github") && e.contains("--secrets-url"), "{e}");
        let e = secrets_input(d.path(), "nope").unwrap_err().to_string();
        assert!(
            e.contains("no input \"nope\"") && e.contains("flake.lock"),
            "{e}"
        );
    }

    #[test]
    fn original_only_and_follows_and_garbage() {
        let d = tempfile::tempdir().unwrap();
        lock(
            d.path(),
            r#"{"nodes":{"root":{"inputs":{"secrets":"s","other":["a","b"]}},
               "s":{"original":{"type":"git","url":"git+ssh://git@h/x"}}},"root":"root"}"#,
        );
        assert_eq!(
            secrets_input(d.path(), "secrets").unwrap().url,
            "git+ssh://git@h/x"
        );
        assert!(secrets_input(d.path(), "other")
            .unwrap_err()
            .to_string()
            .contains("follows"));
        lock(d.path(), "{ not json");
        let e = secrets_input(d.path(), "secrets").unwrap_err().to_string();
        assert!(e.contains("not valid JSON") && !e.contains('\n'), "{e}");
        let e = secrets_input(Path::new("/nonexistent"), "secrets").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/flake.lock"));
    }
}
