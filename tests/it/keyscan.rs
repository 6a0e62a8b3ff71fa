//! `host add --keyscan HOST[:PORT]`: the host key fetched from a real sshd on loopback (the
//! install tests' rig) with `ssh-keyscan`, trusted only by `--fingerprint` (checked against
//! `ssh-keygen -lf` as the oracle) or a yes typed on a real terminal; hostile `ssh-keyscan`
//! output (a fake tool on PATH) and option-like hosts refused with nothing written.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::keyscan::FakeKeyscan;
use crate::common::sshd::{self, SshRig};
use crate::common::{assert_clean_failure, require_tool, stderr, stdout, Fleet};

/// A key made by ssh-keygen, and its `ssh-keygen -lf` fingerprint.
const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe";
const KEY_FP: &str = "SHA256:twIezcb4G9n2jIjFxiXZ2zHciBbW1hhL7JZtbXyZsQo";
const KEY2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFFPG3Kmr84FWS1gUFTWoLTBd+ZJL7l0EdU5zPuc9khI";
/// The identity point as an ssh-ed25519 key (small order: anyone could decrypt).
const SMALL_ORDER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQCYdoGX7H/tHJ2esRHIvm4pXRNsiRoQ6rO10+mdTBes/OMfhzJlMh0go0NkyvCL9CtiX4wWRk72uuCyFlz1dZnLo5TfqimBVBLlqFW13Rnv0ib3XrEErFXrk6fg84raUGC6TeH5WcHGBc/WgVxcI1S+yDvWU26pXUvX+iXErH+kvw==";

/// A fleet whose rules give `x.age` to the admin key (bound as `admin`), `x.age` encrypted
/// to it when `with_secret`.
fn fleet(with_secret: bool) -> Fleet {
    let f = Fleet::new();
    std::fs::write(
        f.path("secrets.nix"),
        format!(
            "let\n  admin = {};\nin\n{{\n  \"x.age\".publicKeys = [ admin ];\n}}\n",
            common::nix_string(&f.admin.public_line)
        ),
    )
    .unwrap();
    if with_secret {
        f.age_file("x.age", &[&f.admin.public_line], b"hello\n");
    }
    f
}

fn rules(f: &Fleet) -> Vec<u8> {
    std::fs::read(f.path("secrets.nix")).unwrap()
}

/// `ssh-keygen -lf` of the rig's host key: the fingerprint oracle.
fn oracle_fingerprint(pub_file: &Path) -> String {
    let out = common::run(Command::new("ssh-keygen").arg("-lf").arg(pub_file));
    assert!(out.status.success(), "ssh-keygen -lf: {}", stderr(&out));
    let fp = stdout(&out).split_whitespace().nth(1).unwrap().to_string();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    fp
}

fn rig_pub(rig: &SshRig) -> PathBuf {
    rig.dir.path().join("ssh_host_ed25519_key.pub")
}

/// The rig's host key as `host add` binds it: type and base64, no comment.
fn rig_key(rig: &SshRig) -> String {
    let fields: Vec<&str> = rig.host_public.split_whitespace().take(2).collect();
    fields.join(" ")
}

fn require_rig() {
    sshd::require();
    require_tool("ssh-keyscan");
}

fn add(f: &Fleet, target: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "host",
        "add",
        "web1",
        "--keyscan",
        target,
        "--like",
        "admin",
    ];
    args.extend_from_slice(extra);
    f.run(&args)
}

#[test]
#[ignore = "needs root, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh-keyscan`, `ssh`, `sshd`"]
fn the_right_fingerprint_binds_the_sshd_host_key_and_rekeys_to_it() {
    require_rig();
    require_tool("age");
    let rig = SshRig::start();
    let f = fleet(true);
    let fp = oracle_fingerprint(&rig_pub(&rig));
    let target = format!("127.0.0.1:{}", rig.port);
    let out = add(&f, &target, &["--fingerprint", &fp]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), rig.sshd_log());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("127.0.0.1:{}: ED25519 host key {fp}", rig.port)),
        "{err}"
    );
    assert!(
        err.contains("the fingerprint matches --fingerprint"),
        "{err}"
    );
    let text = String::from_utf8(rules(&f)).unwrap();
    assert!(
        text.contains(&format!("  web1 = \"{}\";\n", rig_key(&rig))),
        "{text}"
    );
    assert!(text.contains("[ admin web1 ]"), "{text}");
    assert!(
        stdout(&out).contains(&format!("+  web1 = \"{}\";", rig_key(&rig))),
        "{}",
        stdout(&out)
    );
    // Rekeyed: the sshd's own private host key decrypts the secret.
    let plain = common::age_decrypt(
        &rig.dir.path().join("ssh_host_ed25519_key"),
        &f.path("x.age"),
    );
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert_eq!(plain.stdout, b"hello\n");
}

#[test]
#[ignore = "needs root, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh-keyscan`, `ssh`, `sshd`"]
fn a_wrong_fingerprint_is_refused_and_nothing_is_written_also_in_a_dry_run() {
    require_rig();
    // An ECDSA host key besides: only the ed25519 one is fetched.
    let rig = SshRig::start_with_host_keys(&["ecdsa"]);
    let f = fleet(false);
    let before = rules(&f);
    let got = oracle_fingerprint(&rig_pub(&rig));
    let target = format!("127.0.0.1:{}", rig.port);
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["--fingerprint", KEY_FP];
        args.extend_from_slice(extra);
        let out = add(&f, &target, &args);
        assert_clean_failure(
            &out,
            &format!("fingerprint mismatch: expected {KEY_FP}, got {got}"),
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        assert_eq!(rules(&f), before);
    }
    // The dry run with the right one verifies, prints the diff and writes nothing.
    let out = add(&f, &target, &["--fingerprint", &got, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("+  web1 = \"{}\";", rig_key(&rig))),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains(&got), "{}", stderr(&out));
    assert_eq!(rules(&f), before);
}

#[test]
#[ignore = "needs root, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh-keyscan`, `ssh`, `sshd`"]
fn without_fingerprint_or_terminal_it_is_refused_showing_the_fingerprint() {
    require_rig();
    let rig = SshRig::start();
    let f = fleet(false);
    let before = rules(&f);
    let fp = oracle_fingerprint(&rig_pub(&rig));
    let target = format!("127.0.0.1:{}", rig.port);
    let args = [
        "host",
        "add",
        "web1",
        "--keyscan",
        &target,
        "--like",
        "admin",
    ];
    // A "yes" piped on stdin is no terminal: never trust on first use.
    for out in [f.run(&args), f.run_stdin(&args, b"yes\n")] {
        assert_clean_failure(&out, "pass --fingerprint SHA256:");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(&fp), "{}", stderr(&out));
        assert_eq!(rules(&f), before);
    }
}

fn pty_add(f: &Fleet, target: &str, input: &[u8]) -> common::pty::PtyRun {
    let env: Vec<(&str, OsString)> = vec![
        ("HOME", f.home.clone().into_os_string()),
        ("PATH", std::env::var_os("PATH").unwrap()),
        ("NO_COLOR", "1".into()),
    ];
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let bin = env!("CARGO_BIN_EXE_agefleet");
    common::pty::run_in_pty(
        &env,
        &f.dir,
        &[
            bin,
            "host",
            "add",
            "web1",
            "--keyscan",
            target,
            "--like",
            "admin",
            "--no-rekey",
        ],
        input,
        Duration::from_secs(60),
    )
}

#[test]
#[ignore = "needs root, `git`, `script`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh-keyscan`, `ssh`, `sshd`"]
fn on_a_terminal_yes_trusts_the_key_and_no_refuses_it() {
    require_rig();
    require_tool("script");
    let rig = SshRig::start();
    let fp = oracle_fingerprint(&rig_pub(&rig));
    let target = format!("127.0.0.1:{}", rig.port);

    let f = fleet(false);
    let before = rules(&f);
    let run = pty_add(&f, &target, b"no\n");
    assert_eq!(run.code, Some(1), "{}", run.screen);
    assert!(
        run.screen
            .contains(&format!("Is {fp} the fingerprint of {target}'s host key")),
        "{}",
        run.screen
    );
    assert!(run.screen.contains("[y/N]"), "{}", run.screen);
    assert!(
        run.screen.contains("host key not confirmed"),
        "{}",
        run.screen
    );
    assert_eq!(rules(&f), before);

    let run = pty_add(&f, &target, b"yes\n");
    assert_eq!(run.code, Some(0), "{}", run.screen);
    assert!(run.screen.contains(&fp), "{}", run.screen);
    let text = String::from_utf8(rules(&f)).unwrap();
    assert!(
        text.contains(&format!("  web1 = \"{}\";\n", rig_key(&rig))),
        "{text}"
    );
}

/// `host add web1 --keyscan=TARGET --like admin` with `fake` first on PATH (`=`, so a
/// TARGET starting with `-` reaches agefleet's own check).
fn fake_add(fake: &FakeKeyscan, f: &Fleet, target: &str, extra: &[&str]) -> Output {
    let keyscan = format!("--keyscan={target}");
    let mut args = vec!["host", "add", "web1", &keyscan, "--like", "admin"];
    args.extend_from_slice(extra);
    common::run(f.cmd().env("PATH", fake.path_env()).args(&args))
}

/// Exactly one `agefleet:` error line mentioning `needle`, exit `code`, no panic.
fn assert_one_line_failure(out: &Output, needle: &str, code: i32) {
    assert_clean_failure(out, needle);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    let err = stderr(out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("agefleet:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(!err.contains('\0'), "{err:?}");
    assert!(stdout(out).is_empty(), "{}", stdout(out));
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn the_tool_gets_an_argv_and_ipv6_in_brackets_works() {
    require_tool("ssh-keygen");
    let f = fleet(false);
    let fake = FakeKeyscan::new(
        format!("# [::1]:2222 SSH-2.0-OpenSSH_9.2\n[::1]:2222 ssh-ed25519 {KEY}\n").as_bytes(),
        "",
    );
    let out = fake_add(
        &fake,
        &f,
        "[::1]:2222",
        &["--fingerprint", KEY_FP, "--no-rekey"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fake.args(),
        ["-T", "10", "-t", "ed25519", "-p", "2222", "--", "::1"]
    );
    let text = String::from_utf8(rules(&f)).unwrap();
    assert!(
        text.contains(&format!("  web1 = \"ssh-ed25519 {KEY}\";\n")),
        "{text}"
    );
    assert!(stderr(&out).contains(&format!("[::1]:2222: ED25519 host key {KEY_FP}")));
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn hostile_keyscan_output_is_refused_with_one_line_and_nothing_written() {
    require_tool("ssh-keygen");
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            format!("h ssh-ed25519 {KEY}\nh ssh-ed25519 {KEY2}\n").into(),
            "",
            "offered 2 different ed25519 host keys",
        ),
        (
            format!("h ssh-ed25519 {SMALL_ORDER}\n").into(),
            "",
            "weak key: a low-order point",
        ),
        (
            "h ssh-ed25519 AAAA!!garbage$$\n".into(),
            "",
            "the key is not valid base64",
        ),
        (
            format!("h ssh-rsa {RSA}\n").into(),
            "",
            "line 1 is a ssh-rsa key, not ssh-ed25519",
        ),
        (
            format!("h ssh-ed25519 {KEY}\0\n").into(),
            "",
            "it contains a NUL byte",
        ),
        (
            format!("h ssh-ed25519 {}\n", "A".repeat(5000)).into(),
            "",
            "line 1 is longer than 1024 bytes",
        ),
        (
            format!("evil ssh-ed25519 {KEY}\n").into(),
            "",
            "line 1 is for \"evil\", not \"h\"",
        ),
        (
            format!("h ssh-ed25519 {KEY}\n\u{1b}]0;owned\u{7}\n").into(),
            "",
            "line 2 holds the control character U+001B at column 1",
        ),
        (
            Vec::new(),
            "getaddrinfo h: Name or service not known\n",
            "h:22: no ed25519 host key (ssh-keyscan: getaddrinfo h: Name or service not known)",
        ),
        (
            vec![b'A'; 100 * 1024],
            "",
            "output refused: more than 65536 bytes",
        ),
    ];
    for (output, err, needle) in cases {
        let f = fleet(false);
        let before = rules(&f);
        let fake = FakeKeyscan::new(&output, err);
        for fp in [None, Some(KEY_FP)] {
            let mut extra = vec![];
            if let Some(fp) = fp {
                extra.extend(["--fingerprint", fp]);
            }
            let out = fake_add(&fake, &f, "h", &extra);
            assert!(fake.ran());
            assert_one_line_failure(&out, needle, 1);
            assert_eq!(rules(&f), before, "{needle}");
        }
    }
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn option_like_hosts_and_bad_fingerprints_are_refused_before_anything_runs() {
    require_tool("ssh-keygen");
    let f = fleet(false);
    let before = rules(&f);
    let fake = FakeKeyscan::new(format!("h ssh-ed25519 {KEY}\n").as_bytes(), "");
    let marker = f.tmp.path().join("pwned");
    let proxy = format!("-oProxyCommand=touch {}", marker.display());
    for (target, extra, needle) in [
        (proxy.as_str(), &[][..], "a host may not start with -"),
        ("-p1", &[][..], "a host may not start with -"),
        ("h -oX", &[][..], "whitespace or control characters"),
        ("h\n", &[][..], "whitespace or control characters"),
        ("a,b", &[][..], "a host holds only letters"),
        ("::1", &[][..], "IPv6 address in brackets"),
        ("h:0", &[][..], "PORT must be a number"),
        (
            "h",
            &["--fingerprint", "MD5:00"][..],
            "--fingerprint \"MD5:00\"",
        ),
        (
            "h",
            &["--fingerprint", &KEY_FP[..40]][..],
            "expected SHA256:<43 base64",
        ),
    ] {
        let out = fake_add(&fake, &f, target, extra);
        assert_one_line_failure(&out, needle, 2);
        assert!(!fake.ran(), "{target:?}: ssh-keyscan ran");
        assert!(!marker.exists());
        assert_eq!(rules(&f), before);
    }
    // --fingerprint is for --keyscan only; two key sources are one too many.
    let out = f.run(&[
        "host",
        "add",
        "web1",
        "--key",
        &f.admin.public_line,
        "--fingerprint",
        KEY_FP,
        "--like",
        "admin",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = fake_add(&fake, &f, "h", &["--key", &format!("ssh-ed25519 {KEY2}")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!fake.ran());
    assert_eq!(rules(&f), before);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn a_missing_ssh_keyscan_is_an_external_tool_failure() {
    require_tool("ssh-keygen");
    let f = fleet(false);
    let empty = tempfile::tempdir().unwrap();
    let out = common::run(f.cmd().env("PATH", empty.path()).args([
        "host",
        "add",
        "web1",
        "--keyscan",
        "h",
        "--fingerprint",
        KEY_FP,
        "--like",
        "admin",
    ]));
    assert_one_line_failure(&out, "cannot run ssh-keyscan", 5);
}
