//! `agefleet activate`, for real: as root, each test in its own mount namespace (see
//! `common::activation`), with tmpfs/ramfs mounts, users made by `useradd`, `.age` files
//! made by the reference `age` CLI, and temp directories instead of /run.

use crate::common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::activation::{
    activate, fs_type, in_mount_namespace, lookup_id, mount_options, owner_mode, Fixture, Layout,
    Secret, TestGroup, TestUser,
};
use crate::common::{age_encrypt, age_keygen, require_tool, stderr, stdout};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn installs_content_mode_owner_on_a_noswap_tmpfs() {
    let Some(root) = in_mount_namespace("installs_content_mode_owner_on_a_noswap_tmpfs") else {
        return;
    };
    let fx = Fixture::new(&root);
    let group = TestGroup::new("afg");
    let user = TestUser::new("afu", &group);
    let ed = common::ssh_keygen(&root.join("keys"), "ed", "ed25519", "");
    let rsa = common::ssh_keygen(&root.join("keys"), "rsa", "rsa", "");
    // Skipped at activation (no prompt: stdin is /dev/null and nobody is there at boot).
    let locked = common::ssh_keygen(&root.join("keys"), "locked", "ed25519", "pass phrase");

    let plain = fx.age("plain.age", b"root secret\n");
    let owned = fx.store.join("owned.age");
    age_encrypt(&[&ed.public_line], true, b"user secret", &owned);
    let numeric = fx.store.join("numeric.age");
    age_encrypt(&[&rsa.public_line], false, b"numeric\0binary", &numeric);
    let nested = fx.age("nested.age", b"deep");

    let mut s_owned = Secret::new("owned", &owned);
    s_owned.owner = user.name.clone();
    s_owned.group = group.name.clone();
    s_owned.mode = "0440";
    let mut s_numeric = Secret::new("numeric", &numeric);
    s_numeric.owner = "4242".into();
    s_numeric.group = "4343".into();
    s_numeric.mode = "500";
    let manifest = fx.layout.manifest(
        "manifest.json",
        &[
            &locked.private,
            &fx.key,
            &ed.private,
            &rsa.private,
            &root.join("absent"),
        ],
        "tmpfs",
        &[
            Secret::new("plain", &plain),
            s_owned,
            s_numeric,
            Secret::new("dir/nested.env", &nested),
        ],
    );

    let out = activate(fx.home(), &manifest, &[]);
    assert!(out.status.success(), "activate: {}", stderr(&out));
    let l = &fx.layout;

    // The mount: tmpfs with noswap (Linux >= 6.4; ramfs before), mode 0751.
    let opts = mount_options(&l.mount_point).expect("a mount at secretsMountPoint");
    if fs_type(&l.mount_point) == "tmpfs" {
        assert!(opts.contains("noswap"), "tmpfs without noswap: {opts}");
    } else {
        assert_eq!(fs_type(&l.mount_point), "ramfs");
    }
    assert!(opts.contains("nosuid") && opts.contains("nodev"), "{opts}");
    assert_eq!(owner_mode(&l.mount_point).2, 0o751);

    // Generation 1 behind the secretsDir link.
    assert_eq!(l.current_generation().as_deref(), Some("1"));
    let gen = l.mount_point.join("1");
    assert_eq!(owner_mode(&gen).2, 0o751);
    assert_eq!(l.generations(), ["1"]);

    // Content, owner and mode of each secret.
    let sd = &l.secrets_dir;
    assert_eq!(read(&sd.join("plain")), "root secret\n");
    assert_eq!(owner_mode(&gen.join("plain")), (0, 0, 0o400));
    assert_eq!(read(&sd.join("owned")), "user secret");
    assert_eq!(owner_mode(&gen.join("owned")), (user.uid, group.gid, 0o440));
    assert_eq!(
        std::fs::read(sd.join("numeric")).unwrap(),
        b"numeric\0binary"
    );
    assert_eq!(owner_mode(&gen.join("numeric")), (4242, 4343, 0o500));
    assert_eq!(read(&sd.join("dir/nested.env")), "deep");
    assert_eq!(owner_mode(&gen.join("dir/nested.env")), (0, 0, 0o400));

    // No temp files left behind.
    let names: Vec<_> = std::fs::read_dir(&gen)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn many_secrets_on_several_threads_keep_their_names() {
    let Some(root) = in_mount_namespace("many_secrets_on_several_threads_keep_their_names") else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    let a = fx.age("a.age", b"A");
    let b = fx.age("b.age", b"B");
    let missing = fx.store.join("missing.age");
    // Enough secrets for several worker threads; every 7th fails, the others alternate A/B.
    let secrets: Vec<Secret> = (0..300)
        .map(|i| {
            let file = match i {
                i if i % 7 == 3 => &missing,
                i if i % 2 == 0 => &a,
                _ => &b,
            };
            Secret::new(&format!("s{i:03}"), file)
        })
        .collect();
    let out = activate(fx.home(), &fx.manifest(&secrets), &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let failed: Vec<&str> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..300)
        .filter(|i| i % 7 == 3)
        .map(|i| format!("s{i:03}"))
        .collect();
    assert_eq!(failed, expected);
    for i in 0..300 {
        let path = l.secrets_dir.join(format!("s{i:03}"));
        match i {
            i if i % 7 == 3 => assert!(!path.exists()),
            i if i % 2 == 0 => assert_eq!(read(&path), "A"),
            _ => assert_eq!(read(&path), "B"),
        }
    }
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn ramfs_on_request_and_an_existing_ram_mount_is_reused() {
    let Some(root) = in_mount_namespace("ramfs_on_request_and_an_existing_ram_mount_is_reused")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let a = fx.age("a.age", b"A");
    let l = &fx.layout;
    let manifest = l.manifest("ramfs.json", &[&fx.key], "ramfs", &[Secret::new("a", &a)]);
    let out = activate(fx.home(), &manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs_type(&l.mount_point), "ramfs");
    assert_eq!(read(&l.secrets_dir.join("a")), "A");

    // A later activation asking for tmpfs reuses the ramfs mount instead of stacking one.
    let manifest = fx.manifest(&[Secret::new("a", &a)]);
    let out = activate(fx.home(), &manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs_type(&l.mount_point), "ramfs");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let at_mp = mounts
        .lines()
        .filter(|line| line.split(' ').nth(1) == l.mount_point.to_str())
        .count();
    assert_eq!(at_mp, 1, "{mounts}");
    assert_eq!(l.current_generation().as_deref(), Some("2"));
    assert_eq!(read(&l.secrets_dir.join("a")), "A");
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn a_disk_filesystem_mounted_at_the_mount_point_is_refused() {
    let Some(root) = in_mount_namespace("a_disk_filesystem_mounted_at_the_mount_point_is_refused")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let a = fx.age("a.age", b"A");
    let l = &fx.layout;
    // A bind mount of a disk directory (under target/, not the namespace's temp dir, which
    // may be on tmpfs): a mount root that is not RAM-backed.
    let disk_parent = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = disk_parent.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    std::fs::create_dir_all(&l.mount_point).unwrap();
    let out = common::run(
        std::process::Command::new("mount")
            .arg("--bind")
            .arg(&disk)
            .arg(&l.mount_point),
    );
    assert!(out.status.success(), "mount --bind: {}", stderr(&out));
    assert_ne!(
        fs_type(&l.mount_point),
        "tmpfs",
        "target/ is on tmpfs here: this test needs a disk directory to bind-mount"
    );
    let out = activate(fx.home(), &fx.manifest(&[Secret::new("a", &a)]), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not tmpfs or ramfs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&disk).unwrap().count(), 0);
    assert!(std::fs::symlink_metadata(&l.secrets_dir).is_err());
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn generations_are_numbered_and_old_ones_removed() {
    let Some(root) = in_mount_namespace("generations_are_numbered_and_old_ones_removed") else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    let a = fx.age("a.age", b"A");
    let b = fx.age("b.age", b"B");
    let both = fx.manifest(&[Secret::new("a", &a), Secret::new("b", &b)]);
    for n in 1..=3 {
        let out = activate(fx.home(), &both, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(l.current_generation(), Some(n.to_string()));
        assert_eq!(l.generations(), [n.to_string()]);
    }
    // A removed secret disappears with its generation.
    let only_a = fx.manifest(&[Secret::new("a", &a)]);
    let out = activate(fx.home(), &only_a, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(l.current_generation().as_deref(), Some("4"));
    assert!(!l.secrets_dir.join("b").exists());
    assert_eq!(read(&l.secrets_dir.join("a")), "A");

    // agenix compatibility: the number continues from whatever secretsDir points at, and a
    // non-numeric entry in the mount point is left alone.
    std::fs::create_dir(l.mount_point.join("41")).unwrap();
    std::fs::create_dir(l.mount_point.join("keep-me")).unwrap();
    std::fs::remove_file(&l.secrets_dir).unwrap();
    std::os::unix::fs::symlink(l.mount_point.join("41"), &l.secrets_dir).unwrap();
    let out = activate(fx.home(), &only_a, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(l.current_generation().as_deref(), Some("42"));
    assert_eq!(l.generations(), ["42", "keep-me"]);

    // secretsDir that is a real directory is not replaced, and nothing new is left behind.
    std::fs::remove_file(&l.secrets_dir).unwrap();
    std::fs::create_dir(&l.secrets_dir).unwrap();
    let out = activate(fx.home(), &only_a, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a symlink"),
        "{}",
        stderr(&out)
    );
    assert_eq!(l.generations(), ["42", "keep-me"]);
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn custom_paths_get_a_symlink_or_the_file_itself() {
    let Some(root) = in_mount_namespace("custom_paths_get_a_symlink_or_the_file_itself") else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    let a = fx.age("a.age", b"linked");
    let b = fx.age("b.age", b"copied");
    let link_at = root.join("etc/new/dir/linked");
    let file_at = root.join("var/lib/copied");
    let mut linked = Secret::new("linked", &a);
    linked.path = Some(link_at.display().to_string());
    let mut copied = Secret::new("copied", &b);
    copied.path = Some(file_at.display().to_string());
    copied.symlink = false;
    copied.mode = "0440";
    let manifest = fx.manifest(&[linked, copied]);
    let out = activate(fx.home(), &manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // symlink = true: path -> secretsDir/name, created with missing parents 0755.
    assert_eq!(
        std::fs::read_link(&link_at).unwrap(),
        l.secrets_dir.join("linked")
    );
    assert_eq!(read(&link_at), "linked");
    assert_eq!(owner_mode(&root.join("etc/new")).2, 0o755);
    assert_eq!(owner_mode(&l.mount_point.join("1/linked")), (0, 0, 0o400));

    // symlink = false: the file itself, with its mode, and not in the generation.
    let meta = std::fs::symlink_metadata(&file_at).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o7777, 0o440);
    assert_eq!(read(&file_at), "copied");
    assert!(!l.mount_point.join("1/copied").exists());

    // A second activation keeps both working (the link is replaced atomically).
    let out = activate(fx.home(), &manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(&link_at), "linked");
    assert_eq!(read(&file_at), "copied");
    let leftovers: Vec<_> = std::fs::read_dir(root.join("var/lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn failing_secrets_are_named_and_the_rest_installed() {
    let Some(root) = in_mount_namespace("failing_secrets_are_named_and_the_rest_installed") else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    let good = fx.age("good.age", b"good");
    let corrupt = fx.store.join("corrupt.age");
    std::fs::write(&corrupt, b"age-encryption.org/v1\n-> X25519 garbage\n").unwrap();
    let (_, other_recipient) = age_keygen(&root.join("keys"), "other.key");
    let foreign = fx.store.join("foreign.age");
    age_encrypt(&[&other_recipient], false, b"not for us", &foreign);
    let missing = fx.store.join("missing.age");

    let mut unknown_owner = Secret::new("unknown-owner", &good);
    unknown_owner.owner = "nosuchuser-agefleet".into();
    let mut escape_path = Secret::new("escape-path", &good);
    escape_path.path = Some(format!("{}/escape-path", l.mount_point.display()));
    let secrets = [
        Secret::new("good", &good),
        Secret::new("corrupt", &corrupt),
        Secret::new("foreign", &foreign),
        Secret::new("missing", &missing),
        unknown_owner,
        Secret::new("../escape", &good),
        Secret::new("sub/../../escape", &good),
        Secret::new(&format!("{}/abs", root.display()), &good),
        escape_path,
    ];
    let manifest = fx.manifest(&secrets);
    let before: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    let out = activate(fx.home(), &manifest, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for name in [
        "\"corrupt\"",
        "\"foreign\"",
        "\"missing\"",
        "\"unknown-owner\"",
        "\"../escape\"",
        "\"sub/../../escape\"",
        "/abs\"",
        "\"escape-path\"",
    ] {
        assert!(
            err.lines()
                .any(|line| line.starts_with("error: secret ") && line.contains(name)),
            "{name} not reported:\n{err}"
        );
    }
    assert!(err.contains("nosuchuser-agefleet"), "{err}");
    assert!(!err.contains("not for us") && !err.contains("good\n"));

    // The good one is installed, secretsDir points at the complete new generation.
    assert_eq!(l.current_generation().as_deref(), Some("1"));
    assert_eq!(read(&l.secrets_dir.join("good")), "good");
    // The unknown owner's secret is there, owned by root.
    assert_eq!(
        owner_mode(&l.mount_point.join("1/unknown-owner")),
        (0, 0, 0o400)
    );
    for absent in ["corrupt", "foreign", "missing"] {
        assert!(!l.secrets_dir.join(absent).exists(), "{absent}");
    }
    // Nothing written outside the mount point.
    let after: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut new: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
    new.sort();
    assert_eq!(new, ["agenix", "agenix.d"]);
    assert_eq!(l.generations(), ["1"]);

    // The JSON report on stdout says the same.
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["generation"], 1);
    assert_eq!(report["done"], serde_json::json!(["good"]));
    assert_eq!(report["failures"].as_array().unwrap().len(), 8);
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn planted_symlinks_are_never_followed() {
    let Some(root) = in_mount_namespace("planted_symlinks_are_never_followed") else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    let a = fx.age("a.age", b"secret");
    let victim_dir = root.join("victim");
    std::fs::create_dir(&victim_dir).unwrap();
    let victim = victim_dir.join("file");
    std::fs::write(&victim, b"victim").unwrap();

    // A symlink where a `symlink = false` file will be written, and one where a link goes.
    let file_at = root.join("out/file");
    let link_at = root.join("out/link");
    std::fs::create_dir(root.join("out")).unwrap();
    std::os::unix::fs::symlink(&victim, &file_at).unwrap();
    std::os::unix::fs::symlink(&victim, &link_at).unwrap();
    let mut as_file = Secret::new("as-file", &a);
    as_file.path = Some(file_at.display().to_string());
    as_file.symlink = false;
    let mut as_link = Secret::new("as-link", &a);
    as_link.path = Some(link_at.display().to_string());

    // A stale next generation holding symlinks at the secret's name and at a directory
    // of a nested name, as an attacker or a crash could leave it.
    let stale = l.mount_point.join("1");
    std::fs::create_dir_all(&stale).unwrap();
    std::os::unix::fs::symlink(&victim, stale.join("plain")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, stale.join("sub")).unwrap();

    let manifest = fx.manifest(&[
        Secret::new("plain", &a),
        Secret::new("sub/nested", &a),
        as_file,
        as_link,
    ]);
    let out = activate(fx.home(), &manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(read(&victim), "victim");
    assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 1);
    let gen = l.mount_point.join("1");
    assert!(std::fs::symlink_metadata(gen.join("plain"))
        .unwrap()
        .is_file());
    assert!(std::fs::symlink_metadata(gen.join("sub")).unwrap().is_dir());
    assert_eq!(read(&l.secrets_dir.join("sub/nested")), "secret");
    assert!(std::fs::symlink_metadata(&file_at).unwrap().is_file());
    assert_eq!(read(&file_at), "secret");
    assert_eq!(
        std::fs::read_link(&link_at).unwrap(),
        l.secrets_dir.join("as-link")
    );

    // A symlink at the mount point itself is refused: nothing is mounted or written there.
    let l2 = Layout::new(&root.join("second"));
    std::fs::create_dir_all(&l2.root).unwrap();
    std::os::unix::fs::symlink(&victim_dir, &l2.mount_point).unwrap();
    let manifest = l2.manifest("m.json", &[&fx.key], "tmpfs", &[Secret::new("plain", &a)]);
    let out = activate(fx.home(), &manifest, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{}: is a symlink or not a directory",
            l2.mount_point.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 1);
    assert_eq!(fs_type(&victim_dir), fs_type(&root));
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn a_generation_in_use_keeps_working_across_an_activation() {
    let Some(root) = in_mount_namespace("a_generation_in_use_keeps_working_across_an_activation")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    let v1 = fx.age("v1.age", b"version one");
    let out = activate(fx.home(), &fx.manifest(&[Secret::new("s", &v1)]), &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A "service" holds the secret of generation 1 open, and has its directory as cwd.
    let mut held = std::fs::File::open(l.secrets_dir.join("s")).unwrap();
    let cwd_holder = std::process::Command::new("sleep")
        .arg("30")
        .current_dir(l.mount_point.join("1"))
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _holder = Kill(cwd_holder);

    let v2 = fx.age("v2.age", b"version two");
    let out = activate(fx.home(), &fx.manifest(&[Secret::new("s", &v2)]), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(l.current_generation().as_deref(), Some("2"));
    assert_eq!(read(&l.secrets_dir.join("s")), "version two");
    assert_eq!(l.generations(), ["2"]);
    let mut old = String::new();
    held.read_to_string(&mut old).unwrap();
    assert_eq!(old, "version one");
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn install_phase_then_chown_phase() {
    let Some(root) = in_mount_namespace("install_phase_then_chown_phase") else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    let group = TestGroup::new("afg");
    let user = TestUser::new("afu", &group);
    let a = fx.age("a.age", b"for the user");
    let f = fx.age("f.age", b"file at path");
    let mut owned = Secret::new("owned", &a);
    owned.owner = user.name.clone();
    owned.group = group.name.clone();
    owned.mode = "0640";
    let file_at = root.join("var/owned-file");
    let mut as_file = Secret::new("as-file", &f);
    as_file.owner = user.name.clone();
    as_file.path = Some(file_at.display().to_string());
    as_file.symlink = false;
    let manifest = fx.manifest(&[owned, as_file, Secret::new("rooted", &a)]);

    // chown before any install has nothing to work on.
    let out = activate(fx.home(), &manifest, &["--phase", "chown"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run the install phase first"),
        "{}",
        stderr(&out)
    );

    let out = activate(fx.home(), &manifest, &["--phase", "install"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gen = l.mount_point.join("1");
    assert_eq!(owner_mode(&gen.join("owned")), (0, 0, 0o640));
    assert_eq!(owner_mode(&file_at), (0, 0, 0o400));
    assert_eq!(owner_mode(&gen).0, 0);
    assert_eq!(owner_mode(&gen).1, 0);

    let out = activate(fx.home(), &manifest, &["--phase", "chown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(l.current_generation().as_deref(), Some("1"));
    assert_eq!(owner_mode(&gen.join("owned")), (user.uid, group.gid, 0o640));
    assert_eq!(owner_mode(&file_at), (user.uid, 0, 0o400));
    assert_eq!(owner_mode(&gen.join("rooted")), (0, 0, 0o400));
    let dirs_gid = lookup_id("group", "keys").unwrap_or(0);
    assert_eq!(owner_mode(&gen).1, dirs_gid);
    assert_eq!(owner_mode(&l.mount_point).1, dirs_gid);

    // A hard link put in place of a `symlink = false` file is not handed to its owner.
    let victim = root.join("victim");
    std::fs::write(&victim, b"root only").unwrap();
    std::fs::remove_file(&file_at).unwrap();
    std::fs::hard_link(&victim, &file_at).unwrap();
    let out = activate(fx.home(), &manifest, &["--phase", "chown"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has other hard links"),
        "{}",
        stderr(&out)
    );
    assert_eq!(owner_mode(&victim).0, 0);
    assert_eq!(owner_mode(&gen.join("owned")), (user.uid, group.gid, 0o640));
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn directories_get_the_keys_group_where_it_exists() {
    let Some(root) = in_mount_namespace("directories_get_the_keys_group_where_it_exists") else {
        return;
    };
    let fx = Fixture::new(&root);
    let l = &fx.layout;
    // The host may already have `keys` (NixOS does); otherwise make it for this test.
    let _made = lookup_id("group", "keys")
        .is_none()
        .then(|| TestGroup::named("keys"));
    let keys_gid = lookup_id("group", "keys").unwrap();
    let a = fx.age("a.age", b"A");
    let out = activate(fx.home(), &fx.manifest(&[Secret::new("a", &a)]), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(owner_mode(&l.mount_point), (0, keys_gid, 0o751));
    assert_eq!(owner_mode(&l.mount_point.join("1")), (0, keys_gid, 0o751));
    assert_eq!(owner_mode(&l.mount_point.join("1/a")), (0, 0, 0o400));
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn home_manager_paths_expand_xdg_runtime_dir_and_home() {
    let Some(root) = in_mount_namespace("home_manager_paths_expand_xdg_runtime_dir_and_home")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let runtime = root.join("run-user");
    std::fs::create_dir(&runtime).unwrap();
    let a = fx.age("a.age", b"hm secret");
    let manifest = serde_json::json!({
        "version": 1,
        "secretsDir": "${XDG_RUNTIME_DIR}/agenix",
        "secretsMountPoint": "$XDG_RUNTIME_DIR/agenix.d",
        "identityPaths": ["${HOME}/keys/host.key", "$HOME/.ssh/id_ed25519"],
        "fs": "tmpfs",
        "secrets": [
            {"name": "a", "file": a, "path": "${XDG_RUNTIME_DIR}/agenix/a", "mode": "0400",
             "owner": "0", "group": "0", "symlink": true},
            {"name": "b", "file": a, "path": "$HOME/.config/b", "mode": "0400",
             "owner": "0", "group": "0", "symlink": true}
        ]
    });
    let path = root.join("hm.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    // `common::agefleet` sets HOME to the test root.
    let out = common::run(
        common::agefleet(fx.home())
            .env("XDG_RUNTIME_DIR", &runtime)
            .args(["activate", "--phase", "install", "--manifest"])
            .arg(&path),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(&runtime.join("agenix/a")), "hm secret");
    assert_eq!(
        std::fs::read_link(root.join(".config/b")).unwrap(),
        runtime.join("agenix/b")
    );
    assert_eq!(
        std::fs::read_link(runtime.join("agenix")).unwrap(),
        runtime.join("agenix.d/1")
    );

    // Unset, the variable is an error naming the manifest, not a path at the root.
    let out = common::run(
        common::agefleet(fx.home())
            .env_remove("XDG_RUNTIME_DIR")
            .args(["activate", "--manifest"])
            .arg(&path),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("$XDG_RUNTIME_DIR is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `setpriv`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn a_user_activates_into_its_runtime_dir_without_mounting_or_chown() {
    let Some(root) =
        in_mount_namespace("a_user_activates_into_its_runtime_dir_without_mounting_or_chown")
    else {
        return;
    };
    require_tool("setpriv");
    let group = TestGroup::new("afg");
    let user = TestUser::new("afu", &group);
    let fx = Fixture::new(&root);
    let a = fx.age("a.age", b"user secret");
    // The user's runtime dir: a tmpfs owned by the user, as systemd-logind makes it.
    let runtime = root.join("run-user");
    std::fs::create_dir(&runtime).unwrap();
    let out = common::run(
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("mode=0700,uid={},gid={}", user.uid, group.gid))
            .arg("tmpfs")
            .arg(&runtime),
    );
    assert!(out.status.success(), "mount: {}", stderr(&out));
    for p in [&root, &fx.store, &root.join("keys")] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::chown(&fx.key, Some(user.uid), Some(group.gid)).unwrap();
    let manifest = serde_json::json!({
        "version": 1,
        "secretsDir": "${XDG_RUNTIME_DIR}/agenix",
        "secretsMountPoint": "${XDG_RUNTIME_DIR}/agenix.d",
        "identityPaths": [fx.key],
        "fs": "tmpfs",
        "secrets": [{"name": "a", "file": a, "path": "${XDG_RUNTIME_DIR}/agenix/a",
                     "mode": "0400", "owner": "0", "group": "0", "symlink": true}]
    });
    let path = root.join("hm.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let out = common::run(
        std::process::Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", group.gid))
            .arg("--clear-groups")
            .arg(env!("CARGO_BIN_EXE_agefleet"))
            .args(["activate", "--phase", "install", "--manifest"])
            .arg(&path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &root)
            .env("XDG_RUNTIME_DIR", &runtime),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(read(&runtime.join("agenix/a")), "user secret");
    let mp = runtime.join("agenix.d");
    assert_eq!(owner_mode(&mp), (user.uid, group.gid, 0o751));
    assert_eq!(owner_mode(&mp.join("1/a")), (user.uid, group.gid, 0o400));
    // Nothing was mounted at the mount point: it is a directory of the runtime tmpfs.
    assert!(mount_options(&mp).is_none());
}

#[test]
fn manifest_errors_are_one_line_with_position() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"version\": 1,\n  \"secretsDir\": ,\n}").unwrap();
    let out = activate(tmp.path(), &bad, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{}:3:17: ", bad.display())), "{err}");

    let newer = tmp.path().join("newer.json");
    std::fs::write(&newer, r#"{"version": 2, "somethingNew": true}"#).unwrap();
    let out = activate(tmp.path(), &newer, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsupported manifest version 2"),
        "{}",
        stderr(&out)
    );

    let out = activate(tmp.path(), &tmp.path().join("absent.json"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("absent.json"));
}

/// An age plugin identity in `identityPaths` (as agenix passes it to age): the plugin runs
/// at activation, found on PATH, and its secrets are installed like any other.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn plugin_identities_decrypt_at_activation() {
    let Some(root) = in_mount_namespace("plugin_identities_decrypt_at_activation") else {
        return;
    };
    let fx = Fixture::new(&root);
    let (plugin_key, plugin_recipient) =
        common::plugin::plugin_keygen(&root.join("keys"), "plugin.key");
    let file = fx.store.join("p.age");
    let out = common::run(
        std::process::Command::new("age")
            .env("PATH", common::plugin::path_with_plugin())
            .args(["-e", "-r", &plugin_recipient, "-o"])
            .arg(&file)
            .arg(&plugin_key),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = fx.layout.manifest(
        "manifest.json",
        &[&plugin_key],
        "tmpfs",
        &[Secret::new("p", &file)],
    );
    let out = common::run(
        common::agefleet(fx.home())
            .env("PATH", common::plugin::path_with_plugin())
            .arg("activate")
            .arg("--manifest")
            .arg(&manifest),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(fx.layout.secrets_dir.join("p")).unwrap(),
        std::fs::read(&plugin_key).unwrap()
    );
    // Without the plugin on PATH the secret fails by name; nothing is half-installed.
    let out = activate(fx.home(), &manifest, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("age-plugin-agefleettest"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs root, `unshare`"]
fn a_post_quantum_identity_in_identity_paths_installs_its_secrets() {
    let Some(root) =
        in_mount_namespace("a_post_quantum_identity_in_identity_paths_installs_its_secrets")
    else {
        return;
    };
    let layout = Layout::new(&root);
    let store = root.join("store");
    std::fs::create_dir(&store).unwrap();
    let key = root.join("host.pq");
    let out = common::run(
        common::agefleet(&root)
            .args(["keygen", "--pq", "-o"])
            .arg(&key),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = stdout(&out).trim().to_string();
    common::write_rules(&store, &[("a.age", &[&recipient], false)]);
    let mut edit = common::agefleet(&root)
        .args(["-e", "a.age"])
        .current_dir(&store)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut edit.stdin.take().unwrap(), b"pq secret").unwrap();
    let edited = edit.wait_with_output().unwrap();
    assert!(edited.status.success(), "{}", stderr(&edited));
    let manifest = layout.manifest(
        "manifest.json",
        &[&key],
        "tmpfs",
        &[Secret::new("a", &store.join("a.age"))],
    );
    let out = activate(&root, &manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(&layout.secrets_dir.join("a")), "pq secret");
}
