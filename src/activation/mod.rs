//! Activation: manifest, generations, RAM-backed mounts, ownership.
//!
//! Invariants:
//! - `secretsDir` is only ever replaced by an atomic rename, and only by a link to a
//!   generation whose every installable secret is in place. A secret that fails (unreadable
//!   file, no matching identity, bad name, unknown owner…) is reported by name and is absent
//!   from the new generation; the others are installed and the swap still happens, as with
//!   agenix, so that good secrets are always available and removed ones disappear. A failure
//!   of the activation itself (mount, generation directory, swap) leaves `secretsDir` on the
//!   old generation.
//! - Nothing is written outside the mount point except the configured `path` of a secret
//!   or template (a symlink or, with `symlink = false`, the file), the `secretsDir` link,
//!   and lines appended to the restart/reload lists ([`units`]) for what changed. Inside the
//!   generation, names are walked component by component with no-follow opens, and every
//!   file is created exclusively (`O_EXCL|O_NOFOLLOW`) with mode 0400 under a random temp
//!   name, then given its mode and renamed into place.
//! - Plaintext lives in zeroized buffers and is written only to the RAM-backed mount (or
//!   the configured `path` when the module asks for a file there).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

pub(crate) mod generations;
pub mod manifest;
pub(crate) mod mode;
pub(crate) mod mounts;
pub(crate) mod ownership;
pub(crate) mod paths;
pub mod place;
pub mod render;
pub(crate) mod state;
pub(crate) mod units;

pub use manifest::{FsChoice, Manifest, SecretSpec, TemplateSpec, MANIFEST_VERSION};
pub use mounts::MountState;

/// Which part of activation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Mount, decrypt into a new generation, swap `secretsDir`, remove old generations.
    /// Files stay owned by the running user (root): users may not exist yet.
    Install,
    /// Apply owner and group to the current generation (after users and groups exist).
    Chown,
    /// Both, with ownership applied before each file is renamed into place.
    All,
}

/// A fatal activation error. One line, naming the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// The manifest is not valid JSON.
    #[error("{path}:{line}:{column}: {reason}")]
    ManifestSyntax {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's reason.
        reason: String,
    },
    /// The manifest parses but describes something activation refuses.
    #[error("{path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why (one line; manifest strings escaped).
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `secretsDir` could not be pointed at the new generation; it stays on the old one.
    #[error("{}: cannot point it at {}: {source}", path.display(), generation.display())]
    Swap {
        /// `secretsDir`.
        path: PathBuf,
        /// The new generation's directory.
        generation: PathBuf,
        /// The cause.
        source: place::PlaceError,
    },
    /// A path is unsafe or unusable (a symlink where a directory must be, a foreign owner…).
    #[error("{path}: {reason}")]
    Refused {
        /// The file or directory concerned.
        path: PathBuf,
        /// Why (one line).
        reason: String,
    },
}

impl ActivationError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ActivationError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn at(path: &Path, reason: impl Into<String>) -> Self {
        ActivationError::Refused {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// One secret that could not be installed or chowned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretFailure {
    /// The secret's name in the manifest.
    pub name: String,
    /// One line, naming the file concerned; never secret material.
    pub reason: String,
}

/// What an activation did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The phase that ran.
    pub phase: Phase,
    /// The secrets directory (`/run/agenix`).
    pub secrets_dir: PathBuf,
    /// The generation installed (install/all) or chowned (chown).
    pub generation: u64,
    /// The mount point, as found or made (install/all only).
    pub mount: Option<MountState>,
    /// Names of the secrets installed (install/all) or chowned (chown).
    pub done: Vec<String>,
    /// Secrets that could not be installed or chowned (the others were).
    pub failures: Vec<SecretFailure>,
    /// Problems that do not fail a secret (skipped identities, cleanup trouble…).
    pub warnings: Vec<String>,
    /// Files of `symlink = false` secrets that the manifest no longer lists, removed.
    pub removed: Vec<PathBuf>,
    /// Names of the templates rendered and installed (install/all); `done` lists secrets.
    pub rendered: Vec<String>,
    /// For each secret and template installed (install/all): whether its content changed
    /// against the previous generation (always false on the first activation after boot).
    pub changed: BTreeMap<String, bool>,
    /// Units appended to the restart list (dry-activate: to the dry restart list).
    pub restart_units: Vec<String>,
    /// Units appended to the reload list (dry-activate: to the dry reload list).
    pub reload_units: Vec<String>,
    /// Why the units could not be listed (a list file refused…); the command exits 1.
    pub unit_error: Option<String>,
    /// `NIXOS_ACTION=dry-activate`: nothing was installed; `changed` and the units say
    /// what a real activation would do.
    pub dry_run: bool,
}

impl Report {
    /// Whether any secret failed or the units could not be listed (the command exits 1).
    pub fn failed(&self) -> bool {
        !self.failures.is_empty() || self.unit_error.is_some()
    }
}

/// Where things go, with variables expanded and paths checked.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The symlink to the current generation (`/run/agenix`).
    pub secrets_dir: PathBuf,
    /// Where the RAM-backed filesystem holding the generations is mounted
    /// (`/run/agenix.d`).
    pub mount_point: PathBuf,
    /// The identities that decrypt the secrets (the host keys).
    pub identity_paths: Vec<PathBuf>,
    /// Which filesystem the mount is.
    pub fs: FsChoice,
}

/// The environment activation runs in.
pub struct Env<'a> {
    /// Variable lookup for `${XDG_RUNTIME_DIR}` / `$HOME`.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// Where `passwd` and `group` are read when the name service fails (normally `/etc`).
    pub etc: PathBuf,
    /// Where age plugin identities send their requests (a touch, a PIN); `None` at boot,
    /// where nobody can answer.
    pub plugin_ui: Option<std::sync::Arc<dyn crate::recipient::plugin::PluginUi>>,
}

impl Env<'_> {
    /// The process environment and `/etc`.
    pub fn system() -> Env<'static> {
        Env {
            var: &|v| std::env::var(v).ok(),
            etc: PathBuf::from("/etc"),
            plugin_ui: None,
        }
    }
}

impl Layout {
    /// Expands and checks the manifest's directories; `origin` names the manifest in errors.
    pub fn resolve(m: &Manifest, origin: &Path, env: &Env) -> Result<Self, ActivationError> {
        let bad = |what: &str, reason: &str| ActivationError::Manifest {
            path: origin.to_path_buf(),
            // Reasons quote manifest strings: escaped, the error stays one line.
            reason: crate::text::escape_controls_owned(format!("{what}: {reason}")),
        };
        let dir = |what: &str, raw: &str| -> Result<PathBuf, ActivationError> {
            let expanded = paths::expand(raw, env.var).map_err(|r| bad(what, &r.to_string()))?;
            paths::check_absolute(&expanded).map_err(|r| bad(what, &format!("{r} ({expanded})")))
        };
        let secrets_dir = dir("secretsDir", &m.secrets_dir)?;
        let mount_point = dir("secretsMountPoint", &m.secrets_mount_point)?;
        if secrets_dir.starts_with(&mount_point) || mount_point.starts_with(&secrets_dir) {
            return Err(bad(
                "secretsDir",
                "must be outside secretsMountPoint and not contain it",
            ));
        }
        let mut identity_paths = Vec::with_capacity(m.identity_paths.len());
        for raw in &m.identity_paths {
            let expanded =
                paths::expand(raw, env.var).map_err(|r| bad("identityPaths", &r.to_string()))?;
            identity_paths.push(PathBuf::from(expanded));
        }
        Ok(Layout {
            secrets_dir,
            mount_point,
            identity_paths,
            fs: m.fs,
        })
    }
}

/// Runs `phase` of the activation described by `manifest` (read from `origin`). When the
/// environment says `NIXOS_ACTION=dry-activate` (`switch-to-configuration dry-activate`),
/// nothing is installed or chowned: the install phases only list, in the `dry-` lists,
/// the units a real activation would restart or reload.
pub fn activate(
    manifest: &Manifest,
    origin: &Path,
    phase: Phase,
    env: &Env,
) -> Result<Report, ActivationError> {
    let layout = Layout::resolve(manifest, origin, env)?;
    let units = generations::Units {
        files: units::ListFiles::of(manifest, origin)?,
        names: manifest
            .secrets
            .iter()
            .map(|s| s.name.clone())
            .chain(manifest.templates.iter().map(|t| t.name.clone()))
            .collect::<HashSet<_>>(),
    };
    let dry_run = (env.var)("NIXOS_ACTION").as_deref() == Some("dry-activate");
    let mut warnings = Vec::new();
    let (plans, mut failures) = place::plan(manifest, &layout, env.var);
    let (outcome, mount) = match (phase, dry_run) {
        (Phase::Chown, true) => (generations::Outcome::default(), None),
        (Phase::Install | Phase::All, true) => (
            generations::dry_run(&layout, &plans, &units, &mut warnings)?,
            None,
        ),
        (Phase::Install | Phase::All, false) => {
            let owners = if phase == Phase::All {
                Some(ownership::UserDb::system(&env.etc))
            } else {
                None
            };
            let mount = mounts::ensure(&layout, &mut warnings)?;
            let outcome = generations::install(
                &layout,
                &plans,
                owners.as_ref(),
                env.plugin_ui.as_ref(),
                &units,
                &mut warnings,
            )?;
            (outcome, Some(mount))
        }
        (Phase::Chown, false) => {
            let owners = ownership::UserDb::system(&env.etc);
            (generations::chown_current(&layout, &plans, &owners)?, None)
        }
    };
    failures.extend(outcome.failures);
    let templates: HashSet<&str> = manifest.templates.iter().map(|t| t.name.as_str()).collect();
    let (rendered, done): (Vec<String>, Vec<String>) = outcome
        .done
        .into_iter()
        .partition(|n| templates.contains(n.as_str()));
    Ok(Report {
        phase,
        secrets_dir: layout.secrets_dir,
        generation: outcome.generation,
        mount,
        done,
        failures: sorted(failures),
        warnings,
        removed: outcome.removed,
        rendered,
        changed: outcome.changed.into_iter().collect(),
        restart_units: outcome.units.restart,
        reload_units: outcome.units.reload,
        unit_error: outcome.unit_error.map(|e| e.to_string()),
        dry_run,
    })
}

fn sorted(mut failures: Vec<SecretFailure>) -> Vec<SecretFailure> {
    failures.sort_by(|a, b| a.name.cmp(&b.name));
    failures
}
