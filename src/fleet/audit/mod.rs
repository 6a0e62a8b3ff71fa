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
//! The plan's concerns are submodules: `history` (the git walk, blobs read with bounded
//! memory), `attribution` (who a header shows could decrypt, through [`crate::presence`])
//! and `naming` (what the report calls them); `settlement` is [`execute`].
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
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::envelope::Header;
use crate::recipient::Recipient;
use crate::rules::Rules;

mod attribution;
mod history;
mod naming;
mod settlement;

#[cfg(test)]
pub(crate) use attribution::header_debt;
use attribution::{former_recipients, Current, Evaluated, Found};
use history::KeptVersions;
use naming::Names;
pub use settlement::execute;

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
    current: HashMap<String, Result<Arc<Vec<u8>>, std::io::Error>>,
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

/// Historical blobs larger than this are never read whole (see the module doc).
pub const MAX_WHOLE_BLOB: usize = 64 << 20;

/// Each distinct key text parsed once: the same keys recur in the rules of every commit,
/// for attribution and naming alike.
#[derive(Default)]
struct ParsedKeys(HashMap<String, Option<Recipient>>);

impl ParsedKeys {
    fn parse(&mut self, key: &str) -> Option<Recipient> {
        self.0
            .entry(key.to_string())
            .or_insert_with(|| Recipient::parse(key).ok())
            .clone()
    }
}

/// Walks the history of the repository holding `rules` and reads the headers of every
/// committed version of the files the rules name. `rules_text` is the current rules file's
/// text (names recipients by binding). `since`: audit only the commits after that revision.
///
/// The steps: the walk (`history`) finds each secret's versions and each commit's
/// `secrets.nix`; each version's header is attributed (`attribution`) against the current
/// rule and the rule that introduced it; who is in debt is then named (`naming`).
pub fn plan(
    rules: &Rules,
    rules_text: Option<&str>,
    since: Option<&str>,
) -> Result<Plan, AuditError> {
    let (repo, workdir) = history::open(rules)?;
    let git = |what: &str| history::git_error(&workdir, what);

    let mut warnings = Vec::new();
    if repo.is_shallow() {
        warnings.push(format!(
            "{}: a shallow clone: commits before its boundary are not audited",
            workdir.display()
        ));
    }
    let commits = history::commits(&repo, &workdir, since)?;
    let infos: Vec<CommitInfo> = commits.iter().map(history::commit_info).collect();

    // Names: the current file first, then historical versions, newest first.
    let mut parsed = ParsedKeys::default();
    let mut names = Names::default();
    if let Some(text) = rules_text {
        names.add_file(&mut parsed, text, &rules.entries, NamedFrom::Current);
    }
    let rules_rel = history::relative(&workdir, &rules.path)?;
    let mut files = history::audited_files(rules, &workdir, &mut warnings)?;
    let mut evaluated: HashMap<git2::Oid, Evaluated> = HashMap::new();
    let rules_at = history::walk(
        &commits,
        &infos,
        &workdir,
        rules_rel.as_deref(),
        &mut files,
        &mut warnings,
        |ci, oid, warnings| {
            let entries = match history::historical_rules(&repo, oid, rules, &infos[ci]) {
                Ok((text, entries)) => {
                    names.add_file(&mut parsed, &text, &entries, NamedFrom::History);
                    Some(Arc::new(entries))
                }
                Err(unused) => {
                    warnings.push(unused.to_string());
                    None
                }
            };
            evaluated.insert(oid, entries);
        },
    )?;

    let odb = repo.odb().map_err(git("opening the object database"))?;
    let mut kept = KeptVersions::default();
    let mut current_files = HashMap::new();
    let mut secrets = Vec::new();
    for f in files {
        let Ok(rule) = &f.entry.rule else { continue };
        let current = Current::of(&rule.public_keys, &mut parsed);
        let mut found = Found::default();
        for (oid, seen) in &f.versions {
            let size = history::blob_size(&odb, *oid).map_err(git("reading a blob"))?;
            let header = match history::header_of_blob(&repo, &odb, *oid, size) {
                Ok(h) => h,
                Err(e) => {
                    warnings.push(format!(
                        "{} at commit {}: {e}: this version is skipped",
                        f.path, infos[seen.oldest].short
                    ));
                    continue;
                }
            };
            // Anonymous stanzas are attributed by the rule of the commit that introduced them.
            let then = rules_at[seen.oldest].and_then(|o| evaluated.get(&o));
            let historical = attribution::rule_then(then, &f.entry.name, &mut parsed);
            for (who, evidence) in former_recipients(&header, &current, historical.as_deref()) {
                found.record(who, seen, *oid, evidence);
            }
        }
        let mut debt: Vec<Debt> = Vec::new();
        for (who, (ci, oid, evidence)) in found.into_entries() {
            let version = kept.keep(&repo, &odb, oid).map_err(git("reading a blob"))?;
            debt.push(names.debt(&who, infos[ci].clone(), evidence, version));
        }
        debt.sort_by(|a, b| (&a.recipient, &a.kind).cmp(&(&b.recipient, &b.kind)));
        if !debt.is_empty() {
            let file = rules.file_of(&f.entry.name);
            let bytes = crate::fsutil::read_regular(&file).map(Arc::new);
            current_files.insert(f.entry.name.clone(), bytes);
        }
        secrets.push(SecretAudit {
            name: f.entry.name.clone(),
            path: f.path,
            versions: f.versions.len(),
            debt,
        });
    }
    Ok(Plan {
        repository: workdir.clone(),
        since: since.map(str::to_owned),
        commits: commits.len(),
        secrets,
        warnings,
        blobs: kept.blobs,
        too_large: kept.too_large,
        current: current_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
