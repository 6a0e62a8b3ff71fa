//! `decrypt` / `-d`: raw bytes out, identities, file lookup, failure paths.

use crate::common::*;

const BINARY: &[u8] = b"\x00\x01binary\xffno newline";

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn decrypts_age_cli_file_to_raw_stdout_with_default_identity() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    f.age_file("x.age", &[&admin], BINARY);
    for args in [&["-d", "x.age"][..], &["decrypt", "./x.age"][..]] {
        let out = f.run(args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(out.stdout, BINARY);
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn default_identities_are_id_rsa_then_id_ed25519() {
    require_tool("age");
    let f = Fleet::new();
    let rsa = ssh_keygen(&f.home.join(".ssh"), "id_rsa", "rsa", "");
    let ed = f.admin.public_line.clone();
    f.rules(&[
        ("a.age", &[&ed], false),
        ("b.age", &[&rsa.public_line], false),
    ]);
    f.age_file("a.age", &[&ed], b"for ed25519");
    f.age_file("b.age", &[&rsa.public_line], b"for rsa");
    assert_eq!(f.run(&["-d", "a.age"]).stdout, b"for ed25519");
    assert_eq!(f.run(&["-d", "b.age"]).stdout, b"for rsa");
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn explicit_identity_and_age_identity_file() {
    require_tool("age");
    require_tool("age-keygen");
    let f = Fleet::new();
    let (age_id, age_rcpt) = age_keygen(f.tmp.path(), "age.key");
    f.rules(&[("x.age", &[&age_rcpt], false)]);
    f.age_file("x.age", &[&age_rcpt], b"native");
    let out = f.run(&["-i", age_id.to_str().unwrap(), "-d", "x.age"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"native");
    // Without -i only the SSH defaults are tried: no match.
    let out = f.run(&["-d", "x.age"]);
    assert_clean_failure(&out, "x.age");
    assert!(out.stdout.is_empty());
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn works_from_another_directory_with_rules_relative_names() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let rules = f.rules(&[("nested/dir/x.age", &[&admin], false)]);
    f.age_file("nested/dir/x.age", &[&admin], b"deep");
    let mut cmd = agefleet(&f.home);
    cmd.current_dir(f.tmp.path()).args([
        "--rules",
        rules.to_str().unwrap(),
        "-d",
        "nested/dir/x.age",
    ]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"deep");
    // RULES from the environment, the CWD-relative reading.
    let mut cmd = agefleet(&f.home);
    cmd.current_dir(f.tmp.path())
        .env("RULES", &rules)
        .args(["-d", "secrets/nested/dir/x.age"]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"deep");
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn output_file_is_0600_and_never_overwritten() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    f.age_file("x.age", &[&admin], b"s3cret");
    let out_path = f.tmp.path().join("plain");
    let out = f.run(&["decrypt", "x.age", "-o", out_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&out_path).unwrap(), b"s3cret");
    assert_eq!(mode_of(&out_path), 0o600);
    std::fs::write(&out_path, b"keep").unwrap();
    let out = f.run(&["decrypt", "x.age", "-o", out_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "agefleet: {}: already exists; not overwriting",
            out_path.display()
        )
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), b"keep");
    // A dangling symlink is something too: not followed, not replaced (the write is
    // exclusive, so there is no window between a check and the create).
    let link = f.tmp.path().join("link");
    let target = f.tmp.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = f.run(&["decrypt", "x.age", "-o", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!target.exists());
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn missing_file_fails() {
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let out = f.run(&["-d", "x.age"]);
    assert_eq!(out.status.code(), Some(1));
    assert_clean_failure(&out, "x.age: no such file");
    assert!(out.stdout.is_empty());
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn a_bad_rule_elsewhere_does_not_stop_decrypting() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[
        ("good.age", &[&admin], false),
        ("bad.age", &["ssh-ed25519 not-base64!!"], false),
    ]);
    f.age_file("good.age", &[&admin], b"ok");
    let out = f.run(&["-d", "good.age"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"ok");
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn bad_age_files_fail_cleanly() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let good = f.age_file("good.age", &[&admin], b"payload payload payload");
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.age", vec![]),
        ("plain.age", b"just some plaintext\n".to_vec()),
        ("truncated-header.age", bytes[..bytes.len() / 3].to_vec()),
        ("truncated-payload.age", bytes[..bytes.len() - 5].to_vec()),
        ("flipped.age", {
            let mut b = bytes.clone();
            let n = b.len();
            b[n - 3] ^= 0x55;
            b
        }),
        (
            "bad-armor.age",
            b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!!\n-----END AGE ENCRYPTED FILE-----\n"
                .to_vec(),
        ),
        ("wrong-version.age", {
            let mut b = b"age-encryption.org/v9".to_vec();
            b.extend_from_slice(&bytes[21..]);
            b
        }),
    ];
    for (name, content) in cases {
        std::fs::write(f.path(name), &content).unwrap();
        let out = f.run(&["-d", name]);
        assert_clean_failure(&out, name);
        assert!(out.stdout.is_empty(), "{name}: plaintext leaked on failure");
        assert_eq!(
            std::fs::read(f.path(name)).unwrap(),
            content,
            "{name} changed"
        );
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn bad_identity_files_fail_cleanly() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.age_file("x.age", &[&admin], b"x");
    let garbage = f.tmp.path().join("garbage");
    std::fs::write(&garbage, b"\x00\x01 not a key").unwrap();
    let public = f.home.join(".ssh/id_ed25519.pub");
    let missing = f.tmp.path().join("missing");
    for id in [&garbage, &public, &missing] {
        let out = f.run(&["-i", id.to_str().unwrap(), "-d", "x.age"]);
        let name = id.file_name().unwrap().to_str().unwrap();
        assert_clean_failure(&out, name);
        assert!(out.stdout.is_empty());
    }
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn no_action_is_a_usage_error() {
    let f = Fleet::new();
    let out = f.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let out = f.run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = f.run(&["-d", "x.age", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be combined"),
        "{}",
        stderr(&out)
    );
    let out = f.run(&["-d", "a.age", "-e", "b.age"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn global_flags_go_before_or_after_the_subcommand() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let rules = f.rules(&[("x.age", &[&admin], false)]);
    f.age_file("x.age", &[&admin], b"both ways");
    let key = f.admin.private.to_str().unwrap();
    let rules = rules.to_str().unwrap();
    for args in [
        &["--rules", rules, "-i", key, "decrypt", "x.age"][..],
        &["decrypt", "x.age", "--rules", rules, "-i", key][..],
        &["--nix-eval", "builtin", "-v", "decrypt", "x.age"][..],
    ] {
        let out = f.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(out.stdout, b"both ways");
    }
}
