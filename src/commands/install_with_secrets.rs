//! `install-with-secrets`: first-install provisioning over a forwarded SSH agent (DESIGN §6).
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

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::signals::{CleanupOnSignal, Interrupt};
use super::{ui, Context, Error, Outcome, Result};
use crate::cli::InstallArgs;
use crate::fsutil::PrivateTempDir;
use crate::git::SshRemote;
use crate::provision::stage::{self, Placed};
use crate::provision::{self as lib, HostIdentity, HostKeySource};

/// What the run will do, shown before anything destructive.
#[derive(Debug, Serialize)]
struct Plan {
    host: String,
    flake: PathBuf,
    root: PathBuf,
    secrets: PlanSecrets,
    host_key: PlanHostKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    pq_key: Option<PlanPqKey>,
    /// Disko steps, each an argv.
    disko: Vec<Vec<String>>,
    install: Vec<String>,
    place: Vec<PlanPlace>,
}

#[derive(Debug, Serialize)]
struct PlanSecrets {
    url: String,
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch: Option<String>,
    commit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_rev: Option<String>,
    /// Secrets whose rules list the host key.
    for_host: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PlanHostKey {
    source: HostKeySource,
    public: String,
    fingerprint: String,
    tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_at: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct PlanPqKey {
    source: HostKeySource,
    recipient: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_at: Option<PathBuf>,
    /// Secrets whose rules list it (each proven to decrypt with it).
    for_host: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PlanPlace {
    path: PathBuf,
    what: String,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    plan: &'a Plan,
    dry_run: bool,
    installed: bool,
    placed: Vec<Placed>,
}

/// How partitioning runs.
enum Disko {
    /// `--disko-cmd`, as given.
    Given(Vec<String>),
    /// Build the flake host's disko script, then run it.
    FlakeScript(Vec<String>),
}

/// Everything preflight established. Dropping it removes the staging dir.
struct Prepared {
    _signals: CleanupOnSignal,
    _staging: PrivateTempDir,
    host_id: HostIdentity,
    pq_id: Option<lib::pq::PqHostIdentity>,
    flake_dir: PathBuf,
    flake_files: Vec<PathBuf>,
    extra: Option<(PathBuf, Vec<PathBuf>)>,
    disko: Disko,
    install: Vec<String>,
    plan: Plan,
}

pub fn run(ctx: &Context, args: &InstallArgs) -> Result<Outcome> {
    let (flake_dir, host) = parse_flake_arg(&args.flake)?;
    let prepared = preflight(ctx, args, &flake_dir, &host)?;
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
    if !root.is_dir() {
        return Err(Error::ExternalTool(format!(
            "{}: not a directory after partitioning; is the disko command right?",
            root.display()
        )));
    }
    match lib::is_mount_point(root) {
        Ok(true) => {}
        Ok(false) => ui::warn(&format!(
            "{} is not a mount point: the system is installed into whatever filesystem holds it",
            root.display()
        )),
        Err(e) => ui::warn(&e.to_string()),
    }

    let mut placed = stage::copy_files(
        &prepared.flake_dir,
        &prepared.flake_files,
        &root.join("etc/nixos"),
        0o777,
        false,
    )
    .map_err(Error::failed)?;
    placed.extend(stage::place_host_key(root, &prepared.host_id).map_err(Error::failed)?);
    if let Some(pq) = &prepared.pq_id {
        placed.push(stage::place_pq_key(root, pq).map_err(Error::failed)?);
    }
    if let Some((dir, files)) = &prepared.extra {
        placed.extend(stage::copy_files(dir, files, root, 0o7777, true).map_err(Error::failed)?);
    }

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
    drop(prepared);
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

fn preflight(ctx: &Context, args: &InstallArgs, flake_arg: &Path, host: &str) -> Result<Prepared> {
    let fail = |m: String| Error::Preflight(m);
    if !rustix::process::geteuid().is_root() {
        return Err(fail(
            "must run as root: it partitions disks and installs NixOS".into(),
        ));
    }
    let flake_dir = flake_arg
        .canonicalize()
        .map_err(|e| fail(format!("{}: flake directory: {e}", flake_arg.display())))?;
    if !flake_dir.join("flake.nix").is_file() {
        return Err(fail(format!("{}: no flake.nix", flake_dir.display())));
    }

    // Tools.
    let disko = match &args.disko_cmd {
        Some(cmd) => Disko::Given(split_command("--disko-cmd", cmd)?),
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
    require_program(disko_program, "the disko command")?;
    let mut install = split_command(
        "--nixos-install-cmd",
        args.nixos_install_cmd.as_deref().unwrap_or("nixos-install"),
    )?;
    require_program(&install[0], "the install command")?;

    // The agent.
    let sock = std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            fail(
                "SSH_AUTH_SOCK is not set: connect with `ssh -A` so your agent is forwarded".into(),
            )
        })?;
    let keys = lib::agent::count_identities(&sock).map_err(|e| fail(e.to_string()))?;
    if keys == 0 {
        return Err(fail(format!(
            "SSH agent at {} holds no key: `ssh-add` on your machine, then reconnect with `ssh -A`",
            sock.display()
        )));
    }
    ctx.verbose(&format!(
        "SSH agent at {} holds {keys} key(s)",
        sock.display()
    ));

    // The flake's own files: they go to a world-readable place and into the store.
    let flake_files = stage::flake_files(&flake_dir).map_err(|e| fail(e.to_string()))?;
    let leaking = stage::files_with_private_keys(&flake_dir, &flake_files);
    if !leaking.is_empty() {
        let names: Vec<String> = leaking.iter().map(|p| p.display().to_string()).collect();
        return Err(fail(format!(
            "{}: these files hold private key material and would be copied to <root>/etc/nixos and the Nix store: {}",
            flake_dir.display(),
            names.join(", ")
        )));
    }
    let extra = match &args.extra_files {
        None => None,
        Some(dir) => {
            let dir = dir
                .canonicalize()
                .map_err(|e| fail(format!("{}: --extra-files: {e}", dir.display())))?;
            let files = stage::walk(&dir, false).map_err(|e| fail(e.to_string()))?;
            let (errors, warnings) = stage::check_extra_files(&dir, &files);
            for w in &warnings {
                ui::warn(&format!("--extra-files: {w}"));
            }
            if !errors.is_empty() {
                return Err(fail(format!("--extra-files: {}", errors.join("; "))));
            }
            Some((dir, files))
        }
    };

    // Host identity.
    let host_id = match args.host_key.as_deref() {
        None | Some("generate") => {
            let kept = state_dir()
                .map_err(fail)?
                .join("agefleet/install")
                .join(host)
                .join("ssh_host_ed25519_key");
            HostIdentity::generate_or_reuse(&kept, &format!("root@{host}"), !args.dry_run)
                .map_err(|e| fail(e.to_string()))?
        }
        Some(path) => HostIdentity::load(Path::new(path)).map_err(|e| fail(e.to_string()))?,
    };
    let pq_id = match args.pq_key.as_deref() {
        None => None,
        Some("generate") => {
            let kept = state_dir()
                .map_err(fail)?
                .join("agefleet/install")
                .join(host)
                .join(crate::keys::age_identity::PQ_IDENTITY_FILE);
            Some(
                lib::pq::PqHostIdentity::generate_or_reuse(&kept, !args.dry_run)
                    .map_err(|e| fail(e.to_string()))?,
            )
        }
        Some(path) => {
            Some(lib::pq::PqHostIdentity::load(Path::new(path)).map_err(|e| fail(e.to_string()))?)
        }
    };
    let host_tag = crate::recipient::Recipient::parse(&host_id.public_line)
        .map_err(|e| fail(e.to_string()))?
        .tag
        .ok_or_else(|| fail("the host key has no SSH stanza tag".into()))?;

    // The secrets repo.
    let (url, branch, locked_rev) = match &args.secrets_url {
        Some(u) => (u.clone(), None, None),
        None => {
            let l = lib::flake_lock::secrets_input(&flake_dir, &args.secrets_input)
                .map_err(|e| fail(e.to_string()))?;
            (l.url, l.branch, l.rev)
        }
    };
    let remote = SshRemote::parse(&url).map_err(|e| fail(e.to_string()))?;
    let known_hosts = match &args.known_hosts {
        Some(p) => p.clone(),
        None => super::home_dir()
            .map(|h| h.join(".ssh/known_hosts"))
            .ok_or_else(|| fail("HOME is not set: pass --known-hosts".into()))?,
    };
    let staging = PrivateTempDir::new().map_err(|e| fail(e.to_string()))?;
    let signals = CleanupOnSignal::install(
        staging.path(),
        Interrupt::Stop,
        "interrupted; staging removed",
        130,
    )?;
    let clone_dir = staging.path().join("clone");
    ctx.verbose(&format!(
        "fetching {} into {}",
        remote.git_url(),
        clone_dir.display()
    ));
    let cloned = crate::git::clone_with_agent(&remote, &known_hosts, branch.as_deref(), &clone_dir)
        .map_err(|e| fail(e.to_string()))?;
    let secrets_dir = staging.path().join("secrets");
    let secret_files = crate::git::tracked_files(&clone_dir)
        .map_err(|e| fail(e.to_string()))?
        .unwrap_or_default();
    stage::copy_files(&clone_dir, &secret_files, &secrets_dir, 0o777, false)
        .map_err(|e| fail(e.to_string()))?;
    // The staged repository becomes a flake input, copied into the world-readable store.
    let leaking = stage::files_with_private_keys(&secrets_dir, &secret_files);
    if !leaking.is_empty() {
        let names: Vec<String> = leaking.iter().map(|p| p.display().to_string()).collect();
        return Err(fail(format!(
            "{url}: these files hold unencrypted private key material and would be copied to the Nix store: {}",
            names.join(", ")
        )));
    }
    let rules_file = secrets_dir.join("secrets.nix");
    if !rules_file.is_file() {
        return Err(fail(format!(
            "{url}: the repository has no secrets.nix at its top"
        )));
    }
    let rules = crate::rules::load(&rules_file, ctx.eval_mode())
        .map_err(|e| fail(format!("{url}: {e}")))?;
    let check = lib::check_secrets(&rules, &host_id.key_fields(), &host_tag);
    for bad in &check.bad_rules {
        ui::warn(&format!("{url}: {bad}"));
    }
    if check.listed.is_empty() {
        let origin = match (&host_id.source, &host_id.path) {
            (HostKeySource::File, _) => "given".to_string(),
            (_, Some(p)) => format!("generated, kept at {}", p.display()),
            (_, None) => "generated, not kept (dry run)".to_string(),
        };
        ui::info(&format!(
            "host key of {host} ({origin}):\n{}\n\nAdd it to secrets.nix in {url}:\n\n{}\n",
            host_id.public_line,
            lib::rules_snippet(host, &host_id.public_line)
        ));
        return Err(fail(format!(
            "{url}: no secret in secrets.nix lists the host key {} of {host}: add it (above), rekey, push, and run again",
            host_id.fingerprint
        )));
    }
    if !check.stale.is_empty() {
        return Err(fail(format!(
            "{url}: these secrets list the host key of {host} in secrets.nix but were not encrypted to it: {}; rekey them (`agefleet rekey`) and push",
            check.stale.join(", ")
        )));
    }
    if !check.unreadable.is_empty() {
        return Err(fail(format!(
            "{url}: secrets for {host} that cannot be checked: {}",
            check.unreadable.join(", ")
        )));
    }
    let pq_listed = match &pq_id {
        None => None,
        Some(pq) => {
            let c = pq.check_secrets(&rules);
            if c.listed.is_empty() {
                ui::info(&format!(
                    "post-quantum key of {host}:\n{}\n\nAdd it to secrets.nix in {url} (and its path to age.identityPaths)",
                    pq.recipient
                ));
                return Err(fail(format!(
                    "{url}: no secret in secrets.nix lists the post-quantum key of {host}: add it (above), rekey, push, and run again"
                )));
            }
            if !c.stale.is_empty() {
                return Err(fail(format!(
                    "{url}: these secrets list the post-quantum key of {host} in secrets.nix but do not decrypt with it: {}; rekey them (`agefleet rekey`) and push",
                    c.stale.join(", ")
                )));
            }
            if !c.unreadable.is_empty() {
                return Err(fail(format!(
                    "{url}: secrets for the post-quantum key of {host} that cannot be checked: {}",
                    c.unreadable.join(", ")
                )));
            }
            Some(c.listed)
        }
    };
    if let Some(rev) = &locked_rev {
        if *rev != cloned.commit {
            ui::warn(&format!(
                "{url}: flake.lock pins {rev} but the fetched {} is {}; installing with the fetched commit",
                branch.as_deref().unwrap_or("HEAD"),
                cloned.commit
            ));
        }
    }

    let root = &std::path::absolute(&args.root)
        .map_err(|e| fail(format!("{}: --root: {e}", args.root.display())))?;
    install.extend([
        "--root".to_string(),
        root.display().to_string(),
        "--flake".to_string(),
        format!("{}#{host}", root.join("etc/nixos").display()),
        "--no-channel-copy".to_string(),
        "--override-input".to_string(),
        args.secrets_input.clone(),
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
            input: args.secrets_input.clone(),
            branch,
            commit: cloned.commit,
            locked_rev,
            for_host: check.listed,
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
        _signals: signals,
        _staging: staging,
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

/// `$XDG_STATE_HOME`, else `$HOME/.local/state`.
fn state_dir() -> std::result::Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    super::home_dir()
        .map(|h| h.join(".local/state"))
        .ok_or_else(|| "HOME is not set: cannot keep a generated host key".to_string())
}

fn split_command(flag: &str, cmd: &str) -> Result<Vec<String>> {
    let argv = shell_words::split(cmd).map_err(|e| Error::Usage(format!("{flag} {cmd:?}: {e}")))?;
    if argv.is_empty() {
        return Err(Error::Usage(format!("{flag}: empty command")));
    }
    Ok(argv)
}

/// The program is an executable file (a path) or found on PATH.
fn require_program(program: &str, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        executable(Path::new(program))
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| executable(&d.join(program))))
    };
    if found {
        Ok(())
    } else {
        Err(Error::Preflight(format!(
            "{what}: `{program}` not found or not executable"
        )))
    }
}

fn print_plan(plan: &Plan) {
    let mut s = format!(
        "plan for {} (flake {}):\n  secrets: {} ({}) at {}, {} secret(s) for this host: {}\n  host key: {} ({}{})\n",
        plan.host,
        plan.flake.display(),
        plan.secrets.url,
        plan.secrets.input,
        plan.secrets.commit,
        plan.secrets.for_host.len(),
        plan.secrets.for_host.join(", "),
        plan.host_key.fingerprint,
        plan.host_key.source.label(),
        plan.host_key
            .kept_at
            .as_ref()
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default(),
    );
    if let Some(pq) = &plan.pq_key {
        s.push_str(&format!(
            "  post-quantum key: {} ({}{}), {} secret(s): {}\n",
            crate::recipient::abbreviate(&pq.recipient),
            pq.source.label(),
            pq.kept_at
                .as_ref()
                .map(|p| format!(", {}", p.display()))
                .unwrap_or_default(),
            pq.for_host.len(),
            pq.for_host.join(", ")
        ));
    }
    for step in &plan.disko {
        s.push_str(&format!("  partition: {}\n", shell_words::join(step)));
    }
    s.push_str(&format!("  root: {}\n", plan.root.display()));
    for p in &plan.place {
        s.push_str(&format!("  place: {}: {}\n", p.path.display(), p.what));
    }
    s.push_str(&format!("  install: {}", shell_words::join(&plan.install)));
    ui::info(&s);
}

fn confirm(args: &InstallArgs) -> Result<()> {
    if args.yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::Usage(
            "no terminal to confirm the plan on; pass --yes to proceed without asking (nothing was changed)".into(),
        ));
    }
    {
        // A closed stderr must not panic; the answer is still read.
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "Proceed? This erases the disks of the plan. [y/N] ");
        let _ = stderr.flush();
    }
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Failed(format!("reading the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Error::Failed("not confirmed; nothing was changed".into()))
    }
}

fn partition(disko: &Disko) -> Result<()> {
    match disko {
        Disko::Given(argv) => run_tool("the disko command", argv, false).map(|_| ()),
        Disko::FlakeScript(build) => {
            let out = run_tool("building the disko script", build, true)?;
            let script = out
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .ok_or_else(|| {
                    Error::ExternalTool("building the disko script printed no store path".into())
                })?
                .to_string();
            run_tool("the disko script", &[script], false).map(|_| ())
        }
    }
}

/// Runs `argv` with stdin inherited (nixos-install asks for a root password) and stdout
/// sent to our stderr (stdout is for `--json`), or captured when `capture`.
fn run_tool(what: &str, argv: &[String], capture: bool) -> Result<String> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::inherit());
    if capture {
        cmd.stdout(Stdio::piped());
    } else {
        let err = std::io::stderr();
        let fd = std::os::fd::AsFd::as_fd(&err)
            .try_clone_to_owned()
            .map_err(|e| Error::Failed(format!("cannot duplicate stderr: {e}")))?;
        cmd.stdout(Stdio::from(fd));
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::ExternalTool(format!("{what}: cannot run `{}`: {e}", argv[0])))?;
    if !out.status.success() {
        return Err(Error::ExternalTool(format!(
            "{what} failed: `{}` {}",
            argv[0], out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn report(placed: &[Placed], root: &Path) {
    let nixos = root.join("etc/nixos");
    let flake_count = placed.iter().filter(|p| p.path.starts_with(&nixos)).count();
    let mut s = format!(
        "installed. placed:\n  {}: {flake_count} flake files",
        nixos.display()
    );
    for p in placed.iter().filter(|p| !p.path.starts_with(&nixos)) {
        s.push_str(&format!("\n  {}", p.path.display()));
        if let Some(m) = &p.mode {
            s.push_str(&format!(" {m}"));
        } else {
            s.push_str(&format!(" {}", p.kind));
        }
        if let Some(f) = &p.fingerprint {
            s.push_str(&format!(" {f}"));
        }
    }
    ui::info(&s);
}

fn print_json(report: &Report<'_>) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(Error::failed)?;
    ui::out(&text)
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
    fn commands_are_split_and_resolved() {
        assert_eq!(
            split_command("--disko-cmd", "disko --mode 'a b'").unwrap(),
            ["disko", "--mode", "a b"]
        );
        assert!(matches!(split_command("--x", "  "), Err(Error::Usage(_))));
        assert!(matches!(
            split_command("--x", "'open"),
            Err(Error::Usage(_))
        ));
        assert!(require_program("sh", "t").is_ok());
        assert!(require_program("/bin/sh", "t").is_ok());
        assert!(matches!(
            require_program("/nonexistent/tool", "t"),
            Err(Error::Preflight(_))
        ));
    }
}
