//! What preflight established: the [`Plan`] shown before anything destructive (and the
//! `--json` report's plan), and the [`Prepared`] install steps that carry it out. Apart from
//! the checks so the report's shape reads in one place.

use std::path::PathBuf;

use serde::Serialize;

use crate::provision::pq::PqHostIdentity;
use crate::provision::{HostIdentity, HostKeySource};

/// How partitioning runs.
#[derive(Debug, Clone)]
pub enum Disko {
    /// `--disko-cmd`, as given.
    Given(Vec<String>),
    /// Build the flake host's disko script (this argv prints its store path), then run it.
    FlakeScript(Vec<String>),
}

/// What the run will do, shown before anything destructive (and the `--json` report's plan).
#[derive(Debug, Serialize)]
pub struct Plan {
    /// The host.
    pub host: String,
    /// The flake directory.
    pub flake: PathBuf,
    /// The target root.
    pub root: PathBuf,
    /// The secrets repository.
    pub secrets: PlanSecrets,
    /// The SSH host identity.
    pub host_key: PlanHostKey,
    /// The post-quantum host identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pq_key: Option<PlanPqKey>,
    /// Disko steps, each an argv.
    pub disko: Vec<Vec<String>>,
    /// The install command.
    pub install: Vec<String>,
    /// What is placed where.
    pub place: Vec<PlanPlace>,
}

/// The secrets repository in the plan.
#[derive(Debug, Serialize)]
pub struct PlanSecrets {
    /// Its URL.
    pub url: String,
    /// The flake input it overrides.
    pub input: String,
    /// The branch fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The commit fetched.
    pub commit: String,
    /// The commit `flake.lock` pins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_rev: Option<String>,
    /// Secrets whose rules list the host key.
    pub for_host: Vec<String>,
}

/// The SSH host identity in the plan.
#[derive(Debug, Serialize)]
pub struct PlanHostKey {
    /// Given, generated now or earlier.
    pub source: HostKeySource,
    /// Its public line.
    pub public: String,
    /// Its SHA256 fingerprint.
    pub fingerprint: String,
    /// Its stanza tag.
    pub tag: String,
    /// Where a generated key is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_at: Option<PathBuf>,
}

/// The post-quantum host identity in the plan.
#[derive(Debug, Serialize)]
pub struct PlanPqKey {
    /// Given, generated now or earlier.
    pub source: HostKeySource,
    /// Its `age1pq1…` recipient.
    pub recipient: String,
    /// Where a generated identity is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_at: Option<PathBuf>,
    /// Secrets whose rules list it (each proven to decrypt with it).
    pub for_host: Vec<String>,
}

/// One placement in the plan.
#[derive(Debug, Serialize)]
pub struct PlanPlace {
    /// Where.
    pub path: PathBuf,
    /// What.
    pub what: String,
}

/// Everything preflight established: what the install steps need, and the plan. (No
/// `Debug`: it holds private keys.)
pub struct Prepared {
    /// The SSH host identity.
    pub host_id: HostIdentity,
    /// The post-quantum host identity.
    pub pq_id: Option<PqHostIdentity>,
    /// The flake directory (canonical).
    pub flake_dir: PathBuf,
    /// Its files as the flake sees them.
    pub flake_files: Vec<PathBuf>,
    /// `--extra-files`: the directory and its files.
    pub extra: Option<(PathBuf, Vec<PathBuf>)>,
    /// How partitioning runs.
    pub disko: Disko,
    /// The install command with its arguments.
    pub install: Vec<String>,
    /// The plan.
    pub plan: Plan,
}
