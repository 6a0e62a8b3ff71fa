//! The git side of the audit: which commits are audited, which blob each audited file (and
//! the rules file) has in each of them, and reading those blobs with bounded memory. Kept
//! apart so attribution and naming see versions and headers, never git objects.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{AuditError, CommitInfo, MAX_WHOLE_BLOB};
use crate::envelope::{EnvelopeError, Header};
use crate::rules::{RuleEntry, Rules, RulesError};
use crate::text::collapse_whitespace;

/// The repository holding `rules`, and its work tree.
pub(super) fn open(rules: &Rules) -> Result<(git2::Repository, PathBuf), AuditError> {
    let rules_path = crate::git::resolve(&rules.path)?;
    let start = rules_path
        .ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let opened = crate::git::open_work_tree(&start, |source| AuditError::Open {
        dir: start.clone(),
        source,
    })?;
    let Some(opened) = opened else {
        return Err(AuditError::NotARepository { dir: start });
    };
    Ok(opened)
}

/// Makes libgit2's error while doing `what` in the repository at `workdir` an
/// [`AuditError::Git`].
pub(super) fn git_error(workdir: &Path, what: &str) -> impl FnOnce(git2::Error) -> AuditError {
    let repo = workdir.to_path_buf();
    let what = what.to_string();
    move |source| AuditError::Git { repo, what, source }
}

/// The commits of `HEAD`, newest first (none on an unborn branch); with `since`, only
/// those after that revision.
pub(super) fn commits<'r>(
    repo: &'r git2::Repository,
    workdir: &Path,
    since: Option<&str>,
) -> Result<Vec<git2::Commit<'r>>, AuditError> {
    let git = |what: &str| git_error(workdir, what);
    let head = match repo.head() {
        Ok(h) => Some(h.peel_to_commit().map_err(git("reading HEAD"))?.id()),
        Err(e)
            if matches!(
                e.code(),
                git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
            ) =>
        {
            None
        }
        Err(e) => return Err(git("reading HEAD")(e)),
    };
    let hidden = match since {
        Some(rev) => Some(
            repo.revparse_single(rev)
                .and_then(|o| o.peel_to_commit())
                .map_err(|source| AuditError::BadRevision {
                    rev: rev.to_string(),
                    repo: workdir.to_path_buf(),
                    source,
                })?
                .id(),
        ),
        None => None,
    };
    let mut commits = Vec::new();
    if let Some(head) = head {
        let mut walk = repo.revwalk().map_err(git("walking the history"))?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)
            .map_err(git("walking the history"))?;
        walk.push(head).map_err(git("walking the history"))?;
        if let Some(h) = hidden {
            walk.hide(h).map_err(git("walking the history"))?;
        }
        for oid in walk {
            let oid = oid.map_err(git("walking the history"))?;
            let c = repo.find_commit(oid).map_err(git("reading a commit"))?;
            commits.push(c);
        }
    }
    Ok(commits)
}

/// A commit as the report shows it.
pub(super) fn commit_info(c: &git2::Commit<'_>) -> CommitInfo {
    let id = c.id().to_string();
    let short = c
        .as_object()
        .short_id()
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_owned))
        .unwrap_or_else(|| id[..7.min(id.len())].to_string());
    let time = c.time().seconds();
    CommitInfo {
        short,
        summary: String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned(),
        time,
        date: crate::text::utc_date_time(time),
        id,
    }
}

/// `path` relative to `workdir`, `/`-separated; `None` when outside it.
pub(super) fn relative(workdir: &Path, path: &Path) -> Result<Option<String>, AuditError> {
    let abs = crate::git::resolve(path)?;
    Ok(crate::git::index_path(workdir, &abs).and_then(Result::ok))
}

/// Where one version of a file was seen: commit indices, newest first.
pub(super) struct Seen {
    /// The newest commit holding this version.
    pub(super) newest: usize,
    /// The oldest: the commit that introduced it.
    pub(super) oldest: usize,
}

/// One audited secret's file and its distinct committed versions.
pub(super) struct AuditedFile<'r> {
    /// The secret's rule.
    pub(super) entry: &'r RuleEntry,
    /// Its file, relative to the work tree.
    pub(super) path: String,
    /// Each version's blob, newest first.
    pub(super) versions: Vec<(git2::Oid, Seen)>,
    index: HashMap<git2::Oid, usize>,
    /// A non-file was already warned about.
    warned: bool,
}

/// The files of the usable rules that are inside the work tree; the others are warned
/// about, in rule order.
pub(super) fn audited_files<'r>(
    rules: &'r Rules,
    workdir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<AuditedFile<'r>>, AuditError> {
    let mut files = Vec::new();
    for entry in &rules.entries {
        if let Err(e) = &entry.rule {
            warnings.push(format!("{e}: not audited"));
            continue;
        }
        let file = rules.file_of(&entry.name);
        match relative(workdir, &file)? {
            Some(path) => files.push(AuditedFile {
                entry,
                path,
                versions: Vec::new(),
                index: HashMap::new(),
                warned: false,
            }),
            None => warnings.push(format!(
                "{}: outside the repository {}: not audited",
                file.display(),
                workdir.display()
            )),
        }
    }
    Ok(files)
}

impl AuditedFile<'_> {
    /// Notes the version this file has in `tree`, the tree of commit `ci` (walked newest
    /// first); something other than a regular file there is warned about once.
    fn see(
        &mut self,
        tree: &git2::Tree<'_>,
        ci: usize,
        at: &CommitInfo,
        warnings: &mut Vec<String>,
    ) {
        match blob_at(tree, &self.path) {
            Ok(Some(oid)) => match self.index.get(&oid) {
                Some(&i) => self.versions[i].1.oldest = ci,
                None => {
                    self.index.insert(oid, self.versions.len());
                    self.versions.push((
                        oid,
                        Seen {
                            newest: ci,
                            oldest: ci,
                        },
                    ));
                }
            },
            Ok(None) => {}
            Err(why) if !self.warned => {
                self.warned = true;
                warnings.push(format!(
                    "{} at commit {}: {why}: skipped",
                    self.path, at.short
                ));
            }
            Err(_) => {}
        }
    }
}

/// Reads the tree of every commit in `commits` (newest first): the version of each of
/// `files`, and the version of the rules file at `rules_rel`. `new_rules` is called with
/// each distinct rules version, at the newest commit holding it (as it is met, so its
/// warnings come in commit order). Returns the rules version of each commit.
pub(super) fn walk(
    commits: &[git2::Commit<'_>],
    infos: &[CommitInfo],
    workdir: &Path,
    rules_rel: Option<&str>,
    files: &mut [AuditedFile<'_>],
    warnings: &mut Vec<String>,
    mut new_rules: impl FnMut(usize, git2::Oid, &mut Vec<String>),
) -> Result<Vec<Option<git2::Oid>>, AuditError> {
    let mut rules_at = Vec::with_capacity(commits.len());
    let mut rules_seen = HashSet::new();
    for (ci, commit) in commits.iter().enumerate() {
        let tree = commit
            .tree()
            .map_err(git_error(workdir, "reading a commit's tree"))?;
        let rules_blob = rules_rel.and_then(|r| blob_at(&tree, r).ok().flatten());
        rules_at.push(rules_blob);
        if let Some(oid) = rules_blob {
            if rules_seen.insert(oid) {
                new_rules(ci, oid, warnings);
            }
        }
        for f in files.iter_mut() {
            f.see(&tree, ci, &infos[ci], warnings);
        }
    }
    Ok(rules_at)
}

/// The regular file blob at `rel` in `tree`: `Ok(None)` when absent, `Err` when something
/// else (a directory, a symlink, a submodule) is there.
fn blob_at(tree: &git2::Tree<'_>, rel: &str) -> Result<Option<git2::Oid>, &'static str> {
    match tree.get_path(Path::new(rel)) {
        Ok(e) => match (e.kind(), e.filemode()) {
            (Some(git2::ObjectType::Blob), 0o100644 | 0o100755) => Ok(Some(e.id())),
            (Some(git2::ObjectType::Blob), _) => Err("a symlink, not a file"),
            _ => Err("not a file"),
        },
        Err(_) => Ok(None),
    }
}

/// The size of the blob `oid`, from its object header (nothing inflated).
pub(super) fn blob_size(odb: &git2::Odb<'_>, oid: git2::Oid) -> Result<usize, git2::Error> {
    odb.read_header(oid).map(|(size, _)| size)
}

/// Why a committed version's header was not read (the version is skipped with a warning).
#[derive(Debug, thiserror::Error)]
pub(super) enum UnreadVersion {
    /// The blob could not be read.
    #[error("{}", collapse_whitespace(.0.message()))]
    Git(#[source] git2::Error),
    /// It is not an age file (or its header is malformed).
    #[error("{0}")]
    Header(#[source] EnvelopeError),
    /// A large blob whose start is not an age header.
    #[error("{source}; {} MiB, over {} MiB: only its start was read", size >> 20, MAX_WHOLE_BLOB >> 20)]
    LargeHeader {
        /// The blob's size.
        size: usize,
        /// Why its start is no header.
        #[source]
        source: EnvelopeError,
    },
    /// A large blob in a pack: libgit2 cannot stream it, and it is not read whole.
    #[error("{} MiB, over {} MiB and packed (cannot be streamed): not read", size >> 20, MAX_WHOLE_BLOB >> 20)]
    Packed {
        /// The blob's size.
        size: usize,
        /// libgit2's refusal to stream it.
        #[source]
        source: git2::Error,
    },
}

/// The age header of the blob `oid` of `size` bytes: read whole when small, else from the
/// start of a stream.
pub(super) fn header_of_blob(
    repo: &git2::Repository,
    odb: &git2::Odb<'_>,
    oid: git2::Oid,
    size: usize,
) -> Result<Header, UnreadVersion> {
    if size <= MAX_WHOLE_BLOB {
        let blob = repo.find_blob(oid).map_err(UnreadVersion::Git)?;
        return Header::parse(blob.content()).map_err(UnreadVersion::Header);
    }
    match odb.reader(oid) {
        Ok((reader, _, _)) => {
            Header::read_from(reader).map_err(|source| UnreadVersion::LargeHeader { size, source })
        }
        Err(source) => Err(UnreadVersion::Packed { size, source }),
    }
}

/// The ciphertexts of the versions settlement compares, each read once.
#[derive(Default)]
pub(super) struct KeptVersions {
    /// Each version's bytes (empty for one in `too_large`).
    pub(super) blobs: Vec<Arc<Vec<u8>>>,
    /// Versions not read, by their size: larger than [`MAX_WHOLE_BLOB`].
    pub(super) too_large: HashMap<usize, usize>,
    index: HashMap<git2::Oid, usize>,
}

impl KeptVersions {
    /// The index of the blob `oid` in `blobs`, reading it the first time.
    pub(super) fn keep(
        &mut self,
        repo: &git2::Repository,
        odb: &git2::Odb<'_>,
        oid: git2::Oid,
    ) -> Result<usize, git2::Error> {
        if let Some(&i) = self.index.get(&oid) {
            return Ok(i);
        }
        let size = blob_size(odb, oid)?;
        if size <= MAX_WHOLE_BLOB {
            let blob = repo.find_blob(oid)?;
            self.blobs.push(Arc::new(blob.content().to_vec()));
        } else {
            self.too_large.insert(self.blobs.len(), size);
            self.blobs.push(Arc::new(Vec::new()));
        }
        self.index.insert(oid, self.blobs.len() - 1);
        Ok(self.blobs.len() - 1)
    }
}

/// Why a historical `secrets.nix` is not used (a warning: its bindings name no one and
/// its rules attribute no stanza).
#[derive(Debug, thiserror::Error)]
#[error("{} at commit {commit}: {reason}: its bindings are not used", path.display())]
pub(super) struct UnusedRules {
    /// The rules file.
    path: PathBuf,
    /// The commit's short id.
    commit: String,
    /// Why.
    #[source]
    reason: UnusedRulesReason,
}

/// Why a historical `secrets.nix` was not evaluated.
#[derive(Debug, thiserror::Error)]
pub(super) enum UnusedRulesReason {
    /// The blob could not be read.
    #[error("{}", collapse_whitespace(.0.message()))]
    Git(#[source] git2::Error),
    /// Larger than [`MAX_WHOLE_BLOB`].
    #[error("{} MiB, over {} MiB: not read", .0 >> 20, MAX_WHOLE_BLOB >> 20)]
    TooLarge(usize),
    /// Not text.
    #[error("not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// The builtin evaluator refused it.
    #[error("does not evaluate ({0})")]
    Evaluation(#[source] RulesError),
}

/// The `secrets.nix` blob `oid` of commit `at`, evaluated as if it were the rules file:
/// its text (for its bindings) and its rules.
pub(super) fn historical_rules(
    repo: &git2::Repository,
    oid: git2::Oid,
    rules: &Rules,
    at: &CommitInfo,
) -> Result<(String, Vec<RuleEntry>), UnusedRules> {
    let unused = |reason| UnusedRules {
        path: rules.path.clone(),
        commit: at.short.clone(),
        reason,
    };
    let size = repo
        .odb()
        .and_then(|odb| blob_size(&odb, oid))
        .map_err(|e| unused(UnusedRulesReason::Git(e)))?;
    if size > MAX_WHOLE_BLOB {
        return Err(unused(UnusedRulesReason::TooLarge(size)));
    }
    let blob = repo
        .find_blob(oid)
        .map_err(|e| unused(UnusedRulesReason::Git(e)))?;
    let text =
        std::str::from_utf8(blob.content()).map_err(|e| unused(UnusedRulesReason::NotUtf8(e)))?;
    let entries = crate::rules::evaluate_str(&rules.path, text.to_string())
        .map_err(|e| unused(UnusedRulesReason::Evaluation(e)))?;
    Ok((text.to_string(), entries))
}
