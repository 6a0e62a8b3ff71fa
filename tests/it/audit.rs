//! `audit`: rotation debt from the git history of real repositories built with the `git`
//! CLI (add a host, rekey, commit; remove it, rekey, commit; rotate with `-i`), `--since`,
//! the JSON shape, historical files that do not evaluate or parse, exit codes.

use crate::common;

use std::process::Output;

use crate::common::sshd::git;
use crate::common::{
    assert_clean_failure, require_tool, ssh_keygen, stderr, stdout, Fleet, SshKey,
};

/// A secrets repository with history:
/// 1. `initial`: admin and web1 read tls.age; admin reads db.age.
/// 2. `add web2`: `host add web2 --like web1` (rekeyed).
/// 3. `remove web1`: `host remove web1` (rekeyed).
struct History {
    fleet: Fleet,
    web1: SshKey,
    web2: SshKey,
}

fn commit(f: &Fleet, message: &str) -> String {
    git(&f.dir, &["add", "-A"]);
    git(&f.dir, &["commit", "-q", "-m", message]);
    git(&f.dir, &["rev-parse", "HEAD"]).trim().to_string()
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
}

fn history() -> History {
    let (fleet, web1) = common::fleet_with_web1_in_git();
    let web2 = ssh_keygen(fleet.tmp.path(), "web2", "ed25519", "");
    let h = History { fleet, web1, web2 };
    ok(&h.fleet.run(&[
        "host",
        "add",
        "web2",
        "--key",
        &h.web2.public_line,
        "--like",
        "web1",
    ]));
    commit(&h.fleet, "add web2");
    ok(&h.fleet.run(&["host", "remove", "web1"]));
    commit(&h.fleet, "remove web1");
    h
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

pub(crate) fn secret<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no secret {name}: {j}"))
}

fn rev(f: &Fleet, spec: &str) -> String {
    git(&f.dir, &["rev-parse", spec]).trim().to_string()
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`"]
fn a_removed_host_is_debt_named_by_its_historical_binding() {
    let h = history();
    let f = &h.fleet;
    let out = f.run(&["audit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let tag = agefleet::recipient::tag_of(&h.web1.public_line)
        .unwrap()
        .unwrap();
    let add = rev(f, "HEAD~1");
    let short = &add[..7];
    assert!(text.starts_with("tls.age:\n"), "{text}");
    assert!(
        text.contains(&format!(
            "  web1  (ssh-ed25519 tag:{tag})  last readable at {short}"
        )),
        "{text}"
    );
    assert!(text.contains("\"add web2\""), "{text}");
    assert!(!text.contains("db.age"), "db.age has no debt: {text}");
    assert!(
        !text.contains("\n  web2"),
        "web2 is a current recipient: {text}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("rekeying is not revocation — rotate these values"),
        "{err}"
    );

    // JSON: every audited secret, the debt with its last commit.
    let out = f.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["commits"], 3);
    assert_eq!(j["unsettled"], 1);
    assert_eq!(j["settlement_checked"], false);
    assert_eq!(j["since"], serde_json::Value::Null);
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    assert_eq!(secret(&j, "db.age")["debt"].as_array().unwrap().len(), 0);
    let tls = secret(&j, "tls.age");
    assert_eq!(tls["path"], "tls.age");
    assert_eq!(tls["versions"], 3);
    let debt = tls["debt"].as_array().unwrap();
    assert_eq!(debt.len(), 1, "{j}");
    let d = &debt[0];
    assert_eq!(d["recipient"], "web1");
    assert_eq!(d["kind"], "ssh-ed25519");
    assert_eq!(d["tag"], tag.as_str());
    assert_eq!(d["key"], h.web1.public_line.as_str());
    assert_eq!(d["named_from"], "history");
    assert_eq!(d["evidence"], "header");
    assert_eq!(d["settled"], false);
    assert_eq!(d["note"], serde_json::Value::Null);
    assert_eq!(d["last_commit"]["id"], add.as_str());
    assert_eq!(d["last_commit"]["summary"], "add web2");
    let date = d["last_commit"]["date"].as_str().unwrap();
    assert_eq!(date.len(), 20, "{date}");
    assert!(date.ends_with('Z') && date.as_bytes()[10] == b'T', "{date}");
    assert!(d["last_commit"]["time"].as_i64().unwrap() > 1_500_000_000);
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`"]
fn rotation_with_an_identity_settles_the_debt() {
    let h = history();
    let f = &h.fleet;
    let admin_key = f.admin.private.to_str().unwrap().to_string();
    // With -i but no rotation yet: the value is unchanged, the debt stays.
    let out = f.run(&["audit", "--json", "-i", &admin_key]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["settlement_checked"], true);
    let d = &secret(&j, "tls.age")["debt"][0];
    assert_eq!(d["settled"], false);
    assert!(
        d["note"].as_str().unwrap().contains("unchanged since"),
        "{d}"
    );

    // Rotate: a new plaintext, committed.
    ok(&f.run_stdin(&["edit", "tls.age"], b"tls v2"));
    assert_eq!(f.age_plaintext(&f.admin.private, "tls.age"), b"tls v2");
    commit(f, "rotate tls");
    let out = f.run(&["audit", "--json", "-i", &admin_key]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["unsettled"], 0);
    let d = &secret(&j, "tls.age")["debt"][0];
    assert_eq!(d["recipient"], "web1");
    assert_eq!(d["settled"], true);
    assert!(d["note"].as_str().unwrap().contains("changed after"), "{d}");
    let out = f.run(&["audit", "-i", &admin_key]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "settled debt is not listed");
    assert!(
        stderr(&out).contains("1 debt entry settled"),
        "{}",
        stderr(&out)
    );

    // Without -i nothing can be settled: the debt is reported.
    let out = f.run(&["audit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // An identity that opens neither version leaves the debt, with why.
    let stranger = ssh_keygen(f.tmp.path(), "stranger", "ed25519", "");
    let out = f.run(&["audit", "--json", "-i", stranger.private.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json(&out);
    let d = &secret(&j, "tls.age")["debt"][0];
    assert_eq!(d["settled"], false);
    assert!(
        d["note"].as_str().unwrap().contains("cannot decrypt"),
        "{d}"
    );
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`"]
fn since_limits_the_commits_audited() {
    let h = history();
    let f = &h.fleet;
    // After `remove web1` nothing more was committed: no commit, no debt.
    let out = f.run(&["audit", "--json", "--since", "HEAD"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["commits"], 0);
    assert_eq!(j["since"], "HEAD");
    assert_eq!(j["settlement_checked"], false);
    let admin_key = f.admin.private.to_str().unwrap();
    let out = f.run(&["audit", "--json", "--since", "HEAD", "-i", admin_key]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["settlement_checked"], true);
    // `add web2..HEAD`: only the version without web1.
    let out = f.run(&["audit", "--json", "--since", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["commits"], 1);
    // `initial..HEAD` still holds the version of `add web2`.
    let initial = rev(f, "HEAD~2");
    let out = f.run(&["audit", "--json", "--since", &initial]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["commits"], 2);
    assert_eq!(
        secret(&j, "tls.age")["debt"][0]["last_commit"]["summary"],
        "add web2"
    );
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`"]
fn a_historical_rules_file_that_does_not_evaluate_is_skipped_with_a_warning() {
    let h = history();
    let f = &h.fleet;
    let good = std::fs::read_to_string(f.path("secrets.nix")).unwrap();
    std::fs::write(f.path("secrets.nix"), "{ \"tls.age\".publicKeys = [ ; }\n").unwrap();
    let broken = commit(f, "broken rules");
    std::fs::write(f.path("secrets.nix"), &good).unwrap();
    commit(f, "fix rules");
    let out = f.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json(&out);
    let warnings: Vec<&str> = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("secrets.nix at commit {}", &broken[..7]))
            && warnings[0].contains("does not evaluate"),
        "{warnings:?}"
    );
    // The other versions still name web1.
    assert_eq!(secret(&j, "tls.age")["debt"][0]["recipient"], "web1");
    let out = f.run(&["audit"]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("does not evaluate"))
        .expect("a warning line");
    assert!(line.starts_with("warning: "), "{err}");
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`"]
fn a_corrupt_historical_file_is_skipped_with_a_one_line_warning() {
    let h = history();
    let f = &h.fleet;
    let good = std::fs::read(f.path("tls.age")).unwrap();
    std::fs::write(
        f.path("tls.age"),
        b"age-encryption.org/v1\n-> X25519\n\xff\xfe\n",
    )
    .unwrap();
    let corrupt = commit(f, "oops");
    std::fs::write(f.path("tls.age"), &good).unwrap();
    commit(f, "restore tls");
    let out = f.run(&["audit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    let warning: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(&format!("tls.age at commit {}", &corrupt[..7])))
        .collect();
    assert_eq!(warning.len(), 1, "{err}");
    assert!(warning[0].starts_with("warning: "), "{err}");
    assert!(warning[0].contains("skipped"), "{err}");
    // The rest of the history is still audited.
    assert!(stdout(&out).contains("  web1  ("), "{}", stdout(&out));

    // A symlink committed in a secret's place is not followed: one warning, no panic.
    let db = std::fs::read(f.path("db.age")).unwrap();
    std::fs::remove_file(f.path("db.age")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", f.path("db.age")).unwrap();
    let link = commit(f, "link");
    std::fs::remove_file(f.path("db.age")).unwrap();
    std::fs::write(f.path("db.age"), db).unwrap();
    commit(f, "unlink");
    let out = f.run(&["audit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning: db.age at commit {}: a symlink, not a file: skipped",
            &link[..7]
        )),
        "{err}"
    );
}

#[test]
#[ignore = "needs `git`, `age`, `age-keygen`, `ssh-keygen`"]
fn removed_x25519_recipients_are_attributed_by_the_rule_of_their_commit() {
    require_tool("git");
    let f = Fleet::new();
    let (bob_key, bob) = common::age_keygen(f.tmp.path(), "bob");
    let admin = f.admin.public_line.clone();
    std::fs::write(
        f.path("secrets.nix"),
        format!("let\n  admin = \"{admin}\";\n  bob = \"{bob}\";\nin {{\n  \"x.age\".publicKeys = [ admin bob ];\n}}\n"),
    )
    .unwrap();
    f.age_file("x.age", &[&admin, &bob], b"x");
    git(&f.dir, &["init", "-q"]);
    let first = commit(&f, "with bob");
    assert_eq!(f.age_plaintext(&bob_key, "x.age"), b"x");
    ok(&f.run(&["host", "remove", "bob"]));
    commit(&f, "without bob");
    let out = f.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json(&out);
    let debt = secret(&j, "x.age")["debt"].as_array().unwrap().clone();
    assert_eq!(debt.len(), 1, "{j}");
    assert_eq!(debt[0]["recipient"], "bob");
    assert_eq!(debt[0]["kind"], "X25519");
    assert_eq!(debt[0]["key"], bob.as_str());
    assert_eq!(debt[0]["evidence"], "rule");
    assert_eq!(debt[0]["last_commit"]["id"], first.as_str());
}

#[test]
#[ignore = "needs `git`, `ssh-keygen`"]
fn outside_git_and_bad_revisions_are_usage_errors() {
    require_tool("git");
    let f = Fleet::new();
    f.rules(&[("a.age", &[&f.admin.public_line], false)]);
    let out = f.run(&["audit"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_clean_failure(&out, "not inside a git work tree");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    git(&f.dir, &["init", "-q"]);
    // No commit yet: nothing to audit.
    let out = f.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["commits"], 0);
    commit(&f, "rules");
    let out = f.run(&["audit", "--since", "no-such-rev"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_clean_failure(&out, "--since \"no-such-rev\": not a commit of");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // A file the rules name but never committed has no history: no debt.
    let out = f.run(&["audit"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`"]
fn commit_summaries_cannot_drive_the_terminal() {
    require_tool("git");
    require_tool("age");
    let f = Fleet::new();
    let web1 = ssh_keygen(f.tmp.path(), "web1", "ed25519", "");
    let admin = f.admin.public_line.clone();
    std::fs::write(
        f.path("secrets.nix"),
        format!(
            "let\n  admin = \"{admin}\";\n  web1 = \"{}\";\nin {{\n  \"x.age\".publicKeys = [ admin web1 ];\n}}\n",
            web1.public_line
        ),
    )
    .unwrap();
    f.age_file("x.age", &[&admin, &web1.public_line], b"x");
    git(&f.dir, &["init", "-q"]);
    commit(&f, "evil \x1b]0;owned\x07\x1b[31m red");
    ok(&f.run(&["host", "remove", "web1"]));
    commit(&f, "remove web1");
    let out = f.run(&["audit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("evil \\u{1b}]0;owned"), "{text}");
    // JSON keeps the summary as it is, escaped by JSON.
    let j = json(&f.run(&["audit", "--json"]));
    assert_eq!(
        secret(&j, "x.age")["debt"][0]["last_commit"]["summary"],
        "evil \x1b]0;owned\x07\x1b[31m red"
    );
}

/// A 1 GiB blob of zeros committed as a secret and as secrets.nix (1 MB in the repository;
/// git packs a blob that large as it adds it) is not inflated: under a 512 MiB address-space
/// limit `audit` and `access` skip it with a warning naming its path and commit, and report
/// the other secrets. A 65 MiB blob (over the whole-read limit, loose) is read as a stream
/// for its age header only, and skipped as not an age file.
#[test]
#[ignore = "needs `age`, `git`, `ssh-keygen`"]
fn a_huge_historical_blob_is_skipped_not_read() {
    let (f, _web1) = common::fleet_with_web1_in_git();
    let keep = |name: &str| std::fs::read(f.path(name)).unwrap();
    let (tls, db, rules) = (keep("tls.age"), keep("db.age"), keep("secrets.nix"));
    for (name, size) in [
        ("tls.age", 1u64 << 30),
        ("secrets.nix", 1 << 30),
        ("db.age", 65 << 20),
    ] {
        // Sparse: nothing on disk; git deflates the zeros to about 1 MB.
        let file = std::fs::File::create(f.path(name)).unwrap();
        file.set_len(size).unwrap();
    }
    let zeros = commit(&f, "zeros");
    std::fs::write(f.path("tls.age"), &tls).unwrap();
    std::fs::write(f.path("db.age"), &db).unwrap();
    std::fs::write(f.path("secrets.nix"), &rules).unwrap();
    commit(&f, "restored");
    let short = &zeros[..7];
    // access shows audit's warnings with -v.
    for verb in ["audit", "access"] {
        let out = common::run(
            common::agefleet_with_memory_limit(&f.home, 524_288)
                .current_dir(&f.dir)
                .args([verb, "--json", "-v"]),
        );
        assert_eq!(out.status.code(), Some(0), "{verb}: {}", stderr(&out));
        let err = stderr(&out);
        for needle in [
            format!("tls.age at commit {short}: 1024 MiB, over 64 MiB and packed (cannot be streamed): not read: this version is skipped"),
            format!("db.age at commit {short}: not an age file (no age header); 65 MiB, over 64 MiB: only its start was read: this version is skipped"),
            format!("secrets.nix at commit {short}: 1024 MiB, over 64 MiB: not read"),
        ] {
            assert!(err.contains(&needle), "{verb}: no {needle:?} in {err}");
        }
        let j = json(&out);
        let text = j.to_string();
        assert!(
            text.contains("tls.age") && text.contains("db.age"),
            "{verb}: {text}"
        );
    }
}
