//! The secrets input of a flake, read from its `flake.lock`.
//!
//! Accepted: the root node's input `<name>` pointing (directly, not through `follows`) at a
//! node whose `locked` (else `original`) is `{"type": "git", "url": "ssh://…"}` (the lock's
//! spelling of a `git+ssh://` input), or `git+ssh://…`, or scp-like `user@host:path`. The
//! `ref` (branch) and `rev` are returned as well. Other input types (github, path, tarball,
//! https) are refused: pass `--secrets-url`.

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

/// Reads input `name` of the flake in `flake_dir`.
pub fn secrets_input(flake_dir: &Path, name: &str) -> Result<LockedInput, LockError> {
    let file = flake_dir.join("flake.lock");
    let err = |what: String| LockError {
        file: file.display().to_string(),
        what,
    };
    let text = std::fs::read_to_string(&file).map_err(|e| err(format!("cannot read: {e}")))?;
    let lock: Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let root = lock.get("root").and_then(Value::as_str).unwrap_or("root");
    let node = lock
        .pointer(&format!("/nodes/{}/inputs/{}", escape(root), escape(name)))
        .ok_or_else(|| err(format!("the flake has no input {name:?}")))?;
    let node_name = match node {
        Value::String(s) => s.as_str(),
        _ => {
            return Err(err(format!(
                "input {name:?} follows another input; pass --secrets-url"
            )))
        }
    };
    let node = lock
        .pointer(&format!("/nodes/{}", escape(node_name)))
        .ok_or_else(|| {
            err(format!(
                "input {name:?} points at a missing node {node_name:?}"
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
    Err(err(format!("input {name:?}: {why}; pass --secrets-url")))
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
