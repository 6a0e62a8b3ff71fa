//! Durability: every command that replaces files (`rekey`, `edit`, `activate`, `create-keys`,
//! `host add`) is run under a syscall recorder (strace), and each file it publishes by a
//! rename must have had its data made durable first (its own `fsync`/`fdatasync`, or a
//! `syncfs` of its filesystem after its last write), and each directory a rename changed on
//! a persistent filesystem must be synced after the rename. Nothing else can see this:
//! without the flushes every file still reads back fine until the power is cut.

use std::path::Path;

use crate::common::activation::{in_mount_namespace, Fixture, Secret};
use crate::common::strace::{persistent, record, Call, Trace};
use crate::common::*;

/// Fails with every violation, and unless the run published at least `at_least` files.
fn assert_durable(what: &str, trace: &Trace, at_least: usize) {
    let (problems, published) = trace.durability_violations();
    assert!(
        problems.is_empty(),
        "{what}: {} durability violation(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        published >= at_least,
        "{what}: published {published} file(s) by rename, expected at least {at_least}: {:?}",
        trace.calls
    );
}

/// A fleet on disk (see [`Fleet::on_disk`]).
fn disk_fleet() -> Fleet {
    let f = Fleet::on_disk();
    assert!(
        persistent(&f.dir),
        "target/ is on tmpfs here: the durability tests need a disk"
    );
    f
}

/// Fills `f` with `names` encrypted to the admin key by the age CLI, and a rules file (with
/// a `let` binding, as `host add` expects) giving them to the admin and `extra`.
fn fill(f: &Fleet, names: &[&str], extra: &[&str]) {
    let admin = f.admin.public_line.clone();
    for n in names {
        f.age_file(n, &[&admin], n.as_bytes());
    }
    let mut rules = format!("let\n  admin = \"{admin}\";\nin {{\n");
    for n in names {
        rules.push_str(&format!("  \"{n}\".publicKeys = [ admin"));
        for k in extra {
            rules.push_str(&format!(" \"{k}\""));
        }
        rules.push_str(" ];\n");
    }
    rules.push_str("}\n");
    std::fs::write(f.path("secrets.nix"), rules).unwrap();
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`, `strace`"]
fn rekey_flushes_every_file_before_its_rename_and_syncs_the_directories() {
    require_tool("age");
    let f = disk_fleet();
    let host = ssh_keygen(f.tmp.path(), "host", "ed25519", "");
    let names = ["a.age", "b.age", "sub/c.age", "sub/deeper/d.age"];
    fill(&f, &names, &[&host.public_line]);
    let (out, trace) = record(f.cmd().arg("-r"), None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_durable("rekey", &trace, names.len());
    for n in names {
        assert_eq!(f.age_plaintext(&host.private, n), n.as_bytes());
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`, `strace`"]
fn edit_flushes_the_new_file_before_its_rename() {
    require_tool("age");
    let f = disk_fleet();
    fill(&f, &["a.age"], &[]);
    let (out, trace) = record(f.cmd().args(["edit", "a.age"]), Some(b"new content"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_durable("edit", &trace, 1);
    assert_eq!(f.age_plaintext(&f.admin.private, "a.age"), b"new content");
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`, `strace`"]
fn host_add_flushes_the_rules_and_the_rekeyed_files() {
    require_tool("age");
    let f = disk_fleet();
    let host = ssh_keygen(f.tmp.path(), "web2", "ed25519", "");
    fill(&f, &["a.age", "b.age"], &[]);
    let (out, trace) = record(
        f.cmd().args([
            "host",
            "add",
            "web2",
            "--key",
            &host.public_line,
            "--to",
            "a.age",
            "b.age",
        ]),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // secrets.nix and both secrets.
    assert_durable("host add", &trace, 3);
    assert!(trace.calls.iter().any(
        |c| matches!(c, Call::Rename { to, .. } if to.file_name() == Some("secrets.nix".as_ref()))
    ));
    assert_eq!(f.age_plaintext(&host.private, "b.age"), b"b.age");
}

#[test]
#[ignore = "needs `ssh-keygen`, `strace`"]
fn create_keys_flushes_each_key_before_its_rename() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let home = tmp.path().join("home");
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let mut cmd = agefleet(&home);
    cmd.arg("create-keys").arg("--ssh-dir").arg(&ssh);
    let (out, trace) = record(&cmd, None);
    assert!(out.status.success(), "{}", stderr(&out));
    // Two key pairs: four files.
    assert_durable("create-keys", &trace, 4);
    // A second run with --force backs the old keys up (renames) and writes new ones.
    let mut cmd = agefleet(&home);
    cmd.arg("create-keys")
        .arg("--ssh-dir")
        .arg(&ssh)
        .arg("--force");
    let (out, trace) = record(&cmd, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_durable("create-keys --force", &trace, 4);
}

#[test]
#[ignore = "needs root, `age`, `age-keygen`, `strace`, `unshare`"]
fn activate_flushes_files_written_outside_the_mount_and_syncs_their_directories() {
    let Some(root) = in_mount_namespace(
        "activate_flushes_files_written_outside_the_mount_and_syncs_their_directories",
    ) else {
        return;
    };
    require_tool("strace");
    let fx = Fixture::new(&root);
    let a = fx.age("a.age", b"A");
    let b = fx.age("b.age", b"B");
    // A `symlink = false` secret at a custom path on disk (under target/: the namespace's
    // temp dir may be on tmpfs), the other in the generation (tmpfs).
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    assert!(persistent(disk.path()), "target/ is on tmpfs here");
    let on_disk = disk.path().join("etc/app/b");
    let mut secret_b = Secret::new("b", &b);
    secret_b.path = Some(on_disk.display().to_string());
    secret_b.symlink = false;
    let manifest = fx.manifest(&[Secret::new("a", &a), secret_b]);
    let mut cmd = agefleet(fx.home());
    cmd.arg("activate").arg("--manifest").arg(&manifest);
    for round in 0..2 {
        let (out, trace) = record(&cmd, None);
        assert!(out.status.success(), "{}", stderr(&out));
        // a, b and the generation's record.
        assert_durable(&format!("activate (round {round})"), &trace, 3);
        let disk_renames = trace
            .count(|c| matches!(c, Call::Rename { to, .. } if to.as_path() == Path::new(&on_disk)));
        assert_eq!(disk_renames, 1, "{:?}", trace.calls);
        assert_eq!(std::fs::read(&on_disk).unwrap(), b"B");
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`, `strace`"]
fn rekey_flushes_with_one_syncfs_not_one_flush_per_file() {
    require_tool("age");
    let f = disk_fleet();
    let kind = crate::common::activation::fs_type(&f.dir);
    assert!(
        ["ext2/ext3", "xfs", "btrfs", "f2fs"].contains(&kind.as_str()),
        "target/ is on {kind}: this test needs ext4, XFS, Btrfs or F2FS (where rekey flushes the filesystem once)"
    );
    let host = ssh_keygen(f.tmp.path(), "host", "ed25519", "");
    let names: Vec<String> = (0..60).map(|i| format!("d{}/s{i}.age", i % 3)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    fill(&f, &names, &[&host.public_line]);
    let (out, trace) = record(f.cmd().arg("-r"), None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_durable("rekey", &trace, names.len());
    let syncfs = trace.count(|c| matches!(c, Call::SyncFs(_) | Call::SyncAll));
    let file_flushes = trace.count(|c| matches!(c, Call::Sync(p) if !p.is_dir()));
    let dir_flushes = trace.count(|c| matches!(c, Call::Sync(p) if p.is_dir()));
    assert_eq!(syncfs, 1, "{:?}", trace.calls);
    assert_eq!(file_flushes, 0, "{:?}", trace.calls);
    // One per directory holding rekeyed files (the lock's directory may add none).
    assert!(
        dir_flushes <= 3,
        "{dir_flushes} directory flushes: {:?}",
        trace.calls
    );
}
