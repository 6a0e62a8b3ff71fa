//! `install-with-secrets`: first-install provisioning over a forwarded SSH agent.
//!
//! Order, and what each exit code means:
//! 1. Preflight (exit 4 on any failure; nothing on the target disks is touched): root; the
//!    disko and install commands resolvable; `SSH_AUTH_SOCK` set and the agent holds a key;
//!    the flake's files hold no private key; the secrets repo (`--secrets-url`, else the
//!    `git`/`ssh://` input `--secrets-input` of `<flake>/flake.lock`) cloned with git2 through
//!    the agent into a private 0700 staging dir on tmpfs, the server's host key checked
//!    against `--known-hosts` (default `~/.ssh/known_hosts`); the host identity loaded
//!    (`--host-key FILE`) or generated (`generate`, the default: kept 0600 under
//!    `$XDG_STATE_HOME/agefleet/install/<host>/` so a second run after the rekey reuses it);
//!    by `secrets.nix` and the headers, the host key is a recipient of at least one secret
//!    and of every file whose rule lists it.
//! 2. The plan on stderr (`--json`: on stdout at the end). On a TTY, `Proceed? [y/N]`;
//!    `--yes` skips the question; `--dry-run` stops here with exit 0. Without a TTY and
//!    without `--yes` it refuses with exit 2 (a usage problem: automation must say `--yes`).
//! 3. Disko: `--disko-cmd CMD` (split like a shell word list, run directly), else
//!    `nix build --no-link --print-out-paths <flake>#nixosConfigurations."<host>".config.system.build.diskoScript`
//!    and then the built script. Failure: exit 5. Then `<root>` must be a directory (a
//!    warning when it is not a mount point).
//! 4. Placing: the flake's files (git-tracked ones when it is a git work tree) under
//!    `<root>/etc/nixos`, the host key at `<root>/etc/ssh/ssh_host_ed25519_key` (0600) and
//!    `.pub` (0644), then `--extra-files DIR` (modes kept). Failure: exit 1.
//! 5. `<install-cmd> --root <root> --flake <root>/etc/nixos#<host> --no-channel-copy
//!    --override-input <input> path:<staged secrets>`, `SSH_AUTH_SOCK` passed through.
//!    Failure: exit 5.
//! 6. Report placed files (path, mode, fingerprint; never contents). The staging dir is
//!    removed on every path out of this function (it is a drop guard), and on
//!    SIGINT/SIGTERM/SIGHUP (exit 130).
//!
//! A declined confirmation exits 1, nothing changed.

use std::path::PathBuf;

use super::signals::{CleanupOnSignal, Interrupt};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::InstallArgs;
use crate::fsutil::PrivateTempDir;
use crate::provision::preflight::{self, KeyChoice, Notice, PreflightError, Prepared, Request};
use crate::provision::{self as lib, RootState};

mod render;
mod steps;

use render::{print_json, print_plan, report, Report};
use steps::{partition, run_tool};

/// What preflight established, with the staging dir it fetched into. Dropping it removes the
/// staging dir (the signal guard first, as declared).
struct Staged {
    _signals: CleanupOnSignal,
    _staging: PrivateTempDir,
    prepared: Prepared,
}

pub fn run(ctx: &Context, args: &InstallArgs) -> Result<Outcome> {
    let (flake_dir, host) = parse_flake_arg(&args.flake)?;
    let staged = preflight(ctx, args, flake_dir, host)?;
    let prepared = &staged.prepared;
    print_plan(&prepared.plan);
    if args.dry_run {
        ui::info("dry run: preflight passed; nothing was changed");
        if args.json {
            print_json(&Report {
                plan: &prepared.plan,
                dry_run: true,
                installed: false,
                placed: Vec::new(),
            })?;
        }
        return Ok(Outcome::Success);
    }
    confirm(args)?;

    partition(&prepared.disko)?;
    let root = &prepared.plan.root;
    match lib::root_state(root) {
        RootState::NotADirectory => {
            return Err(Error::ExternalTool(format!(
                "{}: not a directory after partitioning; is the disko command right?",
                root.display()
            )))
        }
        RootState::MountPoint => {}
        RootState::NotAMountPoint => ui::warn(&format!(
            "{} is not a mount point: the system is installed into whatever filesystem holds it",
            root.display()
        )),
        RootState::Unknown(e) => ui::warn(&e.to_string()),
    }

    let placed = prepared.place().map_err(Error::failed)?;

    ctx.verbose(&format!("running {}", shell_words::join(&prepared.install)));
    run_tool("the install command", &prepared.install, false)?;

    report(&placed, root);
    if args.json {
        print_json(&Report {
            plan: &prepared.plan,
            dry_run: false,
            installed: true,
            placed,
        })?;
    }
    drop(staged);
    Ok(Outcome::Success)
}

/// `DIR#HOST` -> (DIR, HOST). The host must be a plain host name: it goes into a flake
/// attribute path and a state directory name.
fn parse_flake_arg(arg: &str) -> Result<(PathBuf, String)> {
    let Some((dir, host)) = arg.rsplit_once('#') else {
        return Err(Error::Usage(format!(
            "--flake {arg:?}: expected DIR#HOST (e.g. .#myhost)"
        )));
    };
    let valid = !host.is_empty()
        && host != "."
        && host != ".."
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(Error::Usage(format!(
            "--flake {arg:?}: host {host:?} is not a plain host name (letters, digits, - _ .)"
        )));
    }
    let dir = if dir.is_empty() { "." } else { dir };
    let dir = dir.strip_prefix("path:").unwrap_or(dir);
    Ok((PathBuf::from(dir), host.to_owned()))
}

fn preflight(ctx: &Context, args: &InstallArgs, flake: PathBuf, host: String) -> Result<Staged> {
    let key_choice = |arg: Option<&str>| match arg {
        None | Some("generate") => KeyChoice::Generate,
        Some(path) => KeyChoice::File(PathBuf::from(path)),
    };
    let disko_cmd = match &args.disko_cmd {
        Some(cmd) => Some(split_command("--disko-cmd", cmd)?),
        None => None,
    };
    let install_cmd = split_command(
        "--nixos-install-cmd",
        args.nixos_install_cmd.as_deref().unwrap_or("nixos-install"),
    )?;
    let req = Request {
        flake,
        host,
        disko_cmd,
        install_cmd,
        agent_socket: std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        extra_files: args.extra_files.clone(),
        host_key: key_choice(args.host_key.as_deref()),
        pq_key: args.pq_key.as_deref().map(|k| key_choice(Some(k))),
        keep_generated: !args.dry_run,
        state_dir: state_dir(),
        secrets_url: args.secrets_url.clone(),
        secrets_input: args.secrets_input.clone(),
        known_hosts: args
            .known_hosts
            .clone()
            .or_else(|| super::home_dir().map(|h| h.join(".ssh/known_hosts"))),
        root: args.root.clone(),
        eval_mode: ctx.eval_mode(),
    };
    let mut notify = |n: Notice| show_notice(ctx, n);
    let path = std::env::var_os("PATH");
    let checked = preflight::check(&req, path.as_deref(), &mut notify).map_err(refusal)?;
    let staging = PrivateTempDir::new().map_err(|e| Error::Preflight(e.to_string()))?;
    let signals = CleanupOnSignal::install(
        staging.path(),
        Interrupt::Stop,
        "interrupted; staging removed",
        130,
    )?;
    let prepared = preflight::fetch(checked, &req, staging.path(), &mut notify).map_err(refusal)?;
    Ok(Staged {
        _signals: signals,
        _staging: staging,
        prepared,
    })
}

/// Shows a preflight notice as it arrives: verbose progress, or a warning.
fn show_notice(ctx: &Context, notice: Notice) {
    match notice {
        Notice::AgentKeys { socket, keys } => ctx.verbose(&format!(
            "SSH agent at {} holds {keys} key(s)",
            socket.display()
        )),
        Notice::ExtraFile(w) => ui::warn(&format!("--extra-files: {w}")),
        Notice::Fetching { url, into } => {
            ctx.verbose(&format!("fetching {url} into {}", into.display()))
        }
        Notice::BadRule { url, message } => ui::warn(&format!("{url}: {message}")),
        Notice::LockedRevDiffers {
            url,
            locked,
            fetched_ref,
            fetched,
        } => ui::warn(&format!(
            "{url}: flake.lock pins {locked} but the fetched {fetched_ref} is {fetched}; installing with the fetched commit"
        )),
    }
}

/// A preflight refusal (exit 4), after what the user needs to fix it, when there is more
/// to show than one line.
fn refusal(e: PreflightError) -> Error {
    match &e {
        PreflightError::HostKeyNotListed(n) => ui::info(&format!(
            "host key of {} ({}):\n{}\n\nAdd it to secrets.nix in {}:\n\n{}\n",
            n.host, n.origin, n.public_line, n.url, n.snippet
        )),
        PreflightError::PqKeyNotListed {
            url,
            host,
            recipient,
        } => ui::info(&format!(
            "post-quantum key of {host}:\n{recipient}\n\nAdd it to secrets.nix in {url} (and its path to age.identityPaths)"
        )),
        _ => {}
    }
    Error::InstallPreflight(e)
}

/// `$XDG_STATE_HOME`, else `$HOME/.local/state`.
fn state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| super::home_dir().map(|h| h.join(".local/state")))
}

fn split_command(flag: &str, cmd: &str) -> Result<Vec<String>> {
    let argv = shell_words::split(cmd).map_err(|e| Error::Usage(format!("{flag} {cmd:?}: {e}")))?;
    if argv.is_empty() {
        return Err(Error::Usage(format!("{flag}: empty command")));
    }
    Ok(argv)
}

fn confirm(args: &InstallArgs) -> Result<()> {
    if args.yes {
        return Ok(());
    }
    match ui::confirm("Proceed? This erases the disks of the plan.")? {
        None => Err(Error::Usage(
            "no terminal to confirm the plan on; pass --yes to proceed without asking (nothing was changed)".into(),
        )),
        Some(true) => Ok(()),
        Some(false) => Err(Error::Failed("not confirmed; nothing was changed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flake_arg() {
        assert_eq!(
            parse_flake_arg(".#web").unwrap(),
            (PathBuf::from("."), "web".to_string())
        );
        assert_eq!(
            parse_flake_arg("/etc/fleet#nas-1").unwrap(),
            (PathBuf::from("/etc/fleet"), "nas-1".to_string())
        );
        assert_eq!(parse_flake_arg("#h").unwrap().0, PathBuf::from("."));
        for bad in ["nohost", ".#", ".#a/b", ".#..", ".#a\"b", ".#a b"] {
            assert!(
                matches!(parse_flake_arg(bad), Err(Error::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn commands_are_split() {
        assert_eq!(
            split_command("--disko-cmd", "disko --mode 'a b'").unwrap(),
            ["disko", "--mode", "a b"]
        );
        assert!(matches!(split_command("--x", "  "), Err(Error::Usage(_))));
        assert!(matches!(
            split_command("--x", "'open"),
            Err(Error::Usage(_))
        ));
    }
}
