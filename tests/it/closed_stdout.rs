//! A closed stdout (`agefleet … | head -0`, a reader that went away) ends a command quietly
//! with exit 0, as ripgrep does: no panic, no error message. Each run gets a pipe whose read
//! end is closed before the binary starts, so every write to stdout fails with EPIPE.

use std::process::{Command, Output, Stdio};

use crate::common;

/// Runs `cmd` with stdout a pipe nobody reads (its read end already closed).
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (read, write) = rustix::pipe::pipe().expect("pipe");
    drop(read);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agefleet");
    child.wait_with_output().expect("wait for agefleet")
}

fn assert_quiet_success(what: &str, out: &Output) {
    let err = common::stderr(out);
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert!(
        !err.contains("agefleet:"),
        "{what}: an error was reported: {err}"
    );
    assert_eq!(out.status.code(), Some(0), "{what}: stderr: {err}");
}

#[test]
fn keygen_to_a_closed_pipe_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let out = with_closed_stdout(common::agefleet(tmp.path()).arg("keygen"));
    assert_quiet_success("keygen", &out);
    // The identity was never shown, so neither is its public key.
    assert!(!common::stderr(&out).contains("Public key"));

    // With -o the identity file is written and the recipient line is what meets the pipe.
    let key = tmp.path().join("key.txt");
    let out = with_closed_stdout(
        common::agefleet(tmp.path())
            .args(["keygen", "-o"])
            .arg(&key),
    );
    assert_quiet_success("keygen -o", &out);
    assert!(key.is_file());
    let out = with_closed_stdout(
        common::agefleet(tmp.path())
            .args(["keygen", "-y"])
            .arg(&key),
    );
    assert_quiet_success("keygen -y", &out);
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn status_rules_and_rekey_json_to_a_closed_pipe_exit_0() {
    common::require_tool("age");
    common::require_tool("ssh-keygen");
    let f = common::Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("a.age", &[admin.as_str()], false)]);
    let a = f.age_file("a.age", &[&admin], b"one");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["rules"],
        &["rules", "--json"],
    ] {
        let out = with_closed_stdout(f.cmd().args(args));
        assert_quiet_success(&args.join(" "), &out);
    }
    // A rekey whose report meets the closed pipe still did its work.
    let before = std::fs::read(&a).unwrap();
    let out = with_closed_stdout(f.cmd().args(["rekey", "--json"]));
    assert_quiet_success("rekey --json", &out);
    assert_ne!(std::fs::read(&a).unwrap(), before, "a.age was not rekeyed");
    assert_eq!(f.age_plaintext(&f.admin.private, "a.age"), b"one");

    // Rules listing no secret: the empty JSON report meets the pipe.
    std::fs::write(f.path("secrets.nix"), "{ }\n").unwrap();
    let out = with_closed_stdout(f.cmd().args(["rekey", "--json"]));
    assert_quiet_success("rekey --json (no secrets)", &out);
}
