//! `host verify`: live host keys from real sshd instances on loopback (the install tests'
//! rig) — one with the key secrets.nix records, one with a different key, a closed port, and
//! a port that accepts but never answers — compared with secrets.nix, in text and JSON, each
//! scan bounded in time; then the printed repair (`host add NAME --replace --keyscan …
//! --fingerprint …`) replaces the key in every list it was in and rekeys to it.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::keyscan::FakeKeyscan;
use crate::common::sshd::{self, SshRig};
use crate::common::{self, assert_clean_failure, require_tool, stderr, stdout, Fleet};

/// A key made by ssh-keygen (recorded for a host that no longer has it).
const OLD_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe";

/// An age X25519 recipient (a person, not a host).
const ALICE: &str = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";

fn oracle_fingerprint(pub_file: &Path) -> String {
    let out = common::run(Command::new("ssh-keygen").arg("-lf").arg(pub_file));
    assert!(out.status.success(), "ssh-keygen -lf: {}", stderr(&out));
    stdout(&out).split_whitespace().nth(1).unwrap().to_string()
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// web1 bound to the first rig's key, web2 to a key its host (the second rig) no longer has
/// (in two lists), db1 to a third key at a closed port; x.age and y.age encrypted.
fn fleet(rig1: &SshRig) -> Fleet {
    let f = Fleet::new();
    let db1 = common::ssh_keygen(f.tmp.path(), "db1", "ed25519", "");
    let rules = format!(
        "let\n  admin = {};\n  web1 = {};\n  web2 = \"{OLD_KEY}\";\n  db1 = {};\nin\n{{\n  \"x.age\".publicKeys = [ admin web1 web2 ];\n  \"y.age\".publicKeys = [ admin web2 db1 ];\n  \"z.age\".publicKeys = [ admin ];\n}}\n",
        common::nix_string(&f.admin.public_line),
        common::nix_string(&rig1.host_public),
        common::nix_string(&db1.public_line),
    );
    std::fs::write(f.path("secrets.nix"), rules).unwrap();
    let admin = f.admin.public_line.clone();
    f.age_file("x.age", &[&admin, &rig1.host_public, OLD_KEY], b"x\n");
    f.age_file("y.age", &[&admin, OLD_KEY, &db1.public_line], b"y\n");
    f.age_file("z.age", &[&admin], b"z\n");
    f
}

/// `host verify --timeout 3` with an `--address` for each of `addresses`, then `rest`.
fn verify_args(addresses: &[&str], rest: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["host", "verify", "--timeout", "3"]
        .map(String::from)
        .to_vec();
    for a in addresses {
        v.push("--address".into());
        v.push(a.to_string());
    }
    v.extend(rest.iter().map(|r| r.to_string()));
    v
}

fn run(f: &Fleet, args: &[String]) -> std::process::Output {
    f.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `type base64` of a public key line.
fn key_fields(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn require() {
    sshd::require();
    require_tool("ssh-keyscan");
    require_tool("age");
}

#[test]
#[ignore = "needs root, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh-keyscan`, `ssh`, `sshd`"]
fn match_changed_and_unreachable_hosts_then_the_repair_replaces_the_key_and_rekeys() {
    require();
    let rig1 = SshRig::start();
    let rig2 = SshRig::start();
    let f = fleet(&rig1);
    let closed = closed_port();
    let a1 = format!("web1=127.0.0.1:{}", rig1.port);
    let a2 = format!("web2=127.0.0.1:{}", rig2.port);
    let a3 = format!("db1=127.0.0.1:{closed}");
    let base = verify_args(&[&a1, &a2, &a3], &[]);
    let fp1 = oracle_fingerprint(&rig1.dir.path().join("ssh_host_ed25519_key.pub"));
    let fp2 = oracle_fingerprint(&rig2.dir.path().join("ssh_host_ed25519_key.pub"));

    let start = Instant::now();
    let out = run(&f, &base);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"))
            .to_string()
    };
    assert!(
        line("web1").contains(&format!("127.0.0.1:{}  match", rig1.port)),
        "{text}"
    );
    assert!(line("web1").ends_with(&fp1), "{text}");
    assert!(line("web2").contains("CHANGED"), "{text}");
    assert!(line("web2").contains(&format!("live {fp2}")), "{text}");
    assert!(line("db1").contains("unreachable"), "{text}");
    let repair = format!(
        "repair: agefleet host add web2 --replace --keyscan 127.0.0.1:{} --fingerprint {fp2}",
        rig2.port
    );
    assert!(text.contains(&repair), "{text}");
    assert!(
        stderr(&out).contains("before running the repair"),
        "{}",
        stderr(&out)
    );

    let mut args = base.clone();
    args.push("--json".into());
    let out = run(&f, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = v["hosts"].as_array().unwrap();
    let status: Vec<(&str, &str)> = hosts
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), h["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            ("web1", "match"),
            ("web2", "changed"),
            ("db1", "unreachable")
        ],
        "{v}"
    );
    assert_eq!(hosts[1]["live_fingerprint"], fp2.as_str());
    let live = key_fields(&rig2.host_public);
    assert_eq!(hosts[1]["live_key"], live.as_str());

    // Unreachable alone is exit 0 (listed), 1 with --strict.
    let only = verify_args(&[&a1, &a3], &["web1", "db1"]);
    let out = run(&f, &only);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut strict = only.clone();
    strict.push("--strict".into());
    assert_eq!(run(&f, &strict).status.code(), Some(1));

    // The repair: web2 gets its live key, in both lists, and both its secrets are rekeyed.
    let argv: Vec<String> = shell_words::split(repair.trim_start_matches("repair: ")).unwrap();
    let argv: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let before = std::fs::read_to_string(f.path("secrets.nix")).unwrap();
    let out = f.run(&argv);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = std::fs::read_to_string(f.path("secrets.nix")).unwrap();
    assert_eq!(
        after,
        before.replace(OLD_KEY, &live),
        "only the binding's string changes"
    );
    let diff = stdout(&out);
    assert!(
        diff.contains(&format!("-  web2 = \"{OLD_KEY}\";")),
        "{diff}"
    );
    assert!(diff.contains(&format!("+  web2 = \"{live}\";")), "{diff}");
    let key2 = rig2.dir.path().join("ssh_host_ed25519_key");
    assert_eq!(f.age_plaintext(&key2, "x.age"), b"x\n");
    assert_eq!(f.age_plaintext(&key2, "y.age"), b"y\n");
    assert!(!common::age_decrypt(&key2, &f.path("z.age"))
        .status
        .success());
    let out = run(&f, &base[..base.len() - 2]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
#[ignore = "needs `ssh-keygen`, `ssh-keyscan`"]
fn a_host_that_never_answers_is_cut_off_in_bounded_time() {
    require_tool("ssh-keyscan");
    require_tool("ssh-keygen");
    let f = Fleet::new();
    std::fs::write(
        f.path("secrets.nix"),
        format!("let\n  web1 = \"{OLD_KEY}\";\nin\n{{\n  \"x.age\".publicKeys = [ web1 ];\n}}\n"),
    )
    .unwrap();
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("web1=127.0.0.1:{}", silent.local_addr().unwrap().port());
    let start = Instant::now();
    let out = f.run(&[
        "host",
        "verify",
        "--timeout",
        "1",
        "--address",
        &addr,
        "--json",
    ]);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hosts"][0]["status"], "unreachable", "{v}");
}

#[test]
fn bad_names_addresses_and_replacements_are_refused_with_nothing_written() {
    let f = Fleet::new();
    let rules = format!(
        "let\n  admin = {};\n  alice = \"{ALICE}\";\n  web1 = \"{OLD_KEY}\";\nin\n{{\n  \"x.age\".publicKeys = [ admin alice web1 ];\n}}\n",
        common::nix_string(&f.admin.public_line)
    );
    std::fs::write(f.path("secrets.nix"), &rules).unwrap();
    let cases: [(&[&str], &str, i32); 8] = [
        (
            &["host", "verify", "nobody"],
            "no let binding named \"nobody\"",
            2,
        ),
        (
            &["host", "verify", "alice"],
            "\"alice\" is not bound to a literal ssh-ed25519 key",
            2,
        ),
        (
            &["host", "verify", "--address", "web1"],
            "expected NAME=HOST[:PORT]",
            2,
        ),
        (
            &["host", "verify", "--address", "web1=-oProxyCommand=id"],
            "may not start with -",
            2,
        ),
        (&["host", "verify", "--jobs", "0"], "--jobs", 2),
        (
            &["host", "add", "nobody", "--replace", "--key", OLD_KEY],
            "no let binding named \"nobody\"",
            1,
        ),
        (
            &["host", "add", "web1", "--replace", "--key", OLD_KEY],
            "nothing to replace",
            1,
        ),
        (
            &[
                "host",
                "add",
                "web1",
                "--replace",
                "--to",
                "x.age",
                "--key",
                OLD_KEY,
            ],
            "cannot be used with",
            2,
        ),
    ];
    for (args, needle, code) in cases {
        let out = f.run(args);
        assert_clean_failure(&out, needle);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert_eq!(
        std::fs::read_to_string(f.path("secrets.nix")).unwrap(),
        rules
    );
    // The admin's key given to web1 by --replace: already bound as admin.
    let out = f.run(&[
        "host",
        "add",
        "web1",
        "--replace",
        "--key",
        &f.admin.public_line,
    ]);
    assert_clean_failure(&out, "this key is already bound as \"admin\"");
    assert_eq!(
        std::fs::read_to_string(f.path("secrets.nix")).unwrap(),
        rules
    );
}

#[test]
fn hostile_scan_output_is_refused_and_fails_the_check_with_the_argv_bounded() {
    let f = Fleet::new();
    std::fs::write(
        f.path("secrets.nix"),
        format!("let\n  web1 = \"{OLD_KEY}\";\nin\n{{\n  \"x.age\".publicKeys = [ web1 ];\n}}\n"),
    )
    .unwrap();
    let other = "AAAAC3NzaC1lZDI1NTE5AAAAIFFPG3Kmr84FWS1gUFTWoLTBd+ZJL7l0EdU5zPuc9khI";
    let key = OLD_KEY.split_whitespace().nth(1).unwrap();
    // Two different keys, and a terminal escape: refused, never matched or repaired.
    let out = format!("[h]:2222 ssh-ed25519 {key}\n[h]:2222 ssh-ed25519 {other}\n");
    for (output, needle) in [
        (out, "offered 2 different ed25519 host keys"),
        (
            format!("[h]:2222 ssh-ed25519 {key}\u{1b}[2J\n"),
            "holds the control character U+001B",
        ),
    ] {
        let fake = FakeKeyscan::new(output.as_bytes(), "");
        let o = common::run(f.cmd().env("PATH", fake.path_env()).args([
            "host",
            "verify",
            "--timeout",
            "4",
            "--address",
            "web1=h:2222",
            "--json",
        ]));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["hosts"][0]["status"], "refused", "{v}");
        let detail = v["hosts"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{detail}");
        assert!(!detail.contains('\u{1b}'), "{detail:?}");
        assert_eq!(
            fake.args(),
            ["-T", "4", "-t", "ed25519", "-p", "2222", "--", "h"]
        );
    }
}
