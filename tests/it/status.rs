//! `status`: every problem code, JSON shape, exit codes, files from the `age` CLI (no grease)
//! and from agefleet (grease), all without any identity.

use crate::common::*;
use serde_json::Value;

fn status_json(f: &Fleet) -> (Option<i32>, Value) {
    let out = f.run(&["status", "--json"]);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad json ({e}): {}", stdout(&out)));
    (out.status.code(), v)
}

pub(crate) fn problems_of(v: &Value, file: &str) -> Vec<String> {
    let entry = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in {v}"));
    entry["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn clean_fleet_is_ok_without_any_identity() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let (_, x25519) = age_keygen(f.tmp.path(), "nas.key");
    f.rules(&[
        ("cli.age", &[&admin, &x25519], false),
        ("mine.age", &[&admin, &x25519], false),
        ("armored.age", &[&admin], true),
    ]);
    // cli.age from the age CLI (no grease); mine.age and armored.age from agefleet (grease).
    f.age_file("cli.age", &[&admin, &x25519], b"cli");
    assert!(f.run_stdin(&["edit", "mine.age"], b"mine").status.success());
    assert!(f
        .run_stdin(&["edit", "armored.age"], b"arm")
        .status
        .success());
    std::fs::remove_file(&f.admin.private).unwrap(); // no identity needed from here on
    let (code, v) = status_json(&f);
    assert_eq!(code, Some(0), "{v}");
    for file in ["cli.age", "mine.age", "armored.age"] {
        assert!(problems_of(&v, file).is_empty(), "{file}: {v}");
    }
    let out = f.run(&["status"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("mine.age") && stdout(&out).contains("ok"));
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `git`, `ssh-keygen`"]
fn every_problem_code() {
    require_tool("age");
    require_tool("git");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let host = ssh_keygen(f.tmp.path(), "host", "ed25519", "");
    let (_, x1) = age_keygen(f.tmp.path(), "x1.key");
    let (_, x2) = age_keygen(f.tmp.path(), "x2.key");
    f.rules(&[
        ("ok.age", &[&admin], false),
        ("missing.age", &[&admin], false),
        ("added.age", &[&admin, &host.public_line], false),
        ("removed.age", &[&admin], false),
        ("x25519.age", &[&admin, &x1, &x2], false),
        ("armor.age", &[&admin], true),
        ("garbage.age", &[&admin], false),
        ("bad-rule.age", &["ssh-ed25519 AAAA-nope"], false),
        ("untracked.age", &[&admin], false),
    ]);
    f.age_file("ok.age", &[&admin], b"");
    f.age_file("added.age", &[&admin], b"");
    f.age_file("removed.age", &[&admin, &host.public_line], b"");
    f.age_file("x25519.age", &[&admin, &x1], b"");
    f.age_file("armor.age", &[&admin], b"");
    std::fs::write(f.path("garbage.age"), b"plaintext, not age").unwrap();
    f.age_file("bad-rule.age", &[&admin], b"");
    f.age_file("orphan/old.age", &[&admin], b"");
    f.age_file("untracked.age", &[&admin], b"");
    let git = |args: &[&str]| {
        let out = run(std::process::Command::new("git")
            .args(args)
            .current_dir(&f.dir));
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["rm", "-q", "--cached", "untracked.age"]);

    let (code, v) = status_json(&f);
    assert_eq!(code, Some(1));
    assert_eq!(problems_of(&v, "ok.age"), Vec::<String>::new());
    assert_eq!(problems_of(&v, "missing.age"), ["missing-file"]);
    assert_eq!(problems_of(&v, "added.age"), ["recipients-drift"]);
    assert_eq!(problems_of(&v, "removed.age"), ["recipients-drift"]);
    assert_eq!(problems_of(&v, "x25519.age"), ["recipients-drift"]);
    assert_eq!(problems_of(&v, "armor.age"), ["armor-drift"]);
    assert_eq!(problems_of(&v, "garbage.age"), ["unreadable"]);
    assert_eq!(problems_of(&v, "bad-rule.age"), ["bad-rule"]);
    assert_eq!(problems_of(&v, "orphan/old.age"), ["orphan"]);
    assert_eq!(problems_of(&v, "untracked.age"), ["untracked"]);
    // Detail: which recipient was added, which tag removed, the X25519 counts.
    let find = |file: &str| {
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["file"] == file)
            .unwrap()
            .clone()
    };
    let added = find("added.age");
    assert_eq!(
        added["drift"]["recipients"]["added"][0],
        host.public_line.as_str()
    );
    let removed = find("removed.age");
    assert_eq!(
        removed["drift"]["recipients"]["removed_tags"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let x = find("x25519.age");
    assert_eq!(x["drift"]["recipients"]["x25519_expected"], 2);
    assert_eq!(x["drift"]["recipients"]["x25519_found"], 1);
    assert!(find("bad-rule.age")["error"]
        .as_str()
        .unwrap()
        .contains("bad-rule.age"));

    // The table names every problem too, and the exit is 1.
    let out = f.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    for c in [
        "missing-file",
        "orphan",
        "recipients-drift",
        "armor-drift",
        "untracked",
        "unreadable",
        "bad-rule",
    ] {
        assert!(table.contains(c), "{c} missing from table:\n{table}");
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn rekey_drifted_then_status_is_clean() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let host = ssh_keygen(f.tmp.path(), "host", "ed25519", "");
    f.rules(&[
        ("a.age", &[&admin, &host.public_line], true),
        ("b.age", &[&admin], false),
    ]);
    f.age_file("a.age", &[&admin], b"a");
    f.age_file("b.age", &[&admin], b"b");
    assert_eq!(status_json(&f).0, Some(1));
    let out = f.run(&["rekey", "--drifted"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = status_json(&f);
    assert_eq!(code, Some(0), "{v}");
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn broken_rules_file_is_one_clean_error() {
    let f = Fleet::new();
    std::fs::write(f.path("secrets.nix"), "{ a = ").unwrap();
    let out = f.run(&["status", "--nix-eval", "builtin"]);
    assert_clean_failure(&out, "secrets.nix");
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn leftover_temp_files_are_reported_then_removed_by_rekey_and_edit() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[
        ("a.age", &[&admin], false),
        ("sub/b.age", &[&admin], false),
        ("new.age", &[&admin], false),
    ]);
    f.age_file("a.age", &[&admin], b"a");
    f.age_file("sub/b.age", &[&admin], b"b");
    // What a killed rekey/edit leaves: temps beside existing secrets, beside a new secret
    // whose first write never landed, and beside a file no rule names.
    let stale_a = f.path(".a.age.agefleet-tmp.0123456789abcdef");
    let stale_b = f.path("sub/.b.age.agefleet-tmp.fedcba9876543210");
    let stale_new = f.path(".new.age.agefleet-tmp.00000000000000ff");
    let stale_gone = f.path(".gone.age.agefleet-tmp.00000000000000aa");
    for p in [&stale_a, &stale_b, &stale_new, &stale_gone] {
        std::fs::write(p, b"half-written ciphertext").unwrap();
    }
    // Not ours: left alone, not reported.
    let unrelated = f.path(".a.age.agefleet-tmp.not-hex-at-all!");
    std::fs::write(&unrelated, b"x").unwrap();

    let (code, v) = status_json(&f);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(problems_of(&v, "a.age"), ["stale-temp"]);
    assert_eq!(problems_of(&v, "sub/b.age"), ["stale-temp"]);
    assert_eq!(problems_of(&v, "new.age"), ["missing-file", "stale-temp"]);
    assert_eq!(problems_of(&v, "gone.age"), ["stale-temp"]);
    let a = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == "a.age")
        .unwrap();
    assert_eq!(a["stale_temps"][0], ".a.age.agefleet-tmp.0123456789abcdef");
    let table = stdout(&f.run(&["status"]));
    assert!(
        table.contains("stale-temp") && table.contains("interrupted"),
        "{table}"
    );

    // While a writer holds the lock, temps may be live: not reported.
    {
        let _lock = agefleet::internal::fsutil::WriteLock::try_acquire(&f.dir)
            .unwrap()
            .expect("nobody else holds the lock");
        let (_, v) = status_json(&f);
        assert!(problems_of(&v, "a.age").is_empty(), "{v}");
    }

    // A rekey removes the leftovers beside the files of its rules; others stay.
    let out = f.run(&["rekey"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in [&stale_a, &stale_b, &stale_new] {
        assert!(!p.exists(), "{} left", p.display());
    }
    assert!(stale_gone.exists() && unrelated.exists());
    std::fs::remove_file(&stale_gone).unwrap();
    let (code, v) = status_json(&f);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(problems_of(&v, "new.age"), ["missing-file"]);
    assert!(problems_of(&v, "a.age").is_empty(), "{v}");

    // So does an edit, for the secret it writes.
    std::fs::write(&stale_a, b"half-written ciphertext").unwrap();
    let out = f.run_stdin(&["edit", "a.age"], b"a2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stale_a.exists());
    assert_eq!(f.age_plaintext(&f.admin.private, "a.age"), b"a2");
}

/// A rules file that doubles a list 40 times (2^40 elements; `status` once took 11.8 GB on
/// it) stops at the builtin evaluator's memory budget with one clear error naming the file,
/// under a 512 MiB address-space limit: no abort, no fallback to Nix. The budget is set by
/// `AGEFLEET_EVAL_BUDGET_MIB`; a value that is not a number of MiB is refused.
#[test]
#[ignore = "needs `ssh-keygen`"]
fn a_list_doubling_rules_file_stops_at_the_evaluation_budget() {
    let f = Fleet::new();
    let mut rules = String::from("let\n  l0 = [ \"k\" ];\n");
    for i in 1..=40 {
        rules.push_str(&format!("  l{i} = l{0} ++ l{0};\n", i - 1));
    }
    rules.push_str("in {\n  \"x.age\".publicKeys = l40;\n}\n");
    std::fs::write(f.path("secrets.nix"), rules).unwrap();
    let status = |env: Option<&str>| {
        let mut cmd = agefleet_with_memory_limit(&f.home, 524_288);
        cmd.current_dir(&f.dir).arg("status");
        if let Some(v) = env {
            cmd.env("AGEFLEET_EVAL_BUDGET_MIB", v);
        }
        run(&mut cmd)
    };
    let out = status(None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_clean_failure(&out, "secrets.nix:");
    let err = stderr(&out);
    assert!(
        err.contains("evaluation exceeds its memory budget of 256 MiB")
            && err.contains("AGEFLEET_EVAL_BUDGET_MIB"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = status(Some("16"));
    assert_clean_failure(&out, "evaluation exceeds its memory budget of 16 MiB");
    let out = status(Some("lots"));
    assert_clean_failure(
        &out,
        "AGEFLEET_EVAL_BUDGET_MIB=\"lots\" is not a positive number of MiB",
    );
}

/// `status` reads the headers under the rules directory while the rules evaluate
/// (`Prefetch`): its report is the one the plain scan gives, entry for entry and error for
/// error, whatever the files are (clean, drifted, missing, orphaned, garbage, in a
/// subdirectory, named oddly by the rule, a directory named like a secret).
#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn the_prefetched_scan_reports_what_the_plain_scan_reports() {
    use agefleet::secrets::status::{scan, scan_prefetched, Prefetch};
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let other = ssh_keygen(f.tmp.path(), "other", "ed25519", "");
    f.rules(&[
        ("ok.age", &[&admin], false),
        ("drift.age", &[&admin, &other.public_line], false),
        ("missing.age", &[&admin], false),
        ("garbage.age", &[&admin], false),
        ("sub/deep.age", &[&admin], false),
        ("./dotted.age", &[&admin], false),
        ("dir.age", &[&admin], false),
    ]);
    f.age_file("ok.age", &[&admin], b"a");
    f.age_file("drift.age", &[&admin], b"b");
    f.age_file("sub/deep.age", &[&admin], b"c");
    f.age_file("dotted.age", &[&admin], b"d");
    f.age_file("orphan.age", &[&admin], b"e");
    std::fs::write(f.path("garbage.age"), b"not age at all\n").unwrap();
    std::fs::create_dir(f.path("dir.age")).unwrap();
    let rules = agefleet::load_rules(&f.path("secrets.nix"), agefleet::EvalMode::Builtin).unwrap();
    let plain = scan(&rules, &|_| {});
    let prefetched = scan_prefetched(&rules, Some(Prefetch::read(&rules.dir)), &|_| {});
    let json = |r: &agefleet::secrets::status::Report| {
        let entries = serde_json::to_value(&r.entries).unwrap();
        assert!(entries.as_array().unwrap().len() >= 8, "{entries}");
        entries
    };
    assert_eq!(json(&plain), json(&prefetched));
    let problems = |file: &str| {
        let v = serde_json::json!({ "files": json(&prefetched) });
        problems_of(&v, file)
    };
    assert_eq!(problems("drift.age"), ["recipients-drift"]);
    assert_eq!(problems("missing.age"), ["missing-file"]);
    assert_eq!(problems("garbage.age"), ["unreadable"]);
    assert_eq!(problems("orphan.age"), ["orphan"]);
    assert!(problems("ok.age").is_empty() && problems("sub/deep.age").is_empty());
}
