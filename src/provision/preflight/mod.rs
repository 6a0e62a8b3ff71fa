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

use super::pq::PqHostIdentity;
use super::{stage, HostIdentity, HostKeySource, InstallError, SecretsCheck};
use crate::git::SshRemote;

mod error;
mod plan;
mod request;

pub use error::{HostKeyNotListed, PreflightError};
pub use plan::{Disko, Plan, PlanHostKey, PlanPlace, PlanPqKey, PlanSecrets, Prepared};
pub use request::{KeyChoice, Notice, Request};

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
