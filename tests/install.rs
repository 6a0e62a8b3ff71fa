//! install-with-secrets and the agent-authenticated clone, against real OpenSSH parts
//! (see tests/common/sshd.rs).

mod common;

use std::path::Path;

use agefleet::git::{clone_with_agent, SshRemote};
use common::sshd::{self, SshRig};

/// The library clone with the agent: works with the right known_hosts, refuses a wrong or
/// missing entry (naming the host and the file), refuses when the agent has no usable key.
#[test]
fn git_clone_over_agent_checks_host_key() {
    if !sshd::available() {
        return;
    }
    let rig = SshRig::start();
    let url = rig.bare_repo("repo", &[("secrets.nix", b"{ }\n"), ("a.age", b"x")]);
    let remote = SshRemote::parse(&url).unwrap();
    let work = tempfile::tempdir().unwrap();

    // SSH_AUTH_SOCK is process-wide for libssh2; this is the only test in this binary that
    // calls the library clone, the others run the agefleet binary.
    std::env::set_var("SSH_AUTH_SOCK", &rig.agent_sock);
    let ok = clone_with_agent(&remote, &rig.known_hosts, None, &work.path().join("ok"));
    let ok = ok.unwrap_or_else(|e| panic!("clone failed: {e}\nsshd log:\n{}", rig.sshd_log()));
    assert_eq!(std::fs::read(ok.dir.join("a.age")).unwrap(), b"x");
    assert_eq!(ok.commit.len(), 40);

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
