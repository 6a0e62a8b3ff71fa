//! What preflight is asked ([`Request`]) and what it tells the caller as it goes
//! ([`Notice`]): the inputs and progress of [`super::check`] and [`super::fetch`], apart from
//! the checks themselves.

use std::path::PathBuf;

use crate::rules::EvalMode;

/// Where a host identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChoice {
    /// Generated, kept under the state directory so a second run reuses it.
    Generate,
    /// This private key file.
    File(PathBuf),
}

/// What `install-with-secrets` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The flake directory, as given.
    pub flake: PathBuf,
    /// The host (a plain host name).
    pub host: String,
    /// `--disko-cmd`, split into an argv; `None`: build the flake host's disko script.
    pub disko_cmd: Option<Vec<String>>,
    /// The install command's argv (`nixos-install` by default), without its arguments.
    pub install_cmd: Vec<String>,
    /// `SSH_AUTH_SOCK`, when set.
    pub agent_socket: Option<PathBuf>,
    /// `--extra-files DIR`.
    pub extra_files: Option<PathBuf>,
    /// The SSH host identity.
    pub host_key: KeyChoice,
    /// The post-quantum host identity, when asked for.
    pub pq_key: Option<KeyChoice>,
    /// Whether a generated identity is kept (false on a dry run).
    pub keep_generated: bool,
    /// `$XDG_STATE_HOME` (else `$HOME/.local/state`), where generated identities are kept.
    pub state_dir: Option<PathBuf>,
    /// `--secrets-url`; `None`: the `secrets_input` input of the flake's `flake.lock`.
    pub secrets_url: Option<String>,
    /// The flake input the secrets repository overrides.
    pub secrets_input: String,
    /// The known_hosts file the server's host key is checked against (`None`: no default
    /// could be found).
    pub known_hosts: Option<PathBuf>,
    /// `--root`.
    pub root: PathBuf,
    /// How `secrets.nix` is evaluated.
    pub eval_mode: EvalMode,
}

/// Progress the caller may show (as verbose output or warnings), in order.
#[derive(Debug, Clone)]
pub enum Notice {
    /// The agent holds `keys` keys (verbose).
    AgentKeys {
        /// `SSH_AUTH_SOCK`.
        socket: PathBuf,
        /// How many.
        keys: u32,
    },
    /// A warning about a file of `--extra-files`.
    ExtraFile(String),
    /// Fetching the secrets repository (verbose).
    Fetching {
        /// The URL handed to libgit2.
        url: String,
        /// Where it goes.
        into: PathBuf,
    },
    /// A rule of the secrets repository could not be read.
    BadRule {
        /// The repository.
        url: String,
        /// The rule's error.
        message: String,
    },
    /// `flake.lock` pins another commit than the one fetched.
    LockedRevDiffers {
        /// The repository.
        url: String,
        /// The pinned commit.
        locked: String,
        /// The branch fetched (`HEAD` when none).
        fetched_ref: String,
        /// The commit fetched.
        fetched: String,
    },
}
