//! Why preflight refused ([`PreflightError`]): one variant per refusal, each message one
//! line, kept apart from the checks that raise them.

use std::path::PathBuf;

use crate::git::GitError;
use crate::provision::InstallError;
use crate::rules::RulesError;

/// Why preflight refused. Each message is one line; the caller exits 4.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    /// Not root.
    #[error("must run as root: it partitions disks and installs NixOS")]
    NotRoot,
    /// The flake directory cannot be resolved.
    #[error("{}: flake directory: {source}", path.display())]
    FlakeDir {
        /// As given.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No `flake.nix` in the flake directory.
    #[error("{}: no flake.nix", dir.display())]
    NoFlakeNix {
        /// The flake directory.
        dir: PathBuf,
    },
    /// A command is neither an executable path nor on `PATH`.
    #[error("{what}: `{program}` not found or not executable")]
    ProgramMissing {
        /// Which command (`the disko command`, `the install command`).
        what: &'static str,
        /// Its program.
        program: String,
    },
    /// `SSH_AUTH_SOCK` is not set.
    #[error("SSH_AUTH_SOCK is not set: connect with `ssh -A` so your agent is forwarded")]
    NoAgent,
    /// The agent could not be asked.
    #[error(transparent)]
    Agent(#[from] crate::provision::agent::AgentError),
    /// The agent holds no key.
    #[error("SSH agent at {} holds no key: `ssh-add` on your machine, then reconnect with `ssh -A`", socket.display())]
    AgentEmpty {
        /// `SSH_AUTH_SOCK`.
        socket: PathBuf,
    },
    /// Listing, reading or placing files, or loading a host identity, failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// Files of the flake hold private key material.
    #[error("{}: these files hold private key material and would be copied to <root>/etc/nixos and the Nix store: {}", dir.display(), join_paths(files))]
    FlakePrivateKeys {
        /// The flake directory.
        dir: PathBuf,
        /// The files, relative to it.
        files: Vec<PathBuf>,
    },
    /// The `--extra-files` directory cannot be resolved.
    #[error("{}: --extra-files: {source}", dir.display())]
    ExtraFilesDir {
        /// As given.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Files of `--extra-files` cannot be placed.
    #[error("--extra-files: {}", problems.join("; "))]
    ExtraFiles {
        /// One line each.
        problems: Vec<String>,
    },
    /// A generated identity is asked for but there is no state directory to keep it in.
    #[error("HOME is not set: cannot keep a generated host key")]
    NoStateDir,
    /// The host key's public line does not parse.
    #[error(transparent)]
    Recipient(#[from] crate::recipient::RecipientError),
    /// The host key has no stanza tag.
    #[error("the host key has no SSH stanza tag")]
    NoHostTag,
    /// The secrets input cannot be read from `flake.lock`.
    #[error(transparent)]
    Lock(#[from] crate::provision::flake_lock::LockError),
    /// Parsing the remote, cloning or listing the clone failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// No known_hosts file was given and none could be found.
    #[error("HOME is not set: pass --known-hosts")]
    NoKnownHosts,
    /// The secrets repository holds unencrypted private key material.
    #[error("{url}: these files hold unencrypted private key material and would be copied to the Nix store: {}", join_paths(files))]
    SecretsPrivateKeys {
        /// The repository.
        url: String,
        /// The files, relative to its top.
        files: Vec<PathBuf>,
    },
    /// The secrets repository has no `secrets.nix` at its top.
    #[error("{url}: the repository has no secrets.nix at its top")]
    NoRules {
        /// The repository.
        url: String,
    },
    /// `secrets.nix` does not evaluate.
    #[error("{url}: {source}")]
    Rules {
        /// The repository.
        url: String,
        /// The cause.
        source: RulesError,
    },
    /// No rule lists the host key. The caller shows the key and the snippet.
    #[error("{}: no secret in secrets.nix lists the host key {} of {}: add it (above), rekey, push, and run again", .0.url, .0.fingerprint, .0.host)]
    HostKeyNotListed(Box<HostKeyNotListed>),
    /// Rules list the host key but their files lack its stanza.
    #[error("{url}: these secrets list the host key of {host} in secrets.nix but were not encrypted to it: {}; rekey them (`agefleet rekey`) and push", secrets.join(", "))]
    Stale {
        /// The repository.
        url: String,
        /// The host.
        host: String,
        /// The secrets.
        secrets: Vec<String>,
    },
    /// Files of rules listing the host key are missing or unreadable.
    #[error("{url}: secrets for {host} that cannot be checked: {}", secrets.join(", "))]
    Unreadable {
        /// The repository.
        url: String,
        /// The host.
        host: String,
        /// The secrets, each with why.
        secrets: Vec<String>,
    },
    /// No rule lists the post-quantum key. The caller shows the recipient.
    #[error("{url}: no secret in secrets.nix lists the post-quantum key of {host}: add it (above), rekey, push, and run again")]
    PqKeyNotListed {
        /// The repository.
        url: String,
        /// The host.
        host: String,
        /// The `age1pq1…` recipient.
        recipient: String,
    },
    /// Rules list the post-quantum key but their files do not decrypt with it.
    #[error("{url}: these secrets list the post-quantum key of {host} in secrets.nix but do not decrypt with it: {}; rekey them (`agefleet rekey`) and push", secrets.join(", "))]
    PqStale {
        /// The repository.
        url: String,
        /// The host.
        host: String,
        /// The secrets.
        secrets: Vec<String>,
    },
    /// Files of rules listing the post-quantum key are missing or unreadable.
    #[error("{url}: secrets for the post-quantum key of {host} that cannot be checked: {}", secrets.join(", "))]
    PqUnreadable {
        /// The repository.
        url: String,
        /// The host.
        host: String,
        /// The secrets, each with why.
        secrets: Vec<String>,
    },
    /// `--root` cannot be made absolute.
    #[error("{}: --root: {source}", root.display())]
    Root {
        /// As given.
        root: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The host key no rule lists, and what to add.
#[derive(Debug)]
pub struct HostKeyNotListed {
    /// The repository.
    pub url: String,
    /// The host.
    pub host: String,
    /// The host key's SHA256 fingerprint.
    pub fingerprint: String,
    /// The host key's public line.
    pub public_line: String,
    /// Where the key is: given, or generated (and where it is kept).
    pub origin: String,
    /// The `secrets.nix` lines to add.
    pub snippet: String,
}

fn join_paths(files: &[PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}
