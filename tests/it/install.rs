//! install-with-secrets and the agent-authenticated clone, against real OpenSSH parts
//! (see tests/common/sshd.rs).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::sshd::{self, SshRig};
use crate::common::{age_encrypt, agefleet, mode_of, ssh_keygen, stderr, stdout, SshKey};
use agefleet::internal::git::{clone_with_agent, SshRemote};

/// libssh2 reads `SSH_AUTH_SOCK` from the process environment: the tests that call the
/// library clone set it and hold this lock meanwhile (the others run the agefleet binary).
static AGENT_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The library clone with the agent: works with the right known_hosts, refuses a wrong or
/// missing entry (naming the host and the file), refuses when the agent has no usable key.
#[test]
#[ignore = "needs root, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn git_clone_over_agent_checks_host_key() {
    sshd::require();
    let rig = SshRig::start();
    let url = rig.bare_repo("repo", &[("secrets.nix", b"{ }\n"), ("a.age", b"x")]);
    let remote = SshRemote::parse(&url).unwrap();
    let work = tempfile::tempdir().unwrap();

    let _env = AGENT_ENV.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var("SSH_AUTH_SOCK", &rig.agent_sock);
    let ok = clone_with_agent(&remote, &rig.known_hosts, None, &work.path().join("ok"));
    let ok = ok.unwrap_or_else(|e| panic!("clone failed: {e}\nsshd log:\n{}", rig.sshd_log()));
    assert_eq!(std::fs::read(ok.dir.join("a.age")).unwrap(), b"x");
    assert_eq!(ok.commit.len(), 40);

    // The same entry hashed by `ssh-keygen -H` (|1|salt|hmac form) is accepted too.
    let hashed = work.path().join("hashed_known_hosts");
    std::fs::copy(&rig.known_hosts, &hashed).unwrap();
    let out = common::run(Command::new("ssh-keygen").arg("-H").arg("-f").arg(&hashed));
    assert!(out.status.success(), "ssh-keygen -H: {}", stderr(&out));
    let text = std::fs::read_to_string(&hashed).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    clone_with_agent(&remote, &hashed, None, &work.path().join("hashed"))
        .unwrap_or_else(|e| panic!("clone with hashed known_hosts failed: {e}"));

    // A known_hosts with another key for the same host: mismatch, named.
    let other = common::ssh_keygen(work.path(), "other", "ed25519", "");
    let wrong = work.path().join("wrong_known_hosts");
    let fields: Vec<&str> = other.public_line.split_whitespace().take(2).collect();
    std::fs::write(
        &wrong,
        format!("[127.0.0.1]:{} {}\n", rig.port, fields.join(" ")),
    )
    .unwrap();
    let err = clone_with_agent(&remote, &wrong, None, &work.path().join("bad1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("[127.0.0.1]:{}", rig.port)), "{err}");
    assert!(err.contains("wrong_known_hosts"), "{err}");
    assert!(err.contains("does not match"), "{err}");
    assert!(!err.contains('\n'));
    assert!(!work.path().join("bad1/a.age").exists());

    // An empty known_hosts: unknown host.
    let empty = work.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = clone_with_agent(&remote, &empty, None, &work.path().join("bad2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not listed in"), "{err}");
    assert!(err.contains("empty_known_hosts"), "{err}");

    // An agent whose key is not authorized: authentication fails, one line.
    std::env::set_var("SSH_AUTH_SOCK", work.path().join("no-such-agent.sock"));
    let err = clone_with_agent(&remote, &rig.known_hosts, None, &work.path().join("bad3"))
        .unwrap_err()
        .to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(!Path::new(&work.path().join("bad3/a.age")).exists());

    let pids = rig.pids();
    drop(rig);
    for pid in pids {
        assert!(!sshd::alive(pid), "process {pid} still running");
    }
}

const PLAINTEXT: &[u8] = b"db-password-for-web\n";

/// One install scenario: the rig, a secrets repo, a flake (git work tree) whose flake.lock
/// points at the repo, a host key, and fake disko / nixos-install that record what they got.
struct Fixture {
    rig: SshRig,
    tmp: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
    flake: PathBuf,
    record: PathBuf,
    disko: PathBuf,
    install: PathBuf,
    extra: PathBuf,
    host_key: SshKey,
    url: String,
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\nset -e\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A secrets repo (in the rig) with `db.age` for operator + `host_public` (the header
/// lists `encrypted_to`) and `other.age` for the operator only.
fn secrets_repo(rig: &SshRig, name: &str, host_public: &str, encrypted_to: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    let rules = common::write_rules(
        work.path(),
        &[
            (
                "db.age",
                &[rig.operator_public.as_str(), host_public],
                false,
            ),
            ("other.age", &[rig.operator_public.as_str()], false),
        ],
    );
    let mut to = vec![rig.operator_public.as_str()];
    to.extend_from_slice(encrypted_to);
    age_encrypt(&to, false, PLAINTEXT, &work.path().join("db.age"));
    age_encrypt(
        &[rig.operator_public.as_str()],
        true,
        b"other",
        &work.path().join("other.age"),
    );
    let read = |p: &Path| std::fs::read(p).unwrap();
    let (r, d, o) = (
        read(&rules),
        read(&work.path().join("db.age")),
        read(&work.path().join("other.age")),
    );
    rig.bare_repo(
        name,
        &[("secrets.nix", &r), ("db.age", &d), ("other.age", &o)],
    )
}

impl Fixture {
    /// Needs root and the sshd rig's tools, and `age`.
    fn new() -> Fixture {
        sshd::require();
        common::require_tool("age");
        let rig = SshRig::start();
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let home = t.join("home");
        let record = t.join("record");
        let flake = t.join("flake");
        let extra = t.join("extra");
        for d in [&home, &record, &flake, &extra] {
            std::fs::create_dir_all(d).unwrap();
        }
        let host_key = ssh_keygen(t, "host_key", "ed25519", "");
        let url = secrets_repo(
            &rig,
            "secrets",
            &host_key.public_line,
            &[&host_key.public_line],
        );

        // The flake: tracked files, plus an untracked note and an untracked private key that
        // must not be staged.
        std::fs::write(flake.join("flake.nix"), "{ outputs = _: { }; }\n").unwrap();
        std::fs::create_dir_all(flake.join("hosts")).unwrap();
        std::fs::write(flake.join("hosts/web.nix"), "{ }\n").unwrap();
        std::fs::write(
            flake.join("flake.lock"),
            format!(
                r#"{{"nodes":{{"root":{{"inputs":{{"secrets":"secrets"}}}},"secrets":{{"locked":{{"type":"git","url":"{url}","ref":"refs/heads/main"}},"original":{{"type":"git","url":"{url}"}}}}}},"root":"root","version":7}}"#
            ),
        )
        .unwrap();
        sshd::git(&flake, &["init", "-q"]);
        sshd::git(&flake, &["add", "flake.nix", "flake.lock", "hosts/web.nix"]);
        sshd::git(&flake, &["commit", "-q", "-m", "flake"]);
        std::fs::write(flake.join("notes.txt"), "untracked").unwrap();
        ssh_keygen(&flake, "id_ed25519", "ed25519", "");

        // Extra files: a private dir and file whose modes must survive.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(extra.join("etc/wireguard")).unwrap();
        std::fs::set_permissions(
            extra.join("etc/wireguard"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(extra.join("etc/wireguard/wg0.key"), "wg-key\n").unwrap();
        std::fs::set_permissions(
            extra.join("etc/wireguard/wg0.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();

        let root = t.join("mnt");
        let disko = t.join("fake-disko");
        script(
            &disko,
            &format!(
                "printf '%s\\n' \"$@\" > {rec}/disko.argv\nmkdir -p {root}\ntouch {rec}/disko.ran\n",
                rec = record.display(),
                root = root.display()
            ),
        );
        let install = t.join("fake-nixos-install");
        script(
            &install,
            &format!(
                "printf '%s\\n' \"$@\" > {rec}/install.argv\n\
                 printf '%s' \"$SSH_AUTH_SOCK\" > {rec}/install.sock\n\
                 for last in \"$@\"; do :; done\n\
                 cp -r \"${{last#path:}}\" {rec}/staged-secrets\n\
                 printf '%s' \"${{last#path:}}\" > {rec}/staged-path\n\
                 if test -f {root}/etc/nixos/flake.nix && test -f {root}/etc/ssh/ssh_host_ed25519_key; \
                 then touch {rec}/placed-before-install; fi\n",
                rec = record.display(),
                root = root.display()
            ),
        );
        Fixture {
            rig,
            home,
            root,
            flake,
            record,
            disko,
            install,
            extra,
            host_key,
            url,
            tmp,
        }
    }

    /// The install-with-secrets arguments of the happy path (URL from flake.lock).
    fn args(&self) -> Vec<String> {
        [
            "install-with-secrets",
            "--flake",
            &format!("{}#web", self.flake.display()),
            "--root",
            self.root.to_str().unwrap(),
            "--known-hosts",
            self.rig.known_hosts.to_str().unwrap(),
            "--host-key",
            self.host_key.private.to_str().unwrap(),
            "--disko-cmd",
            &format!("{} --mode disko", self.disko.display()),
            "--nixos-install-cmd",
            self.install.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn run(&self, args: &[String], agent: Option<&Path>) -> Output {
        let mut cmd = agefleet(&self.home);
        cmd.args(args);
        if let Some(sock) = agent {
            cmd.env("SSH_AUTH_SOCK", sock);
        }
        common::run(&mut cmd)
    }

    fn recorded(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.record.join(name)).ok()
    }

    fn disko_ran(&self) -> bool {
        self.record.join("disko.ran").exists()
    }

    /// Nothing destructive happened: disko and install never ran, the root was not created.
    fn assert_untouched(&self, out: &Output) {
        assert!(!self.disko_ran(), "disko ran: {}", stderr(out));
        assert!(self.recorded("install.argv").is_none(), "install ran");
        assert!(!self.root.exists(), "root was created");
    }

    fn stop(self) {
        let pids = self.rig.pids();
        drop(self);
        for pid in pids {
            assert!(!sshd::alive(pid), "process {pid} still running");
        }
    }
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

fn fingerprint(path: &Path) -> String {
    let out = common::run(Command::new("ssh-keygen").arg("-lf").arg(path));
    assert!(out.status.success(), "ssh-keygen -lf: {}", stderr(&out));
    stdout(&out).split_whitespace().nth(1).unwrap().to_string()
}

/// Every file under `dir` holding private key material.
fn private_keys_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(text) = std::fs::read(&p) {
                let s = String::from_utf8_lossy(&text);
                if s.contains("PRIVATE KEY") || s.contains("AGE-SECRET-KEY-1") {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// Checks what a successful install left behind and what the fake tools saw.
fn assert_installed(fx: &Fixture, out: &Output, expected_sock: Option<&Path>) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}\nsshd log: {}",
        stderr(out),
        fx.rig.sshd_log()
    );
    assert!(fx.disko_ran());
    assert_eq!(fx.recorded("disko.argv").unwrap(), "--mode\ndisko\n");

    // The install command's argv and agent.
    let argv: Vec<String> = fx
        .recorded("install.argv")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let staged = fx.recorded("staged-path").unwrap();
    assert_eq!(
        argv,
        [
            "--root".to_string(),
            fx.root.display().to_string(),
            "--flake".into(),
            format!("{}/etc/nixos#web", fx.root.display()),
            "--no-channel-copy".into(),
            "--override-input".into(),
            "secrets".into(),
            format!("path:{staged}"),
        ]
    );
    assert!(
        fx.record.join("placed-before-install").exists(),
        "the flake and host key were not in place when the install command ran"
    );
    let sock = fx.recorded("install.sock").unwrap();
    assert!(!sock.is_empty(), "SSH_AUTH_SOCK not passed to the install");
    if let Some(expected) = expected_sock {
        assert_eq!(Path::new(&sock), expected);
    }
    // The staging dir is gone, and it held the repo's files without .git.
    assert!(
        !Path::new(&staged).exists(),
        "staging dir left behind: {staged}"
    );
    let copy = fx.record.join("staged-secrets");
    assert!(copy.join("secrets.nix").is_file());
    assert!(!copy.join(".git").exists());

    // The host key, placed 0600 + .pub 0644, decrypts the staged secret it is listed for.
    let key = fx.root.join("etc/ssh/ssh_host_ed25519_key");
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(mode_of(&key.with_extension("pub")), 0o644);
    assert_eq!(fingerprint(&key), fingerprint(&fx.host_key.private));
    let dec = common::age_decrypt(&key, &copy.join("db.age"));
    assert!(dec.status.success(), "age -d: {}", stderr(&dec));
    assert_eq!(dec.stdout, PLAINTEXT);
    // ... and not the one it is not listed for.
    assert!(!common::age_decrypt(&key, &copy.join("other.age"))
        .status
        .success());

    // The flake: tracked files only; no private key material under /etc/nixos.
    let nixos = fx.root.join("etc/nixos");
    for f in ["flake.nix", "flake.lock", "hosts/web.nix"] {
        assert!(nixos.join(f).is_file(), "{f} not staged");
    }
    assert!(!nixos.join("notes.txt").exists(), "untracked file staged");
    assert!(!nixos.join("id_ed25519").exists(), "untracked key staged");
    assert!(!nixos.join(".git").exists());
    assert_eq!(private_keys_under(&nixos), Vec::<PathBuf>::new());

    // Extra files with their modes.
    assert_eq!(mode_of(&fx.root.join("etc/wireguard")), 0o700);
    assert_eq!(mode_of(&fx.root.join("etc/wireguard/wg0.key")), 0o600);

    // The report: paths, modes, fingerprints, never contents.
    let report: serde_json::Value = serde_json::from_str(&stdout(out)).expect("JSON report");
    assert_eq!(report["installed"], true);
    let placed = report["placed"].as_array().unwrap();
    let key_entry = placed
        .iter()
        .find(|p| p["path"] == key.to_str().unwrap())
        .expect("host key in report");
    assert_eq!(key_entry["mode"], "0600");
    assert_eq!(key_entry["fingerprint"], fingerprint(&key).as_str());
    let all = format!("{}{}", stdout(out), stderr(out));
    assert!(!all.contains("PRIVATE KEY"), "key material in output");
    assert!(!all.contains(std::str::from_utf8(PLAINTEXT).unwrap().trim()));
    report
}

/// A server with Ed25519 and ECDSA host keys, known_hosts listing only the ECDSA one: libssh2
/// negotiates Ed25519 (its first choice) and the error names the type that is missing and
/// the one that is listed; listing every key type of the server (the fix the error
/// suggests) makes the clone work.
#[test]
#[ignore = "needs root, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn git_clone_names_missing_host_key_type() {
    sshd::require();
    let rig = SshRig::start_with_host_keys(&["ecdsa"]);
    let url = rig.bare_repo("repo", &[("secrets.nix", b"{ }\n")]);
    let remote = SshRemote::parse(&url).unwrap();
    let work = tempfile::tempdir().unwrap();
    let entry = |line: &str| {
        let fields: Vec<&str> = line.split_whitespace().take(2).collect();
        format!("[127.0.0.1]:{} {}\n", rig.port, fields.join(" "))
    };
    let only_ecdsa = work.path().join("ecdsa_known_hosts");
    std::fs::write(&only_ecdsa, entry(&rig.extra_host_publics[0])).unwrap();
    let both = work.path().join("both_known_hosts");
    std::fs::write(
        &both,
        entry(&rig.extra_host_publics[0]) + &entry(&rig.host_public),
    )
    .unwrap();

    let _env = AGENT_ENV.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var("SSH_AUTH_SOCK", &rig.agent_sock);
    let err = clone_with_agent(&remote, &only_ecdsa, None, &work.path().join("a"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("(ssh-ed25519) is not listed in"), "{err}");
    assert!(err.contains("lists only ecdsa-sha2-nistp256"), "{err}");
    assert!(
        err.contains("ecdsa_known_hosts") && !err.contains('\n'),
        "{err}"
    );
    clone_with_agent(&remote, &both, None, &work.path().join("b"))
        .unwrap_or_else(|e| panic!("clone with every host key listed: {e}"));
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn happy_path_with_agent() {
    let fx = Fixture::new();
    let args = with(
        fx.args(),
        &[
            "--extra-files",
            fx.extra.to_str().unwrap(),
            "--yes",
            "--json",
        ],
    );
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    let report = assert_installed(&fx, &out, Some(&fx.rig.agent_sock));
    assert_eq!(report["plan"]["secrets"]["url"], fx.url.as_str());
    assert_eq!(
        report["plan"]["secrets"]["for_host"],
        serde_json::json!(["db.age"])
    );
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn through_ssh_with_forwarded_agent() {
    let fx = Fixture::new();
    let mut remote = vec![
        "env".to_string(),
        format!("HOME={}", fx.home.display()),
        "NO_COLOR=1".to_string(),
        env!("CARGO_BIN_EXE_agefleet").to_string(),
    ];
    remote.extend(with(
        fx.args(),
        &[
            "--extra-files",
            fx.extra.to_str().unwrap(),
            "--yes",
            "--json",
        ],
    ));
    let out = common::run(&mut fx.rig.ssh_forwarding(&remote));
    assert_installed(&fx, &out, None);
    // Inside the session the agent is sshd's forwarded socket, not the rig's agent.
    let sock = fx.recorded("install.sock").unwrap();
    assert_ne!(Path::new(&sock), fx.rig.agent_sock);
    // OpenSSH's sshd puts forwarded agent sockets at /tmp/ssh-XXXXXXXXXX/agent.<pid>.
    assert!(
        sock.starts_with("/tmp/ssh-") && sock.contains("/agent."),
        "not a forwarded agent socket: {sock}"
    );
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn no_agent_is_a_preflight_failure() {
    let fx = Fixture::new();
    let args = with(fx.args(), &["--yes"]);
    let out = fx.run(&args, None);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("SSH_AUTH_SOCK"), "{}", stderr(&out));
    fx.assert_untouched(&out);
    let dead = fx.tmp.path().join("no-agent.sock");
    let out = fx.run(&args, Some(&dead));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-agent.sock"), "{}", stderr(&out));
    fx.assert_untouched(&out);
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn wrong_known_hosts_is_a_preflight_failure() {
    let fx = Fixture::new();
    let other = ssh_keygen(fx.tmp.path(), "impostor", "ed25519", "");
    let kh = fx.tmp.path().join("bad_known_hosts");
    let fields: Vec<&str> = other.public_line.split_whitespace().take(2).collect();
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:{} {}\n", fx.rig.port, fields.join(" ")),
    )
    .unwrap();
    let mut args = with(fx.args(), &["--yes"]);
    let i = args.iter().position(|a| a == "--known-hosts").unwrap();
    args[i + 1] = kh.display().to_string();
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[127.0.0.1]:{}", fx.rig.port)),
        "{err}"
    );
    assert!(err.contains("bad_known_hosts"), "{err}");
    fx.assert_untouched(&out);
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn unlisted_host_key_is_a_preflight_failure() {
    let fx = Fixture::new();
    let stranger = ssh_keygen(fx.tmp.path(), "stranger", "ed25519", "");
    let mut args = with(fx.args(), &["--yes"]);
    let i = args.iter().position(|a| a == "--host-key").unwrap();
    args[i + 1] = stranger.private.display().to_string();
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no secret"), "{err}");
    // The public line and a snippet to paste are shown.
    let fields: Vec<&str> = stranger.public_line.split_whitespace().take(2).collect();
    assert!(err.contains(&fields.join(" ")), "{err}");
    fx.assert_untouched(&out);
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn listed_but_not_rekeyed_names_the_files() {
    let fx = Fixture::new();
    // db.age lists the host in secrets.nix but was encrypted before it was added.
    let stale = secrets_repo(&fx.rig, "stale", &fx.host_key.public_line, &[]);
    let args = with(fx.args(), &["--yes", "--secrets-url", &stale]);
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("db.age") && err.contains("rekey"), "{err}");
    assert!(!err.contains("other.age"), "{err}");
    fx.assert_untouched(&out);
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn dry_run_changes_nothing() {
    let fx = Fixture::new();
    let args = with(fx.args(), &["--dry-run", "--json"]);
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fx.assert_untouched(&out);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON plan");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["installed"], false);
    assert_eq!(plan["plan"]["host"], "web");
    assert_eq!(
        plan["plan"]["host_key"]["fingerprint"],
        fingerprint(&fx.host_key.private).as_str()
    );
    // The staging dir named in the planned install command is gone.
    let install = plan["plan"]["install"].as_array().unwrap();
    let staged = install.last().unwrap().as_str().unwrap();
    assert!(!Path::new(staged.trim_start_matches("path:")).exists());
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn without_terminal_or_yes_it_refuses() {
    let fx = Fixture::new();
    let out = fx.run(&fx.args(), Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    fx.assert_untouched(&out);
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn failing_install_command_exits_5() {
    let fx = Fixture::new();
    let failing = fx.tmp.path().join("failing-install");
    script(
        &failing,
        &format!(
            "for last in \"$@\"; do :; done\nprintf '%s' \"$last\" > {}\necho 'nixos-install: boom' >&2\nexit 3\n",
            fx.tmp.path().join("failing-staged").display()
        ),
    );
    let mut args = with(fx.args(), &["--yes"]);
    let i = args
        .iter()
        .position(|a| a == "--nixos-install-cmd")
        .unwrap();
    args[i + 1] = failing.display().to_string();
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(fx.disko_ran());
    // Staging is removed on the failure path too.
    let staged = std::fs::read_to_string(fx.tmp.path().join("failing-staged")).unwrap();
    assert!(staged.starts_with("path:"), "{staged}");
    assert!(!Path::new(staged.trim_start_matches("path:")).exists());
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn generated_host_key_flow() {
    let fx = Fixture::new();
    let mut args = with(fx.args(), &["--yes"]);
    let i = args.iter().position(|a| a == "--host-key").unwrap();
    args[i + 1] = "generate".into();
    // First run: a new key, kept in the state dir, printed with a snippet; exit 4.
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    fx.assert_untouched(&out);
    let kept = fx
        .home
        .join(".local/state/agefleet/install/web/ssh_host_ed25519_key");
    assert_eq!(mode_of(&kept), 0o600);
    let public = stdout(&common::run(
        Command::new("ssh-keygen").arg("-y").arg("-f").arg(&kept),
    ));
    let public = public.trim();
    let fields: Vec<&str> = public.split_whitespace().take(2).collect();
    assert!(stderr(&out).contains(&fields.join(" ")), "{}", stderr(&out));
    assert!(stderr(&out).contains("secrets.nix"), "{}", stderr(&out));

    // The operator adds it and rekeys; the second run reuses the kept key and installs.
    let url = secrets_repo(&fx.rig, "with-generated", public, &[public]);
    let args = with(args, &["--secrets-url", &url, "--json"]);
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let key = fx.root.join("etc/ssh/ssh_host_ed25519_key");
    assert_eq!(fingerprint(&key), fingerprint(&kept));
    let dec = common::age_decrypt(&key, &fx.record.join("staged-secrets/db.age"));
    assert_eq!(dec.stdout, PLAINTEXT, "{}", stderr(&dec));
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn listed_secret_missing_from_repo_is_a_preflight_failure() {
    let fx = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let rules = common::write_rules(
        work.path(),
        &[
            ("db.age", &[fx.host_key.public_line.as_str()], false),
            ("gone.age", &[fx.host_key.public_line.as_str()], false),
        ],
    );
    age_encrypt(
        &[fx.host_key.public_line.as_str()],
        false,
        PLAINTEXT,
        &work.path().join("db.age"),
    );
    let url = fx.rig.bare_repo(
        "missing",
        &[
            ("secrets.nix", &std::fs::read(&rules).unwrap()),
            (
                "db.age",
                &std::fs::read(work.path().join("db.age")).unwrap(),
            ),
        ],
    );
    let args = with(fx.args(), &["--yes", "--secrets-url", &url]);
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("gone.age") && !err.contains("db.age"), "{err}");
    fx.assert_untouched(&out);
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn terminated_run_removes_staging() {
    let fx = Fixture::new();
    // A disko that signals it started, records its PID, and waits.
    let slow = fx.tmp.path().join("slow-disko");
    script(
        &slow,
        &format!(
            "echo $$ > {rec}/slow.pid\nexec sleep 120\n",
            rec = fx.record.display()
        ),
    );
    let mut args = with(fx.args(), &["--yes"]);
    let i = args.iter().position(|a| a == "--disko-cmd").unwrap();
    args[i + 1] = slow.display().to_string();
    let log = fx.tmp.path().join("agefleet.stderr");
    let mut cmd = agefleet(&fx.home);
    cmd.args(&args)
        .env("SSH_AUTH_SOCK", &fx.rig.agent_sock)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().unwrap();
    struct Kill(Option<u32>);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
    let mut disko = Kill(None);
    let pid_file = fx.record.join("slow.pid");
    let start = std::time::Instant::now();
    while !pid_file.exists()
        || std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .is_empty()
    {
        assert!(start.elapsed().as_secs() < 60, "disko never started");
        assert!(child.try_wait().unwrap().is_none(), "agefleet exited early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    disko.0 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .ok();
    // The plan on stderr names the staged secrets.
    let text = std::fs::read_to_string(&log).unwrap();
    let staged = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("path:"))
        .expect("staging path in the plan")
        .to_string();
    assert!(Path::new(&staged).is_dir());
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        !Path::new(&staged).exists(),
        "staging left behind: {staged}"
    );
    assert!(fx.recorded("install.argv").is_none());
    drop(disko);
    fx.stop();
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn tracked_private_key_in_flake_is_refused() {
    let fx = Fixture::new();
    // Tracking the key makes it part of what the flake (and so /etc/nixos) would hold.
    sshd::git(&fx.flake, &["add", "id_ed25519"]);
    let out = fx.run(&with(fx.args(), &["--yes"]), Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("id_ed25519") && err.contains("private key"),
        "{err}"
    );
    assert!(!err.contains("id_ed25519.pub"), "{err}");
    fx.assert_untouched(&out);
    fx.stop();
}

/// On a terminal the plan is confirmed with `Proceed? [y/N]`: "n" changes nothing (exit 1),
/// "y" installs.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `script`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn terminal_confirmation() {
    let fx = Fixture::new();
    common::require_tool("script");
    let mut argv = vec![env!("CARGO_BIN_EXE_agefleet").to_string()];
    argv.extend(fx.args());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let env = [
        ("PATH", std::env::var_os("PATH").unwrap_or_default()),
        ("HOME", fx.home.clone().into_os_string()),
        ("NO_COLOR", "1".into()),
        ("SSH_AUTH_SOCK", fx.rig.agent_sock.clone().into_os_string()),
    ];
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let timeout = std::time::Duration::from_secs(120);

    let no = common::pty::run_in_pty(&env, fx.tmp.path(), &argv, b"n\n", timeout);
    assert_eq!(no.code, Some(1), "{}", no.screen);
    assert!(no.screen.contains("Proceed?"), "{}", no.screen);
    assert!(!fx.disko_ran() && !fx.root.exists(), "{}", no.screen);

    let yes = common::pty::run_in_pty(&env, fx.tmp.path(), &argv, b"y\n", timeout);
    assert_eq!(yes.code, Some(0), "{}", yes.screen);
    assert!(fx.disko_ran());
    assert!(fx.root.join("etc/ssh/ssh_host_ed25519_key").is_file());
    fx.stop();
}

/// An unencrypted private key committed to the secrets repository would
/// be staged into the store-bound input: refused in the preflight, naming the file.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn private_key_committed_to_the_secrets_repo_is_refused() {
    let fx = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let host = fx.host_key.public_line.as_str();
    let rules = common::write_rules(work.path(), &[("db.age", &[host], false)]);
    age_encrypt(&[host], false, PLAINTEXT, &work.path().join("db.age"));
    let leaked = ssh_keygen(work.path(), "deploy_key", "ed25519", "");
    let url = fx.rig.bare_repo(
        "leaky",
        &[
            ("secrets.nix", &std::fs::read(&rules).unwrap()),
            (
                "db.age",
                &std::fs::read(work.path().join("db.age")).unwrap(),
            ),
            ("deploy_key", &std::fs::read(&leaked.private).unwrap()),
            ("notes/age.txt", b"# lowercased\nage-secret-key-1qqqqqq\n"),
        ],
    );
    let out = fx.run(
        &with(fx.args(), &["--yes", "--secrets-url", &url]),
        Some(&fx.rig.agent_sock),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("deploy_key") && err.contains("notes/age.txt") && err.contains("private key"),
        "{err}"
    );
    assert!(!err.contains("db.age"), "{err}");
    fx.assert_untouched(&out);
    fx.stop();
}

/// `--extra-files` problems (a FIFO, `etc` as a symlink) are preflight
/// failures, found before disko runs.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn extra_files_problems_are_preflight_failures() {
    let fx = Fixture::new();
    let extra = fx.tmp.path().join("bad-extra");
    std::fs::create_dir_all(extra.join("var")).unwrap();
    std::os::unix::fs::symlink("/tmp", extra.join("etc")).unwrap();
    let fifo = extra.join("var/pipe");
    assert!(common::run(Command::new("mkfifo").arg(&fifo))
        .status
        .success());
    let args = with(
        fx.args(),
        &["--yes", "--extra-files", extra.to_str().unwrap()],
    );
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: is a symbolic link",
            extra.join("etc").display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: not a regular file", fifo.display())),
        "{err}"
    );
    fx.assert_untouched(&out);
    fx.stop();
}

/// A secrets repo whose `db.age` rule lists the operator, the host's SSH key and the
/// post-quantum recipient `pq`; the file is encrypted by agefleet to the rule's keys, or
/// (`stale`) by the age CLI to the SSH keys only, as before `pq` was added.
fn pq_secrets_repo(rig: &SshRig, name: &str, host_public: &str, pq: &str, stale: bool) -> String {
    let work = tempfile::tempdir().unwrap();
    let keys = [rig.operator_public.as_str(), host_public, pq];
    let rules = common::write_rules(work.path(), &[("db.age", &keys, false)]);
    let db = work.path().join("db.age");
    if stale {
        age_encrypt(&keys[..2], false, PLAINTEXT, &db);
    } else {
        let mut child = agefleet(work.path())
            .current_dir(work.path())
            .args(["-e", "db.age"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), PLAINTEXT).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "agefleet -e: {}", stderr(&out));
    }
    let (r, d) = (std::fs::read(&rules).unwrap(), std::fs::read(&db).unwrap());
    rig.bare_repo(name, &[("secrets.nix", &r), ("db.age", &d)])
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`"]
fn pq_key_is_proven_against_the_secrets_and_placed() {
    let fx = Fixture::new();
    let pq_key = fx.tmp.path().join("host.pq");
    let out = common::run(
        agefleet(&fx.home)
            .args(["keygen", "--pq", "-o"])
            .arg(&pq_key),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = stdout(&out).trim().to_string();

    // Listed but not encrypted to it: a preflight failure naming the file, nothing touched.
    let stale = pq_secrets_repo(
        &fx.rig,
        "pq-stale",
        &fx.host_key.public_line,
        &recipient,
        true,
    );
    let args = with(
        fx.args(),
        &[
            "--yes",
            "--secrets-url",
            &stale,
            "--pq-key",
            pq_key.to_str().unwrap(),
        ],
    );
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("db.age") && err.contains("post-quantum"),
        "{err}"
    );
    fx.assert_untouched(&out);

    // A key no secret lists: refused, its recipient shown.
    let other = fx.tmp.path().join("other.pq");
    let o = common::run(
        agefleet(&fx.home)
            .args(["keygen", "--pq", "-o"])
            .arg(&other),
    );
    let other_recipient = stdout(&o).trim().to_string();
    let good = pq_secrets_repo(
        &fx.rig,
        "pq-good",
        &fx.host_key.public_line,
        &recipient,
        false,
    );
    let args = with(
        fx.args(),
        &[
            "--yes",
            "--secrets-url",
            &good,
            "--pq-key",
            other.to_str().unwrap(),
        ],
    );
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains(&other_recipient), "{}", stderr(&out));
    fx.assert_untouched(&out);

    // Listed and encrypted to it: installed, the key placed 0600 and it opens the secret.
    let args = with(
        fx.args(),
        &[
            "--yes",
            "--json",
            "--secrets-url",
            &good,
            "--pq-key",
            pq_key.to_str().unwrap(),
        ],
    );
    let out = fx.run(&args, Some(&fx.rig.agent_sock));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["plan"]["pq_key"]["recipient"], recipient.as_str());
    assert_eq!(
        report["plan"]["pq_key"]["for_host"],
        serde_json::json!(["db.age"])
    );
    let placed = fx.root.join("etc/ssh/id_mlkem768x25519_agenix");
    assert_eq!(mode_of(&placed), 0o600);
    let d = common::run(
        agefleet(&fx.home)
            .arg("-d")
            .arg(fx.record.join("staged-secrets/db.age"))
            .arg("-i")
            .arg(&placed),
    );
    assert!(d.status.success(), "{}", stderr(&d));
    assert_eq!(d.stdout, PLAINTEXT);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains("AGE-SECRET-KEY-PQ-"),
        "key material in output"
    );
    fx.stop();
}
