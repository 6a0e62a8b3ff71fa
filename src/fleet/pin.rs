//! `pin`: is the commit of the secrets repository that a system flake locks (its
//! `flake.lock`) the one the secrets repository holds?
//!
//! The secrets input is `--input`, else the root input whose locked URL names a remote of the
//! secrets repository (or the repository itself, for a `git+file://` input), else the input
//! named `secrets`. Its locked `rev` is compared with the work tree's `HEAD` and, when the
//! branch has one, its upstream: current, behind or ahead by N commits, diverged, or unknown
//! to the repository (force-pushed away, or never fetched). Between the pin and `HEAD` the
//! two trees are compared for what the hosts miss: secrets added, rekeyed (the header's
//! recipients differ), updated (same recipients, new content), removed, and a changed rules
//! file — from headers only, nothing is decrypted. Library code: plans and reports, never
//! prints.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::envelope::Header;
use crate::provision::flake_lock::{self, LockError, RootInput};

/// The input name used when neither `--input` nor a remote designates one.
pub const DEFAULT_INPUT: &str = "secrets";

/// Why the pin could not be checked. `Display` is one line naming the file or repository.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// `flake.lock` is missing, unreadable, malformed, or has no such input.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// No input was named, none matches the repository and none is named `secrets`.
    #[error("{file}: no input locks {} (by its remotes) and none is named {DEFAULT_INPUT:?}; pass --input NAME (inputs: {inputs})", repo.display())]
    NoInput {
        /// The lock file.
        file: String,
        /// The secrets repository.
        repo: PathBuf,
        /// The root inputs, comma-separated.
        inputs: String,
    },
    /// Several inputs lock this repository and none is named `secrets`.
    #[error("{file}: inputs {inputs} all lock this repository; pass --input NAME")]
    Ambiguous {
        /// The lock file.
        file: String,
        /// The matching inputs, comma-separated.
        inputs: String,
    },
    /// The input locks no commit (it follows another input, or is not a git source).
    #[error("{file}: input {input:?} locks no git commit ({why})")]
    NotLocked {
        /// The lock file.
        file: String,
        /// The input.
        input: String,
        /// What it locks instead.
        why: String,
    },
    /// The rules file is not in a git work tree.
    #[error("{}: not inside a git work tree: pin compares the flake's lock with the secrets repository", dir.display())]
    NotARepository {
        /// The rules file's directory.
        dir: PathBuf,
    },
    /// Reading the repository failed.
    #[error("{}: {what}: {}", repo.display(), crate::text::collapse_whitespace(source.message()))]
    Git {
        /// The repository's work tree (or where discovery started).
        repo: PathBuf,
        /// What was being read.
        what: &'static str,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// A path could not be resolved.
    #[error(transparent)]
    Path(#[from] crate::git::GitError),
}

impl PinError {
    /// Whether the caller must fix the command line or the flake (exit 2), rather than the
    /// check having failed.
    pub fn is_usage(&self) -> bool {
        !matches!(self, PinError::Git { .. } | PinError::Path(_))
    }
}

/// How the secrets input was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoundBy {
    /// `--input NAME`.
    Named,
    /// Its locked URL names a remote of the repository (or the repository itself).
    Remote,
    /// The input named `secrets`.
    Default,
}

/// A pin compared with one commit of the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum State {
    /// The pin is that commit.
    Current,
    /// The commit has `commits` more than the pin: the hosts miss them.
    Behind {
        /// Commits the pin lacks.
        commits: usize,
    },
    /// The pin has `commits` the repository's commit lacks (not pulled yet?).
    Ahead {
        /// Commits the repository's commit lacks.
        commits: usize,
    },
    /// Each has commits the other lacks.
    Diverged {
        /// Commits the pin lacks.
        behind: usize,
        /// Commits the repository's commit lacks.
        ahead: usize,
    },
    /// The pinned commit is not in the repository (force-pushed away, or never fetched).
    Unknown,
}

impl State {
    /// Whether the pin is that commit.
    pub fn is_current(self) -> bool {
        self == State::Current
    }
}

/// A commit of the secrets repository, and how the pin compares with it.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What the commit is: `HEAD` (with its branch) or the upstream branch's name.
    pub name: String,
    /// Its full hex id.
    pub commit: String,
    /// How the pin compares with it.
    #[serde(flatten)]
    pub state: State,
}

/// What changed in the secrets between two commits, from the trees and the headers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    /// `.age` files that are new.
    pub added: Vec<String>,
    /// `.age` files whose header lists other recipients.
    pub rekeyed: Vec<String>,
    /// `.age` files with new content for the same recipients (an edited value, or a rekey to
    /// the same keys).
    pub updated: Vec<String>,
    /// `.age` files that are gone.
    pub removed: Vec<String>,
    /// Whether the rules file changed.
    pub rules_changed: bool,
}

impl Changes {
    /// Whether nothing the hosts read changed.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// What `pin` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The flake directory.
    pub flake: PathBuf,
    /// The secrets input.
    pub input: String,
    /// How it was chosen.
    pub found_by: FoundBy,
    /// Its locked URL (`github:OWNER/REPO` for a forge input).
    pub url: Option<String>,
    /// The pinned commit.
    pub pinned: String,
    /// The secrets repository's work tree.
    pub repository: PathBuf,
    /// The pin against the work tree's `HEAD`.
    pub head: Comparison,
    /// The pin against the upstream branch, when one is configured.
    pub upstream: Option<Comparison>,
    /// Commits of `HEAD` not on its upstream: the flake cannot fetch them until pushed.
    pub unpushed: usize,
    /// What the hosts miss between the pin and `HEAD` (when the pin is behind or diverged).
    pub missing: Option<Changes>,
    /// Secrets and rules files with uncommitted changes (they cannot be deployed).
    pub uncommitted: Vec<String>,
    /// The command that moves the lock to the newest pushed commit, when it is not current.
    pub update_command: Option<String>,
}

impl Report {
    /// Whether the pin is `HEAD` (and the upstream branch, when one is configured).
    pub fn is_current(&self) -> bool {
        self.head.state.is_current() && self.upstream.as_ref().is_none_or(|u| u.state.is_current())
    }
}

/// What [`execute`] compares: the repository, the lock's input and its pinned commit.
pub struct Plan {
    repo: git2::Repository,
    workdir: PathBuf,
    /// Where the rules file is in the work tree (`/`-separated).
    rules_rel: Option<String>,
    /// The rules file's directory in the work tree (`""` at the top), for naming secrets.
    rules_dir_rel: String,
    flake: PathBuf,
    input: RootInput,
    found_by: FoundBy,
    pinned: String,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("workdir", &self.workdir)
            .field("input", &self.input)
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

/// Opens the secrets repository holding `rules_path`, reads `flake_dir/flake.lock` and
/// chooses the secrets input (`input`, else by remote, else `secrets`).
pub fn plan(rules_path: &Path, flake_dir: &Path, input: Option<&str>) -> Result<Plan, PinError> {
    let rules_abs = crate::git::resolve(rules_path)?;
    let start = rules_abs
        .ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let opened = crate::git::open_work_tree(&start, |source| PinError::Git {
        repo: start.clone(),
        what: "cannot open the git repository",
        source,
    })?;
    let Some((repo, workdir)) = opened else {
        return Err(PinError::NotARepository { dir: start });
    };
    let rules_rel = crate::git::index_path(&workdir, &rules_abs).and_then(Result::ok);
    let rules_dir_rel = rules_rel
        .as_deref()
        .and_then(|r| r.rsplit_once('/'))
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    let inputs = flake_lock::root_inputs(flake_dir)?;
    let file = flake_dir.join("flake.lock").display().to_string();
    let (chosen, found_by) = match input {
        Some(name) => match inputs.iter().find(|i| i.name == name) {
            Some(i) => (i.clone(), FoundBy::Named),
            None => {
                return Err(PinError::Lock(LockError {
                    file,
                    what: format!("the flake has no input {name:?}"),
                }))
            }
        },
        None => {
            let ours = repository_keys(&repo, &workdir);
            let by_remote: Vec<&RootInput> = inputs
                .iter()
                .filter(|i| {
                    i.url
                        .as_deref()
                        .and_then(|u| url_key(u, i.forge.as_ref()))
                        .is_some_and(|k| ours.contains(&k))
                })
                .collect();
            let by_remote = match by_remote.as_slice() {
                [] => None,
                [one] => Some(*one),
                more => match more.iter().find(|i| i.name == DEFAULT_INPUT) {
                    Some(i) => Some(*i),
                    None => {
                        return Err(PinError::Ambiguous {
                            file,
                            inputs: more
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                },
            };
            match by_remote {
                Some(i) => (i.clone(), FoundBy::Remote),
                None => match inputs.iter().find(|i| i.name == DEFAULT_INPUT) {
                    Some(i) => (i.clone(), FoundBy::Default),
                    None => {
                        return Err(PinError::NoInput {
                            file,
                            repo: workdir,
                            inputs: inputs
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                },
            }
        }
    };
    let not_locked = |why: String| PinError::NotLocked {
        file: file.clone(),
        input: chosen.name.clone(),
        why,
    };
    let pinned = match (&chosen.kind, &chosen.rev) {
        (None, _) => return Err(not_locked("it follows another input".into())),
        (Some(_), Some(rev)) if is_commit_id(rev) => rev.clone(),
        (Some(_), Some(rev)) => {
            return Err(not_locked(format!(
                "its rev {:?} is not a commit id",
                crate::text::escape_controls(&rev.chars().take(80).collect::<String>())
            )))
        }
        (Some(kind), None) => return Err(not_locked(format!("a {kind:?} source without a rev"))),
    };
    Ok(Plan {
        repo,
        workdir,
        rules_rel,
        rules_dir_rel,
        flake: flake_dir.to_path_buf(),
        input: chosen,
        found_by,
        pinned,
    })
}

fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The keys ([`url_key`]) of the repository's remotes and of the repository itself.
fn repository_keys(repo: &git2::Repository, workdir: &Path) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    keys.insert(format!("file:{}", workdir.display()));
    if let Ok(names) = repo.remotes() {
        for name in names.iter().flatten().flatten() {
            if let Ok(remote) = repo.find_remote(name) {
                if let Some(k) = remote.url().ok().and_then(|u| url_key(u, None)) {
                    keys.insert(k);
                }
            }
        }
    }
    keys
}

/// A comparable spelling of a repository URL: `host/path` (host lowercased; no user, port,
/// query, trailing `/` or `.git`) for ssh, scp-like, https and forge URLs; `file:PATH` (its
/// real path when it exists) for a local repository. `None`: not a URL this understands.
pub fn url_key(url: &str, forge: Option<&(String, String)>) -> Option<String> {
    let tidy = |host: &str, path: &str| {
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let host = host.to_ascii_lowercase();
        // Forges compare owner and repository names case-insensitively.
        let path = if matches!(host.as_str(), "github.com" | "gitlab.com") {
            path.to_ascii_lowercase()
        } else {
            path.to_string()
        };
        (!host.is_empty() && !path.is_empty()).then(|| format!("{host}/{path}"))
    };
    if let Some((host, path)) = forge {
        return tidy(host.as_str(), path.as_str());
    }
    let url = url.trim();
    let url = url.strip_prefix("git+").unwrap_or(url);
    let base = url.split(['?', '#']).next().unwrap_or("");
    let local = |p: &str| {
        let p = Path::new(p);
        let real = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        Some(format!("file:{}", real.display()))
    };
    if let Some(p) = base.strip_prefix("file://") {
        return local(p);
    }
    if base.starts_with('/') {
        return local(base);
    }
    for scheme in ["https://", "http://"] {
        if let Some(rest) = base.strip_prefix(scheme) {
            let (authority, path) = rest.split_once('/')?;
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = host.split(':').next().unwrap_or(host);
            return tidy(host, path);
        }
    }
    let remote = crate::git::SshRemote::parse(base).ok()?;
    tidy(&remote.host, &remote.path)
}

/// Compares the pin with `HEAD` and its upstream, lists what the hosts miss, and finds
/// uncommitted changes to the secrets.
pub fn execute(plan: Plan) -> Result<Report, PinError> {
    let repo = &plan.repo;
    let git = |what: &'static str| {
        let repo = plan.workdir.clone();
        move |source| PinError::Git { repo, what, source }
    };
    let head_ref = repo.head().map_err(git("cannot read HEAD"))?;
    let head = head_ref
        .peel_to_commit()
        .map_err(git("HEAD is not a commit"))?;
    let head_name = match head_ref.shorthand() {
        Ok(b) if head_ref.is_branch() => format!("HEAD ({b})"),
        _ => "HEAD".to_string(),
    };
    let pinned_oid = git2::Oid::from_str(&plan.pinned).map_err(git("the pinned commit"))?;
    let pinned = repo.find_commit(pinned_oid).ok();
    let compare = |name: String, commit: git2::Oid| -> Result<Comparison, PinError> {
        let state = match &pinned {
            None => State::Unknown,
            Some(p) if p.id() == commit => State::Current,
            Some(p) => {
                let (newer, older) = repo
                    .graph_ahead_behind(commit, p.id())
                    .map_err(git("cannot compare the commits"))?;
                match (newer, older) {
                    (0, 0) => State::Current,
                    (n, 0) => State::Behind { commits: n },
                    (0, a) => State::Ahead { commits: a },
                    (n, a) => State::Diverged {
                        behind: n,
                        ahead: a,
                    },
                }
            }
        };
        Ok(Comparison {
            name,
            commit: commit.to_string(),
            state,
        })
    };
    let head_cmp = compare(head_name, head.id())?;
    let upstream = if head_ref.is_branch() {
        head_ref
            .shorthand()
            .ok()
            .and_then(|b| repo.find_branch(b, git2::BranchType::Local).ok())
            .and_then(|b| b.upstream().ok())
            .and_then(|u| {
                let name = u.name().ok().flatten().map(str::to_owned);
                let commit = u.get().peel_to_commit().ok()?;
                Some((name.unwrap_or_else(|| "upstream".into()), commit.id()))
            })
    } else {
        None
    };
    let (upstream_cmp, unpushed) = match upstream {
        Some((name, id)) => {
            let unpushed = repo
                .graph_ahead_behind(head.id(), id)
                .map_err(git("cannot compare HEAD with its upstream"))?
                .0;
            (Some(compare(name, id)?), unpushed)
        }
        None => (None, 0),
    };
    let missing = match (&pinned, head_cmp.state) {
        (Some(p), State::Behind { .. } | State::Diverged { .. }) => {
            Some(changes(repo, &plan, p, &head)?)
        }
        _ => None,
    };
    let uncommitted = uncommitted(repo, &plan)?;
    let report_current =
        head_cmp.state.is_current() && upstream_cmp.as_ref().is_none_or(|u| u.state.is_current());
    let update_command = (!report_current && !matches!(head_cmp.state, State::Ahead { .. }))
        .then(|| update_command(&plan.flake, &plan.input.name));
    Ok(Report {
        flake: plan.flake.clone(),
        input: plan.input.name.clone(),
        found_by: plan.found_by,
        url: plan.input.url.clone(),
        pinned: plan.pinned.clone(),
        repository: plan.workdir.clone(),
        head: head_cmp,
        upstream: upstream_cmp,
        unpushed,
        missing,
        uncommitted,
        update_command,
    })
}

/// `cd DIR && nix flake update INPUT`, shell-quoted.
pub fn update_command(flake: &Path, input: &str) -> String {
    format!(
        "cd {} && nix flake update {}",
        shell_words::quote(&flake.to_string_lossy()),
        shell_words::quote(input)
    )
}

/// A work-tree path as the report names it: relative to the rules file's directory when
/// inside it.
fn shown(plan: &Plan, path: &str) -> String {
    if plan.rules_dir_rel.is_empty() {
        return path.to_string();
    }
    path.strip_prefix(&plan.rules_dir_rel)
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or(path)
        .to_string()
}

/// What changed between the pinned tree and `HEAD`'s, for the hosts.
fn changes(
    repo: &git2::Repository,
    plan: &Plan,
    pinned: &git2::Commit<'_>,
    head: &git2::Commit<'_>,
) -> Result<Changes, PinError> {
    let git = |what: &'static str| {
        let repo = plan.workdir.clone();
        move |source| PinError::Git { repo, what, source }
    };
    let old = pinned.tree().map_err(git("cannot read the pinned tree"))?;
    let new = head.tree().map_err(git("cannot read HEAD's tree"))?;
    let diff = repo
        .diff_tree_to_tree(Some(&old), Some(&new), None)
        .map_err(git("cannot compare the trees"))?;
    let mut out = Changes::default();
    for delta in diff.deltas() {
        let path = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if plan.rules_rel.as_deref() == Some(path.as_str()) {
            out.rules_changed = true;
            continue;
        }
        if !path.ends_with(".age") {
            continue;
        }
        let name = shown(plan, &path);
        match delta.status() {
            git2::Delta::Added | git2::Delta::Copied => out.added.push(name),
            git2::Delta::Deleted => out.removed.push(name),
            _ => {
                let header = |id: git2::Oid| {
                    repo.find_blob(id)
                        .ok()
                        .and_then(|b| Header::parse(b.content()).ok())
                        .map(|h| recipients_of(&h))
                };
                let (a, b) = (header(delta.old_file().id()), header(delta.new_file().id()));
                if a.is_some() && a == b {
                    out.updated.push(name);
                } else {
                    out.rekeyed.push(name);
                }
            }
        }
    }
    for list in [
        &mut out.added,
        &mut out.rekeyed,
        &mut out.updated,
        &mut out.removed,
    ] {
        list.sort();
    }
    Ok(out)
}

/// The recipients a header shows: its SSH tags, and how many X25519 and post-quantum
/// stanzas (they carry no tag).
fn recipients_of(h: &Header) -> (BTreeSet<String>, usize, usize) {
    (
        h.ssh_tags().map(str::to_owned).collect(),
        h.x25519_count(),
        h.mlkem768x25519_count(),
    )
}

/// Secrets (`.age`) and the rules file with uncommitted changes, new files included.
fn uncommitted(repo: &git2::Repository, plan: &Plan) -> Result<Vec<String>, PinError> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|source| PinError::Git {
            repo: plan.workdir.clone(),
            what: "cannot read the work tree's status",
            source,
        })?;
    let mut out: Vec<String> = statuses
        .iter()
        .filter(|e| e.status() != git2::Status::CURRENT)
        .filter_map(|e| e.path().ok().map(str::to_owned))
        .filter(|p| p.ends_with(".age") || plan.rules_rel.as_deref() == Some(p.as_str()))
        .map(|p| shown(plan, &p))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_keys_match_across_spellings() {
        let k = |u: &str| url_key(u, None);
        let want = Some("github.com/me/secrets".to_string());
        for u in [
            "git@github.com:me/secrets.git",
            "ssh://git@github.com/me/secrets",
            "git+ssh://git@GitHub.com:22/Me/Secrets.git",
            "https://github.com/me/secrets",
            "https://token@github.com/me/secrets.git/",
        ] {
            assert_eq!(k(u), want, "{u}");
        }
        assert_eq!(
            url_key(
                "github:me/secrets",
                Some(&("github.com".into(), "Me/secrets".into()))
            ),
            want
        );
        assert_eq!(
            k("ssh://git@example.org/srv/Secrets.git"),
            Some("example.org/srv/Secrets".into())
        );
        assert_ne!(
            k("ssh://git@example.org/a/b"),
            k("ssh://git@example.org/a/c")
        );
        assert_eq!(
            k("file:///nonexistent/x"),
            Some("file:/nonexistent/x".into())
        );
        assert_eq!(k("/nonexistent/x"), k("git+file:///nonexistent/x"));
        assert_eq!(k("not a url"), None);
    }

    #[test]
    fn commit_ids_are_hex_of_sha1_or_sha256_length() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(is_commit_id(&"0".repeat(64)));
        assert!(!is_commit_id("abc"));
        assert!(!is_commit_id(&"g".repeat(40)));
    }

    #[test]
    fn update_command_is_shell_quoted() {
        assert_eq!(
            update_command(Path::new("/srv/my flake"), "secrets"),
            "cd '/srv/my flake' && nix flake update secrets"
        );
    }
}
