//! Git awareness: is a file tracked; add it with intent-to-add; list a work tree's tracked
//! files; clone a repository over SSH authenticated by the SSH agent, with the server's host
//! key checked against a known_hosts file (see [`crate::ssh::known_hosts`]).
//!
//! Invariants: nothing here prints; every [`GitError`] is one line naming the path or host
//! it is about; a host key is accepted only when a known_hosts entry for that host lists it.

use std::cell::RefCell;
use std::path::{Component, Path, PathBuf};

use crate::ssh::known_hosts;

/// A git operation failed. Each message is one line naming the file, repository or host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// A filesystem operation on `path` failed.
    #[error("{}: {context}{}", path.display(), crate::text::collapse_whitespace(&source.to_string()))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, as a message prefix (`""` or `"cannot read known_hosts: "`).
        context: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// libgit2 failed on the repository holding `path`.
    #[error("{}: {context}{}", path.display(), crate::text::collapse_whitespace(source.message()))]
    Git {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// What was being done, as a message prefix (e.g. `"cannot read the git index: "`).
        context: &'static str,
        /// The cause.
        source: git2::Error,
    },
    /// `path` is not something git can be asked about (outside a work tree, not a file, not
    /// UTF-8).
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A URL that [`SshRemote::parse`] does not accept.
    #[error("{url}: not an SSH git URL: {reason}")]
    NotSshUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The clone's host-key check or authentication refused the server: its own one-line
    /// message (naming the host and the known_hosts file), which libgit2 would replace with
    /// a generic one.
    #[error("{0}")]
    Refused(String),
    /// The clone failed otherwise.
    #[error("{url}: clone failed: {}", crate::text::collapse_whitespace(source.message()))]
    Clone {
        /// The URL handed to libgit2.
        url: String,
        /// The cause.
        source: git2::Error,
    },
    /// The cloned repository has no commit to check out.
    #[error("{url}: the cloned repository has no commit")]
    NoCommit {
        /// The URL handed to libgit2.
        url: String,
    },
}

impl GitError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        GitError::Io {
            path: path.to_path_buf(),
            context: "",
            source,
        }
    }

    fn git(path: &Path, context: &'static str, source: git2::Error) -> Self {
        GitError::Git {
            path: path.to_path_buf(),
            context,
            source,
        }
    }

    fn unsupported(path: &Path, reason: &'static str) -> Self {
        GitError::Unsupported {
            path: path.to_path_buf(),
            reason,
        }
    }
}

/// A file located inside a git work tree.
struct InWorkTree {
    repo: git2::Repository,
    /// Path relative to the work tree root, `/`-separated as in the index.
    rel: String,
}

/// `path` made absolute with the symlinks of its existing ancestors resolved (the file itself
/// and missing parent directories need not exist; a symlink at `path` itself is not
/// followed: git tracks the link).
pub(crate) fn resolve(path: &Path) -> Result<PathBuf, GitError> {
    let abs = std::path::absolute(path).map_err(|e| GitError::io(path, e))?;
    let Some(name) = abs.file_name().map(|n| n.to_owned()) else {
        return abs.canonicalize().map_err(|e| GitError::io(path, e));
    };
    let mut missing = vec![name];
    let mut dir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    loop {
        match dir.canonicalize() {
            Ok(real) => {
                let mut out = real;
                out.extend(missing.iter().rev());
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(n) = dir.file_name().map(|n| n.to_owned()) else {
                    return Err(GitError::io(&dir, e));
                };
                missing.push(n);
                dir = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
            }
            Err(e) => return Err(GitError::io(&dir, e)),
        }
    }
}

/// Finds the work tree holding `path`; `None` when it is in none (or only in a bare repo or
/// inside a `.git` directory).
fn locate(path: &Path) -> Result<Option<InWorkTree>, GitError> {
    let abs = resolve(path)?;
    // Discovery starts at the nearest existing ancestor.
    let start = abs
        .ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"));
    let Some((repo, workdir)) = open_work_tree(start, |e| GitError::git(start, "", e))? else {
        return Ok(None);
    };
    match index_path(&workdir, &abs) {
        None => Ok(None),
        Some(Err(NotUtf8)) => Err(GitError::unsupported(path, "path is not valid UTF-8")),
        Some(Ok(rel)) => Ok(Some(InWorkTree { repo, rel })),
    }
}

/// The repository `start` (an existing directory) lies in, as git discovers it, with its
/// work tree's resolved path: `None` when there is none (no repository, or a bare one).
/// `discover_error` turns libgit2's failure to open one into the caller's error.
pub(crate) fn open_work_tree<E: From<GitError>>(
    start: &Path,
    discover_error: impl FnOnce(git2::Error) -> E,
) -> Result<Option<(git2::Repository, PathBuf)>, E> {
    let repo = match git2::Repository::discover(start) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(discover_error(e)),
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(None);
    };
    let workdir = workdir
        .canonicalize()
        .map_err(|e| GitError::io(workdir, e))?;
    Ok(Some((repo, workdir)))
}

/// A path that is not valid UTF-8 (git's index paths here are).
#[derive(Debug)]
pub(crate) struct NotUtf8;

/// `abs` (resolved, see [`resolve`]) as a path in the index of the work tree at `workdir`:
/// relative and `/`-separated. `None` when it is outside the work tree, is the work tree
/// itself, or lies inside `.git`.
pub(crate) fn index_path(workdir: &Path, abs: &Path) -> Option<Result<String, NotUtf8>> {
    let rel = abs.strip_prefix(workdir).ok()?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => match p.to_str() {
                Some(s) => parts.push(s),
                None => return Some(Err(NotUtf8)),
            },
            _ => return None,
        }
    }
    (!parts.is_empty() && parts[0] != ".git").then(|| Ok(parts.join("/")))
}

/// Whether git tracks `path`: `Some(true)` when the index has an entry for it (an
/// intent-to-add entry counts: flakes see such files), `Some(false)` when it lies in a work
/// tree but is not in the index, `None` when it is not inside any git work tree.
pub fn is_tracked(path: &Path) -> Result<Option<bool>, GitError> {
    let Some(wt) = locate(path)? else {
        return Ok(None);
    };
    let index = wt
        .repo
        .index()
        .map_err(|e| GitError::git(path, "cannot read the git index: ", e))?;
    Ok(Some(index.get_path(Path::new(&wt.rel), 0).is_some()))
}

/// `git add --intent-to-add path`: records the path in the index with no content, so that
/// flakes see the file while its content stays unstaged. A no-op when it is already tracked.
/// Errors when `path` is not inside a git work tree.
pub fn add_intent_to_add(path: &Path) -> Result<(), GitError> {
    let Some(wt) = locate(path)? else {
        return Err(GitError::unsupported(path, "not inside a git work tree"));
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| GitError::io(path, e))?;
    let mode = if meta.file_type().is_symlink() {
        0o120000
    } else if meta.is_file() {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 != 0 {
            0o100755
        } else {
            0o100644
        }
    } else {
        return Err(GitError::unsupported(path, "not a regular file or symlink"));
    };
    let fail = |e: git2::Error| GitError::git(path, "git add -N: ", e);
    let mut index = wt.repo.index().map_err(fail)?;
    if index.get_path(Path::new(&wt.rel), 0).is_some() {
        return Ok(());
    }
    // As `git add -N` does: the entry names the empty blob and carries the intent-to-add flag.
    let empty_blob = wt.repo.blob(b"").map_err(fail)?;
    let entry = git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: empty_blob,
        flags: 0,
        flags_extended: git2::IndexEntryExtendedFlag::INTENT_TO_ADD.bits(),
        path: wt.rel.clone().into_bytes(),
    };
    index.add(&entry).map_err(fail)?;
    index.write().map_err(fail)
}

/// The files git tracks under directory `dir`, relative to `dir`, sorted: what a flake in
/// `dir` sees. `None` when `dir` is not inside a git work tree. Submodules, conflicted
/// entries and tracked files missing from the work tree are left out.
pub fn tracked_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, GitError> {
    let abs = dir.canonicalize().map_err(|e| GitError::io(dir, e))?;
    let Some((repo, workdir)) = open_work_tree(&abs, |e| GitError::git(dir, "", e))? else {
        return Ok(None);
    };
    let Ok(prefix) = abs.strip_prefix(&workdir) else {
        return Ok(None);
    };
    let index = repo
        .index()
        .map_err(|e| GitError::git(dir, "cannot read the git index: ", e))?;
    let mut files = Vec::new();
    for entry in index.iter() {
        let stage = (entry.flags >> 12) & 0x3;
        if stage != 0 || entry.mode == 0o160000 {
            continue;
        }
        let Ok(p) = std::str::from_utf8(&entry.path) else {
            return Err(GitError::unsupported(
                dir,
                "a tracked path is not valid UTF-8",
            ));
        };
        let Ok(rel) = Path::new(p).strip_prefix(prefix) else {
            continue;
        };
        if std::fs::symlink_metadata(abs.join(rel)).is_ok() {
            files.push(rel.to_path_buf());
        }
    }
    files.sort();
    files.dedup();
    Ok(Some(files))
}

/// An SSH remote: `ssh://[user@]host[:port]/path`, `git+ssh://…` (the flake spelling) or
/// scp-like `[user@]host:path`. Query strings and fragments (`?ref=…`) are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshRemote {
    /// The user, when the URL names one.
    pub user: Option<String>,
    /// The host name or address (an IPv6 address without brackets).
    pub host: String,
    /// The port (22 unless given).
    pub port: u16,
    /// The repository path (absolute, or relative to the remote home for scp-like URLs).
    pub path: String,
}

impl SshRemote {
    /// Parses `url`; anything but an SSH remote (https, a local path) is refused.
    pub fn parse(url: &str) -> Result<Self, GitError> {
        let bad = |reason: &'static str| GitError::NotSshUrl {
            url: url.to_owned(),
            reason,
        };
        let url_trim = url.trim();
        let base = url_trim.split(['?', '#']).next().unwrap_or("");
        if let Some(rest) = base
            .strip_prefix("ssh://")
            .or_else(|| base.strip_prefix("git+ssh://"))
        {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => return Err(bad("no repository path")),
            };
            let (user, hostport) = split_user(authority);
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let end = v6.find(']').ok_or_else(|| bad("unclosed '['"))?;
                let port = &v6[end + 1..];
                (&v6[..end], port.strip_prefix(':'))
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (hostport, None),
                }
            };
            let port = match port {
                None | Some("") => 22,
                Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            };
            if host.is_empty() || path.len() < 2 {
                return Err(bad("missing host or path"));
            }
            return Ok(SshRemote {
                user,
                host: host.to_owned(),
                port,
                path: path.to_owned(),
            });
        }
        if base.contains("://") {
            return Err(bad("only ssh:// and git+ssh:// are fetched with the agent"));
        }
        // scp-like: the colon must come before any slash, else it is a local path.
        let colon = base.find(':').ok_or_else(|| bad("no host"))?;
        if base[..colon].contains('/') {
            return Err(bad("a local path"));
        }
        let (user, host) = split_user(&base[..colon]);
        let path = &base[colon + 1..];
        if host.is_empty() || path.is_empty() {
            return Err(bad("missing host or path"));
        }
        Ok(SshRemote {
            user,
            host: host.to_owned(),
            port: 22,
            path: path.to_owned(),
        })
    }

    /// The URL handed to libgit2.
    pub fn git_url(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.path.starts_with('/') {
            format!("ssh://{user}{host}:{}{}", self.port, self.path)
        } else {
            // scp-like, relative to the remote home: libgit2 reads this form as git does.
            format!("{user}{host}:{}", self.path)
        }
    }

    /// The name known_hosts lists this server under: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        known_hosts::host_name(&self.host, self.port)
    }
}

fn split_user(authority: &str) -> (Option<String>, &str) {
    match authority.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() => (Some(u.to_owned()), h),
        Some((_, h)) => (None, h),
        None => (None, authority),
    }
}

/// What was cloned.
#[derive(Debug, Clone)]
pub struct Cloned {
    /// The checked-out work tree.
    pub dir: PathBuf,
    /// The commit checked out (hex).
    pub commit: String,
}

/// Clones `remote` into `dest` (which must not exist or be empty), authenticating with the
/// keys of the SSH agent at `SSH_AUTH_SOCK` and accepting the server only if `known_hosts`
/// lists its host key. `branch` selects a branch (default: the remote's HEAD). The user is
/// the URL's, else `$USER`, else `git`.
///
/// libssh2 negotiates the host key algorithm in its own preference order (Ed25519 first)
/// unless the running user's `~/.ssh/known_hosts` lists the host, not by `known_hosts_file`;
/// so that file should list every key type the server has. The error says which type the
/// server presented and which ones the file lists.
pub fn clone_with_agent(
    remote: &SshRemote,
    known_hosts_file: &Path,
    branch: Option<&str>,
    dest: &Path,
) -> Result<Cloned, GitError> {
    let kh_text = std::fs::read_to_string(known_hosts_file).map_err(|source| GitError::Io {
        path: known_hosts_file.to_path_buf(),
        context: "cannot read known_hosts: ",
        source,
    })?;
    let known = known_hosts::KnownHosts::parse(&kh_text);
    let host_name = remote.known_hosts_name();
    let user = remote
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "git".to_owned());

    // The callbacks' own errors are kept here: libgit2 replaces them with generic messages.
    let failure: RefCell<Option<String>> = RefCell::new(None);
    let mut auth_attempts = 0u32;
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.certificate_check(|cert, _host| {
        let verdict = match cert.as_hostkey().and_then(|h| h.hostkey()) {
            None => Err(format!(
                "{host_name}: the server did not present a raw SSH host key to check against {}",
                known_hosts_file.display()
            )),
            Some(blob) => match known.check(&host_name, blob) {
                known_hosts::Verdict::Match => Ok(()),
                known_hosts::Verdict::Revoked => Err(format!(
                    "{host_name}: host key is marked @revoked in {}",
                    known_hosts_file.display()
                )),
                known_hosts::Verdict::Mismatch => Err(format!(
                    "{host_name}: host key does not match the one in {} (possible man-in-the-middle; refusing)",
                    known_hosts_file.display()
                )),
                known_hosts::Verdict::Unknown => {
                    let presented = known_hosts::key_type(blob).unwrap_or("unknown type");
                    let listed = known.types_for(&host_name);
                    // libssh2 picks the host key algorithm by its own order, not by this
                    // file: say which type is missing.
                    let hint = if listed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it lists only {} for this host; add the server's {presented} key too, e.g. from a verified ssh-keyscan)",
                            listed.join(", ")
                        )
                    };
                    Err(format!(
                        "{host_name}: host key ({presented}) is not listed in {}{hint}",
                        known_hosts_file.display()
                    ))
                }
            },
        };
        match verdict {
            Ok(()) => Ok(git2::CertificateCheckStatus::CertificateOk),
            Err(msg) => {
                *failure.borrow_mut() = Some(msg.clone());
                Err(git2::Error::from_str(&msg))
            }
        }
    });
    callbacks.credentials(|_url, user_from_url, allowed| {
        let user = user_from_url.unwrap_or(&user);
        if allowed.contains(git2::CredentialType::USERNAME) {
            return git2::Cred::username(user);
        }
        auth_attempts += 1;
        // libgit2 asks again after a rejected attempt; the agent offers all its keys at once,
        // so a second request means none was accepted.
        if auth_attempts > 1 || !allowed.contains(git2::CredentialType::SSH_KEY) {
            let msg = format!(
                "{host_name}: authentication as {user} failed: no key of the SSH agent was accepted"
            );
            *failure.borrow_mut() = Some(msg.clone());
            return Err(git2::Error::from_str(&msg));
        }
        git2::Cred::ssh_key_from_agent(user)
    });
    let mut fetch = git2::FetchOptions::new();
    fetch.remote_callbacks(callbacks);
    let mut builder = git2::build::RepoBuilder::new();
    builder.fetch_options(fetch);
    if let Some(b) = branch {
        builder.branch(b);
    }
    let url = remote.git_url();
    let result = builder.clone(&url, dest);
    let repo = match result {
        Ok(r) => r,
        Err(e) => {
            return Err(match failure.borrow_mut().take() {
                Some(msg) => GitError::Refused(msg),
                None => GitError::Clone { url, source: e },
            });
        }
    };
    let commit = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string())
        .ok_or(GitError::NoCommit { url })?;
    Ok(Cloned {
        dir: dest.to_path_buf(),
        commit,
    })
}

/// The tracked files of one work tree, read once, for checking many files quickly.
pub struct Tracker {
    workdir: std::path::PathBuf,
    tracked: std::collections::HashSet<Vec<u8>>,
}

impl Tracker {
    /// Opens the work tree containing `dir`; `None` when `dir` is not in one.
    pub fn open(dir: &Path) -> Result<Option<Tracker>, GitError> {
        let Some((repo, workdir)) = open_work_tree(dir, |e| GitError::git(dir, "", e))? else {
            return Ok(None);
        };
        let index = repo
            .index()
            .map_err(|e| GitError::git(&workdir, "cannot read the git index: ", e))?;
        let tracked = index.iter().map(|e| e.path).collect();
        Ok(Some(Tracker { workdir, tracked }))
    }

    /// Whether `path` (existing or not) is in the index. Paths outside the work tree count as
    /// tracked: they are not this repository's concern.
    pub fn is_tracked(&self, path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let abs = match path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .and_then(|p| p.canonicalize().ok())
        {
            Some(dir) => dir.join(path.file_name().unwrap_or_default()),
            None => return true,
        };
        match abs.strip_prefix(&self.workdir) {
            Ok(rel) => self.tracked.contains(rel.as_os_str().as_bytes()),
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {:?}", out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn repo_with(files: &[&str], tracked: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        if !tracked.is_empty() {
            let mut args = vec!["add", "--"];
            args.extend_from_slice(tracked);
            git(dir.path(), &args);
        }
        dir
    }

    #[test]
    #[ignore = "needs `git`"]
    fn tracked_untracked_and_outside() {
        let dir = repo_with(&["a.age", "sub/b.age", "c.age"], &["a.age", "sub/b.age"]);
        assert_eq!(is_tracked(&dir.path().join("a.age")).unwrap(), Some(true));
        assert_eq!(
            is_tracked(&dir.path().join("sub/b.age")).unwrap(),
            Some(true)
        );
        assert_eq!(is_tracked(&dir.path().join("c.age")).unwrap(), Some(false));
        // A file that does not exist yet (a new secret) is simply not tracked, also in a
        // directory that does not exist yet.
        assert_eq!(
            is_tracked(&dir.path().join("new.age")).unwrap(),
            Some(false)
        );
        assert_eq!(
            is_tracked(&dir.path().join("new/dir/x.age")).unwrap(),
            Some(false)
        );
        // Reached through `..` and a symlinked parent directory.
        assert_eq!(
            is_tracked(&dir.path().join("sub/../a.age")).unwrap(),
            Some(true)
        );
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path().join("sub"), outside.path().join("link")).unwrap();
        assert_eq!(
            is_tracked(&outside.path().join("link/b.age")).unwrap(),
            Some(true)
        );
        std::fs::write(outside.path().join("x.age"), b"x").unwrap();
        assert_eq!(is_tracked(&outside.path().join("x.age")).unwrap(), None);
    }

    #[test]
    #[ignore = "needs `git`"]
    fn relative_path_from_cwd_is_resolved() {
        // Not changing the process cwd (tests run in parallel): an absolute path with `.`.
        let dir = repo_with(&["a.age"], &["a.age"]);
        assert_eq!(is_tracked(&dir.path().join("./a.age")).unwrap(), Some(true));
    }

    #[test]
    #[ignore = "needs `git`"]
    fn intent_to_add_is_seen_by_git() {
        let dir = repo_with(&["a.age", "new.age"], &["a.age"]);
        git(dir.path(), &["commit", "-q", "-m", "init"]);
        let new = dir.path().join("new.age");
        assert_eq!(is_tracked(&new).unwrap(), Some(false));
        add_intent_to_add(&new).unwrap();
        assert_eq!(is_tracked(&new).unwrap(), Some(true));
        let status = git(dir.path(), &["status", "--porcelain"]);
        assert_eq!(status, " A new.age\n", "git status after intent-to-add");
        // Content stays unstaged: `git diff` shows it, `git diff --cached` does not.
        assert!(git(dir.path(), &["diff", "--name-only"]).contains("new.age"));
        assert_eq!(git(dir.path(), &["diff", "--cached", "--name-only"]), "");
        // Idempotent.
        add_intent_to_add(&new).unwrap();
        assert_eq!(git(dir.path(), &["status", "--porcelain"]), " A new.age\n");
        // `git add` then stages it fully.
        git(dir.path(), &["add", "new.age"]);
        assert_eq!(git(dir.path(), &["status", "--porcelain"]), "A  new.age\n");
    }

    #[test]
    fn intent_to_add_outside_a_repo_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.age");
        std::fs::write(&f, b"x").unwrap();
        let err = add_intent_to_add(&f).unwrap_err().to_string();
        assert!(err.contains("not inside a git work tree"), "{err}");
        assert!(err.contains("x.age"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    #[ignore = "needs `git`"]
    fn tracked_files_of_a_subdirectory() {
        let dir = repo_with(
            &[
                "flake/flake.nix",
                "flake/hosts/a.nix",
                "flake/junk",
                "top.nix",
            ],
            &["flake/flake.nix", "flake/hosts/a.nix", "top.nix"],
        );
        let files = tracked_files(&dir.path().join("flake")).unwrap().unwrap();
        assert_eq!(
            files,
            vec![PathBuf::from("flake.nix"), PathBuf::from("hosts/a.nix")]
        );
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(tracked_files(outside.path()).unwrap(), None);
    }

    #[test]
    fn ssh_remote_forms() {
        let r = SshRemote::parse("ssh://root@127.0.0.1:2222/srv/secrets.git").unwrap();
        assert_eq!(
            r,
            SshRemote {
                user: Some("root".into()),
                host: "127.0.0.1".into(),
                port: 2222,
                path: "/srv/secrets.git".into()
            }
        );
        assert_eq!(r.known_hosts_name(), "[127.0.0.1]:2222");
        assert_eq!(r.git_url(), "ssh://root@127.0.0.1:2222/srv/secrets.git");
        let r = SshRemote::parse("git+ssh://git@example.org/me/secrets?ref=main").unwrap();
        assert_eq!(r.port, 22);
        assert_eq!(r.path, "/me/secrets");
        assert_eq!(r.known_hosts_name(), "example.org");
        let r = SshRemote::parse("git@example.org:me/secrets.git").unwrap();
        assert_eq!(r.user.as_deref(), Some("git"));
        assert_eq!(r.path, "me/secrets.git");
        assert_eq!(r.git_url(), "git@example.org:me/secrets.git");
        let r = SshRemote::parse("ssh://[::1]:2200/r").unwrap();
        assert_eq!(r.host, "::1");
        assert_eq!(r.known_hosts_name(), "[::1]:2200");
        for bad in [
            "https://example.org/x",
            "/local/path",
            "./rel:x",
            "ssh://host",
            "ssh://host:notaport/x",
            "",
        ] {
            let e = SshRemote::parse(bad).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
