//! Drift between the rules and the `.age` files, from headers only (no identity, no
//! decryption): [`scan`] gives one [`Entry`] per rule and per `.age` file found under the
//! rules directory that no rule names, with its [`Problem`]s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;

use super::{RecipientCache, RuleRecipientsError, SecretError};
use crate::drift::{self, Drift};
use crate::envelope::{EnvelopeError, Header};
use crate::fsutil::{self, WriteLock};
use crate::git::{GitError, Tracker};
use crate::names::normalize_name;
use crate::policy::NotPostQuantum;
use crate::recipient::Recipient;
use crate::rules::Rules;

/// What can be wrong with a secret, in the order entries list them. Shown (and in JSON) as
/// its code, e.g. `missing-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    /// The rule is bad, or a key it lists is.
    BadRule,
    /// A rule names the file and it does not exist.
    MissingFile,
    /// A `.age` file no rule names.
    Orphan,
    /// The file cannot be read, or its header does not parse.
    Unreadable,
    /// The file's recipients differ from the rule's.
    RecipientsDrift,
    /// The file is armored and the rule wants binary, or the other way round.
    ArmorDrift,
    /// A `pq = true` rule lists a classical recipient, or its file has non-PQ stanzas.
    NotPostQuantum,
    /// Git does not track the file.
    Untracked,
    /// A temp file of an interrupted rekey/edit lies beside the secret.
    StaleTemp,
    /// The secret's generator has a public half and its `.pub` companion file is missing.
    MissingCompanion,
    /// The `.pub` companion does not match the secret (checked only with identities:
    /// [`mark_companions`]).
    CompanionMismatch,
}

impl Problem {
    /// The problem's code, as printed and in JSON.
    pub fn code(self) -> &'static str {
        match self {
            Problem::BadRule => "bad-rule",
            Problem::MissingFile => "missing-file",
            Problem::Orphan => "orphan",
            Problem::Unreadable => "unreadable",
            Problem::RecipientsDrift => "recipients-drift",
            Problem::ArmorDrift => "armor-drift",
            Problem::NotPostQuantum => "not-post-quantum",
            Problem::Untracked => "untracked",
            Problem::StaleTemp => "stale-temp",
            Problem::MissingCompanion => "missing-companion",
            Problem::CompanionMismatch => "companion-mismatch",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The error an entry shows. `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The rule, or a key it lists, is bad.
    #[error("{0}")]
    BadRule(#[from] RuleRecipientsError),
    /// A `pq = true` rule lists a classical recipient.
    #[error("{0}")]
    NotPostQuantum(#[from] NotPostQuantum),
    /// The file cannot be read or its header parsed.
    #[error("{0}")]
    Unreadable(#[from] SecretError),
    /// A `pq = true` rule's file has stanzas for classical keys.
    #[error("pq = true, but the file is still encrypted to classical keys: rekey it")]
    ClassicalStanzas,
}

/// One secret: a rule, a `.age` file no rule names, or the target of a leftover temp file.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The path as in the rules (relative to the rules directory).
    pub file: String,
    /// What is wrong, in [`Problem`] order; empty when all is well.
    pub problems: Vec<Problem>,
    /// Whether a rule names this file.
    pub rule: bool,
    /// The first error found, if any.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_error"
    )]
    pub error: Option<EntryError>,
    /// How the header differs from the rule, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Whether the file is armored (from its header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub armored: Option<bool>,
    /// age plugin recipients of the rule that a header cannot confirm (see `drift`): not
    /// drift, but not checked either.
    #[serde(skip_serializing_if = "is_zero")]
    pub plugin_recipients_unchecked: usize,
    /// Whether every recipient stanza of the file is post-quantum (from its header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_quantum: Option<bool>,
    /// Temp files of interrupted runs beside this secret (rules-directory relative); the next
    /// rekey or edit of the secret removes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale_temps: Vec<String>,
    /// The kind of the rule's `generator`, when it has one (`agefleet generate` makes a
    /// missing file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<&'static str>,
    /// The public companion file, for generators with a public half.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub companion: Option<String>,
    /// Why the companion was found not to match, or could not be checked (with identities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub companion_note: Option<String>,
}

impl Entry {
    fn new(file: String, rule: bool) -> Self {
        Entry {
            file,
            problems: Vec::new(),
            rule,
            error: None,
            drift: None,
            armored: None,
            plugin_recipients_unchecked: 0,
            post_quantum: None,
            stale_temps: Vec::new(),
            generator: None,
            companion: None,
            companion_note: None,
        }
    }

    fn add(&mut self, p: Problem) {
        self.problems.push(p);
    }
}

fn serialize_error<S: serde::Serializer>(e: &Option<EntryError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.collect_str(e),
        None => s.serialize_none(),
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A step of [`scan`], for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// One more rule's file was inspected.
    HeaderRead,
    /// Every rule's file was; the directory is being searched for the others.
    HeadersDone,
}

/// What [`scan`] found.
#[derive(Debug)]
pub struct Report {
    /// One entry per secret, sorted by file.
    pub entries: Vec<Entry>,
    /// Why git tracking could not be checked (then no entry is `untracked`).
    pub tracking_error: Option<GitError>,
}

impl Report {
    /// Whether any entry has a problem.
    pub fn has_problems(&self) -> bool {
        self.entries.iter().any(|e| !e.problems.is_empty())
    }
}

/// What a [`scan`] reads that does not depend on the rules: the `.age` files under the
/// rules directory with their headers, and the temp files interrupted runs left.
/// [`Prefetch::read`] runs while the rules are evaluated, so the two overlap (on a fleet of
/// 10,000 secrets each takes about half of the scan's time).
pub struct Prefetch {
    dir: PathBuf,
    found: Vec<String>,
    temps: Vec<(String, String)>,
    /// By name relative to `dir` (as found): taken by the entry that uses it.
    headers: Mutex<HashMap<String, HeaderRead>>,
}

/// A file's header as read: the read's error, or the parse's.
type HeaderRead = std::io::Result<Result<Header, EnvelopeError>>;

impl Prefetch {
    /// Reads the headers of the `.age` files under `dir` (the directory of the rules file,
    /// before the rules are evaluated). On the calling thread, one file after the other: it
    /// runs beside the evaluator's thread ([`crate::rules::load_alongside`]), and starting
    /// the thread pool here would grow the address space the evaluator's memory budget is
    /// measured against (the git index, whose opening initialises OpenSSL, is left to the
    /// scan for the same reason).
    pub fn read(dir: &Path) -> Prefetch {
        let (found, temps) = age_files_under(dir);
        let headers = found
            .iter()
            .map(|rel| (rel.clone(), read_header(&dir.join(rel))))
            .collect();
        Prefetch {
            dir: dir.to_path_buf(),
            found,
            temps,
            headers: Mutex::new(headers),
        }
    }

    /// The header read for `rel`, if this prefetch read it.
    fn take(&self, rel: &str) -> Option<HeaderRead> {
        self.headers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(rel)
    }
}

/// Inspects every rule's file, then the `.age` files no rule names and the temp files
/// interrupted runs left, under the rules directory. Reads headers only.
pub fn scan(rules: &Rules, progress: &(dyn Fn(Progress) + Sync)) -> Report {
    scan_prefetched(rules, None, progress)
}

/// [`scan`], with the headers and the index `prefetch` read while the rules were evaluated
/// (used only when it read the directory the rule names are relative to; a file it did
/// not read, or read under another name, is read now).
pub fn scan_prefetched(
    rules: &Rules,
    prefetch: Option<Prefetch>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Report {
    let cache = RecipientCache::for_rules(&rules.path);
    let mut prefetch = prefetch.filter(|p| p.dir == rules.dir);
    let (found, temps) = match prefetch.as_mut() {
        Some(p) => (std::mem::take(&mut p.found), std::mem::take(&mut p.temps)),
        None => age_files_under(&rules.dir),
    };
    let prefetch = prefetch.as_ref();
    let read = |rel: &str, path: &Path| {
        prefetch
            .and_then(|p| p.take(rel))
            .unwrap_or_else(|| read_header(path))
    };
    // The git index is opened while the headers are inspected; the files read are then
    // checked against it. Each inspection gives its entry and the file it read, if any.
    let (opened, inspected): (_, Vec<(Entry, Option<PathBuf>)>) = rayon::join(
        || Tracker::open(&rules.dir),
        || {
            let mut inspected: Vec<(Entry, Option<PathBuf>)> = rules
                .entries
                .par_iter()
                .inspect(|_| progress(Progress::HeaderRead))
                .map(|e| {
                    let path = rules.file_of(&e.name);
                    let mut entry = Entry::new(e.name.clone(), true);
                    let parsed = e
                        .rule
                        .as_ref()
                        .map_err(|err| RuleRecipientsError::BadRule(err.clone()))
                        .and_then(|r| {
                            cache
                                .parse_all(&e.name, &r.public_keys)
                                .map(|rs| (rs, r.armor, r.pq))
                        });
                    let was_read = inspect(&path, &mut entry, Some(parsed), read(&e.name, &path));
                    if let Some(g) = e.rule.as_ref().ok().and_then(|r| r.generator.as_ref()) {
                        entry.generator = Some(g.kind());
                        if g.has_companion() {
                            let companion = super::generate::companion_path(&path);
                            if !entry.problems.contains(&Problem::MissingFile)
                                && std::fs::symlink_metadata(&companion).is_err()
                            {
                                entry.add(Problem::MissingCompanion);
                                entry.problems.sort();
                            }
                            entry.companion = Some(companion.display().to_string());
                        }
                    }
                    (entry, was_read.then_some(path))
                })
                .collect();
            progress(Progress::HeadersDone);
            // Files no rule names.
            let named: HashSet<String> = rules
                .entries
                .iter()
                .map(|e| normalize_name(&e.name))
                .collect();
            let orphans = found
                .par_iter()
                .filter(|rel| !named.contains(&normalize_name(rel)))
                .map(|rel| {
                    let mut entry = Entry::new(rel.clone(), false);
                    entry.add(Problem::Orphan);
                    let path = rules.dir.join(rel);
                    let was_read = inspect(&path, &mut entry, None, read(rel, &path));
                    (entry, was_read.then_some(path))
                });
            inspected.par_extend(orphans);
            inspected
        },
    );
    let (tracker, tracking_error) = match opened {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    };
    let mut entries: Vec<Entry> = inspected
        .into_par_iter()
        .map(|(mut entry, read)| {
            if let (Some(t), Some(path)) = (&tracker, read) {
                if !t.is_tracked(&path) {
                    entry.add(Problem::Untracked);
                    entry.problems.sort();
                }
            }
            entry
        })
        .collect();
    // While a rekey/edit holds the write lock its temp files are live, not leftovers.
    if !temps.is_empty() && !WriteLock::is_held(&rules.dir) {
        add_stale_temps(&mut entries, temps);
    }
    entries.sort_by(|a, b| a.file.cmp(&b.file));
    Report {
        entries,
        tracking_error,
    }
}

/// Marks the entries whose companion [`super::generate::check_companions`] found not to
/// match ([`Problem::CompanionMismatch`]) or could not check (a note only).
pub fn mark_companions(report: &mut Report, checks: &[super::generate::CompanionCheck]) {
    for c in checks {
        if let Some(e) = report
            .entries
            .iter_mut()
            .find(|e| e.rule && e.file == c.name)
        {
            if c.mismatch && !e.problems.contains(&Problem::CompanionMismatch) {
                e.add(Problem::CompanionMismatch);
                e.problems.sort();
            }
            e.companion_note = Some(c.problem.clone());
        }
    }
}

/// A rule's recipients, armor and `pq`, or why they are bad.
type ParsedRule = Result<(Vec<Arc<Recipient>>, bool, bool), RuleRecipientsError>;

/// Fills in what the file itself says: existence, header, drift against the rule, git.
/// `rule` is `None` for orphans (no rule).
/// Judges the file at `path` (as `read`) against its rule; whether the file could be read
/// (then its git tracking is checked too).
fn inspect(path: &Path, entry: &mut Entry, rule: Option<ParsedRule>, read: HeaderRead) -> bool {
    let rule = match rule {
        Some(Err(e)) => {
            entry.add(Problem::BadRule);
            entry.error = Some(e.into());
            None
        }
        Some(Ok((recipients, armor, pq))) => {
            if let Err(e) = crate::policy::check(pq, &super::refs(&recipients)) {
                entry.add(Problem::NotPostQuantum);
                entry.error = Some(e.into());
            }
            Some((recipients, armor, pq))
        }
        None => None,
    };
    let parsed = match read {
        Ok(parsed) => parsed,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            entry.add(Problem::MissingFile);
            return false;
        }
        Err(source) => {
            entry.add(Problem::Unreadable);
            entry.error.get_or_insert(
                SecretError::Read {
                    path: path.to_path_buf(),
                    source,
                }
                .into(),
            );
            return false;
        }
    };
    let header = match parsed.map_err(|source| super::header_error(path, source)) {
        Ok(h) => h,
        Err(e) => {
            entry.add(Problem::Unreadable);
            entry.error.get_or_insert(e.into());
            return true;
        }
    };
    entry.armored = Some(header.armored);
    entry.post_quantum = Some(header.all_post_quantum());
    if let Some((recipients, armor, pq)) = rule {
        let recipients = super::refs(&recipients);
        if pq && !header.all_post_quantum() && !entry.problems.contains(&Problem::NotPostQuantum) {
            entry.add(Problem::NotPostQuantum);
            entry.error.get_or_insert(EntryError::ClassicalStanzas);
        }
        let d = drift::compare(&recipients, armor, &header);
        entry.plugin_recipients_unchecked = d.recipients.plugins_unchecked;
        // A plugin's stanzas cannot be judged from the header (they look like grease, which
        // `all_post_quantum` ignores): a file with plugin recipients is not called
        // post-quantum.
        if d.recipients.plugins_unchecked > 0 {
            entry.post_quantum = Some(false);
        }
        if d.recipients_drift() {
            entry.add(Problem::RecipientsDrift);
        }
        if d.armor_drift() {
            entry.add(Problem::ArmorDrift);
        }
        if d.any() {
            entry.drift = Some(d);
        }
    }
    entry.problems.sort();
    true
}

/// Marks each secret that has leftover temp files (`(secret, temp)`, rules-directory
/// relative) with [`Problem::StaleTemp`]; a secret with no entry yet (a new file whose first
/// edit was killed) gets its own.
fn add_stale_temps(entries: &mut Vec<Entry>, temps: Vec<(String, String)>) {
    // Indexed: a killed run over many files leaves as many temps.
    let mut index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (normalize_name(&e.file), i))
        .collect();
    for (secret, temp) in temps {
        let at = *index.entry(normalize_name(&secret)).or_insert_with(|| {
            entries.push(Entry::new(secret, false));
            entries.len() - 1
        });
        let e = &mut entries[at];
        if !e.problems.contains(&Problem::StaleTemp) {
            e.add(Problem::StaleTemp);
            e.problems.sort();
        }
        e.stale_temps.push(temp);
    }
}

/// Reads and parses the header of the file at `path`.
fn read_header(path: &Path) -> HeaderRead {
    read_header_bytes(path).map(|bytes| Header::parse(&bytes))
}

/// The start of a file: enough for any sane header (headers are parsed, never payloads).
/// An armored file's header is base64 inside the armor, so more is read for those.
fn read_header_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use crate::fsutil::{read_guarded, GuardedReadError, ReadGuard};
    const LIMIT: u64 = 1 << 20;
    // A FIFO named like a secret must not hang; a huge file is read only as far as a header.
    let guard = ReadGuard {
        limit: Some(LIMIT),
        truncate: true,
        ..ReadGuard::default()
    };
    match read_guarded(path, guard) {
        Ok(mut read) => Ok(std::mem::take(&mut *read.bytes)),
        Err(GuardedReadError::Directory) => Err(std::io::Error::other("not a regular file")),
        Err(e) => Err(e.into_io()),
    }
}

/// The `.age` files under `dir` and the temp files killed runs left there, relative to it
/// ([`find_age_files`]).
fn age_files_under(dir: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let (mut found, mut temps) = (Vec::new(), Vec::new());
    find_age_files(dir, dir, &mut found, &mut temps);
    (found, temps)
}

/// Collects `.age` files under `dir` (relative to `root`), skipping hidden directories
/// (`.git`) and not following symlinked directories; and the temp files agefleet leaves
/// when killed, as `(secret, temp)`.
fn find_age_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<String>,
    temps: &mut Vec<(String, String)>,
) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if name.to_string_lossy().starts_with('.') {
            if !is_dir {
                temps.extend(leftover(root, &e.path()));
            }
            continue; // .git, editor droppings, agefleet temp files
        }
        children.insert(e.path(), is_dir);
    }
    for (path, is_dir) in children {
        if is_dir {
            find_age_files(root, &path, out, temps);
        } else if path.extension().is_some_and(|x| x == "age") {
            if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
}

/// `(secret, temp)` relative to `root` when `path` is an agefleet temp file.
fn leftover(root: &Path, path: &Path) -> Option<(String, String)> {
    let secret = path.with_file_name(fsutil::temp_target(path.file_name()?)?);
    let rel = |p: &Path| Some(p.strip_prefix(root).ok()?.to_string_lossy().into_owned());
    Some((rel(&secret)?, rel(path)?))
}
