//! Drift between the rules and the `.age` files, from headers only (no identity, no
//! decryption): [`scan`] gives one [`Entry`] per rule and per `.age` file found under the
//! rules directory that no rule names, with its [`Problem`]s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::{RecipientCache, RuleRecipientsError, SecretError};
use crate::drift::{self, Drift};
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

/// Inspects every rule's file, then the `.age` files no rule names and the temp files
/// interrupted runs left, under the rules directory. Reads headers only.
pub fn scan(rules: &Rules, progress: &(dyn Fn(Progress) + Sync)) -> Report {
    let cache = RecipientCache::for_rules(&rules.path);
    let (tracker, tracking_error) = match Tracker::open(&rules.dir) {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    };

    let mut entries: Vec<Entry> = rules
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
            inspect(&path, &mut entry, Some(parsed), tracker.as_ref());
            entry
        })
        .collect();
    progress(Progress::HeadersDone);

    // Files no rule names.
    let named: HashSet<String> = rules
        .entries
        .iter()
        .map(|e| normalize_name(&e.name))
        .collect();
    let mut found = Vec::new();
    let mut temps = Vec::new();
    find_age_files(&rules.dir, &rules.dir, &mut found, &mut temps);
    let orphans: Vec<Entry> = found
        .par_iter()
        .filter(|rel| !named.contains(&normalize_name(rel)))
        .map(|rel| {
            let mut entry = Entry::new(rel.clone(), false);
            entry.add(Problem::Orphan);
            inspect(&rules.dir.join(rel), &mut entry, None, tracker.as_ref());
            entry
        })
        .collect();
    entries.extend(orphans);
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

/// A rule's recipients, armor and `pq`, or why they are bad.
type ParsedRule = Result<(Vec<Arc<Recipient>>, bool, bool), RuleRecipientsError>;

/// Fills in what the file itself says: existence, header, drift against the rule, git.
/// `rule` is `None` for orphans (no rule).
fn inspect(path: &Path, entry: &mut Entry, rule: Option<ParsedRule>, tracker: Option<&Tracker>) {
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
    let bytes = match read_header_bytes(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            entry.add(Problem::MissingFile);
            return;
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
            return;
        }
    };
    if tracker.is_some_and(|t| !t.is_tracked(path)) {
        entry.add(Problem::Untracked);
    }
    let header = match super::header_of(path, &bytes) {
        Ok(h) => h,
        Err(e) => {
            entry.add(Problem::Unreadable);
            entry.error.get_or_insert(e.into());
            return;
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

/// The start of a file: enough for any sane header (headers are parsed, never payloads).
/// An armored file's header is base64 inside the armor, so more is read for those.
fn read_header_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const LIMIT: u64 = 1 << 20;
    // Non-blocking open and a regular-file check: a FIFO named like a secret must not hang.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    // Sized from the file (and one byte to see its end): one read per file, not a series of
    // growing ones (five per file made up most of a 10,000-file status's system calls).
    let mut buf = Vec::with_capacity(meta.len().min(LIMIT) as usize + 1);
    file.take(LIMIT).read_to_end(&mut buf)?;
    Ok(buf)
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
