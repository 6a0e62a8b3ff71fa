//! Preflight of `install-with-secrets` (step 1): everything that must hold before
//! a disk is touched, and the [`Plan`] that is shown before anything destructive.
//!
//! Two steps, so the caller can guard the staging directory (remove it on a signal) before
//! the secrets repository is fetched into it:
//! 1. [`check`]: root; the flake; the disko and install commands resolvable; the agent holds
//!    a key; the flake's files (and `--extra-files`) hold no private key; the host identity
//!    (and post-quantum identity) loaded or generated; the secrets repository's remote and
//!    known_hosts file.
//! 2. [`fetch`]: clone through the agent into the staging dir, refuse a repository with
//!    unencrypted private keys or without `secrets.nix`, prove by the rules and the headers
//!    that the host key is a recipient of every secret whose rule lists it, and build the plan.
//!
//! Invariants: nothing here prints, reads the environment or runs an external tool (the
//! commands are only resolved); what the caller shows as it goes arrives as [`Notice`]s.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::pq::PqHostIdentity;
use super::{stage, HostIdentity, HostKeySource, InstallError, SecretsCheck};
use crate::git::{GitError, SshRemote};
use crate::rules::{EvalMode, RulesError};

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
    Agent(#[from] super::agent::AgentError),
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
    Lock(#[from] super::flake_lock::LockError),
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

/// What [`check`] established. (No `Debug`: it holds private keys.)
pub struct Checked {
    flake_dir: PathBuf,
    flake_files: Vec<PathBuf>,
    extra: Option<(PathBuf, Vec<PathBuf>)>,
    disko: Disko,
    host_id: HostIdentity,
    host_tag: String,
    pq_id: Option<PqHostIdentity>,
    url: String,
    branch: Option<String>,
    locked_rev: Option<String>,
    remote: SshRemote,
    known_hosts: PathBuf,
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

/// Fails unless `program` is an executable path or on `path` (the caller's `PATH`).
pub fn require_program(
    program: &str,
    what: &'static str,
    path: Option<&std::ffi::OsStr>,
) -> Result<(), PreflightError> {
    if crate::fsutil::find_program(program, path).is_some() {
        Ok(())
    } else {
        Err(PreflightError::ProgramMissing {
            what,
            program: program.to_owned(),
        })
    }
}

/// Step 1: everything that needs no network. `path` is the caller's `PATH` (to resolve the
/// commands).
pub fn check(
    req: &Request,
    path: Option<&std::ffi::OsStr>,
    notify: &mut dyn FnMut(Notice),
) -> Result<Checked, PreflightError> {
    if !rustix::process::geteuid().is_root() {
        return Err(PreflightError::NotRoot);
    }
    let flake_dir = req
        .flake
        .canonicalize()
        .map_err(|source| PreflightError::FlakeDir {
            path: req.flake.clone(),
            source,
        })?;
    if !flake_dir.join("flake.nix").is_file() {
        return Err(PreflightError::NoFlakeNix { dir: flake_dir });
    }

    // Tools.
    let host = &req.host;
    let disko = match &req.disko_cmd {
        Some(argv) => Disko::Given(argv.clone()),
        None => Disko::FlakeScript(vec![
            "nix".into(),
            "--extra-experimental-features".into(),
            "nix-command flakes".into(),
            "build".into(),
            "--no-link".into(),
            "--print-out-paths".into(),
            format!(
                "{}#nixosConfigurations.\"{host}\".config.system.build.diskoScript",
                flake_dir.display()
            ),
        ]),
    };
    let disko_program = match &disko {
        Disko::Given(argv) | Disko::FlakeScript(argv) => &argv[0],
    };
    require_program(disko_program, "the disko command", path)?;
    require_program(&req.install_cmd[0], "the install command", path)?;

    // The agent.
    let socket = req.agent_socket.clone().ok_or(PreflightError::NoAgent)?;
    let keys = super::agent::count_identities(&socket)?;
    if keys == 0 {
        return Err(PreflightError::AgentEmpty { socket });
    }
    notify(Notice::AgentKeys { socket, keys });

    // The flake's own files: they go to a world-readable place and into the store.
    let flake_files = stage::flake_files(&flake_dir)?;
    let leaking = stage::files_with_private_keys(&flake_dir, &flake_files);
    if !leaking.is_empty() {
        return Err(PreflightError::FlakePrivateKeys {
            dir: flake_dir,
            files: leaking,
        });
    }
    let extra = match &req.extra_files {
        None => None,
        Some(dir) => {
            let dir = dir
                .canonicalize()
                .map_err(|source| PreflightError::ExtraFilesDir {
                    dir: dir.clone(),
                    source,
                })?;
            let files = stage::walk(&dir, false)?;
            let (problems, warnings) = stage::check_extra_files(&dir, &files);
            for w in warnings {
                notify(Notice::ExtraFile(w));
            }
            if !problems.is_empty() {
                return Err(PreflightError::ExtraFiles { problems });
            }
            Some((dir, files))
        }
    };

    // Host identities.
    let kept_at = |file: &str| {
        req.state_dir
            .as_ref()
            .map(|d| d.join("agefleet/install").join(host).join(file))
            .ok_or(PreflightError::NoStateDir)
    };
    let host_id = match &req.host_key {
        KeyChoice::Generate => HostIdentity::generate_or_reuse(
            &kept_at("ssh_host_ed25519_key")?,
            &format!("root@{host}"),
            req.keep_generated,
        )?,
        KeyChoice::File(path) => HostIdentity::load(path)?,
    };
    let pq_id = match &req.pq_key {
        None => None,
        Some(KeyChoice::Generate) => Some(PqHostIdentity::generate_or_reuse(
            &kept_at(crate::keys::age_identity::PQ_IDENTITY_FILE)?,
            req.keep_generated,
        )?),
        Some(KeyChoice::File(path)) => Some(PqHostIdentity::load(path)?),
    };
    let host_tag = crate::recipient::Recipient::parse(&host_id.public_line)?
        .tag
        .ok_or(PreflightError::NoHostTag)?;

    // The secrets repository.
    let (url, branch, locked_rev) = match &req.secrets_url {
        Some(u) => (u.clone(), None, None),
        None => {
            let l = super::flake_lock::secrets_input(&flake_dir, &req.secrets_input)?;
            (l.url, l.branch, l.rev)
        }
    };
    let remote = SshRemote::parse(&url)?;
    let known_hosts = req
        .known_hosts
        .clone()
        .ok_or(PreflightError::NoKnownHosts)?;
    Ok(Checked {
        flake_dir,
        flake_files,
        extra,
        disko,
        host_id,
        host_tag,
        pq_id,
        url,
        branch,
        locked_rev,
        remote,
        known_hosts,
    })
}

/// Step 2: fetches the secrets repository into `staging` (a private directory the caller
/// removes) and proves the host can open its secrets; returns the plan.
pub fn fetch(
    checked: Checked,
    req: &Request,
    staging: &Path,
    notify: &mut dyn FnMut(Notice),
) -> Result<Prepared, PreflightError> {
    let Checked {
        flake_dir,
        flake_files,
        extra,
        disko,
        host_id,
        host_tag,
        pq_id,
        url,
        branch,
        locked_rev,
        remote,
        known_hosts,
    } = checked;
    let host = req.host.as_str();
    let mut install = req.install_cmd.clone();
    let clone_dir = staging.join("clone");
    notify(Notice::Fetching {
        url: remote.git_url(),
        into: clone_dir.clone(),
    });
    let cloned =
        crate::git::clone_with_agent(&remote, &known_hosts, branch.as_deref(), &clone_dir)?;
    let secrets_dir = staging.join("secrets");
    let secret_files = crate::git::tracked_files(&clone_dir)?.unwrap_or_default();
    stage::copy_files(&clone_dir, &secret_files, &secrets_dir, 0o777, false)?;
    // The staged repository becomes a flake input, copied into the world-readable store.
    let leaking = stage::files_with_private_keys(&secrets_dir, &secret_files);
    if !leaking.is_empty() {
        return Err(PreflightError::SecretsPrivateKeys {
            url,
            files: leaking,
        });
    }
    let rules_file = secrets_dir.join("secrets.nix");
    if !rules_file.is_file() {
        return Err(PreflightError::NoRules { url });
    }
    let rules = match crate::rules::load(&rules_file, req.eval_mode) {
        Ok(r) => r,
        Err(source) => return Err(PreflightError::Rules { url, source }),
    };
    let check = super::check_secrets(&rules, &host_id.key_fields(), &host_tag);
    for bad in &check.bad_rules {
        notify(Notice::BadRule {
            url: url.clone(),
            message: bad.clone(),
        });
    }
    if check.listed.is_empty() {
        let origin = match (&host_id.source, &host_id.path) {
            (HostKeySource::File, _) => "given".to_string(),
            (_, Some(p)) => format!("generated, kept at {}", p.display()),
            (_, None) => "generated, not kept (dry run)".to_string(),
        };
        return Err(PreflightError::HostKeyNotListed(Box::new(
            HostKeyNotListed {
                snippet: super::rules_snippet(host, &host_id.public_line),
                url,
                host: host.to_owned(),
                fingerprint: host_id.fingerprint.clone(),
                public_line: host_id.public_line.clone(),
                origin,
            },
        )));
    }
    let SecretsCheck {
        listed,
        stale,
        unreadable,
        ..
    } = check;
    if !stale.is_empty() {
        return Err(PreflightError::Stale {
            url,
            host: host.to_owned(),
            secrets: stale,
        });
    }
    if !unreadable.is_empty() {
        return Err(PreflightError::Unreadable {
            url,
            host: host.to_owned(),
            secrets: unreadable,
        });
    }
    let pq_listed = match &pq_id {
        None => None,
        Some(pq) => {
            let c = pq.check_secrets(&rules);
            if c.listed.is_empty() {
                return Err(PreflightError::PqKeyNotListed {
                    url,
                    host: host.to_owned(),
                    recipient: pq.recipient.clone(),
                });
            }
            if !c.stale.is_empty() {
                return Err(PreflightError::PqStale {
                    url,
                    host: host.to_owned(),
                    secrets: c.stale,
                });
            }
            if !c.unreadable.is_empty() {
                return Err(PreflightError::PqUnreadable {
                    url,
                    host: host.to_owned(),
                    secrets: c.unreadable,
                });
            }
            Some(c.listed)
        }
    };
    if let Some(rev) = &locked_rev {
        if *rev != cloned.commit {
            notify(Notice::LockedRevDiffers {
                url: url.clone(),
                locked: rev.clone(),
                fetched_ref: branch.as_deref().unwrap_or("HEAD").to_owned(),
                fetched: cloned.commit.clone(),
            });
        }
    }

    let root = &std::path::absolute(&req.root).map_err(|source| PreflightError::Root {
        root: req.root.clone(),
        source,
    })?;
    install.extend([
        "--root".to_string(),
        root.display().to_string(),
        "--flake".to_string(),
        format!("{}#{host}", root.join("etc/nixos").display()),
        "--no-channel-copy".to_string(),
        "--override-input".to_string(),
        req.secrets_input.clone(),
        format!("path:{}", secrets_dir.display()),
    ]);
    let key_path = stage::host_key_path(root);
    let mut place = vec![
        PlanPlace {
            path: root.join("etc/nixos"),
            what: format!("{} files of the flake", flake_files.len()),
        },
        PlanPlace {
            path: key_path.clone(),
            what: format!("host key {} (0600)", host_id.fingerprint),
        },
        PlanPlace {
            path: key_path.with_extension("pub"),
            what: "host public key (0644)".into(),
        },
    ];
    if let Some(pq) = &pq_id {
        place.push(PlanPlace {
            path: stage::pq_key_path(root),
            what: format!(
                "post-quantum identity {} (0600; add /etc/ssh/{} to age.identityPaths)",
                crate::recipient::abbreviate(&pq.recipient),
                crate::keys::age_identity::PQ_IDENTITY_FILE
            ),
        });
    }
    if let Some((dir, files)) = &extra {
        place.push(PlanPlace {
            path: root.clone(),
            what: format!("{} extra files from {}", files.len(), dir.display()),
        });
    }
    let plan = Plan {
        host: host.to_owned(),
        flake: flake_dir.clone(),
        root: root.clone(),
        secrets: PlanSecrets {
            url,
            input: req.secrets_input.clone(),
            branch,
            commit: cloned.commit,
            locked_rev,
            for_host: listed,
        },
        host_key: PlanHostKey {
            source: host_id.source,
            public: host_id.public_line.clone(),
            fingerprint: host_id.fingerprint.clone(),
            tag: host_tag,
            kept_at: host_id.path.clone(),
        },
        pq_key: pq_id.as_ref().zip(pq_listed).map(|(pq, listed)| PlanPqKey {
            source: pq.source,
            recipient: pq.recipient.clone(),
            kept_at: pq.path.clone(),
            for_host: listed,
        }),
        disko: match &disko {
            Disko::Given(argv) => vec![argv.clone()],
            Disko::FlakeScript(build) => {
                vec![build.clone(), vec!["<the built diskoScript>".into()]]
            }
        },
        install: install.clone(),
        place,
    };
    Ok(Prepared {
        host_id,
        pq_id,
        flake_dir,
        flake_files,
        extra,
        disko,
        install,
        plan,
    })
}

impl Prepared {
    /// Step 4 of the install, after partitioning: the flake's files under
    /// `<root>/etc/nixos`, the host key (and post-quantum identity) under `<root>/etc/ssh`,
    /// then `--extra-files` (modes kept). What was placed, for the report.
    pub fn place(&self) -> Result<Vec<stage::Placed>, InstallError> {
        let root = &self.plan.root;
        let mut placed = stage::copy_files(
            &self.flake_dir,
            &self.flake_files,
            &root.join("etc/nixos"),
            0o777,
            false,
        )?;
        placed.extend(stage::place_host_key(root, &self.host_id)?);
        if let Some(pq) = &self.pq_id {
            placed.push(stage::place_pq_key(root, pq)?);
        }
        if let Some((dir, files)) = &self.extra {
            placed.extend(stage::copy_files(dir, files, root, 0o7777, true)?);
        }
        Ok(placed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_resolved_by_path_or_on_path() {
        let path = std::ffi::OsString::from("/usr/bin:/bin");
        assert!(require_program("sh", "t", Some(&path)).is_ok());
        assert!(require_program("/bin/sh", "t", None).is_ok());
        assert!(require_program("sh", "t", None).is_err());
        let e = require_program("/nonexistent/tool", "the disko command", Some(&path))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the disko command: `/nonexistent/tool` not found or not executable"
        );
    }
}
