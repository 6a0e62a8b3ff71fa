//! Rotation debt from git history: for each secret the current rules name, every recipient
//! that could decrypt some committed version of its file but is no longer in its rule, with
//! the last commit where it could. Rekeying is not revocation: such a recipient may have kept
//! the plaintext, so the value itself must change.
//!
//! Library code in three steps: [`plan`] walks the history (git2) and reads headers only
//! (no identity, no decryption) into a [`Plan`] of debt; [`execute`] settles debt with
//! identities when given (a value whose plaintext changed after that commit is settled);
//! the [`Report`] says what remains. Nothing here prints.
//!
//! How recipients are recognised in a header (age v1), by [`crate::presence`], the model
//! `status` and `access` use too:
//! - `ssh-ed25519` / `ssh-rsa` stanzas carry the recipient's key tag: compared with the tags
//!   of the current rule's keys.
//! - `X25519` and `mlkem768x25519` stanzas are anonymous. A version's anonymous stanzas are
//!   attributed to the keys of its rule in the `secrets.nix` of the commit that introduced
//!   that version, when that rule lists exactly as many keys of that kind and no plugin
//!   recipient (else the match is unknowable); keys so attributed that the current rule does
//!   not list are debt (`evidence: rule`). Unattributed anonymous stanzas are debt only when
//!   there are more of them than the current rule has keys of that kind (`unknown X25519
//!   recipient`).
//! - `scrypt` means a passphrase: whoever knew it is debt (`passphrase (scrypt)`).
//! - Grease stanzas (`…-grease`, the age crate adds one to every header) are ignored; any
//!   other stanza type comes from an age plugin and is debt named `stanza:TYPE`, unless the
//!   current rule has plugin recipients (their stanzas cannot be told apart without the
//!   plugin: unchecked, as `drift` does).
//!
//! Recipients are named by the `let` binding of the current `secrets.nix` whose key matches,
//! else by a binding of a historical `secrets.nix` (newest first), else by their abbreviated
//! key when a rule once listed it, else `tag:XXXX`. Historical `secrets.nix` versions are
//! evaluated by the builtin evaluator as if they were the current file (relative imports
//! read today's files); one that does not evaluate is skipped with a warning.
//!
//! Only the history of `HEAD` is walked (`--since REV`: the commits `REV..HEAD`). A version
//! whose header does not parse is skipped with a warning naming its path and commit.
//!
//! Memory is bounded by what is read, not by what was committed: a blob's size is looked up
//! in the object database first, and one larger than [`MAX_WHOLE_BLOB`] (a 1 GiB blob of
//! zeros takes 1 MB in a repository) is never inflated whole: only its age header is read
//! from a stream (the header is bounded); a large blob that is not an age file, or that
//! cannot be streamed (packed), is skipped with a warning naming its path and commit, and a
//! large version is not compared in settlement. Historical `secrets.nix` files that large
//! are skipped too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::envelope::{self, DecryptionKeys, Header};
use crate::presence::{self, Presence, Stray};
use crate::recipient::{abbreviate, Recipient, RecipientKind};
use crate::rules::{RuleEntry, Rules};

/// Why the history could not be audited at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The rules file is not inside a git work tree.
    #[error("{}: not inside a git work tree: audit reads the history of the secrets repository", dir.display())]
    NotARepository {
        /// The rules file's directory.
        dir: PathBuf,
    },
    /// The repository could not be opened.
    #[error("{}: cannot open the git repository: {}", dir.display(), crate::text::collapse_whitespace(source.message()))]
    Open {
        /// Where discovery started.
        dir: PathBuf,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// `--since REV` does not name a commit.
    #[error("--since {rev:?}: not a commit of {}: {}", repo.display(), crate::text::collapse_whitespace(source.message()))]
    BadRevision {
        /// The revision as given.
        rev: String,
        /// The repository's work tree.
        repo: PathBuf,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// Reading the history failed.
    #[error("{}: {what}: {}", repo.display(), crate::text::collapse_whitespace(source.message()))]
    Git {
        /// The repository's work tree.
        repo: PathBuf,
        /// What was being read.
        what: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// A path could not be resolved against the work tree.
    #[error(transparent)]
    Path(#[from] crate::git::GitError),
}

/// A commit, as a report shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hex id.
    pub id: String,
    /// The shortest unique abbreviation (at least 7 digits).
    pub short: String,
    /// The first line of the message (lossy UTF-8).
    pub summary: String,
    /// Committer time, seconds since the Unix epoch.
    pub time: i64,
    /// Committer time as `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
}

/// Where a recipient's name comes from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NamedFrom {
    /// A binding of the current `secrets.nix`.
    Current,
    /// A binding of a historical `secrets.nix`.
    History,
}

/// What shows that the recipient could decrypt.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// The committed header itself (an SSH tag, a passphrase or plugin stanza, or more
    /// anonymous stanzas than the current rule explains).
    Header,
    /// Anonymous stanzas attributed by the rule of the commit that introduced the version.
    Rule,
}

/// One recipient in rotation debt for one secret.
#[derive(Debug, Clone, Serialize)]
pub struct Debt {
    /// Binding name, abbreviated key, `tag:XXXX`, `unknown X25519 recipient`,
    /// `passphrase (scrypt)` or `stanza:TYPE`.
    pub recipient: String,
    /// The stanza type: `ssh-ed25519`, `ssh-rsa`, `X25519`, `mlkem768x25519`, `scrypt`, or
    /// a plugin's type.
    pub kind: String,
    /// The SSH key tag, for SSH stanzas.
    pub tag: Option<String>,
    /// The public key, when a rule (current or historical) listed it.
    pub key: Option<String>,
    /// Where the name comes from, when it is a binding name.
    pub named_from: Option<NamedFrom>,
    /// What shows it could decrypt.
    pub evidence: Evidence,
    /// The newest commit where this recipient could decrypt the secret.
    pub last_commit: CommitInfo,
    /// The value was rotated after `last_commit` (only decided with identities).
    pub settled: bool,
    /// How settlement was decided, or why it could not be.
    pub note: Option<String>,
    /// Index of the version at `last_commit` in the plan's blobs.
    #[serde(skip)]
    version: usize,
}

/// One secret of the current rules.
#[derive(Debug, Clone, Serialize)]
pub struct SecretAudit {
    /// The rule name.
    pub name: String,
    /// Its file, relative to the work tree.
    pub path: String,
    /// Distinct committed versions of the file in the audited commits.
    pub versions: usize,
    /// Recipients in debt, by recipient name.
    pub debt: Vec<Debt>,
}

/// The header-only findings, before settlement.
#[derive(Debug)]
pub struct Plan {
    /// The repository's work tree.
    pub repository: PathBuf,
    /// `--since REV` as given.
    pub since: Option<String>,
    /// Commits audited.
    pub commits: usize,
    /// Every usable secret of the current rules, by name.
    pub secrets: Vec<SecretAudit>,
    /// One line each: what was skipped and why.
    pub warnings: Vec<String>,
    /// Ciphertexts of the versions named by debt (empty for one in `too_large`).
    blobs: Vec<Arc<Vec<u8>>>,
    /// Versions in `blobs` not read, by their size: larger than [`MAX_WHOLE_BLOB`].
    too_large: HashMap<usize, usize>,
    /// The current file of each secret in debt (or why it is unreadable).
    current: HashMap<String, Result<Arc<Vec<u8>>, String>>,
}

/// What remains after settlement.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The repository's work tree.
    pub repository: PathBuf,
    /// `--since REV` as given.
    pub since: Option<String>,
    /// Commits audited.
    pub commits: usize,
    /// Whether identities were given to settle debt.
    pub settlement_checked: bool,
    /// Debt entries not settled.
    pub unsettled: usize,
    /// Every usable secret of the current rules, by name, with its debt.
    pub secrets: Vec<SecretAudit>,
    /// One line each: what was skipped and why.
    pub warnings: Vec<String>,
}

impl Report {
    /// The unsettled debt, as (secret, debt) pairs.
    pub fn unsettled_debt(&self) -> impl Iterator<Item = (&SecretAudit, &Debt)> {
        self.secrets
            .iter()
            .flat_map(|s| s.debt.iter().map(move |d| (s, d)))
            .filter(|(_, d)| !d.settled)
    }
}

impl Plan {
    /// Whether any debt was found.
    pub fn has_debt(&self) -> bool {
        self.secrets.iter().any(|s| !s.debt.is_empty())
    }

    /// The headers settlement would decrypt (to unlock the identities they need).
    pub fn headers(&self) -> Vec<Header> {
        let versions = self.blobs.iter().map(|b| b.as_slice());
        let current = self.current.values().filter_map(|c| c.as_ref().ok());
        versions
            .chain(current.map(|c| c.as_slice()))
            .filter_map(|b| Header::parse(b).ok())
            .collect()
    }
}

/// Who a stanza stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    /// A stanza the current rule does not explain (anonymous ones: one per kind, whatever
    /// their number, `count` 0).
    Stray(Stray),
    /// A key of the rule that introduced the version, by its anonymous stanza.
    Key { kind: &'static str, key: String },
}

/// A public key with the name it is known by.
struct Known {
    recipient: Recipient,
    name: Option<(String, NamedFrom)>,
}

/// Every key seen in the current and historical rules, best name first.
#[derive(Default)]
struct Names {
    known: Vec<Known>,
    parsed: HashMap<String, Option<Recipient>>,
}

impl Names {
    fn parse(&mut self, key: &str) -> Option<Recipient> {
        self.parsed
            .entry(key.to_string())
            .or_insert_with(|| Recipient::parse(key).ok())
            .clone()
    }

    fn add(&mut self, key: &str, name: Option<(String, NamedFrom)>) {
        let Some(r) = self.parse(key) else {
            return;
        };
        match self
            .known
            .iter_mut()
            .find(|k| k.recipient.matches_key(&r.text))
        {
            Some(k) if k.name.is_none() => k.name = name,
            Some(_) => {}
            None => self.known.push(Known { recipient: r, name }),
        }
    }

    /// The bindings of a rules file's `let` block, then the keys of its rules.
    fn add_file(&mut self, text: &str, entries: &[RuleEntry], from: NamedFrom) {
        if let Some(layout) = super::syntax::layout(text) {
            for b in layout.bindings {
                if let Some(key) = &b.key {
                    self.add(key, Some((b.name, from)));
                }
            }
        }
        for e in entries {
            if let Ok(rule) = &e.rule {
                for k in &rule.public_keys {
                    self.add(k, None);
                }
            }
        }
    }

    fn by_tag(&self, tag: &str) -> Option<&Known> {
        let named = self
            .known
            .iter()
            .find(|k| k.name.is_some() && k.recipient.tag.as_deref() == Some(tag));
        named.or_else(|| {
            self.known
                .iter()
                .find(|k| k.recipient.tag.as_deref() == Some(tag))
        })
    }

    fn by_key(&self, key: &str) -> Option<&Known> {
        self.known.iter().find(|k| k.recipient.matches_key(key))
    }
}

/// The current rule's recipients, as a header is compared with them.
struct Current {
    recipients: Vec<Recipient>,
}

impl Current {
    fn of(keys: &[String], names: &mut Names) -> Current {
        Current {
            recipients: keys.iter().filter_map(|k| names.parse(k)).collect(),
        }
    }
}

/// Where one version of a secret was seen: commit indices, newest first.
struct Seen {
    newest: usize,
    oldest: usize,
}

/// A historical `secrets.nix`, evaluated.
type Evaluated = Option<Arc<Vec<RuleEntry>>>;

/// `path` relative to `workdir`, `/`-separated; `None` when outside it.
fn relative(workdir: &Path, path: &Path) -> Result<Option<String>, AuditError> {
    let abs = crate::git::resolve(path)?;
    Ok(crate::git::index_path(workdir, &abs).and_then(Result::ok))
}

fn commit_info(c: &git2::Commit<'_>) -> CommitInfo {
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

/// Historical blobs larger than this are never read whole (see the module doc).
pub const MAX_WHOLE_BLOB: usize = 64 << 20;

/// The size of the blob `oid`, from its object header (nothing inflated).
fn blob_size(odb: &git2::Odb<'_>, oid: git2::Oid) -> Result<usize, git2::Error> {
    odb.read_header(oid).map(|(size, _)| size)
}

/// The age header of the blob `oid` of `size` bytes: read whole when small, else from the
/// start of a stream. `Err` is why it is skipped.
fn header_of_blob(
    repo: &git2::Repository,
    odb: &git2::Odb<'_>,
    oid: git2::Oid,
    size: usize,
) -> Result<Header, String> {
    if size <= MAX_WHOLE_BLOB {
        let blob = repo
            .find_blob(oid)
            .map_err(|e| crate::text::collapse_whitespace(e.message()))?;
        return Header::parse(blob.content()).map_err(|e| e.to_string());
    }
    let mib = size >> 20;
    match odb.reader(oid) {
        Ok((reader, _, _)) => Header::read_from(reader).map_err(|e| {
            format!(
                "{e}; {mib} MiB, over {} MiB: only its start was read",
                MAX_WHOLE_BLOB >> 20
            )
        }),
        Err(_) => Err(format!(
            "{mib} MiB, over {} MiB and packed (cannot be streamed): not read",
            MAX_WHOLE_BLOB >> 20
        )),
    }
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

/// Walks the history of the repository holding `rules` and reads the headers of every
/// committed version of the files the rules name. `rules_text` is the current rules file's
/// text (names recipients by binding). `since`: audit only the commits after that revision.
pub fn plan(
    rules: &Rules,
    rules_text: Option<&str>,
    since: Option<&str>,
) -> Result<Plan, AuditError> {
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
    let Some((repo, workdir)) = opened else {
        return Err(AuditError::NotARepository { dir: start });
    };
    let git = |what: &str| {
        let repo = workdir.clone();
        let what = what.to_string();
        move |source| AuditError::Git { repo, what, source }
    };

    let mut warnings = Vec::new();
    if repo.is_shallow() {
        warnings.push(format!(
            "{}: a shallow clone: commits before its boundary are not audited",
            workdir.display()
        ));
    }

    // The commits, newest first.
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
                    repo: workdir.clone(),
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
    let infos: Vec<CommitInfo> = commits.iter().map(commit_info).collect();

    // Names: the current file first, then historical versions, newest first.
    let mut names = Names::default();
    if let Some(text) = rules_text {
        names.add_file(text, &rules.entries, NamedFrom::Current);
    }
    let rules_rel = relative(&workdir, &rules.path)?;
    let mut evaluated: HashMap<git2::Oid, Evaluated> = HashMap::new();
    // The secrets.nix version of each commit.
    let mut rules_at: Vec<Option<git2::Oid>> = Vec::with_capacity(commits.len());
    // What each audited secret looks like, and its versions.
    struct Audited<'r> {
        entry: &'r RuleEntry,
        path: String,
        versions: Vec<(git2::Oid, Seen)>,
        index: HashMap<git2::Oid, usize>,
        /// A non-file was already warned about.
        warned: bool,
    }
    let mut audited = Vec::new();
    for entry in &rules.entries {
        if let Err(e) = &entry.rule {
            warnings.push(format!("{e}: not audited"));
            continue;
        }
        let file = rules.file_of(&entry.name);
        match relative(&workdir, &file)? {
            Some(path) => audited.push(Audited {
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

    for (ci, commit) in commits.iter().enumerate() {
        let tree = commit.tree().map_err(git("reading a commit's tree"))?;
        let rules_blob = rules_rel
            .as_deref()
            .and_then(|r| blob_at(&tree, r).ok().flatten());
        rules_at.push(rules_blob);
        if let Some(oid) = rules_blob {
            if let std::collections::hash_map::Entry::Vacant(slot) = evaluated.entry(oid) {
                match evaluate_historical(&repo, oid, rules, &infos[ci], &mut names) {
                    Ok(entries) => {
                        slot.insert(Some(entries));
                    }
                    Err(w) => {
                        warnings.push(w);
                        slot.insert(None);
                    }
                }
            }
        }
        for a in &mut audited {
            match blob_at(&tree, &a.path) {
                Ok(Some(oid)) => match a.index.get(&oid) {
                    Some(&i) => a.versions[i].1.oldest = ci,
                    None => {
                        a.index.insert(oid, a.versions.len());
                        a.versions.push((
                            oid,
                            Seen {
                                newest: ci,
                                oldest: ci,
                            },
                        ));
                    }
                },
                Ok(None) => {}
                Err(why) if !a.warned => {
                    a.warned = true;
                    warnings.push(format!(
                        "{} at commit {}: {why}: skipped",
                        a.path, infos[ci].short
                    ));
                }
                Err(_) => {}
            }
        }
    }

    let odb = repo.odb().map_err(git("opening the object database"))?;
    let mut blobs: Vec<Arc<Vec<u8>>> = Vec::new();
    let mut too_large: HashMap<usize, usize> = HashMap::new();
    let mut blob_index: HashMap<git2::Oid, usize> = HashMap::new();
    let mut current_files = HashMap::new();
    let mut secrets = Vec::new();
    for a in audited {
        let Ok(rule) = &a.entry.rule else { continue };
        let current = Current::of(&rule.public_keys, &mut names);
        // Who could decrypt, with the newest commit index and its version.
        let mut found: HashMap<Who, (usize, git2::Oid, Evidence)> = HashMap::new();
        let mut record = |who: Who, seen: &Seen, oid: git2::Oid, evidence: Evidence| {
            let e = found.entry(who).or_insert((seen.newest, oid, evidence));
            if seen.newest < e.0 {
                *e = (seen.newest, oid, evidence);
            }
        };
        for (oid, seen) in &a.versions {
            let size = blob_size(&odb, *oid).map_err(git("reading a blob"))?;
            let header = match header_of_blob(&repo, &odb, *oid, size) {
                Ok(h) => h,
                Err(e) => {
                    warnings.push(format!(
                        "{} at commit {}: {e}: this version is skipped",
                        a.path, infos[seen.oldest].short
                    ));
                    continue;
                }
            };
            // Anonymous stanzas are attributed by the rule of the commit that introduced them.
            let historical = rules_at[seen.oldest]
                .and_then(|o| evaluated.get(&o).cloned().flatten())
                .and_then(|entries| {
                    let e = entries.iter().find(|e| e.name == a.entry.name)?;
                    let keys = &e.rule.as_ref().ok()?.public_keys;
                    keys.iter()
                        .map(|k| names.parse(k))
                        .collect::<Option<Vec<_>>>()
                });
            for (who, evidence) in former_recipients(&header, &current, historical.as_deref()) {
                record(who, seen, *oid, evidence);
            }
        }
        let mut debt: Vec<Debt> = Vec::new();
        for (who, (ci, oid, evidence)) in found {
            let version = match blob_index.get(&oid) {
                Some(&i) => i,
                None => {
                    let size = blob_size(&odb, oid).map_err(git("reading a blob"))?;
                    if size <= MAX_WHOLE_BLOB {
                        let blob = repo.find_blob(oid).map_err(git("reading a blob"))?;
                        blobs.push(Arc::new(blob.content().to_vec()));
                    } else {
                        too_large.insert(blobs.len(), size);
                        blobs.push(Arc::new(Vec::new()));
                    }
                    blob_index.insert(oid, blobs.len() - 1);
                    blobs.len() - 1
                }
            };
            debt.push(describe(&who, &names, infos[ci].clone(), evidence, version));
        }
        debt.sort_by(|a, b| (&a.recipient, &a.kind).cmp(&(&b.recipient, &b.kind)));
        if !debt.is_empty() {
            let file = rules.file_of(&a.entry.name);
            let bytes = crate::fsutil::read_regular(&file)
                .map(Arc::new)
                .map_err(|e| e.to_string());
            current_files.insert(a.entry.name.clone(), bytes);
        }
        secrets.push(SecretAudit {
            name: a.entry.name.clone(),
            path: a.path,
            versions: a.versions.len(),
            debt,
        });
    }
    Ok(Plan {
        repository: workdir.clone(),
        since: since.map(str::to_owned),
        commits: commits.len(),
        secrets,
        warnings,
        blobs,
        too_large,
        current: current_files,
    })
}

/// Who could decrypt a version with `header` and is not among the `current` rule's
/// recipients (the strays of [`presence::match_header`], as `status` and `access` see
/// them); `historical` is the rule of the commit that introduced the version (its keys),
/// which attributes anonymous stanzas (see the module docs).
fn former_recipients(
    header: &Header,
    current: &Current,
    historical: Option<&[Recipient]>,
) -> Vec<(Who, Evidence)> {
    let now: Vec<&Recipient> = current.recipients.iter().collect();
    let m = presence::match_header(&now, header);
    // Anonymous stanzas the rule of that commit accounts for, key by key: present by count
    // (as many keys of that kind as stanzas, and no plugin recipient, which may write
    // stanzas of any type).
    let mut attributed: Vec<(RecipientKind, &Recipient)> = Vec::new();
    if let Some(h) = historical {
        let then: Vec<&Recipient> = h.iter().collect();
        let hm = presence::match_header(&then, header);
        for (r, p) in then.iter().zip(&hm.recipients) {
            let anonymous = hm.count(r.kind).is_some();
            if anonymous && *p == Presence::Present {
                attributed.push((r.kind, r));
            }
        }
    }
    let mut out = Vec::new();
    for stray in m.stray {
        let stray = match stray {
            Stray::Anonymous { kind, .. } if attributed.iter().any(|(k, _)| *k == kind) => continue,
            Stray::Anonymous { kind, .. } => Stray::Anonymous { kind, count: 0 },
            other => other,
        };
        out.push((Who::Stray(stray), Evidence::Header));
    }
    for (kind, k) in attributed {
        if !now.iter().any(|n| n.matches_key(&k.text)) {
            let who = Who::Key {
                kind: kind.as_str(),
                key: k.text.clone(),
            };
            out.push((who, Evidence::Rule));
        }
    }
    out
}

/// Who `audit` finds in `header` outside `rule` with no history to attribute anonymous
/// stanzas: their names (test support for the one-model property test).
#[cfg(test)]
pub(crate) fn header_debt(header: &Header, rule: &[Recipient]) -> Vec<String> {
    let current = Current {
        recipients: rule.to_vec(),
    };
    former_recipients(header, &current, None)
        .into_iter()
        .map(|(who, _)| match who {
            Who::Stray(s) => s.name(),
            Who::Key { key, .. } => key,
        })
        .collect()
}

/// Evaluates the `secrets.nix` blob `oid` (as if it were the rules file) and adds its names;
/// `Err` is the warning when it does not evaluate.
fn evaluate_historical(
    repo: &git2::Repository,
    oid: git2::Oid,
    rules: &Rules,
    at: &CommitInfo,
    names: &mut Names,
) -> Result<Arc<Vec<RuleEntry>>, String> {
    let skipped = |why: &str| {
        format!(
            "{} at commit {}: {why}: its bindings are not used",
            rules.path.display(),
            at.short
        )
    };
    let size = repo
        .odb()
        .and_then(|odb| blob_size(&odb, oid))
        .map_err(|e| skipped(&crate::text::collapse_whitespace(e.message())))?;
    if size > MAX_WHOLE_BLOB {
        return Err(skipped(&format!(
            "{} MiB, over {} MiB: not read",
            size >> 20,
            MAX_WHOLE_BLOB >> 20
        )));
    }
    let blob = repo
        .find_blob(oid)
        .map_err(|e| skipped(&crate::text::collapse_whitespace(e.message())))?;
    let text = std::str::from_utf8(blob.content()).map_err(|_| skipped("not UTF-8"))?;
    let entries = crate::rules::evaluate_str(&rules.path, text.to_string())
        .map_err(|e| skipped(&format!("does not evaluate ({e})")))?;
    names.add_file(text, &entries, NamedFrom::History);
    Ok(Arc::new(entries))
}

fn describe(
    who: &Who,
    names: &Names,
    last_commit: CommitInfo,
    evidence: Evidence,
    version: usize,
) -> Debt {
    let from_known = |k: Option<&Known>| match k {
        Some(Known {
            name: Some((n, from)),
            recipient,
        }) => (Some(n.clone()), Some(*from), Some(recipient.text.clone())),
        Some(k) => (None, None, Some(k.recipient.text.clone())),
        None => (None, None, None),
    };
    let (recipient, kind, tag, key, named_from) = match who {
        Who::Stray(stray @ Stray::Tag { kind, tag }) => {
            let (name, from, key) = from_known(names.by_tag(tag));
            let shown = name
                .or_else(|| key.as_deref().map(abbreviate))
                .unwrap_or_else(|| stray.name());
            (
                shown,
                kind.as_str().to_string(),
                Some(tag.clone()),
                key,
                from,
            )
        }
        Who::Key { kind, key } => {
            let (name, from, _) = from_known(names.by_key(key));
            let shown = name.unwrap_or_else(|| abbreviate(key));
            (shown, kind.to_string(), None, Some(key.clone()), from)
        }
        Who::Stray(s) => (s.name(), s.stanza_type(), None, None, None),
    };
    Debt {
        recipient,
        kind,
        tag,
        key,
        named_from,
        evidence,
        last_commit,
        settled: false,
        note: None,
        version,
    }
}

/// Whether a value changed after a version, as decided by decrypting both.
enum Settlement {
    Rotated,
    Unchanged,
    Unknown(String),
}

/// Settles the plan's debt with `keys` (none: nothing is settled) and reports what remains.
pub fn execute<K: DecryptionKeys + ?Sized>(mut plan: Plan, keys: Option<&K>) -> Report {
    if let Some(keys) = keys {
        for s in &mut plan.secrets {
            if s.debt.is_empty() {
                continue;
            }
            let current = plan.current.get(&s.name);
            let mut current_plain: Option<Result<Zeroizing<Vec<u8>>, String>> = None;
            let mut decided: HashMap<usize, Settlement> = HashMap::new();
            for d in &mut s.debt {
                let short = d.last_commit.short.clone();
                let outcome = decided.entry(d.version).or_insert_with(|| {
                    if let Some(size) = plan.too_large.get(&d.version) {
                        return Settlement::Unknown(format!(
                            "the version of {short} is {} MiB, over {} MiB: not read",
                            size >> 20,
                            MAX_WHOLE_BLOB >> 20
                        ));
                    }
                    let version = &plan.blobs[d.version];
                    settle(version, current, &mut current_plain, keys, &short)
                });
                match outcome {
                    Settlement::Rotated => {
                        d.settled = true;
                        d.note = Some(format!("the value changed after {short}"));
                    }
                    Settlement::Unchanged => {
                        d.note = Some(format!("the value is unchanged since {short}"));
                    }
                    Settlement::Unknown(why) => d.note = Some(why.clone()),
                }
            }
        }
    }
    let unsettled = plan
        .secrets
        .iter()
        .flat_map(|s| &s.debt)
        .filter(|d| !d.settled)
        .count();
    Report {
        repository: plan.repository,
        since: plan.since,
        commits: plan.commits,
        settlement_checked: keys.is_some(),
        unsettled,
        secrets: plan.secrets,
        warnings: plan.warnings,
    }
}

fn settle<K: DecryptionKeys + ?Sized>(
    version: &[u8],
    current: Option<&Result<Arc<Vec<u8>>, String>>,
    current_plain: &mut Option<Result<Zeroizing<Vec<u8>>, String>>,
    keys: &K,
    short: &str,
) -> Settlement {
    let current = match current {
        Some(Ok(c)) => c,
        Some(Err(why)) => {
            return Settlement::Unknown(format!("cannot read the current file: {why}"))
        }
        None => return Settlement::Unknown("no current file".into()),
    };
    if current.as_slice() == version {
        return Settlement::Unchanged;
    }
    let now = current_plain.get_or_insert_with(|| {
        envelope::decrypt(current, keys)
            .map_err(|e| format!("cannot decrypt the current file: {e}"))
    });
    let now = match now {
        Ok(p) => p,
        Err(why) => return Settlement::Unknown(why.clone()),
    };
    match envelope::decrypt(version, keys) {
        Ok(then) if then.as_slice() == now.as_slice() => Settlement::Unchanged,
        Ok(_) => Settlement::Rotated,
        Err(e) => Settlement::Unknown(format!("cannot decrypt the version of {short}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StanzaKind;

    const ADMIN: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe";

    /// A header with these stanza lines (each `-> …` then a short body) and a MAC.
    fn header(stanzas: &[&str]) -> Vec<u8> {
        let mut s = String::from("age-encryption.org/v1\n");
        for st in stanzas {
            s.push_str(&format!("-> {st}\nAAAA\n"));
        }
        s.push_str(&format!("--- {}\n", "A".repeat(43)));
        s.push_str("payload");
        s.into_bytes()
    }

    /// Commits `files` as the whole tree, on top of HEAD.
    fn commit(repo: &git2::Repository, files: &[(&str, &[u8])], msg: &str, at: i64) {
        let mut tb = repo.treebuilder(None).unwrap();
        for (name, bytes) in files {
            let oid = repo.blob(bytes).unwrap();
            tb.insert(name, oid, 0o100644).unwrap();
        }
        let tree = repo.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::new("t", "t@example.org", &git2::Time::new(at, 0)).unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
            .unwrap();
    }

    #[test]
    fn anonymous_stanzas_are_attributed_by_the_introducing_rule_when_counts_match() {
        const BOB: &str = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";
        const PLUGIN: &str =
            "age1agefleettest1pykvdp8dpxml7tuf4gxhz05w3vktjkz5x2kkqvzfa4fxgq5klgkqvy0xxr";
        let parse = |k: &str| Recipient::parse(k).unwrap();
        let mut names = Names::default();
        let tag = crate::recipient::tag_of(ADMIN).unwrap().unwrap();
        let h = |x25519: usize| Header {
            armored: false,
            stanzas: std::iter::once(StanzaKind::SshEd25519 { tag: tag.clone() })
                .chain(std::iter::repeat_n(StanzaKind::X25519, x25519))
                .collect(),
        };
        let admin_only = Current::of(&[ADMIN.to_string()], &mut names);
        let with_bob = Current::of(&[ADMIN.to_string(), BOB.to_string()], &mut names);
        let then = [parse(ADMIN), parse(BOB)];
        // bob's key was the rule's only X25519 key when the version was written.
        let found = former_recipients(&h(1), &admin_only, Some(&then));
        assert_eq!(
            found,
            [(
                Who::Key {
                    kind: "X25519",
                    key: BOB.to_string()
                },
                Evidence::Rule
            )]
        );
        // Still in the rule: no debt.
        assert!(former_recipients(&h(1), &with_bob, Some(&then)).is_empty());
        // Two stanzas, one key in that rule: unknowable, reported as unknown.
        let anonymous = [(
            Who::Stray(Stray::Anonymous {
                kind: RecipientKind::X25519,
                count: 0,
            }),
            Evidence::Header,
        )];
        assert_eq!(
            former_recipients(&h(2), &admin_only, Some(&then)),
            anonymous
        );
        // A plugin recipient in that rule may have written X25519 stanzas too.
        let with_plugin = [parse(ADMIN), parse(BOB), parse(PLUGIN)];
        assert_eq!(
            former_recipients(&h(1), &admin_only, Some(&with_plugin)),
            anonymous
        );
        // No rule of that commit, and no more stanzas than the current rule has keys.
        assert!(former_recipients(&h(1), &with_bob, None).is_empty());
    }

    #[test]
    fn stanza_kinds_without_tags_are_debt_by_type_and_grease_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let rules_text = format!(
            "let\n  admin = \"{ADMIN}\";\nin {{\n  \"x.age\".publicKeys = [ admin ];\n}}\n"
        );
        let tag = crate::recipient::tag_of(ADMIN).unwrap().unwrap();
        let admin_stanza = format!("ssh-ed25519 {tag} AAAA");
        let old = header(&[
            &admin_stanza,
            "X25519 AAAA",
            "scrypt AAAA 18",
            "piv-p256 AAAA",
            "x!-grease a b",
        ]);
        commit(
            &repo,
            &[("secrets.nix", rules_text.as_bytes()), ("x.age", &old)],
            "old",
            1_700_000_000,
        );
        let new = header(&[&admin_stanza, "y-grease"]);
        commit(
            &repo,
            &[("secrets.nix", rules_text.as_bytes()), ("x.age", &new)],
            "new",
            1_700_000_100,
        );
        std::fs::write(dir.path().join("secrets.nix"), &rules_text).unwrap();
        std::fs::write(dir.path().join("x.age"), &new).unwrap();
        let rules = crate::rules::load(
            &dir.path().join("secrets.nix"),
            crate::rules::EvalMode::Builtin,
        )
        .unwrap();

        let plan = plan(&rules, Some(&rules_text), None).unwrap();
        assert_eq!(plan.commits, 2);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        let report = execute::<crate::identity::IdentitySet>(plan, None);
        let debt: Vec<(&str, &str, Evidence)> = report.secrets[0]
            .debt
            .iter()
            .map(|d| (d.recipient.as_str(), d.kind.as_str(), d.evidence))
            .collect();
        assert_eq!(
            debt,
            [
                ("passphrase (scrypt)", "scrypt", Evidence::Header),
                ("stanza:piv-p256", "piv-p256", Evidence::Header),
                ("unknown X25519 recipient", "X25519", Evidence::Header),
            ]
        );
        let d = &report.secrets[0].debt[0];
        assert_eq!(d.last_commit.summary, "old");
        assert_eq!(d.last_commit.date, "2023-11-14T22:13:20Z");
        assert_eq!(report.unsettled, 3);
        assert_eq!(report.secrets[0].versions, 2);

        // --since the old commit: only the new version, no debt.
        let plan = super::plan(&rules, Some(&rules_text), Some("HEAD~1")).unwrap();
        assert_eq!(plan.commits, 1);
        assert!(!plan.has_debt());
        // A revision that names nothing is its own error.
        assert!(matches!(
            super::plan(&rules, Some(&rules_text), Some("nope")),
            Err(AuditError::BadRevision { .. })
        ));
    }
}
