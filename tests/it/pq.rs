//! The hybrid post-quantum recipient end to end: `keygen --pq`, `pq = true` rules (edit,
//! rekey, status), bad PQ input, and interop both ways with typage (an independent
//! implementation of the recipient).

use crate::common;

use std::path::PathBuf;

use crate::common::{assert_clean_failure, stderr, stdout, typage, Fleet};

/// `agefleet keygen --pq -o NAME` in the fleet's HOME; returns the identity path and the
/// recipient it printed.
fn keygen_pq(fleet: &Fleet, name: &str) -> (PathBuf, String) {
    let path = fleet.home.join(name);
    let out = common::run(fleet.cmd().args(["keygen", "--pq", "-o"]).arg(&path));
    assert!(out.status.success(), "keygen: {}", stderr(&out));
    let recipient = stdout(&out).trim().to_string();
    assert!(recipient.starts_with("age1pq1"), "{recipient}");
    (path, recipient)
}

/// Writes `secrets.nix` from `(name, keys, attributes)` entries, attributes as Nix text.
fn rules(fleet: &Fleet, entries: &[(&str, &[&str], &str)]) {
    let mut s = String::from("{\n");
    for (name, keys, attrs) in entries {
        let keys: Vec<String> = keys.iter().map(|k| common::nix_string(k)).collect();
        s.push_str(&format!(
            "  {} = {{ publicKeys = [ {} ]; {attrs} }};\n",
            common::nix_string(name),
            keys.join(" ")
        ));
    }
    s.push_str("}\n");
    std::fs::write(fleet.path("secrets.nix"), s).unwrap();
}

fn status_json(fleet: &Fleet) -> serde_json::Value {
    let out = fleet.run(&["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)))
}

fn status_of<'a>(status: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    status["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in {status}"))
}

fn make_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn decrypt_with(fleet: &Fleet, file: &str, identity: &std::path::Path) -> std::process::Output {
    common::run(fleet.cmd().args(["-d", file, "-i"]).arg(identity))
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn keygen_pq_writes_a_private_file_refuses_to_overwrite_and_y_prints_its_recipient() {
    let fleet = Fleet::new();
    let (path, recipient) = keygen_pq(&fleet, "host.pq");
    assert_eq!(common::mode_of(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("# public key: {recipient}\n")));
    assert!(text.contains("\nAGE-SECRET-KEY-PQ-1"));
    let before = std::fs::read(&path).unwrap();
    let again = common::run(fleet.cmd().args(["keygen", "--pq", "-o"]).arg(&path));
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(stderr(&again).contains("already exists"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let y = common::run(fleet.cmd().arg("keygen").arg("-y").arg(&path));
    assert!(y.status.success(), "{}", stderr(&y));
    assert_eq!(stdout(&y).trim(), recipient);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn pq_rule_round_trip_with_status_flags() {
    let fleet = Fleet::new();
    let (id1, r1) = keygen_pq(&fleet, "one.pq");
    let (id2, r2) = keygen_pq(&fleet, "two.pq");
    rules(&fleet, &[("a.age", &[&r1, &r2], "pq = true;")]);
    // Over 64 KiB: more than one STREAM chunk.
    let plaintext: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let out = fleet.run_stdin(&["-e", "a.age"], &plaintext);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in [&id1, &id2] {
        let d = decrypt_with(&fleet, "a.age", id);
        assert!(d.status.success(), "{}", stderr(&d));
        assert_eq!(d.stdout, plaintext);
    }
    let s = status_json(&fleet);
    let a = status_of(&s, "a.age");
    assert_eq!(a["problems"], serde_json::json!([]), "{s}");
    assert_eq!(a["post_quantum"], true, "{s}");
    // A third PQ recipient in the rule is drift (PQ stanzas are counted, like X25519).
    let (_, r3) = keygen_pq(&fleet, "three.pq");
    rules(&fleet, &[("a.age", &[&r1, &r2, &r3], "pq = true;")]);
    let s = status_json(&fleet);
    let a = status_of(&s, "a.age");
    assert_eq!(
        a["problems"],
        serde_json::json!(["recipients-drift"]),
        "{s}"
    );
    assert_eq!(a["drift"]["recipients"]["mlkem768x25519_expected"], 3);
    assert_eq!(a["drift"]["recipients"]["mlkem768x25519_found"], 2);
    let out = common::run(fleet.cmd().args(["rekey", "-i"]).arg(&id1));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        status_of(&status_json(&fleet), "a.age")["problems"],
        serde_json::json!([])
    );
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn pq_rule_refuses_classical_recipients_and_status_flags_them() {
    let fleet = Fleet::new();
    let (_, r1) = keygen_pq(&fleet, "one.pq");
    let admin = fleet.admin.public_line.clone();
    // Written while the rule still allowed the classical key.
    rules(&fleet, &[("a.age", &[&admin], "")]);
    let out = fleet.run_stdin(&["-e", "a.age"], b"classical");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = status_json(&fleet);
    assert_eq!(status_of(&s, "a.age")["post_quantum"], false);

    // The rule now demands post-quantum recipients but still lists the admin's SSH key.
    rules(
        &fleet,
        &[
            ("a.age", &[&r1, &admin], "pq = true;"),
            ("new.age", &[&r1, &admin], "pq = true;"),
        ],
    );
    let before = std::fs::read(fleet.path("a.age")).unwrap();
    let edit = fleet.run_stdin(&["-e", "new.age"], b"x");
    assert_clean_failure(&edit, "pq = true, but ssh-ed25519");
    assert!(stderr(&edit).contains("secrets.nix"), "{}", stderr(&edit));
    assert!(!fleet.path("new.age").exists());
    let rekey = fleet.run(&["rekey"]);
    assert_eq!(rekey.status.code(), Some(1), "{}", stderr(&rekey));
    assert!(
        format!("{}{}", stdout(&rekey), stderr(&rekey)).contains("classical ssh-ed25519"),
        "{}{}",
        stdout(&rekey),
        stderr(&rekey)
    );
    assert_eq!(std::fs::read(fleet.path("a.age")).unwrap(), before);
    let s = status_json(&fleet);
    let a = status_of(&s, "a.age");
    assert!(
        a["problems"]
            .as_array()
            .unwrap()
            .contains(&"not-post-quantum".into()),
        "{s}"
    );
    assert!(status_of(&s, "new.age")["problems"]
        .as_array()
        .unwrap()
        .contains(&"not-post-quantum".into()));
    // The table says it too.
    let table = fleet.run(&["status"]);
    assert!(
        stdout(&table).contains("not-post-quantum"),
        "{}",
        stdout(&table)
    );

    // Only PQ keys in the rule: the old file still has a classical stanza until rekeyed.
    rules(&fleet, &[("a.age", &[&r1], "pq = true;")]);
    let s = status_json(&fleet);
    let a = status_of(&s, "a.age");
    assert!(
        a["problems"]
            .as_array()
            .unwrap()
            .contains(&"not-post-quantum".into()),
        "{s}"
    );
    let rekey = fleet.run(&["rekey"]);
    assert!(rekey.status.success(), "{}", stderr(&rekey));
    let s = status_json(&fleet);
    let a = status_of(&s, "a.age");
    assert_eq!(a["problems"], serde_json::json!([]), "{s}");
    assert_eq!(a["post_quantum"], true);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn bad_post_quantum_input_is_a_one_line_error_naming_the_file() {
    let fleet = Fleet::new();
    let (id, r1) = keygen_pq(&fleet, "one.pq");
    rules(&fleet, &[("a.age", &[&r1], "pq = true;")]);
    let out = fleet.run_stdin(&["-e", "a.age"], b"secret");
    assert!(out.status.success(), "{}", stderr(&out));

    // An identity whose checksum is broken (one character changed).
    let text = std::fs::read_to_string(&id).unwrap();
    let key_line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-PQ-1"))
        .unwrap();
    let last = key_line.chars().last().unwrap();
    let changed = format!(
        "{}{}",
        &key_line[..key_line.len() - 1],
        if last == 'Q' { 'P' } else { 'Q' }
    );
    let bad = fleet.home.join("bad.pq");
    std::fs::write(&bad, text.replace(key_line, &changed)).unwrap();
    make_private(&bad);
    let d = decrypt_with(&fleet, "a.age", &bad);
    assert_clean_failure(&d, "bad.pq");
    assert!(stderr(&d).contains("checksum"), "{}", stderr(&d));
    assert!(
        !stderr(&d).contains(&changed[20..40]),
        "key material in the message"
    );
    assert!(d.stdout.is_empty());

    // Corrupted headers: the enc argument truncated, or the 32-byte body cut to 16 bytes.
    let bytes = std::fs::read(fleet.path("a.age")).unwrap();
    let header_end = bytes.windows(4).position(|w| w == b"\n---").unwrap();
    let header = std::str::from_utf8(&bytes[..header_end])
        .unwrap()
        .to_string();
    let stanza = header
        .lines()
        .position(|l| l.starts_with("-> mlkem768x25519 "))
        .unwrap();
    let lines: Vec<&str> = header.lines().collect();
    let arg_line = lines[stanza];
    let body_line = lines[stanza + 1];
    assert_eq!(body_line.len(), 43, "{header}");
    let cases = [
        (
            "truncated-enc.age",
            arg_line,
            &arg_line[..arg_line.len() - 4],
        ),
        ("short-body.age", body_line, &body_line[..22]),
    ];
    for (name, from, to) in cases {
        let mut corrupted = header.replacen(from, to, 1).into_bytes();
        corrupted.extend_from_slice(&bytes[header_end..]);
        std::fs::write(fleet.path(name), &corrupted).unwrap();
        let d = decrypt_with(&fleet, name, &id);
        assert_clean_failure(&d, name);
        assert!(stderr(&d).contains("header"), "{name}: {}", stderr(&d));
        assert!(d.stdout.is_empty());
        // Nothing is written with -o either.
        let target = fleet.home.join(format!("{name}.out"));
        let o = common::run(
            fleet
                .cmd()
                .args(["decrypt", name, "-o"])
                .arg(&target)
                .arg("-i")
                .arg(&id),
        );
        assert_clean_failure(&o, name);
        assert!(!target.exists());
    }

    // A truncated recipient in the rules.
    rules(&fleet, &[("b.age", &[&r1[..r1.len() - 10]], "")]);
    let e = fleet.run_stdin(&["-e", "b.age"], b"x");
    assert_clean_failure(&e, "age1pq1");
    assert!(stderr(&e).contains("secrets.nix"), "{}", stderr(&e));
    assert!(!fleet.path("b.age").exists());
}

#[test]
#[ignore = "needs `node`, `ssh-keygen`, typage"]
fn typage_decrypts_what_agefleet_writes_and_the_other_way_round() {
    typage::require_typage();
    let fleet = Fleet::new();
    let (ours, our_recipient) = keygen_pq(&fleet, "ours.pq");
    let (their_identity, their_recipient) = typage::keygen();
    let theirs = fleet.home.join("theirs.pq");
    std::fs::write(&theirs, format!("{their_identity}\n")).unwrap();
    make_private(&theirs);

    // agefleet writes (binary and armored), typage reads with either identity.
    rules(
        &fleet,
        &[
            ("bin.age", &[&our_recipient, &their_recipient], "pq = true;"),
            (
                "arm.age",
                &[&our_recipient, &their_recipient],
                "pq = true; armor = true;",
            ),
        ],
    );
    let plaintext: Vec<u8> = (0..70_000u32).map(|i| (i * 13 % 256) as u8).collect();
    for name in ["bin.age", "arm.age"] {
        let out = fleet.run_stdin(&["-e", name], &plaintext);
        assert!(out.status.success(), "{}", stderr(&out));
        for id in [&ours, &theirs] {
            let d = typage::decrypt(id, &fleet.path(name));
            assert!(d.status.success(), "typage {name}: {}", stderr(&d));
            assert_eq!(d.stdout, plaintext, "{name}");
        }
    }

    // typage writes, agefleet reads with either identity; status sees two PQ stanzas.
    let plain = fleet.home.join("plain");
    std::fs::write(&plain, &plaintext).unwrap();
    typage::encrypt(
        &plain,
        &fleet.path("bin.age"),
        &[&their_recipient, &our_recipient],
    );
    for id in [&ours, &theirs] {
        let d = decrypt_with(&fleet, "bin.age", id);
        assert!(d.status.success(), "{}", stderr(&d));
        assert_eq!(d.stdout, plaintext);
    }
    let s = status_json(&fleet);
    let b = status_of(&s, "bin.age");
    assert_eq!(b["problems"], serde_json::json!([]), "{s}");
    assert_eq!(b["post_quantum"], true);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn create_keys_pq_makes_the_host_identity_and_check_keys_checks_it() {
    let fleet = Fleet::new();
    let ssh = fleet.tmp.path().join("host-ssh");
    let out = common::run(
        fleet
            .cmd()
            .args(["create-keys", "--pq", "--json", "--ssh-dir"])
            .arg(&ssh),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pq_path = ssh.join("id_mlkem768x25519_agenix");
    assert_eq!(created["pq_identity"]["path"], pq_path.to_str().unwrap());
    let recipient = created["pq_identity"]["recipient"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(created["secrets_nix_pq"]
        .as_str()
        .unwrap()
        .contains(&recipient));
    assert_eq!(common::mode_of(&pq_path), 0o600);
    // A second run refuses before writing anything.
    let before = std::fs::read(&pq_path).unwrap();
    let again = common::run(
        fleet
            .cmd()
            .args(["create-keys", "--pq", "--ssh-dir"])
            .arg(&ssh),
    );
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert_eq!(std::fs::read(&pq_path).unwrap(), before);

    rules(
        &fleet,
        &[
            ("a.age", &[&recipient], "pq = true;"),
            ("b.age", &[&fleet.admin.public_line], ""),
        ],
    );
    for name in ["a.age", "b.age"] {
        let e = fleet.run_stdin(&["-e", name], b"s");
        assert!(e.status.success(), "{}", stderr(&e));
    }
    for extra in [&[][..], &["--try-decrypt"][..]] {
        let out = common::run(
            fleet
                .cmd()
                .args([
                    "check-keys",
                    "--json",
                    "--rules",
                    "secrets.nix",
                    "--ssh-dir",
                ])
                .arg(&ssh)
                .args(extra),
        );
        assert!(
            out.status.success(),
            "{extra:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["pq_identity"]["ok"], true, "{v}");
        assert_eq!(v["pq_identity"]["recipient"], recipient.as_str());
        let by_file = |f: &str| {
            v["pq_secrets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["file"] == f)
                .unwrap()["status"]
                .clone()
        };
        assert_eq!(by_file("a.age"), "openable", "{v}");
        assert_eq!(by_file("b.age"), "not-recipient", "{v}");
    }
    // A group-readable identity fails the check.
    std::fs::set_permissions(
        &pq_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let out = common::run(fleet.cmd().args(["check-keys", "--ssh-dir"]).arg(&ssh));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("All SSH keys are present.\n"));
    assert!(
        stdout(&out).contains("gives group/other access"),
        "{}",
        stdout(&out)
    );
}

/// A rule as compared across backends: (publicKeys, armor, pq), or bad.
type RuleView = Result<(Vec<String>, bool, bool), ()>;

#[test]
#[ignore = "needs `nix-instantiate`"]
fn both_rules_backends_read_pq_alike() {
    common::require_tool("nix-instantiate");
    use agefleet::rules::{self, EvalMode};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.nix");
    std::fs::write(
        &file,
        r#"let
  k = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";
  pqOnly = { pq = true; };
in {
  "plain.age".publicKeys = [ k ];
  "pq.age" = { publicKeys = [ k ]; pq = true; };
  "merged.age" = pqOnly // { publicKeys = [ k ]; armor = true; };
  "off.age" = { publicKeys = [ k ]; pq = false; };
  "computed.age" = { publicKeys = [ k ]; pq = builtins.length [ k ] == 1; };
  "bad.age" = { publicKeys = [ k ]; pq = "yes"; };
}
"#,
    )
    .unwrap();
    let view = |mode| {
        let mut entries: Vec<(String, RuleView)> = rules::load(&file, mode)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| {
                let r = e
                    .rule
                    .map(|r| (r.public_keys, r.armor, r.pq))
                    .map_err(|_| ());
                (e.name, r)
            })
            .collect();
        entries.sort();
        entries
    };
    let builtin = view(EvalMode::Builtin);
    assert_eq!(builtin, view(EvalMode::Nix));
    let pq: Vec<(&str, bool)> = builtin
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|r| (n.as_str(), r.2)))
        .collect();
    assert_eq!(
        pq,
        [
            ("computed.age", true),
            ("merged.age", true),
            ("off.age", false),
            ("plain.age", false),
            ("pq.age", true)
        ]
    );
    assert!(builtin.iter().any(|(n, r)| n == "bad.age" && r.is_err()));
}
