//! Generated secrets: [`select`] → [`plan`] → [`execute`] → [`Report`].
//!
//! A rule with a `generator` ([`Generator`]) says how its value is made. Without `rotate`,
//! only the secrets whose file does not exist yet are made (so a second run writes nothing);
//! with it, the selected secrets get new values. Each value is made in zeroized memory,
//! encrypted to its rule's recipients (policy such as `pq = true` applies) and written
//! atomically, with its public half (wireguard, ssh-ed25519, age, age-pq) in a companion
//! file `<name without .age>.pub` (public: `0644 & ~umask`; a symlink there is refused). Every
//! selected secret is processed even when others fail; each failure is reported by name and
//! nothing is written for it. The run holds the rules directory's write lock
//! ([`crate::fsutil::lock_for_writing`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::{RecipientCache, RuleRecipientsError, SecretError};
use crate::fsutil::{Batch, FsError, WriteLock};
use crate::identity::IdentitySet;
use crate::names::{normalize_name, NameError};
use crate::recipient::Recipient;
use crate::rules::{Generator, RuleEntry, Rules};

pub mod values;

pub use values::{CompanionError, MakeError};

/// Why one selected secret was not generated. `Display` is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A secret argument that designates no rule (or two).
    #[error("{0}")]
    Name(#[from] NameError),
    /// A `--rotate` pattern that matches no rule with a generator.
    #[error("{}: no rule with a generator matches {pattern:?}", rules.display())]
    NoMatch {
        /// The rules file.
        rules: PathBuf,
        /// The pattern as given.
        pattern: String,
    },
    /// The secret's rule or its recipients are bad.
    #[error("{0}")]
    Rule(#[from] RuleRecipientsError),
    /// The secret's rule has no `generator`.
    #[error("{}: secret {name:?} has no generator: set one in its rule, or write it with edit", rules.display())]
    NoGenerator {
        /// The rules file.
        rules: PathBuf,
        /// The rule name.
        name: String,
    },
    /// A symlink is where the secret or its companion would be written.
    #[error("{}: is a symlink; agefleet does not write through symlinks", path.display())]
    Symlink {
        /// The secret or companion path.
        path: PathBuf,
    },
    /// The companion path is itself a secret the rules name.
    #[error("{}: the public companion of {name:?} would overwrite a secret the rules name", path.display())]
    CompanionIsSecret {
        /// The companion path.
        path: PathBuf,
        /// The rule name whose companion it is.
        name: String,
    },
    /// Making the value failed.
    #[error("{}: {source}", path.display())]
    Make {
        /// The secret file.
        path: PathBuf,
        /// Why.
        #[source]
        source: MakeError,
    },
    /// Encrypting the value failed.
    #[error("{0}")]
    Secret(#[from] SecretError),
    /// Writing the secret or its companion failed.
    #[error("{0}")]
    Write(#[from] FsError),
}

/// What happened to one selected secret (`status` in JSON).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Outcome {
    /// The secret did not exist and was made.
    Created,
    /// The secret existed and got a new value.
    Rotated,
    /// Dry run: it would be made.
    WouldCreate,
    /// Dry run: it would get a new value.
    WouldRotate,
    /// The secret exists; nothing was written.
    Exists {
        /// Its kind has a companion and that file is missing.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        companion_missing: bool,
    },
    /// Nothing was written for it.
    Failed {
        /// Why, one line.
        #[serde(serialize_with = "display")]
        error: GenerateError,
    },
}

fn display<S: serde::Serializer>(e: &GenerateError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

/// One line of the report.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// The secret file as shown (or the argument that named no rule).
    pub file: String,
    /// The generator's kind, when the rule has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The companion file, for kinds with a public half.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub companion: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The result of a run, one line per selected secret in rule order.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Every selected secret and what happened to it.
    pub files: Vec<FileReport>,
    /// Secrets in rotation debt whose rules have no generator (rotate them by hand).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub debt_without_generator: Vec<String>,
}

impl Report {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.files.iter().filter(|r| f(&r.outcome)).count()
    }

    /// How many secrets were made or given new values (or would be, in a dry run).
    pub fn written(&self) -> usize {
        self.count(|o| {
            matches!(
                o,
                Outcome::Created | Outcome::Rotated | Outcome::WouldCreate | Outcome::WouldRotate
            )
        })
    }

    /// How many failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }

    /// The files written (secrets and companions), for `--git-add`.
    pub fn written_files(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Created | Outcome::Rotated))
            .flat_map(|r| std::iter::once(r.file.as_str()).chain(r.companion.as_deref()))
            .collect()
    }
}

/// The secrets a run covers.
#[derive(Debug)]
pub struct Selection<'r> {
    /// Arguments that designate no rule, as failures (reported first).
    unresolved: Vec<FileReport>,
    /// The selected rules, each once.
    entries: Vec<&'r RuleEntry>,
    /// Whether existing secrets get new values.
    rotate: bool,
    /// Debt secrets without a generator (from [`select_debt`]).
    debt_without_generator: Vec<String>,
}

impl Selection<'_> {
    /// The files a run may write (secrets and companions): what
    /// [`crate::fsutil::lock_for_writing`] cleans beside.
    pub fn targets(&self, rules: &Rules) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in &self.entries {
            let path = rules.file_of(&e.name);
            if generator_of(e).is_some_and(Generator::has_companion) {
                out.push(companion_path(&path));
            }
            out.push(path);
        }
        out
    }

    /// How many rules are selected.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no rule is selected.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn generator_of(e: &RuleEntry) -> Option<&Generator> {
    e.rule.as_ref().ok().and_then(|r| r.generator.as_ref())
}

/// The companion of the secret at `path`: `.age` replaced by `.pub` (appended when the name
/// has no `.age`).
pub fn companion_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".age").unwrap_or(&name);
    path.with_file_name(format!("{stem}.pub"))
}

/// The secrets to make: those `secrets` name (read against `cwd`, see [`Rules::resolve`]),
/// or every rule with a generator (and every bad rule, which may be a bad generator) when
/// none is named. With `rotate`, each argument may be a pattern with `*` and `?` matched
/// against the names of the rules with a generator (or a bad rule), and the selected secrets
/// get new values even when they exist.
pub fn select<'r>(
    rules: &'r Rules,
    secrets: &[PathBuf],
    cwd: &Path,
    rotate: bool,
) -> Selection<'r> {
    let mut unresolved = Vec::new();
    let mut entries: Vec<&RuleEntry> = Vec::new();
    let add = |e: &'r RuleEntry, entries: &mut Vec<&'r RuleEntry>| {
        if !entries.iter().any(|s| std::ptr::eq(*s, e)) {
            entries.push(e);
        }
    };
    if secrets.is_empty() {
        for e in &rules.entries {
            if e.rule.is_err() || generator_of(e).is_some() {
                add(e, &mut entries);
            }
        }
    }
    for arg in secrets {
        let text = arg.to_string_lossy();
        if rotate && (text.contains('*') || text.contains('?')) {
            let pattern = normalize_name(&text);
            let matched: Vec<&RuleEntry> = rules
                .entries
                .iter()
                .filter(|e| e.rule.is_err() || generator_of(e).is_some())
                .filter(|e| {
                    crate::names::glob(pattern.as_bytes(), normalize_name(&e.name).as_bytes())
                })
                .collect();
            if matched.is_empty() {
                unresolved.push(FileReport {
                    file: text.into_owned(),
                    kind: None,
                    companion: None,
                    outcome: Outcome::Failed {
                        error: GenerateError::NoMatch {
                            rules: rules.path.clone(),
                            pattern: arg.to_string_lossy().into_owned(),
                        },
                    },
                });
            }
            for e in matched {
                add(e, &mut entries);
            }
            continue;
        }
        match rules.resolve(arg, cwd) {
            Ok(e) => add(e, &mut entries),
            Err(e) => unresolved.push(FileReport {
                file: text.into_owned(),
                kind: None,
                companion: None,
                outcome: Outcome::Failed { error: e.into() },
            }),
        }
    }
    Selection {
        unresolved,
        entries,
        rotate,
        debt_without_generator: Vec::new(),
    }
}

/// The secrets in unsettled rotation debt (as `agefleet audit` reports it) whose rules have a
/// generator, to rotate; the others are listed in the report's `debt_without_generator`.
pub fn select_debt<'r>(rules: &'r Rules, audit: &crate::fleet::audit::Report) -> Selection<'r> {
    let in_debt: HashSet<&str> = audit
        .unsettled_debt()
        .map(|(s, _)| s.name.as_str())
        .collect();
    let mut entries = Vec::new();
    let mut without = Vec::new();
    for e in &rules.entries {
        if !in_debt.contains(e.name.as_str()) {
            continue;
        }
        if generator_of(e).is_some() {
            entries.push(e);
        } else {
            without.push(e.name.clone());
        }
    }
    Selection {
        unresolved: Vec::new(),
        entries,
        rotate: true,
        debt_without_generator: without,
    }
}

/// A secret to make.
#[derive(Debug)]
struct Planned {
    name: String,
    path: PathBuf,
    companion: Option<PathBuf>,
    generator: Generator,
    recipients: Vec<Arc<Recipient>>,
    armor: bool,
    exists: bool,
}

/// What [`execute`] will do, in report order.
#[derive(Debug)]
pub struct Plan {
    /// Each selected secret: decided already (`Err`), or to make.
    items: Vec<Result<Planned, FileReport>>,
    debt_without_generator: Vec<String>,
}

impl Plan {
    /// How many secrets [`execute`] will make.
    pub fn len(&self) -> usize {
        self.items.iter().filter(|i| i.is_ok()).count()
    }

    /// Whether there is nothing to make.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The report of a dry run: what would be made, without making anything.
    pub fn dry_run(self) -> Report {
        let files = self
            .items
            .into_iter()
            .map(|i| match i {
                Ok(p) => FileReport {
                    file: p.path.display().to_string(),
                    kind: Some(p.generator.kind()),
                    companion: p.companion.map(|c| c.display().to_string()),
                    outcome: if p.exists {
                        Outcome::WouldRotate
                    } else {
                        Outcome::WouldCreate
                    },
                },
                Err(decided) => decided,
            })
            .collect();
        Report {
            files,
            debt_without_generator: self.debt_without_generator,
        }
    }
}

/// Phase 1, reading nothing secret: each selected rule's generator and recipients, and
/// whether its file and companion exist. `_lock` is the held write lock.
pub fn plan(rules: &Rules, selection: Selection<'_>, _lock: &WriteLock) -> Plan {
    let planner = Planner {
        rules,
        cache: RecipientCache::for_rules(&rules.path),
        secret_files: rules
            .entries
            .iter()
            .map(|e| crate::names::normalize_path(&rules.file_of(&e.name)))
            .collect(),
        rotate: selection.rotate,
    };
    let mut items: Vec<Result<Planned, FileReport>> =
        selection.unresolved.into_iter().map(Err).collect();
    for entry in selection.entries {
        let path = rules.file_of(&entry.name);
        let generator = generator_of(entry).cloned();
        let companion = generator
            .as_ref()
            .filter(|g| g.has_companion())
            .map(|_| companion_path(&path));
        let planned = planner
            .plan_one(entry, &path, generator.as_ref(), companion.as_ref())
            .map_err(|outcome| FileReport {
                file: path.display().to_string(),
                kind: generator.as_ref().map(Generator::kind),
                companion: companion.as_ref().map(|c| c.display().to_string()),
                outcome,
            });
        items.push(planned);
    }
    Plan {
        items,
        debt_without_generator: selection.debt_without_generator,
    }
}

/// What [`plan`] plans each rule with.
struct Planner<'r> {
    rules: &'r Rules,
    /// Each distinct key parsed once per run.
    cache: RecipientCache,
    /// Every file the rules name (normalized): a companion must not be one of them.
    secret_files: HashSet<PathBuf>,
    rotate: bool,
}

impl Planner<'_> {
    /// One selected rule's plan: what to make, or what was decided already.
    fn plan_one(
        &self,
        entry: &RuleEntry,
        path: &Path,
        generator: Option<&Generator>,
        companion: Option<&PathBuf>,
    ) -> Result<Planned, Outcome> {
        let (rules, secret_files, rotate) = (self.rules, &self.secret_files, self.rotate);
        let failed = |error: GenerateError| Outcome::Failed { error };
        let recipients = self.cache.of(entry).map_err(|e| failed(e.into()))?;
        let Some(generator) = generator.cloned() else {
            return Err(failed(GenerateError::NoGenerator {
                rules: rules.path.clone(),
                name: entry.name.clone(),
            }));
        };
        let exists = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(failed(GenerateError::Symlink {
                    path: path.to_path_buf(),
                }))
            }
            Ok(_) => true,
            Err(_) => false,
        };
        let companion_state = companion.map(std::fs::symlink_metadata);
        if let (Some(c), Some(Ok(m))) = (companion, &companion_state) {
            if m.file_type().is_symlink() {
                return Err(failed(GenerateError::Symlink { path: c.clone() }));
            }
        }
        if let Some(c) = companion {
            if secret_files.contains(&crate::names::normalize_path(c)) {
                return Err(failed(GenerateError::CompanionIsSecret {
                    path: c.clone(),
                    name: entry.name.clone(),
                }));
            }
        }
        if exists && !rotate {
            let companion_missing = matches!(companion_state, Some(Err(_)));
            return Err(Outcome::Exists { companion_missing });
        }
        Ok(Planned {
            name: entry.name.clone(),
            path: path.to_path_buf(),
            companion: companion.cloned(),
            generator,
            recipients,
            armor: entry.rule.as_ref().is_ok_and(|r| r.armor),
            exists,
        })
    }
}

/// A step of [`execute`], for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// One more value was made and encrypted (or failed).
    SecretDone,
    /// Every value is made; the files are being made durable and renamed into place.
    Committing,
}

/// Phase 2: makes each planned value (in parallel; `command`s run in the rules directory),
/// encrypts it and stages it with its companion; then one flush for all and each file renamed
/// into place. `_lock` is the write lock [`plan`] ran under, still held.
pub fn execute(
    rules: &Rules,
    plan: Plan,
    progress: &(dyn Fn(Progress) + Sync),
    _lock: &WriteLock,
) -> Report {
    let batch = Batch::default();
    let new_mode = crate::sys::new_file_mode();
    let public_mode = new_mode & 0o644;
    let made: Vec<Result<Option<Vec<PathBuf>>, GenerateError>> = plan
        .items
        .par_iter()
        .map(|item| {
            let Ok(p) = item else { return Ok(None) };
            let r = make_one(rules, p, &batch, new_mode, public_mode).map(Some);
            progress(Progress::SecretDone);
            r
        })
        .collect();
    progress(Progress::Committing);
    let committed: HashMap<PathBuf, FsError> = batch
        .commit()
        .into_iter()
        .filter_map(|(path, r)| r.err().map(|e| (path, e)))
        .collect();
    let mut committed = committed;
    let files = plan
        .items
        .into_iter()
        .zip(made)
        .map(|(item, made)| match item {
            Err(decided) => decided,
            Ok(p) => {
                let outcome = match made {
                    Err(error) => Outcome::Failed { error },
                    Ok(made) => {
                        let mut failure = None;
                        for f in made.unwrap_or_default() {
                            if let Some(e) = committed.remove(&f) {
                                failure.get_or_insert(e);
                            }
                        }
                        match failure {
                            Some(e) => Outcome::Failed { error: e.into() },
                            None if p.exists => Outcome::Rotated,
                            None => Outcome::Created,
                        }
                    }
                };
                FileReport {
                    file: p.path.display().to_string(),
                    kind: Some(p.generator.kind()),
                    companion: p.companion.map(|c| c.display().to_string()),
                    outcome,
                }
            }
        })
        .collect();
    Report {
        files,
        debt_without_generator: plan.debt_without_generator,
    }
}

/// Makes, encrypts and stages one secret (its companion first: a secret is never committed
/// without it). Returns the staged files.
fn make_one(
    rules: &Rules,
    p: &Planned,
    batch: &Batch,
    new_mode: u32,
    public_mode: u32,
) -> Result<Vec<PathBuf>, GenerateError> {
    let comment = p.name.strip_suffix(".age").unwrap_or(&p.name);
    let made =
        values::make(&p.generator, comment, &rules.dir).map_err(|source| GenerateError::Make {
            path: p.path.clone(),
            source,
        })?;
    let ciphertext = super::encrypt(&p.path, &made.value, &p.recipients, p.armor)?;
    drop(made.value);
    crate::fsutil::create_parent_dirs(&p.path)?;
    let mut staged = Vec::new();
    if let (Some(companion), Some(public)) = (&p.companion, &made.public) {
        batch.stage(companion, public.as_bytes(), public_mode)?;
        staged.push(companion.clone());
    }
    batch.stage(&p.path, &ciphertext, new_mode)?;
    staged.push(p.path.clone());
    Ok(staged)
}

/// A companion that does not match its secret, found by [`check_companions`].
#[derive(Debug, Clone, Serialize)]
pub struct CompanionCheck {
    /// The secret's rule name.
    pub name: String,
    /// The companion file, as shown.
    pub companion: String,
    /// `mismatch`, or why it could not be checked.
    pub problem: String,
    /// Whether the companion was read and differs from the secret's public half.
    pub mismatch: bool,
}

/// Decrypts each existing secret whose generator has a companion and compares the public
/// half it implies with the companion file (key material only; a missing companion is
/// `status`'s to report). Returns the mismatches and the secrets that could not be checked.
pub fn check_companions(rules: &Rules, ids: &IdentitySet) -> Vec<CompanionCheck> {
    rules
        .entries
        .par_iter()
        .filter_map(|e| {
            let generator = generator_of(e).filter(|g| g.has_companion())?;
            let path = rules.file_of(&e.name);
            let companion = companion_path(&path);
            let bytes = super::read_if_present(&path).ok()??;
            let written = crate::fsutil::read_regular(&companion).ok()?;
            let check = |problem: String, mismatch| {
                Some(CompanionCheck {
                    name: e.name.clone(),
                    companion: companion.display().to_string(),
                    problem,
                    mismatch,
                })
            };
            let plaintext = match super::header_of(&path, &bytes)
                .and_then(|h| super::decrypt(&path, &bytes, &h, ids))
            {
                Ok(p) => p,
                Err(e) => return check(format!("not checked: {e}"), false),
            };
            match values::public_of(generator, &plaintext) {
                Ok(Some(expected)) if same_public(&expected, &written) => None,
                Ok(_) => check(
                    format!("does not match the public half of {}", path.display()),
                    true,
                ),
                Err(why) => check(
                    format!(
                        "not checked: {} is not a {} value: {why}",
                        path.display(),
                        generator.kind()
                    ),
                    false,
                ),
            }
        })
        .collect()
}

/// Whether a companion file holds the public half `expected` (the first two fields of an SSH
/// line: a comment may differ).
fn same_public(expected: &str, written: &[u8]) -> bool {
    let Ok(written) = std::str::from_utf8(written) else {
        return false;
    };
    let fields = |s: &str| {
        s.split_whitespace()
            .take(2)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    fields(expected) == fields(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::age_identity::{self, AgeKeyKind};
    use crate::rules::EvalMode;

    /// The verb runs as a library: select → plan → execute makes what is missing (and the
    /// companion), a second plan finds nothing to do, a symlinked companion is refused
    /// without writing the secret, and `check_companions` sees a swapped companion.
    #[test]
    fn generate_runs_as_a_library() {
        let dir = tempfile::tempdir().unwrap();
        let admin = age_identity::generate(AgeKeyKind::X25519, std::time::SystemTime::now());
        std::fs::write(
            dir.path().join("secrets.nix"),
            format!(
                "let k = [ \"{}\" ]; in {{\n\
                 \"a.age\" = {{ publicKeys = k; generator = \"age\"; }};\n\
                 \"h.age\" = {{ publicKeys = k; generator = {{ kind = \"hex\"; bytes = 4; }}; }};\n\
                 \"l.age\" = {{ publicKeys = k; generator = \"wireguard\"; }};\n\
                 \"n.age\".publicKeys = k;\n}}\n",
                admin.recipient
            ),
        )
        .unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("l.pub")).unwrap();
        let rules = crate::rules::load(&dir.path().join("secrets.nix"), EvalMode::Builtin).unwrap();
        let lock = WriteLock::acquire(&rules.dir).unwrap();
        let run = |rotate: &[&str]| {
            let names: Vec<PathBuf> = rotate.iter().map(PathBuf::from).collect();
            let selection = select(&rules, &names, dir.path(), !rotate.is_empty());
            execute(&rules, plan(&rules, selection, &lock), &|_| {}, &lock)
        };
        let statuses = |r: &Report| {
            r.files
                .iter()
                .map(|f| match &f.outcome {
                    Outcome::Failed { error } => format!("failed: {error}"),
                    o => serde_json::to_value(o).unwrap()["status"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                })
                .collect::<Vec<_>>()
        };
        let first = run(&[]);
        let l_pub = dir.path().join("l.pub");
        assert_eq!(
            statuses(&first),
            [
                "created".to_string(),
                "created".to_string(),
                format!(
                    "failed: {}: is a symlink; agefleet does not write through symlinks",
                    l_pub.display()
                ),
            ]
        );
        assert!(!dir.path().join("l.age").exists());
        assert_eq!(first.written_files().len(), 3);

        let ids = {
            let key = dir.path().join("admin.key");
            age_identity::write_new(&key, &admin).unwrap();
            crate::secrets::load_identities(&[key], None).unwrap().0
        };
        let a = dir.path().join("a.age");
        let bytes = std::fs::read(&a).unwrap();
        let header = crate::secrets::header_of(&a, &bytes).unwrap();
        let identity = crate::secrets::decrypt(&a, &bytes, &header, &ids).unwrap();
        assert!(std::str::from_utf8(&identity)
            .unwrap()
            .contains("AGE-SECRET-KEY-1"));
        assert!(check_companions(&rules, &ids).is_empty());

        let second = run(&[]);
        assert_eq!(second.written(), 0);
        assert_eq!(std::fs::read(&a).unwrap(), bytes);

        let rotated = run(&["?.age"]);
        assert_eq!(rotated.written(), 2, "{:?}", statuses(&rotated));
        assert_ne!(std::fs::read(&a).unwrap(), bytes);
        assert!(check_companions(&rules, &ids).is_empty());
        std::fs::write(dir.path().join("a.pub"), format!("{}\n", admin.recipient)).unwrap();
        let checks = check_companions(&rules, &ids);
        assert_eq!(checks.len(), 1);
        assert!(
            checks[0].mismatch && checks[0].name == "a.age",
            "{checks:?}"
        );
    }
}
