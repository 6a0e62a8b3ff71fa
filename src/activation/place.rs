//! Placing one secret (the activation's install phase, agenix's `agenixInstall`): where it
//! goes (planning), writing it atomically, and giving it its owner. Named `place` so it is not
//! confused with first-install provisioning ([`crate::provision`]) or `install-with-secrets`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::manifest::{Manifest, SecretSpec, TemplateSpec};
use super::mode::ModeError;
use super::paths::{self, UnsetVariable};
use super::render::{Parsed, Placeholders, TemplateError};
use super::state::Record;
use super::units::{self, InvalidUnitName};
use super::{Layout, SecretFailure};
use crate::envelope::EnvelopeError;
use crate::identity::IdentitySet;
use crate::platform::atomic::{self, Existing, FileId, Fingerprint, WriteOptions};
use crate::platform::walk::{self, Missing, WalkError};
use crate::{sys, text};

/// Mode of the missing parent directories of a custom `path` that activation creates.
const PARENT_MODE: u32 = 0o755;

/// Where the plaintext of a secret ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `secretsDir/name` (the default `path`): the file in the generation only.
    Generation,
    /// A custom `path` with `symlink = true`: the file in the generation and a symlink at
    /// `path` pointing at `secretsDir/name`.
    Link(PathBuf),
    /// A custom `path` with `symlink = false`: the file itself at `path`, not in the generation.
    File(PathBuf),
}

/// Where the content of a planned file comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A secret: its `.age` file (in the Nix store), decrypted.
    Age(PathBuf),
    /// A template: its text and placeholders, rendered with the secrets' plaintext.
    Template {
        /// The template's text (public: placeholders, no secrets).
        content: String,
        /// The text split at its placeholders.
        parsed: Parsed,
    },
}

/// A secret or template whose name, mode, path and units have been checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The secret's (or template's) name in the manifest.
    pub name: String,
    /// What it holds.
    pub source: Source,
    /// The mode it is given.
    pub mode: u32,
    /// Its owner (a user name or numeric id).
    pub owner: String,
    /// Its group (a group name or numeric id).
    pub group: String,
    /// Where it goes.
    pub target: Target,
    /// Units to restart when its content changes.
    pub restart_units: Vec<String>,
    /// Units to reload when its content changes.
    pub reload_units: Vec<String>,
}

impl Plan {
    /// Whether this is a template (rendered, not decrypted).
    pub fn is_template(&self) -> bool {
        matches!(self.source, Source::Template { .. })
    }
}

/// Why a secret or template cannot be planned; it fails alone, the others go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    /// Another secret has the same name.
    #[error("duplicate secret name in the manifest")]
    DuplicateSecret,
    /// A template has the name of a secret or of another template.
    #[error("a secret or template of the same name is in the manifest")]
    DuplicateName,
    /// The name is not a relative path of normal components ([`paths::check_name`]).
    #[error("refused: {0}")]
    Name(&'static str),
    /// A secret without its `.age` file.
    #[error("no encrypted file given")]
    NoFile,
    /// A template's text uses a placeholder of no secret.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The mode is refused.
    #[error(transparent)]
    Mode(#[from] ModeError),
    /// A unit of `restartUnits` or `reloadUnits` is not a systemd unit name.
    #[error("{field}: {source}")]
    Unit {
        field: &'static str,
        source: InvalidUnitName,
    },
    /// `path` uses a variable that is not set.
    #[error("path: {0}")]
    PathVariable(#[source] UnsetVariable),
    /// `path`, expanded, is not an absolute, normal path ([`paths::check_absolute`]).
    #[error("path `{expanded}`: {reason}")]
    PathNotAbsolute {
        expanded: String,
        reason: &'static str,
    },
    /// `path` is inside the generations but not the secret's own place there.
    #[error(
        "path `{}` is inside secretsDir or secretsMountPoint but is not secretsDir/{name}",
        path.display()
    )]
    InsideGenerations { path: PathBuf, name: String },
    /// Other secrets have the same target path.
    #[error(
        "path `{}` is also the path of secret {}; refusing both",
        path.display(),
        others.join(", ")
    )]
    SharedPath { path: PathBuf, others: Vec<String> },
}

/// A failure of planning `name`, for the report: one line, manifest strings escaped.
fn plan_failure(name: &str, e: &PlanError) -> SecretFailure {
    SecretFailure {
        name: name.to_string(),
        reason: text::escape_controls_owned(e.to_string()),
    }
}

/// Checks every secret and template of `m`; the ones that cannot be planned are returned
/// as failures. Secrets come first, then templates.
pub fn plan(
    m: &Manifest,
    layout: &Layout,
    var: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Plan>, Vec<SecretFailure>) {
    let mut plans = Vec::with_capacity(m.secrets.len());
    let mut failures = Vec::new();
    let mut seen = HashSet::with_capacity(m.secrets.len());
    for spec in &m.secrets {
        let planned = if seen.insert(spec.name.as_str()) {
            plan_one(spec, layout, var)
        } else {
            Err(PlanError::DuplicateSecret)
        };
        match planned {
            Ok(p) => plans.push(p),
            Err(e) => failures.push(plan_failure(&spec.name, &e)),
        }
    }
    let placeholders = if m.templates.is_empty() {
        Placeholders::default()
    } else {
        Placeholders::new(m.secrets.iter().map(|s| s.name.as_str()))
    };
    for spec in &m.templates {
        let planned = if seen.insert(spec.name.as_str()) {
            plan_template(spec, &placeholders, layout, var)
        } else {
            Err(PlanError::DuplicateName)
        };
        match planned {
            Ok(p) => plans.push(p),
            Err(e) => failures.push(plan_failure(&spec.name, &e)),
        }
    }
    refuse_shared_targets(&mut plans, &mut failures, layout);
    (plans, failures)
}

/// The file a plan writes: `secretsDir/name`, or its custom `path`.
pub fn target_path(plan: &Plan, layout: &Layout) -> PathBuf {
    match &plan.target {
        Target::Generation => layout.secrets_dir.join(&plan.name),
        Target::Link(p) | Target::File(p) => p.clone(),
    }
}

/// Two secrets with one target path would both be "installed" and the last write would
/// win: every secret sharing a path fails, naming it, before anything is written.
fn refuse_shared_targets(
    plans: &mut Vec<Plan>,
    failures: &mut Vec<SecretFailure>,
    layout: &Layout,
) {
    let mut by_path: HashMap<PathBuf, Vec<String>> = HashMap::new();
    for p in plans.iter() {
        by_path
            .entry(target_path(p, layout))
            .or_default()
            .push(p.name.clone());
    }
    plans.retain(|p| {
        let path = target_path(p, layout);
        let sharing = &by_path[&path];
        if sharing.len() == 1 {
            return true;
        }
        let others = sharing.iter().filter(|n| **n != p.name).cloned().collect();
        failures.push(plan_failure(
            &p.name,
            &PlanError::SharedPath { path, others },
        ));
        false
    });
}

/// What secrets and templates share in the manifest.
struct Common<'a> {
    name: &'a str,
    mode: &'a str,
    path: &'a str,
    owner: &'a str,
    group: &'a str,
    symlink: bool,
    restart_units: &'a [String],
    reload_units: &'a [String],
}

/// The [`Common`] part of a [`SecretSpec`] or a [`TemplateSpec`]: two types whose shared
/// fields have the same names, so one constructor serves both.
macro_rules! common_of {
    ($spec:expr) => {
        Common {
            name: &$spec.name,
            mode: &$spec.mode,
            path: &$spec.path,
            owner: &$spec.owner,
            group: &$spec.group,
            symlink: $spec.symlink,
            restart_units: &$spec.restart_units,
            reload_units: &$spec.reload_units,
        }
    };
}

fn plan_one(
    spec: &SecretSpec,
    layout: &Layout,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, PlanError> {
    if spec.file.is_empty() || spec.file.contains('\0') {
        paths::check_name(&spec.name).map_err(PlanError::Name)?;
        return Err(PlanError::NoFile);
    }
    common_of!(spec).plan(Source::Age(PathBuf::from(&spec.file)), layout, var)
}

fn plan_template(
    spec: &TemplateSpec,
    secrets: &Placeholders,
    layout: &Layout,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, PlanError> {
    let parsed = Parsed::new(&spec.content, secrets)?;
    let source = Source::Template {
        content: spec.content.clone(),
        parsed,
    };
    common_of!(spec).plan(source, layout, var)
}

impl Common<'_> {
    fn plan(
        &self,
        source: Source,
        layout: &Layout,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Plan, PlanError> {
        paths::check_name(self.name).map_err(PlanError::Name)?;
        let mode = super::mode::parse(self.mode)?;
        let target = self.target(layout, var)?;
        for (field, list) in [
            ("restartUnits", self.restart_units),
            ("reloadUnits", self.reload_units),
        ] {
            for unit in list {
                units::check_unit_name(unit).map_err(|source| PlanError::Unit { field, source })?;
            }
        }
        Ok(Plan {
            name: self.name.to_string(),
            source,
            mode,
            owner: self.owner.to_string(),
            group: self.group.to_string(),
            target,
            restart_units: self.restart_units.to_vec(),
            reload_units: self.reload_units.to_vec(),
        })
    }

    /// Where the file goes: `secretsDir/name`, a link at `path`, or the file at `path`.
    fn target(
        &self,
        layout: &Layout,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, PlanError> {
        let expanded = paths::expand(self.path, var).map_err(PlanError::PathVariable)?;
        let path = paths::check_absolute(&expanded)
            .map_err(|reason| PlanError::PathNotAbsolute { expanded, reason })?;
        if path == layout.secrets_dir.join(self.name) {
            Ok(Target::Generation)
        } else if path.starts_with(&layout.secrets_dir) || path.starts_with(&layout.mount_point) {
            Err(PlanError::InsideGenerations {
                path,
                name: self.name.to_string(),
            })
        } else if self.symlink {
            Ok(Target::Link(path))
        } else {
            Ok(Target::File(path))
        }
    }
}

/// Loads the readable, non-empty identities of `paths`; the others become warnings.
pub(crate) fn load_identities(paths: &[PathBuf]) -> (IdentitySet, Vec<String>) {
    IdentitySet::load_lenient(paths)
}

/// What installing one secret wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Installed {
    /// The file written (in the generation, or at the custom `path`).
    pub id: FileId,
    /// What it holds.
    pub content: Fingerprint,
    /// A `symlink = false` file that landed on a filesystem that is not RAM-backed.
    pub on_disk: bool,
    /// Its content differs from the previous generation's (new, or other bytes); false
    /// when there is no previous generation (the first activation after boot).
    pub changed: bool,
}

/// The generation `secretsDir` pointed at before this activation: what change detection
/// compares against.
pub(crate) struct Previous {
    /// Its directory.
    pub gen: OwnedFd,
    /// What its install wrote (for files outside the generation), when agefleet made it.
    pub record: Option<Record>,
}

/// A secret's plaintext, zeroized when dropped.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// Why one secret or template could not be decrypted, rendered, written or given its
/// owner, or an earlier one's file removed: one line naming the file concerned, never
/// secret material. Activation reports it for that secret alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceError {
    /// A template's plan was given to [`decrypt`].
    #[error("a template is rendered, not decrypted")]
    NotASecret,
    /// A secret's plan was given to be rendered.
    #[error("a secret is decrypted, not rendered")]
    NotATemplate,
    /// The `.age` file could not be decrypted.
    #[error("{}: {source}", path.display())]
    Decrypt {
        /// The `.age` file.
        path: PathBuf,
        /// Why (boxed: it is large, and this is the rare path).
        source: Box<EnvelopeError>,
    },
    /// A template could not be rendered.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A directory on the way to a custom `path` was refused or could not be opened.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// Reading, writing or linking a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The chown phase found no installed file.
    #[error("{}: not installed", path.display())]
    NotInstalled {
        /// Where the file should be.
        path: PathBuf,
    },
    /// The chown phase refused to give the file its owner.
    #[error("{}: {refusal}; not changing its owner", path.display())]
    OwnerRefused {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        refusal: OwnerRefusal,
    },
    /// Changing the owner failed.
    #[error("{}: cannot change owner: {source}", path.display())]
    Chown {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file an earlier activation wrote could not be opened or unlinked.
    #[error("{}: not removed: {source}", path.display())]
    NotRemoved {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file at a path an earlier activation wrote is another file now: it is left.
    #[error("{}: not removed: it is not the file an earlier activation wrote", path.display())]
    NotWritten {
        /// The file.
        path: PathBuf,
    },
    /// A worker thread panicked; its secrets are reported failed.
    #[error("internal error while installing")]
    WorkerPanicked,
}

/// Why the chown phase leaves a file alone: giving it away could hand an attacker's file
/// (or the target of a planted link) to the secret's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerRefusal {
    /// A `symlink = false` file of which the install phase kept no record.
    #[error("the install phase left no record of it")]
    NoRecord,
    /// The file is a symbolic link.
    #[error("is a symbolic link")]
    Symlink,
    /// The file has other hard links.
    #[error("has other hard links")]
    HardLinks,
    /// Not a regular file.
    #[error("not a regular file")]
    NotRegular,
    /// Not the inode and content the install phase wrote.
    #[error("is not the file the install phase wrote (replaced since)")]
    Replaced,
}

impl PlaceError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        PlaceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn owner_refused(path: &Path, refusal: OwnerRefusal) -> Self {
        PlaceError::OwnerRefused {
            path: path.to_path_buf(),
            refusal,
        }
    }
}

/// Decrypts a secret's `.age` file into zeroized memory.
pub fn decrypt(plan: &Plan, ids: &IdentitySet) -> Result<Plaintext, PlaceError> {
    let Source::Age(path) = &plan.source else {
        return Err(PlaceError::NotASecret);
    };
    let ciphertext = crate::fsutil::read_regular(path).map_err(|e| PlaceError::io(path, e))?;
    crate::envelope::decrypt(&ciphertext, ids).map_err(|e| PlaceError::Decrypt {
        path: path.clone(),
        source: Box::new(e),
    })
}

/// Whether `new` differs from what the previous generation holds for `plan` (read without
/// following a symlink into zeroized memory; a file outside the generation counts only if
/// it is still the inode that generation wrote). Anything unreadable counts as changed.
pub(crate) fn changed(plan: &Plan, new: &[u8], prev: &Previous) -> bool {
    let fd = match &plan.target {
        Target::Generation | Target::Link(_) => {
            let rel = Path::new(&plan.name);
            let Ok((dir, base)) = open_parent_in(&prev.gen, rel, false) else {
                return true;
            };
            sys::open_read_nofollow_at(&dir, Path::new(base))
        }
        Target::File(path) => {
            let Some((id, content)) = prev.record.as_ref().and_then(|r| r.written_as(&plan.name))
            else {
                return true;
            };
            let Ok((dir, base)) = walk::open_parent(path, Missing::Fail) else {
                return true;
            };
            match sys::open_read_nofollow_at(&dir, Path::new(&base)) {
                Ok(fd) if is_written(&fd, id, &content).unwrap_or(false) => Ok(fd),
                Ok(_) => return true,
                Err(e) => Err(e),
            }
        }
    };
    let Ok(fd) = fd else { return true };
    if !matches!(sys::regular_file_links(&fd), Ok(Some(_))) {
        return true;
    }
    // One byte more than the new content: enough to tell a longer old file apart.
    let mut old = Zeroizing::new(vec![0u8; new.len() + 1]);
    let mut filled = 0;
    let mut file = std::fs::File::from(fd);
    loop {
        use std::io::Read;
        match file.read(&mut old[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == old.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    old[..filled] != *new
}

/// Decrypts `plan`'s secret and writes it to its target (see [`write`]); with `prev`, says
/// whether it changed. With `keep`, the plaintext is returned too (templates use it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn place_one(
    plan: &Plan,
    gen: &OwnedFd,
    gen_path: &Path,
    secrets_dir: &Path,
    ids: &IdentitySet,
    owner: Option<(u32, u32)>,
    prev: Option<&Previous>,
    keep: bool,
) -> Result<(Installed, Option<Plaintext>), PlaceError> {
    let plaintext = decrypt(plan, ids)?;
    let installed = write(plan, &plaintext, gen, gen_path, secrets_dir, owner, prev)?;
    Ok((installed, keep.then_some(plaintext)))
}

/// Writes `plaintext` to `plan`'s target: into the generation directory `gen` (whose path
/// is `gen_path`), or at its configured `path`, whose parents are walked from `/` without
/// following a symlink anyone but root could have planted ([`walk`]). `owner` (uid, gid)
/// is applied before the file gets its mode and final name. With `prev`, the content is
/// compared with that generation's first ([`changed`]).
pub(crate) fn write(
    plan: &Plan,
    plaintext: &[u8],
    gen: &OwnedFd,
    gen_path: &Path,
    secrets_dir: &Path,
    owner: Option<(u32, u32)>,
    prev: Option<&Previous>,
) -> Result<Installed, PlaceError> {
    let content = Fingerprint::of(plaintext);
    let changed = prev.is_some_and(|prev| changed(plan, plaintext, prev));
    let opts = WriteOptions {
        mode: plan.mode,
        owner,
        existing: Existing::Replace,
        // One sync for the whole generation (a no-op on tmpfs).
        sync_dir: false,
    };
    match &plan.target {
        Target::Generation | Target::Link(_) => {
            let rel = Path::new(&plan.name);
            let shown = gen_path.join(rel);
            let (dir, base) =
                open_parent_in(gen, rel, true).map_err(|e| PlaceError::io(&shown, e))?;
            let id = atomic::write_at(&dir, base, plaintext, opts)
                .map_err(|e| PlaceError::io(&shown, e))?;
            if let Target::Link(path) = &plan.target {
                link_atomic(&secrets_dir.join(rel), path)?;
            }
            Ok(Installed {
                id,
                content,
                on_disk: false,
                changed,
            })
        }
        Target::File(path) => {
            let (dir, base) = walk::open_parent(path, Missing::Create(PARENT_MODE))?;
            // Outside the mount the file may be on disk: make the rename durable.
            let id = atomic::write_at(
                &dir,
                &base,
                plaintext,
                WriteOptions {
                    sync_dir: true,
                    ..opts
                },
            )
            .map_err(|e| PlaceError::io(path, e))?;
            let on_disk = !sys::fs_kind(&dir).is_ok_and(|k| k.ram_backed());
            Ok(Installed {
                id,
                content,
                on_disk,
                changed,
            })
        }
    }
}

/// Gives an installed secret its owner and group (and re-applies its mode, which a chown
/// may have stripped of setuid/setgid bits). The file is reached without following a
/// symlink (a custom `path` is walked from `/` as at install), must be a regular file with
/// one link, and, when the install phase recorded it, the very file it wrote (inode and
/// content, [`is_written`]): a file swapped in between the two phases is never given away.
pub(crate) fn chown_one(
    plan: &Plan,
    gen: &OwnedFd,
    gen_path: &Path,
    uid: u32,
    gid: u32,
    installed: Option<(FileId, Fingerprint)>,
) -> Result<(), PlaceError> {
    let (dir, base, shown) = match &plan.target {
        Target::Generation | Target::Link(_) => {
            let rel = Path::new(&plan.name);
            let shown = gen_path.join(rel);
            let (dir, base) =
                open_parent_in(gen, rel, false).map_err(|e| PlaceError::io(&shown, e))?;
            (dir, base.to_os_string(), shown)
        }
        Target::File(path) => {
            if installed.is_none() {
                return Err(PlaceError::owner_refused(path, OwnerRefusal::NoRecord));
            }
            let (dir, base) = walk::open_parent(path, Missing::Fail)?;
            (dir, base, path.clone())
        }
    };
    let fd = sys::open_read_nofollow_at(&dir, Path::new(&base)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PlaceError::NotInstalled {
                path: shown.clone(),
            }
        } else if sys::is_symlink_or_not_dir(&e) {
            PlaceError::owner_refused(&shown, OwnerRefusal::Symlink)
        } else {
            PlaceError::io(&shown, e)
        }
    })?;
    match sys::regular_file_links(&fd).map_err(|e| PlaceError::io(&shown, e))? {
        Some(1) => {}
        // A hard link planted in a writable directory would hand its target to `uid`.
        Some(_) => return Err(PlaceError::owner_refused(&shown, OwnerRefusal::HardLinks)),
        None => return Err(PlaceError::owner_refused(&shown, OwnerRefusal::NotRegular)),
    }
    if let Some((id, content)) = installed {
        if !is_written(&fd, id, &content).map_err(|e| PlaceError::io(&shown, e))? {
            return Err(PlaceError::owner_refused(&shown, OwnerRefusal::Replaced));
        }
    }
    sys::fchown(&fd, uid, gid).map_err(|source| PlaceError::Chown {
        path: shown.clone(),
        source,
    })?;
    sys::fchmod(&fd, plan.mode).map_err(|e| PlaceError::io(&shown, e))
}

/// Removes the file an earlier activation wrote at `path` (a `symlink = false` secret the
/// manifest no longer lists), walking as at install and only if it is still that file
/// ([`is_written`]). `Ok(false)` when nothing is there any more.
pub(crate) fn remove_written(
    path: &Path,
    id: FileId,
    content: &Fingerprint,
) -> Result<bool, PlaceError> {
    let (dir, base) = match walk::open_parent(path, Missing::Fail) {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let not_removed = |source| PlaceError::NotRemoved {
        path: path.to_path_buf(),
        source,
    };
    let fd = match sys::open_read_nofollow_at(&dir, Path::new(&base)) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(not_removed(e)),
    };
    if !is_written(&fd, id, content).map_err(|e| PlaceError::io(path, e))? {
        return Err(PlaceError::NotWritten {
            path: path.to_path_buf(),
        });
    }
    sys::unlink_at(&dir, Path::new(&base)).map_err(not_removed)?;
    sys::sync(&dir).map_err(|e| PlaceError::io(path, e))?;
    Ok(true)
}

/// Whether the open `fd` is the file activation wrote: the same device, inode and birth
/// time, and the same bytes. The inode alone is not enough: ext4 gives a freed inode number
/// to the next file created and birth times come from a clock that ticks every few
/// milliseconds, so a file its owner removed and recreated at once (as in a test, or by a
/// user who owns the directory) matched the record, and activation removed it. A file that
/// matches both was created in the same tick on the recycled inode with the very bytes
/// activation wrote: acting on it changes nothing the record did not already cover.
pub(crate) fn is_written(fd: &OwnedFd, id: FileId, content: &Fingerprint) -> std::io::Result<bool> {
    Ok(FileId::of(fd)? == id && content.matches(fd)?)
}

/// Warnings about identity files whose owner is not the running user (root at boot) or
/// that group/other can read: whoever can write such a file chooses the identity, and a
/// readable one is a leaked key. Symlinks are followed here on purpose: the target counts.
pub(crate) fn identity_warnings(paths: &[PathBuf]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let mut warnings = Vec::new();
    for path in paths {
        let Ok(meta) = std::fs::metadata(path) else {
            continue; // missing or unreadable: load_identities says so
        };
        let link = std::fs::read_link(path)
            .map(|t| format!(" (a symlink to {})", t.display()))
            .unwrap_or_default();
        let shown = path.display();
        if meta.uid() != me {
            warnings.push(format!(
                "identity {shown}{link} is owned by uid {}, not uid {me}: that user controls it",
                meta.uid()
            ));
        }
        if meta.mode() & 0o044 != 0 {
            warnings.push(format!(
                "identity {shown}{link} is readable by group or other (mode {:04o})",
                meta.mode() & 0o7777
            ));
        }
    }
    warnings
}

/// Opens the directory holding `rel` inside `root`, walking each component without
/// following symlinks (and creating missing ones 0751 when `create`). Returns it and the
/// last component.
fn open_parent_in<'a>(
    root: &OwnedFd,
    rel: &'a Path,
    create: bool,
) -> std::io::Result<(OwnedFd, &'a OsStr)> {
    let base = rel
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut dir = root.try_clone()?;
    if let Some(parent) = rel.parent() {
        for comp in parent.iter() {
            let comp = Path::new(comp);
            dir = match sys::open_dir_at(&dir, comp) {
                Ok(fd) => fd,
                Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                    match sys::mkdir_at(&dir, comp, 0o751) {
                        Ok(()) => {}
                        // Another worker made it first.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    sys::open_dir_at(&dir, comp)?
                }
                Err(e) => return Err(e),
            };
        }
    }
    Ok((dir, base))
}

/// Points the symlink `at` to `target`, atomically (temp symlink, rename over `at`); the
/// parents of `at` are walked as for a custom `path`. The error names the component.
pub(crate) fn link_atomic(target: &Path, at: &Path) -> Result<(), PlaceError> {
    let (dir, base) = walk::open_parent(at, Missing::Create(PARENT_MODE))?;
    atomic::symlink_at(&dir, &base, target).map_err(|e| PlaceError::io(at, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::FsChoice;

    fn layout() -> Layout {
        Layout {
            secrets_dir: "/run/agenix".into(),
            mount_point: "/run/agenix.d".into(),
            identity_paths: vec![],
            fs: FsChoice::Tmpfs,
        }
    }

    fn spec(name: &str, path: &str, symlink: bool) -> SecretSpec {
        SecretSpec {
            name: name.into(),
            file: "/s/x.age".into(),
            path: path.into(),
            mode: "0400".into(),
            owner: "0".into(),
            group: "0".into(),
            symlink,
            restart_units: vec![],
            reload_units: vec![],
        }
    }

    fn manifest(secrets: Vec<SecretSpec>) -> Manifest {
        Manifest {
            version: 1,
            secrets_dir: "/run/agenix".into(),
            secrets_mount_point: "/run/agenix.d".into(),
            identity_paths: vec![],
            fs: FsChoice::Tmpfs,
            secrets,
            templates: vec![],
            activation_restart_list: None,
            activation_reload_list: None,
        }
    }

    #[test]
    fn targets_follow_path_and_symlink() {
        let env = |v: &str| (v == "HOME").then(|| "/home/u".to_string());
        let m = manifest(vec![
            spec("a", "/run/agenix/a", true),
            spec("b", "/run/agenix//b", false),
            spec("c", "/etc/c", true),
            spec("d", "$HOME/d", false),
        ]);
        let (plans, failures) = plan(&m, &layout(), &env);
        assert!(failures.is_empty(), "{failures:?}");
        let targets: Vec<_> = plans.iter().map(|p| p.target.clone()).collect();
        assert_eq!(
            targets,
            vec![
                Target::Generation,
                Target::Generation,
                Target::Link("/etc/c".into()),
                Target::File("/home/u/d".into()),
            ]
        );
    }

    #[test]
    fn bad_entries_fail_alone() {
        let mut bad_mode = spec("m", "/run/agenix/m", true);
        bad_mode.mode = "u+s".into();
        let m = manifest(vec![
            spec("../escape", "/run/agenix/../escape", true),
            spec("/abs", "/abs", true),
            spec("ok", "/run/agenix/ok", true),
            spec("ok", "/run/agenix/ok", true),
            spec("in", "/run/agenix.d/1/in", true),
            spec("rel", "relative/path", true),
            bad_mode,
        ]);
        let (plans, failures) = plan(&m, &layout(), &|_| None);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].name, "ok");
        let names: Vec<_> = failures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["../escape", "/abs", "ok", "in", "rel", "m"]);
        assert!(failures[0].reason.starts_with("refused:"));
    }

    #[test]
    fn planning_errors_say_which_field_is_wrong() {
        let plan = |spec: &SecretSpec| plan_one(spec, &layout(), &|_| None);
        let mut bad_mode = spec("m", "/run/agenix/m", true);
        bad_mode.mode = "u+s".into();
        assert!(matches!(plan(&bad_mode), Err(PlanError::Mode(_))));
        let mut bad_unit = spec("u", "/run/agenix/u", true);
        bad_unit.reload_units = vec!["nginx".into()];
        let e = plan(&bad_unit).unwrap_err();
        assert!(
            matches!(
                e,
                PlanError::Unit {
                    field: "reloadUnits",
                    ..
                }
            ),
            "{e}"
        );
        let mut no_file = spec("f", "/run/agenix/f", true);
        no_file.file = String::new();
        assert!(matches!(plan(&no_file), Err(PlanError::NoFile)));
        let e = plan(&spec("h", "$HOME/h", true)).unwrap_err();
        assert_eq!(e.to_string(), "path: $HOME is not set");
        let e = plan(&spec("i", "/run/agenix.d/i", true)).unwrap_err();
        assert!(matches!(e, PlanError::InsideGenerations { .. }), "{e}");
    }

    #[test]
    fn symlink_replacement_is_atomic_and_does_not_follow() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let at = tmp.path().join("sub/link");
        link_atomic(Path::new("/run/agenix/x"), &at).unwrap();
        assert_eq!(std::fs::read_link(&at).unwrap(), Path::new("/run/agenix/x"));
        std::fs::remove_file(&at).unwrap();
        std::os::unix::fs::symlink(&victim, &at).unwrap();
        link_atomic(Path::new("/run/agenix/y"), &at).unwrap();
        assert_eq!(std::fs::read_link(&at).unwrap(), Path::new("/run/agenix/y"));
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let leftovers = std::fs::read_dir(tmp.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn secrets_sharing_a_path_all_fail_naming_it() {
        let m = manifest(vec![
            spec("a", "/etc/shared", false),
            spec("b", "/etc/shared", true),
            spec("c", "/etc//x", true),
            spec("d", "/etc/x/", false),
            spec("e", "/etc/e", false),
        ]);
        let (plans, failures) = plan(&m, &layout(), &|_| None);
        let names: Vec<_> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["e"]);
        let failed: Vec<_> = failures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(failed, ["a", "b", "c", "d"]);
        assert!(failures[0].reason.contains("`/etc/shared`"), "{failures:?}");
        assert!(failures[0].reason.contains("secret b"), "{failures:?}");
    }

    fn replaced(e: &PlaceError) -> bool {
        let replaced = matches!(
            e,
            PlaceError::OwnerRefused {
                refusal: OwnerRefusal::Replaced,
                ..
            }
        );
        replaced
            && e.to_string()
                .contains("is not the file the install phase wrote")
    }

    #[test]
    fn chown_acts_only_on_the_inode_the_install_wrote() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("token");
        let dir = sys::open_dir_nofollow(tmp.path()).unwrap();
        let written = atomic::write_at(
            &dir,
            OsStr::new("token"),
            b"s",
            WriteOptions::replace(0o400),
        )
        .unwrap();
        let written = (written, Fingerprint::of(b"s"));
        let mut plan = plan(&manifest(vec![]), &layout(), &|_| None).0;
        assert!(plan.is_empty());
        plan.push(Plan {
            name: "token".into(),
            source: Source::Age("/s/x.age".into()),
            mode: 0o440,
            owner: "0".into(),
            group: "0".into(),
            target: Target::File(path.clone()),
            restart_units: vec![],
            reload_units: vec![],
        });
        let me = rustix::process::geteuid().as_raw();
        let my_gid = rustix::process::getegid().as_raw();
        let chown = |id| chown_one(&plan[0], &dir, tmp.path(), me, my_gid, id);
        let e = chown(None).unwrap_err();
        assert!(
            matches!(
                e,
                PlaceError::OwnerRefused {
                    refusal: OwnerRefusal::NoRecord,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("left no record"), "{e}");
        // Another file put in its place (a new inode) is not given away.
        atomic::write_at(
            &dir,
            OsStr::new("token"),
            b"x",
            WriteOptions::replace(0o400),
        )
        .unwrap();
        let e = chown(Some(written)).unwrap_err();
        assert!(replaced(&e), "{e}");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o400);
        let fd = sys::open_read_nofollow_at(&dir, Path::new("token")).unwrap();
        let now = FileId::of(&fd).unwrap();
        // The right inode with other bytes is still not the file written.
        let e = chown(Some((now, Fingerprint::of(b"y")))).unwrap_err();
        assert!(replaced(&e), "{e}");
        chown(Some((now, Fingerprint::of(b"x")))).unwrap();
        assert_eq!(mode(&path), 0o440);
    }

    /// The race behind a once-flaky activation test: a dropped secret's file that its owner
    /// removes and recreates at once (other bytes) often gets the same inode number and
    /// birth time on ext4. In 500 rounds the recreated file is never given away nor removed
    /// (and, every 50 rounds, the file written still is removed).
    #[test]
    fn a_file_recreated_on_a_recycled_inode_is_never_taken_for_the_one_written() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("gone");
        let dir = sys::open_dir_nofollow(tmp.path()).unwrap();
        let plan = Plan {
            name: "gone".into(),
            source: Source::Age("/s/x.age".into()),
            mode: 0o400,
            owner: "0".into(),
            group: "0".into(),
            target: Target::File(path.clone()),
            restart_units: Vec::new(),
            reload_units: Vec::new(),
        };
        let me = rustix::process::geteuid().as_raw();
        let my_gid = rustix::process::getegid().as_raw();
        let write = |bytes: &[u8]| {
            let opts = WriteOptions {
                sync_dir: false, // durability is not what is tested here: seconds saved
                ..WriteOptions::replace(0o600)
            };
            let id = atomic::write_at(&dir, OsStr::new("gone"), bytes, opts).unwrap();
            (id, Fingerprint::of(bytes))
        };
        let mut same_identity = 0;
        for round in 0..500 {
            let secret = format!("secret of round {round}");
            let (id, content) = write(secret.as_bytes());
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, b"someone else's").unwrap();
            let fd = sys::open_read_nofollow_at(&dir, Path::new("gone")).unwrap();
            if FileId::of(&fd).unwrap() == id {
                same_identity += 1;
            }
            let e =
                chown_one(&plan, &dir, tmp.path(), me, my_gid, Some((id, content))).unwrap_err();
            assert!(replaced(&e), "round {round}: {e}");
            let e = remove_written(&path, id, &content).unwrap_err();
            assert!(
                matches!(e, PlaceError::NotWritten { .. }),
                "round {round}: {e}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                b"someone else's",
                "round {round}"
            );
            std::fs::remove_file(&path).unwrap();
            if round % 50 == 0 {
                let (id, content) = write(secret.as_bytes());
                assert!(
                    matches!(remove_written(&path, id, &content), Ok(true)),
                    "round {round}"
                );
            }
        }
        // How often the identity alone would have been fooled here (filesystem-dependent).
        eprintln!("{same_identity} of 500 recreated files had the identity of the file written");
    }

    #[test]
    fn walking_a_name_refuses_a_symlinked_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("d")).unwrap();
        let root = sys::open_dir_nofollow(tmp.path()).unwrap();
        assert!(open_parent_in(&root, Path::new("d/x"), true).is_err());
        let (_, base) = open_parent_in(&root, Path::new("e/f/x"), true).unwrap();
        assert_eq!(base, "x");
        assert!(tmp.path().join("e/f").is_dir());
    }
}
