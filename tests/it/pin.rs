//! `pin`: a system flake's `flake.lock` pinning a commit of a real secrets repository (git
//! history made with the git CLI), as `git+ssh://`, `git+file://` and `github:` inputs:
//! behind (naming the added and the rekeyed secret), current, ahead, diverged, a commit the
//! repository does not have, a missing input and a malformed lock; `status --flake`'s line.

use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use crate::common::sshd::git;
use crate::common::{
    assert_clean_failure, fleet_with_web1_in_git, require_tool, stderr, stdout, Fleet,
};

/// The secrets repository's history: `initial` (tls.age for admin+web1, db.age for admin),
/// then `second`, which adds api.age and rekeys db.age to web1 too. Returns the fleet, the
/// two commits, and the flake directory (empty).
struct Repo {
    fleet: Fleet,
    c1: String,
    c2: String,
    flake: tempfile::TempDir,
}

fn repo() -> Repo {
    let (fleet, web1) = fleet_with_web1_in_git();
    let c1 = git(&fleet.dir, &["rev-parse", "HEAD"]).trim().to_string();
    let admin = fleet.admin.public_line.clone();
    let rules = format!(
        "let\n  admin = \"{admin}\";\n  web1 = \"{}\";\nin {{\n  \"tls.age\".publicKeys = [ admin web1 ];\n  \"db.age\".publicKeys = [ admin web1 ];\n  \"api.age\".publicKeys = [ admin web1 ];\n}}\n",
        web1.public_line
    );
    std::fs::write(fleet.path("secrets.nix"), rules).unwrap();
    fleet.age_file("db.age", &[&admin, &web1.public_line], b"db v1");
    fleet.age_file("api.age", &[&admin, &web1.public_line], b"api v1");
    git(&fleet.dir, &["add", "-A"]);
    git(
        &fleet.dir,
        &["commit", "-q", "-m", "second: api.age, db.age for web1"],
    );
    let c2 = git(&fleet.dir, &["rev-parse", "HEAD"]).trim().to_string();
    git(
        &fleet.dir,
        &["remote", "add", "origin", "git@example.org:me/secrets.git"],
    );
    git(
        &fleet.dir,
        &["remote", "add", "gh", "https://github.com/Me/Secrets"],
    );
    let flake = tempfile::tempdir().unwrap();
    Repo {
        fleet,
        c1,
        c2,
        flake,
    }
}

/// Writes a flake.lock whose root has these inputs (name → locked attributes).
fn lock(dir: &Path, inputs: &[(&str, Value)]) {
    let mut nodes = serde_json::Map::new();
    let mut root_inputs = serde_json::Map::new();
    for (i, (name, locked)) in inputs.iter().enumerate() {
        let node = format!("{name}_{i}");
        root_inputs.insert(name.to_string(), json!(node));
        let mut original = locked.clone();
        if let Some(o) = original.as_object_mut() {
            o.remove("rev");
            o.remove("narHash");
        }
        nodes.insert(node, json!({"locked": locked, "original": original}));
    }
    nodes.insert("root".into(), json!({ "inputs": root_inputs }));
    let lock = json!({"nodes": nodes, "root": "root", "version": 7});
    std::fs::write(
        dir.join("flake.lock"),
        serde_json::to_string_pretty(&lock).unwrap(),
    )
    .unwrap();
}

fn git_ssh(rev: &str) -> Value {
    json!({"type": "git", "url": "ssh://git@example.org/me/secrets", "ref": "refs/heads/main",
           "rev": rev, "narHash": "sha256-AAAA"})
}

fn git_file(dir: &Path, rev: &str) -> Value {
    json!({"type": "git", "url": format!("file://{}", dir.display()), "rev": rev})
}

fn github(owner: &str, repo: &str, rev: &str) -> Value {
    json!({"type": "github", "owner": owner, "repo": repo, "rev": rev})
}

fn nixpkgs() -> Value {
    github("NixOS", "nixpkgs", &"1".repeat(40))
}

fn pin(r: &Repo, extra: &[&str]) -> Output {
    let flake = r.flake.path().to_str().unwrap();
    let mut args = vec!["pin", "--flake", flake];
    args.extend_from_slice(extra);
    r.fleet.run(&args)
}

fn pin_json(r: &Repo, extra: &[&str]) -> (Value, Output) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = pin(r, &args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    (v, out)
}

fn require() {
    require_tool("git");
    require_tool("age");
    require_tool("ssh-keygen");
}

#[test]
#[ignore = "needs `age`, `git`, `ssh-keygen`"]
fn a_pin_behind_names_the_added_and_rekeyed_secrets_for_every_input_kind() {
    require();
    let r = repo();
    let d = r.fleet.dir.clone();
    lock(
        r.flake.path(),
        &[
            ("nixpkgs", nixpkgs()),
            ("secrets", git_ssh(&r.c1)),
            ("by-file", git_file(&d, &r.c1)),
            ("by-github", github("me", "secrets", &r.c1)),
        ],
    );
    // Three inputs lock this repository (by its origin, by its path, by its github
    // remote): the one named `secrets` is the secrets input.
    let out = pin(&r, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("input \"secrets\" (its URL names this repository)"),
        "{text}"
    );
    assert!(text.contains(&format!("pinned:     {}", r.c1)), "{text}");
    assert!(text.contains("by 1 commit(s)"), "{text}");
    assert!(text.contains("  added    api.age\n"), "{text}");
    assert!(text.contains("  rekeyed  db.age\n"), "{text}");
    assert!(text.contains("  changed  the rules file\n"), "{text}");
    assert!(!text.contains("tls.age"), "{text}");
    let cmd = format!(
        "update the lock: cd {} && nix flake update secrets",
        r.flake.path().display()
    );
    assert!(text.contains(&cmd), "{text}");
    for input in ["secrets", "by-file", "by-github"] {
        let (v, out) = pin_json(&r, &["--input", input]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(v["input"], input);
        assert_eq!(v["found_by"], "named");
        assert_eq!(v["head"]["state"], "behind", "{v}");
        assert_eq!(v["head"]["commits"], 1, "{v}");
        assert_eq!(v["head"]["commit"], r.c2.as_str());
        assert_eq!(v["missing"]["added"], json!(["api.age"]), "{v}");
        assert_eq!(v["missing"]["rekeyed"], json!(["db.age"]), "{v}");
        assert_eq!(v["missing"]["removed"], json!([]), "{v}");
        assert_eq!(v["missing"]["rules_changed"], true);
        assert!(v["update_command"]
            .as_str()
            .unwrap()
            .ends_with(&format!("nix flake update {input}")));
    }
    // Found by its remote alone: a github input whose owner/repo is the `gh` remote.
    lock(
        r.flake.path(),
        &[
            ("nixpkgs", nixpkgs()),
            ("fleet-secrets", github("me", "secrets", &r.c1)),
        ],
    );
    let (v, _) = pin_json(&r, &[]);
    assert_eq!(v["input"], "fleet-secrets");
    assert_eq!(v["found_by"], "remote");
    assert_eq!(v["url"], "github:me/secrets");
}

#[test]
#[ignore = "needs `age`, `git`, `ssh-keygen`"]
fn current_ahead_diverged_and_unknown_pins() {
    require();
    let r = repo();
    let d = r.fleet.dir.clone();
    let set = |rev: &str| lock(r.flake.path(), &[("secrets", git_file(&d, rev))]);

    set(&r.c2);
    let out = pin(&r, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("pin is current with HEAD"),
        "{}",
        stdout(&out)
    );
    assert!(
        !stdout(&out).contains("update the lock"),
        "{}",
        stdout(&out)
    );

    // Ahead: the pin is a commit HEAD does not have yet (HEAD reset below it).
    std::fs::write(d.join("notes.txt"), "n").unwrap();
    git(&d, &["add", "-A"]);
    git(&d, &["commit", "-q", "-m", "third"]);
    let c3 = git(&d, &["rev-parse", "HEAD"]).trim().to_string();
    git(&d, &["reset", "-q", "--hard", &r.c2]);
    set(&c3);
    let (v, out) = pin_json(&r, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["head"]["state"], "ahead", "{v}");
    assert_eq!(v["head"]["commits"], 1);
    assert_eq!(v["update_command"], Value::Null);
    assert_eq!(v["missing"], Value::Null);

    // Diverged: HEAD moves on from c2 with another commit.
    std::fs::write(d.join("other.txt"), "o").unwrap();
    git(&d, &["add", "-A"]);
    git(&d, &["commit", "-q", "-m", "fourth"]);
    let (v, out) = pin_json(&r, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["head"]["state"], "diverged", "{v}");
    assert_eq!(v["head"]["behind"], 1);
    assert_eq!(v["head"]["ahead"], 1);
    assert!(v["update_command"].is_string());

    // Unknown: a commit id the repository never had.
    set(&"0123456789abcdef".repeat(3)[..40]);
    let out = pin(&r, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("unknown to the repository (force-pushed away, or not fetched)"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("nix flake update secrets"));

    // Uncommitted changes to a secret are a warning.
    set(git(&d, &["rev-parse", "HEAD"]).trim());
    std::fs::write(d.join("db.age"), b"not yet committed").unwrap();
    let out = pin(&r, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uncommitted changes to the secrets cannot be deployed: db.age"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs `age`, `git`, `ssh-keygen`"]
fn a_missing_input_or_a_malformed_lock_is_a_one_line_usage_error() {
    require();
    let r = repo();
    let lock_file = r.flake.path().join("flake.lock");
    // No flake.lock at all.
    let out = pin(&r, &[]);
    assert_clean_failure(&out, &format!("{}: cannot read", lock_file.display()));
    assert_eq!(out.status.code(), Some(2));
    for (bad, needle) in [
        ("{ not json", "not valid JSON"),
        ("[1, 2]", "not a flake lock"),
        ("{\"nodes\": {}}", "the flake has no input \"secrets\""),
    ] {
        std::fs::write(&lock_file, bad).unwrap();
        let args: &[&str] = if needle.contains("no input") {
            &["--input", "secrets"]
        } else {
            &[]
        };
        let out = pin(&r, args);
        assert_clean_failure(&out, &format!("{}: {needle}", lock_file.display()));
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    // A FIFO where the lock should be is refused, not waited on.
    std::fs::remove_file(&lock_file).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &lock_file,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let out = pin(&r, &[]);
    assert_clean_failure(
        &out,
        &format!("{}: cannot read: not a regular file", lock_file.display()),
    );
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_file(&lock_file).unwrap();
    lock(r.flake.path(), &[("nixpkgs", nixpkgs())]);
    let out = pin(&r, &[]);
    assert_clean_failure(
        &out,
        "none is named \"secrets\"; pass --input NAME (inputs: nixpkgs)",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = pin(&r, &["--input", "nope"]);
    assert_clean_failure(&out, "the flake has no input \"nope\"");
    assert_eq!(out.status.code(), Some(2));
    // An input that follows another one locks nothing of its own.
    std::fs::write(
        &lock_file,
        r#"{"nodes":{"root":{"inputs":{"secrets":["other","secrets"]}}},"root":"root","version":7}"#,
    )
    .unwrap();
    let out = pin(&r, &[]);
    assert_clean_failure(
        &out,
        "input \"secrets\" locks no git commit (it follows another input)",
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
#[ignore = "needs `age`, `git`, `ssh-keygen`"]
fn status_prints_one_pin_line_with_flake_or_its_variable() {
    require();
    let r = repo();
    lock(r.flake.path(), &[("secrets", git_ssh(&r.c1))]);
    let flake = r.flake.path().to_str().unwrap();
    let out = r.fleet.run(&["status", "--flake", flake]);
    let line = format!(
        "pin: {}/flake.lock input \"secrets\" is behind HEAD",
        r.flake.path().display()
    );
    let text = stdout(&out);
    assert!(text.contains(&line), "{text}\n{}", stderr(&out));
    assert!(text.trim_end().ends_with("(see `agefleet pin`)"), "{text}");
    let out = crate::common::run(r.fleet.cmd().arg("status").env("AGEFLEET_FLAKE", flake));
    assert!(stdout(&out).contains(&line), "{}", stdout(&out));
    let out = crate::common::run(
        r.fleet
            .cmd()
            .args(["status", "--json"])
            .env("AGEFLEET_FLAKE", flake),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pin"]["head"]["state"], "behind", "{v}");
    // Without the flag or the variable, no pin line.
    let out = r.fleet.run(&["status"]);
    assert!(!stdout(&out).contains("pin:"), "{}", stdout(&out));
}

#[test]
#[ignore = "needs `age`, `git`, `ssh-keygen`"]
fn the_upstream_branch_is_compared_and_unpushed_commits_are_a_warning() {
    require();
    let r = repo();
    let d = r.fleet.dir.clone();
    let up = r.flake.path().join("up.git");
    let up_s = up.to_str().unwrap();
    git(&d, &["clone", "-q", "--bare", ".", up_s]);
    let branch = git(&d, &["rev-parse", "--abbrev-ref", "HEAD"])
        .trim()
        .to_string();
    git(&d, &["remote", "add", "up", up_s]);
    git(&d, &["fetch", "-q", "up"]);
    git(&d, &["branch", "-q", "-u", &format!("up/{branch}")]);
    // The lock pins what was pushed; one more local commit is not pushed yet.
    lock(r.flake.path(), &[("secrets", git_ssh(&r.c2))]);
    std::fs::write(d.join("notes.txt"), "n").unwrap();
    git(&d, &["add", "-A"]);
    git(&d, &["commit", "-q", "-m", "local only"]);
    let (v, out) = pin_json(&r, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(v["head"]["state"], "behind", "{v}");
    assert_eq!(v["upstream"]["name"], format!("up/{branch}"));
    assert_eq!(v["upstream"]["state"], "current", "{v}");
    assert_eq!(v["unpushed"], 1);
    // The local commit touches no secret: the hosts miss nothing.
    assert_eq!(v["missing"]["added"], json!([]));
    assert_eq!(v["missing"]["rules_changed"], false);
    assert!(
        stderr(&out).contains("1 commit(s) of HEAD are not pushed"),
        "{}",
        stderr(&out)
    );
    let out = pin(&r, &[]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("pin is current with up/{branch}")),
        "{text}"
    );
    assert!(
        text.contains("the hosts miss no secret or rules change"),
        "{text}"
    );
}
