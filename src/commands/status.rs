//! `status [--json]`: drift between the rules and the `.age` files, from headers only (no
//! identity, no decryption). One entry per rule and per `.age` file found under the rules
//! directory. Exit 0 when no entry has a problem, 1 otherwise.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::common::RecipientCache;
use super::{ui, Context, Outcome, Result};
use crate::cli::StatusArgs;
use crate::drift::{self, Drift};
use crate::envelope::Header;
use crate::fsutil::{self, WriteLock};
use crate::git::Tracker;
use crate::names::normalize_name;

/// The problem codes, as printed and in JSON.
pub mod code {
    pub const MISSING_FILE: &str = "missing-file";
    pub const ORPHAN: &str = "orphan";
    pub const RECIPIENTS_DRIFT: &str = "recipients-drift";
    pub const ARMOR_DRIFT: &str = "armor-drift";
    pub const UNTRACKED: &str = "untracked";
    pub const UNREADABLE: &str = "unreadable";
    pub const BAD_RULE: &str = "bad-rule";
    /// A temp file of an interrupted rekey/edit lies beside the secret.
    pub const STALE_TEMP: &str = "stale-temp";
    /// A `pq = true` rule lists a classical recipient, or its file has non-PQ stanzas.
    pub const NOT_POST_QUANTUM: &str = "not-post-quantum";
}

#[derive(Debug, Serialize)]
struct Entry {
    /// The path as in the rules (relative to the rules directory).
    file: String,
    problems: Vec<&'static str>,
    /// Whether a rule names this file.
    rule: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drift: Option<Drift>,
    #[serde(skip_serializing_if = "Option::is_none")]
    armored: Option<bool>,
    /// age plugin recipients of the rule that a header cannot confirm (see `drift`): not
    /// drift, but not checked either.
    #[serde(skip_serializing_if = "is_zero")]
    plugin_recipients_unchecked: usize,
    /// Whether every recipient stanza of the file is post-quantum (from its header).
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum: Option<bool>,
    /// Temp files of interrupted runs beside this secret (rules-directory relative); the next
    /// rekey or edit of the secret removes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stale_temps: Vec<String>,
}

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    let cache = RecipientCache::for_rules(&rules.path);
    let tracker = match Tracker::open(&rules.dir) {
        Ok(t) => t,
        Err(e) => {
            ui::warn(&format!("cannot check git tracking: {e}"));
            None
        }
    };

    let bar = ui::progress(rules.entries.len(), "reading headers");
    let mut entries: Vec<Entry> = rules
        .entries
        .par_iter()
        .inspect(|_| bar.inc(1))
        .map(|e| {
            let path = rules.file_of(&e.name);
            let mut entry = Entry {
                file: e.name.clone(),
                problems: Vec::new(),
                rule: true,
                error: None,
                drift: None,
                armored: None,
                plugin_recipients_unchecked: 0,
                post_quantum: None,
                stale_temps: Vec::new(),
            };
            let parsed = e
                .rule
                .as_ref()
                .map_err(|err| err.to_string())
                .and_then(|r| {
                    cache
                        .parse_all(&e.name, &r.public_keys)
                        .map(|rs| (rs, r.armor, r.pq))
                });
            inspect(&path, &mut entry, parsed, tracker.as_ref());
            entry
        })
        .collect();

    bar.finish_and_clear();

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
            let mut entry = Entry {
                file: rel.clone(),
                problems: vec![code::ORPHAN],
                rule: false,
                error: None,
                drift: None,
                armored: None,
                plugin_recipients_unchecked: 0,
                post_quantum: None,
                stale_temps: Vec::new(),
            };
            inspect(
                &rules.dir.join(rel),
                &mut entry,
                Err(String::new()),
                tracker.as_ref(),
            );
            entry
        })
        .collect();
    entries.extend(orphans);
    // While a rekey/edit holds the write lock its temp files are live, not leftovers.
    if !temps.is_empty() && !WriteLock::is_held(&rules.dir) {
        add_stale_temps(&mut entries, temps);
    }
    entries.sort_by(|a, b| a.file.cmp(&b.file));

    let problems = entries.iter().any(|e| !e.problems.is_empty());
    if args.json {
        ui::out(&serde_json::json!({ "files": entries }).to_string())?;
    } else {
        ui::out_bytes(table(&entries).as_bytes())?;
    }
    Ok(Outcome::from_failed(problems))
}

/// Fills in what the file itself says: existence, header, drift against the rule, git.
/// `rule` is `Err("")` for orphans (no rule), `Err(msg)` for a bad rule.
fn inspect(
    path: &Path,
    entry: &mut Entry,
    rule: std::result::Result<
        (Vec<std::sync::Arc<crate::recipient::Recipient>>, bool, bool),
        String,
    >,
    tracker: Option<&Tracker>,
) {
    match &rule {
        Err(msg) if entry.rule => {
            entry.problems.push(code::BAD_RULE);
            entry.error = Some(msg.clone());
        }
        Ok((recipients, _, pq)) => {
            let recipients: Vec<&crate::recipient::Recipient> =
                recipients.iter().map(|r| r.as_ref()).collect();
            if let Err(e) = crate::policy::check(*pq, &recipients) {
                entry.problems.push(code::NOT_POST_QUANTUM);
                entry.error = Some(e.to_string());
            }
        }
        Err(_) => {}
    }
    let bytes = match read_header_bytes(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            entry.problems.push(code::MISSING_FILE);
            return;
        }
        Err(e) => {
            entry.problems.push(code::UNREADABLE);
            entry
                .error
                .get_or_insert(format!("{}: {e}", path.display()));
            return;
        }
    };
    if tracker.is_some_and(|t| !t.is_tracked(path)) {
        entry.problems.push(code::UNTRACKED);
    }
    let header = match Header::parse(&bytes) {
        Ok(h) => h,
        Err(e) => {
            entry.problems.push(code::UNREADABLE);
            entry
                .error
                .get_or_insert(format!("{}: {e}", path.display()));
            return;
        }
    };
    entry.armored = Some(header.armored);
    entry.post_quantum = Some(header.all_post_quantum());
    if let Ok((recipients, armor, pq)) = rule {
        let recipients: Vec<&crate::recipient::Recipient> =
            recipients.iter().map(|r| r.as_ref()).collect();
        if pq && !header.all_post_quantum() && !entry.problems.contains(&code::NOT_POST_QUANTUM) {
            entry.problems.push(code::NOT_POST_QUANTUM);
            entry.error.get_or_insert(
                "pq = true, but the file is still encrypted to classical keys: rekey it".into(),
            );
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
            entry.problems.push(code::RECIPIENTS_DRIFT);
        }
        if d.armor_drift() {
            entry.problems.push(code::ARMOR_DRIFT);
        }
        if d.any() {
            entry.drift = Some(d);
        }
    }
    entry.problems.sort_by_key(|p| problem_rank(p));
}

/// Marks each secret that has leftover temp files (`(secret, temp)`, rules-directory
/// relative) with [`code::STALE_TEMP`]; a secret with no entry yet (a new file whose first
/// edit was killed) gets its own.
fn add_stale_temps(entries: &mut Vec<Entry>, temps: Vec<(String, String)>) {
    // Indexed: a killed run over many files leaves as many temps.
    let mut index: std::collections::HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (normalize_name(&e.file), i))
        .collect();
    for (secret, temp) in temps {
        let at = *index.entry(normalize_name(&secret)).or_insert_with(|| {
            entries.push(Entry {
                file: secret,
                problems: Vec::new(),
                rule: false,
                error: None,
                drift: None,
                armored: None,
                plugin_recipients_unchecked: 0,
                post_quantum: None,
                stale_temps: Vec::new(),
            });
            entries.len() - 1
        });
        let e = &mut entries[at];
        if !e.problems.contains(&code::STALE_TEMP) {
            e.problems.push(code::STALE_TEMP);
            e.problems.sort_by_key(|p| problem_rank(p));
        }
        e.stale_temps.push(temp);
    }
}

fn problem_rank(p: &str) -> usize {
    [
        code::BAD_RULE,
        code::MISSING_FILE,
        code::ORPHAN,
        code::UNREADABLE,
        code::RECIPIENTS_DRIFT,
        code::ARMOR_DRIFT,
        code::NOT_POST_QUANTUM,
        code::UNTRACKED,
        code::STALE_TEMP,
    ]
    .iter()
    .position(|c| c == &p)
    .unwrap_or(usize::MAX)
}

/// The start of a file: enough for any sane header (headers are parsed, never payloads).
/// An armored file's header is base64 inside the armor, so more is read for those.
fn read_header_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    const LIMIT: u64 = 1 << 20;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking open and a regular-file check: a FIFO named like a secret must not hang.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
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

fn table(entries: &[Entry]) -> String {
    use std::fmt::Write as _;
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let width = entries
        .iter()
        .map(|e| ui::printable(&e.file).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(out, "{:width$}  STATUS", "FILE");
    for e in entries {
        let status = if e.problems.is_empty() {
            paint(color, "32", "ok")
        } else {
            paint(color, "31", &e.problems.join(","))
        };
        let mut detail = Vec::new();
        if let Some(d) = &e.drift {
            if !d.recipients.added.is_empty() {
                detail.push(format!(
                    "not yet encrypted to {} key(s) of the rule",
                    d.recipients.added.len()
                ));
            }
            if !d.recipients.removed_tags.is_empty() {
                detail.push(format!(
                    "still encrypted to {} key(s) the rule dropped",
                    d.recipients.removed_tags.len()
                ));
            }
            if d.recipients.x25519_differs() {
                detail.push(format!(
                    "X25519 recipients: rule {}, file {}",
                    d.recipients.x25519_expected, d.recipients.x25519_found
                ));
            }
            if d.recipients.mlkem768x25519_expected != d.recipients.mlkem768x25519_found {
                detail.push(format!(
                    "post-quantum recipients: rule {}, file {}",
                    d.recipients.mlkem768x25519_expected, d.recipients.mlkem768x25519_found
                ));
            }
            if let Some(a) = d.armor_expected {
                detail.push(if a {
                    "rule wants armor".into()
                } else {
                    "rule wants binary".into()
                });
            }
        }
        if let Some(err) = &e.error {
            detail.push(err.clone());
        }
        if e.plugin_recipients_unchecked > 0 {
            detail.push(format!(
                "{} age plugin recipient(s) not checked: only the plugin could match its stanzas",
                e.plugin_recipients_unchecked
            ));
        }
        for t in &e.stale_temps {
            detail.push(format!("{t}: left by an interrupted run"));
        }
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!("  ({})", ui::printable(&detail.join("; ")))
        };
        let _ = writeln!(out, "{:width$}  {status}{detail}", ui::printable(&e.file));
    }
    out
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}
