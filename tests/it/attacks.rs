//! A local attacker against root: a real `useradd` user who owns a directory that root's
//! `activate`, `edit`, `create-keys` or `copy-keys` goes through, and plants symlinks or
//! swaps directories there with their own uid (`setpriv`). One test per attack (SECURITY.md
//! "Against a local user"); each asserts the victim file's bytes, owner and mode are
//! unchanged and the error names the offending component. Activation tests run in a private
//! mount namespace (`unshare -m`). As root only; outside CI they skip, in CI they must run.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::activation::{
    activate, in_mount_namespace, Fixture, Secret, TestGroup, TestUser,
};
use crate::common::{require_root, require_tool, run, stderr, stdout};

/// A root-owned file the attacker wants overwritten, replaced, chowned or read.
struct Victim {
    path: PathBuf,
    bytes: Vec<u8>,
    owner_mode: (u32, u32, u32),
}

impl Victim {
    /// `dir/token`, 0600, in a 0755 `dir`, owned by the running user (root in CI).
    fn plant(dir: &Path) -> Victim {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, b"root's own data\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Victim {
            bytes: std::fs::read(&path).unwrap(),
            owner_mode: owner_mode(&path),
            path,
        }
    }

    fn assert_untouched(&self) {
        let meta = std::fs::symlink_metadata(&self.path).unwrap();
        assert!(meta.file_type().is_file(), "victim replaced");
        assert_eq!(
            std::fs::read(&self.path).unwrap(),
            self.bytes,
            "victim bytes"
        );
        assert_eq!(owner_mode(&self.path), self.owner_mode, "victim owner/mode");
    }
}

fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// A user with a home directory under `root` and a way to act as them.
pub(crate) struct Attacker {
    // Field order: the user is removed before its group.
    pub(crate) user: TestUser,
    group: TestGroup,
    pub(crate) home: PathBuf,
}

impl Attacker {
    pub(crate) fn new(root: &Path) -> Attacker {
        // The user must be able to reach its home under the test's root.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let group = TestGroup::new("atg");
        let user = TestUser::new("atu", &group);
        let home = root.join("home").join(&user.name);
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(root.join("home"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::chown(&home, Some(user.uid), Some(group.gid)).unwrap();
        Attacker { user, group, home }
    }

    /// Runs `argv` as the user (real and effective uid/gid, no supplementary groups).
    pub(crate) fn run(&self, argv: &[&str]) {
        require_tool("setpriv");
        let out = run(Command::new("setpriv")
            .arg(format!("--reuid={}", self.user.uid))
            .arg(format!("--regid={}", self.group.gid))
            .arg("--clear-groups")
            .arg("--")
            .args(argv));
        assert!(out.status.success(), "as user {argv:?}: {}", stderr(&out));
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    fn str(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_string()
    }
}

fn custom(name: &str, file: &Path, path: &Path, symlink: bool) -> Secret {
    let mut s = Secret::new(name, file);
    s.path = Some(path.to_str().unwrap().into());
    s.symlink = symlink;
    s
}

/// `symlink = false`: `~/.config/app -> /victim` must not make root overwrite
/// `/victim/token` with the secret.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn file_path_through_a_users_symlinked_dir_is_refused() {
    let Some(root) = in_mount_namespace("file_path_through_a_users_symlinked_dir_is_refused")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let victim = Victim::plant(&root.join("victim"));
    let a = Attacker::new(&root);
    a.run(&["mkdir", &a.str(".config")]);
    a.run(&[
        "ln",
        "-s",
        root.join("victim").to_str().unwrap(),
        &a.str(".config/app"),
    ]);

    let good = fx.age("good.age", b"good");
    let token = fx.age("token.age", b"SECRET");
    let m = fx.manifest(&[
        Secret::new("good", &good),
        custom("token", &token, &a.path(".config/app/token"), false),
    ]);
    let out = activate(fx.home(), &m, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let app = a.path(".config/app");
    assert!(
        err.contains(&format!("{}: is a symbolic link", app.display())),
        "{err}"
    );
    victim.assert_untouched();
    // The other secret is installed.
    let sd = &fx.layout.secrets_dir;
    assert_eq!(std::fs::read(sd.join("good")).unwrap(), b"good");
}

/// `symlink = true`: the same planted link must not make root replace
/// `/victim/token` with a symlink.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn link_path_through_a_users_symlinked_dir_is_refused() {
    let Some(root) = in_mount_namespace("link_path_through_a_users_symlinked_dir_is_refused")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let victim = Victim::plant(&root.join("victim"));
    let a = Attacker::new(&root);
    a.run(&[
        "ln",
        "-s",
        root.join("victim").to_str().unwrap(),
        &a.str("app"),
    ]);

    let token = fx.age("token.age", b"SECRET");
    let m = fx.manifest(&[custom("token", &token, &a.path("app/token"), true)]);
    let out = activate(fx.home(), &m, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: is a symbolic link", a.path("app").display())),
        "{err}"
    );
    victim.assert_untouched();
}

/// Between the phases: after `--phase install` wrote `~/app/token`, the user
/// swaps `~/app` for a link to `/victim`; `--phase chown` must not give `/victim/token`
/// (root, 0600) to the user.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn chown_phase_does_not_follow_a_dir_swapped_after_install() {
    let Some(root) = in_mount_namespace("chown_phase_does_not_follow_a_dir_swapped_after_install")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let victim = Victim::plant(&root.join("victim"));
    let a = Attacker::new(&root);
    a.run(&["mkdir", &a.str("app")]);

    let token = fx.age("token.age", b"SECRET");
    let mut s = custom("token", &token, &a.path("app/token"), false);
    s.owner = a.user.name.clone();
    s.group = a.group.name.clone();
    s.mode = "0600";
    let m = fx.manifest(&[s]);
    let out = activate(fx.home(), &m, &["--phase", "install"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(owner_mode(&a.path("app/token")), (0, 0, 0o600));

    a.run(&["mv", &a.str("app"), &a.str("app.old")]);
    a.run(&[
        "ln",
        "-s",
        root.join("victim").to_str().unwrap(),
        &a.str("app"),
    ]);
    let out = activate(fx.home(), &m, &["--phase", "chown"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: is a symbolic link", a.path("app").display())),
        "{err}"
    );
    victim.assert_untouched();
    // The secret the install phase wrote was not given away either.
    assert_eq!(owner_mode(&a.path("app.old/token")), (0, 0, 0o600));
}

/// A sticky world-writable directory (like `/tmp`) is trusted to walk through, but a link in
/// it that a user planted is theirs: a custom `path` through it is refused, naming the link
/// and its owner, and `/victim/token` is untouched; root's own link there is followed.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn path_through_a_users_link_in_a_sticky_dir_is_refused() {
    let Some(root) = in_mount_namespace("path_through_a_users_link_in_a_sticky_dir_is_refused")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let victim = Victim::plant(&root.join("victim"));
    let a = Attacker::new(&root);
    let sticky = root.join("tmp");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = sticky.join("app");
    a.run(&[
        "ln",
        "-s",
        root.join("victim").to_str().unwrap(),
        planted.to_str().unwrap(),
    ]);
    let ours = sticky.join("ours");
    std::fs::create_dir(root.join("real")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), &ours).unwrap();

    let token = fx.age("token.age", b"SECRET");
    let good = fx.age("good.age", b"good");
    for symlink in [false, true] {
        let m = fx.manifest(&[
            custom("token", &token, &planted.join("token"), symlink),
            custom("good", &good, &ours.join("good"), symlink),
        ]);
        let out = activate(fx.home(), &m, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "symlink = {symlink}: {err}");
        assert!(
            err.contains(&format!(
                "{}: is a symbolic link that is owned by uid {}; refusing to follow it",
                planted.display(),
                a.user.uid
            )),
            "symlink = {symlink}: {err}"
        );
        victim.assert_untouched();
        let good_at = root.join("real/good");
        if symlink {
            let target = std::fs::read_link(&good_at).unwrap();
            assert_eq!(target, fx.layout.secrets_dir.join("good"));
        } else {
            assert_eq!(std::fs::read(&good_at).unwrap(), b"good");
        }
        std::fs::remove_file(&good_at).unwrap();
    }
}

/// Two secrets with one target path both fail, naming it, and nothing is written.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn two_secrets_with_one_path_are_both_refused() {
    let Some(root) = in_mount_namespace("two_secrets_with_one_path_are_both_refused") else {
        return;
    };
    let fx = Fixture::new(&root);
    let one = fx.age("one.age", b"one");
    let two = fx.age("two.age", b"two");
    let target = root.join("etc/app.conf");
    let m = fx.manifest(&[
        custom("one", &one, &target, false),
        custom("two", &two, &root.join("etc//app.conf"), true),
    ]);
    let out = activate(fx.home(), &m, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for name in ["secret \"one\":", "secret \"two\":"] {
        assert!(err.contains(name), "{err}");
    }
    assert!(err.contains(&format!("`{}`", target.display())), "{err}");
    assert!(!target.exists() && std::fs::symlink_metadata(&target).is_err());
}

/// A `symlink = false` file on disk is warned about, and removed once its secret
/// leaves the manifest (only while it is still the file activation wrote).
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn file_secrets_on_disk_are_warned_about_and_removed_when_dropped() {
    let Some(root) =
        in_mount_namespace("file_secrets_on_disk_are_warned_about_and_removed_when_dropped")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let disk = common::activation::fs_type(&root);
    let kept = fx.age("kept.age", b"kept");
    let gone = fx.age("gone.age", b"gone");
    let kept_at = root.join("etc/kept");
    let gone_at = root.join("etc/gone");
    let both = fx.manifest(&[
        custom("kept", &kept, &kept_at, false),
        custom("gone", &gone, &gone_at, false),
    ]);
    let out = activate(fx.home(), &both, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    if !matches!(disk.as_str(), "tmpfs" | "ramfs") {
        assert!(
            err.contains(&format!(
                "{} is not on a RAM-backed filesystem",
                gone_at.display()
            )),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&gone_at).unwrap(), b"gone");

    let only_kept = fx.manifest(&[custom("kept", &kept, &kept_at, false)]);
    let out = activate(fx.home(), &only_kept, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!gone_at.exists(), "dropped secret left on disk");
    assert!(
        err.contains(&format!("removed {}", gone_at.display())),
        "{err}"
    );
    assert_eq!(std::fs::read(&kept_at).unwrap(), b"kept");

    // A file someone put there since is not the one activation wrote: left alone.
    let again = fx.manifest(&[
        custom("kept", &kept, &kept_at, false),
        custom("gone", &gone, &gone_at, false),
    ]);
    assert!(activate(fx.home(), &again, &[]).status.success());
    std::fs::remove_file(&gone_at).unwrap();
    std::fs::write(&gone_at, b"someone else's").unwrap();
    // (fx.manifest rewrites the one manifest file.)
    let only_kept = fx.manifest(&[custom("kept", &kept, &kept_at, false)]);
    let out = activate(fx.home(), &only_kept, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(std::fs::read(&gone_at).unwrap(), b"someone else's");
    assert!(
        err.contains("not the file an earlier activation wrote"),
        "{err}"
    );

    // A secret whose install fails this time keeps its earlier file on record: dropped
    // later, that file is still removed.
    let m = fx.manifest(&[custom("gone", &gone, &gone_at, false)]);
    assert!(activate(fx.home(), &m, &[]).status.success());
    let missing = fx.store.join("missing.age");
    let m = fx.manifest(&[custom("gone", &missing, &gone_at, false)]);
    assert_eq!(activate(fx.home(), &m, &[]).status.code(), Some(1));
    assert_eq!(std::fs::read(&gone_at).unwrap(), b"gone");
    let m = fx.manifest(&[custom("kept", &kept, &kept_at, true)]);
    let out = activate(fx.home(), &m, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!gone_at.exists(), "{err}");
    // kept switched to symlink = true: its path is a link now, and nothing is warned about.
    let kind = std::fs::symlink_metadata(&kept_at).unwrap().file_type();
    assert!(kind.is_symlink());
    assert!(!err.contains("not removed"), "{err}");
}

/// An identity that is a symlink to a user-owned file is used, but not silently.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `git`, `ssh-add`, `ssh-agent`, `ssh-keygen`, `ssh`, `sshd`, `unshare`"]
fn identity_owned_by_a_user_is_warned_about() {
    let Some(root) = in_mount_namespace("identity_owned_by_a_user_is_warned_about") else {
        return;
    };
    let fx = Fixture::new(&root);
    let a = Attacker::new(&root);
    let theirs = a.path("host.key");
    std::fs::copy(&fx.key, &theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(a.user.uid), Some(a.group.gid)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = root.join("keys/linked.key");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    let s = fx.age("s.age", b"s");
    let m = fx
        .layout
        .manifest("m.json", &[&link], "tmpfs", &[Secret::new("s", &s)]);
    let out = activate(fx.home(), &m, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "identity {} (a symlink to {}) is owned by uid {}",
            link.display(),
            theirs.display(),
            a.user.uid
        )),
        "{err}"
    );
    assert!(
        err.contains("readable by group or other (mode 0644)"),
        "{err}"
    );
}

/// Removes a directory tree made outside the test's temp dir (in /dev/shm) on drop.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `agefleet -e x.age` as root under a pty with `editor` and `XDG_RUNTIME_DIR=xdg`.
fn edit_as_root(f: &common::Fleet, editor: &Path, xdg: &Path) -> common::pty::PtyRun {
    let path = std::env::var_os("PATH").unwrap();
    let env: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("HOME", f.home.as_os_str()),
        ("PATH", &path),
        ("EDITOR", editor.as_os_str()),
        ("XDG_RUNTIME_DIR", xdg.as_os_str()),
        ("NO_COLOR", "1".as_ref()),
    ];
    common::pty::run_in_pty(
        &env,
        &f.dir,
        &[env!("CARGO_BIN_EXE_agefleet"), "-e", "x.age"],
        b"",
        Duration::from_secs(60),
    )
}

fn script(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("editor.sh");
    std::fs::write(&p, format!("#!/bin/sh\nf=\"$1\"\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Root with another user's `$XDG_RUNTIME_DIR` (as `su` or `sudo -E` leave it)
/// must not put the plaintext where that user can read or swap it.
#[test]
#[ignore = "needs root, `age`, `script`, `ssh-keygen`"]
fn edit_as_root_ignores_another_users_runtime_dir() {
    require_root();
    require_tool("script");
    require_tool("age");
    let f = common::Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let group = TestGroup::new("atg");
    let user = TestUser::new("atu", &group);
    // A runtime dir exactly as systemd-logind makes it: tmpfs, the user's, 0700.
    let xdg = PathBuf::from("/dev/shm").join(common::activation::unique_name("agefleet-xdg-"));
    std::fs::create_dir(&xdg).unwrap();
    let _cleanup = RemoveOnDrop(xdg.clone());
    std::os::unix::fs::chown(&xdg, Some(user.uid), Some(group.gid)).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = f.tmp.path().join("dir.log");
    let ed = script(
        f.tmp.path(),
        &format!(
            "dirname \"$f\" > {}; printf 'new\\n' > \"$f\"",
            log.display()
        ),
    );
    let run = edit_as_root(&f, &ed, &xdg);
    assert_eq!(run.code, Some(0), "{}", run.screen);
    let used = std::fs::read_to_string(&log).unwrap();
    assert!(
        !used.starts_with(xdg.to_str().unwrap()),
        "plaintext went to {used}"
    );
    assert!(used.starts_with("/dev/shm/agefleet."), "{used}");
    assert_eq!(f.age_plaintext(&f.admin.private, "x.age"), b"new\n");
    assert_eq!(std::fs::read_dir(&xdg).unwrap().count(), 0);
}

/// Reading the plaintext back: an editor (or anyone) leaving a symlink at the plaintext's name must
/// not make root encrypt the link's target into the repository.
#[test]
#[ignore = "needs `script`, `ssh-keygen`"]
fn edited_file_replaced_by_a_symlink_is_not_read() {
    require_tool("script");
    let f = common::Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let victim = Victim::plant(&f.tmp.path().join("victim"));
    let ed = script(
        f.tmp.path(),
        &format!("ln -sf {} \"$f\"", victim.path.display()),
    );
    let run = edit_as_root(&f, &ed, Path::new("/nonexistent"));
    assert_eq!(run.code, Some(1), "{}", run.screen);
    assert!(run.screen.contains("is a symbolic link"), "{}", run.screen);
    assert!(!f.path("x.age").exists(), "the link's target was encrypted");
    victim.assert_untouched();
}

/// `create-keys --ssh-dir ~u/.ssh` with `.ssh -> /victim` must neither chmod
/// `/victim` nor write keys there.
#[test]
#[ignore = "needs root"]
fn create_keys_refuses_a_symlinked_ssh_dir() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let victim = Victim::plant(&tmp.path().join("victim"));
    let a = Attacker::new(tmp.path());
    a.run(&[
        "ln",
        "-s",
        tmp.path().join("victim").to_str().unwrap(),
        &a.str(".ssh"),
    ]);
    let out = run(common::agefleet(tmp.path())
        .args(["create-keys", "--ssh-dir"])
        .arg(a.path(".ssh")));
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{}: is a symbolic link", a.path(".ssh").display())),
        "{err}"
    );
    victim.assert_untouched();
    let dir = tmp.path().join("victim");
    assert_eq!(owner_mode(&dir), (0, 0, 0o755));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

/// `copy-keys --owner u --ssh-dir ~u/link/.ssh` with `link -> /victim` must not
/// create `/victim/.ssh` nor give anything there to the user.
#[test]
#[ignore = "needs root"]
fn copy_keys_refuses_a_symlinked_parent() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let victim = Victim::plant(&tmp.path().join("victim"));
    let src = tmp.path().join("usb");
    let out = run(common::agefleet(tmp.path())
        .args(["create-keys", "--ssh-dir"])
        .arg(&src));
    assert!(out.status.success(), "{}", stderr(&out));
    let a = Attacker::new(tmp.path());
    a.run(&[
        "ln",
        "-s",
        tmp.path().join("victim").to_str().unwrap(),
        &a.str("link"),
    ]);
    let out = run(common::agefleet(tmp.path())
        .args(["copy-keys", "--from"])
        .arg(&src)
        .arg("--ssh-dir")
        .arg(a.path("link/.ssh"))
        .args(["--owner", &a.user.name]));
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{}: is a symbolic link", a.path("link").display())),
        "{err}"
    );
    victim.assert_untouched();
    assert!(!tmp.path().join("victim/.ssh").exists());
}

/// `--owner` chowns an existing SSH directory too, and missing parents are
/// created 0755 at most even under `umask 000`.
#[test]
#[ignore = "needs root"]
fn copy_keys_owner_takes_an_existing_dir_and_parents_stay_0755() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("usb");
    let out = run(common::agefleet(tmp.path())
        .args(["create-keys", "--ssh-dir"])
        .arg(&src));
    assert!(out.status.success(), "{}", stderr(&out));
    let a = Attacker::new(tmp.path());
    let existing = a.path(".ssh");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run(common::agefleet(tmp.path())
        .args(["copy-keys", "--from"])
        .arg(&src)
        .arg("--ssh-dir")
        .arg(&existing)
        .args(["--owner", &a.user.name]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(owner_mode(&existing), (a.user.uid, a.group.gid, 0o700));

    let deep = tmp.path().join("new/parents/.ssh");
    let out = run(Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" create-keys --ssh-dir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_agefleet"))
        .arg(&deep)
        .env("HOME", tmp.path()));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for dir in ["new", "new/parents"] {
        assert_eq!(owner_mode(&tmp.path().join(dir)).2, 0o755, "{dir}");
    }
    assert_eq!(owner_mode(&deep).2, 0o700);
}

/// The signals a `kill` may send whose default action ends a process.
const TERMINATING: [&str; 12] = [
    "INT", "QUIT", "TERM", "HUP", "USR1", "USR2", "ALRM", "VTALRM", "PROF", "XCPU", "XFSZ", "PIPE",
];

/// A private RAM-backed `$XDG_RUNTIME_DIR` (root's, 0700) so a test sees only its own
/// plaintext buffers and no other test sweeps them.
fn private_runtime_dir() -> RemoveOnDrop {
    let xdg = PathBuf::from("/dev/shm").join(common::activation::unique_name("agefleet-xdg-"));
    std::fs::create_dir(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    RemoveOnDrop(xdg)
}

/// An editor that records its plaintext's directory in `log`, sends `kill -SIG` to `target`
/// (`$af` is the agefleet process, `0` the editor's process group, which agefleet is in),
/// then waits and exits 0 without changing anything.
fn signalling_editor(dir: &Path, log: &Path, sig: &str, target: &str) -> PathBuf {
    script(
        dir,
        &format!(
            "af=$PPID\n\
             while [ \"$(cat /proc/$af/comm)\" != agefleet ]; do af=$(cut -d' ' -f4 /proc/$af/stat); done\n\
             dirname \"$f\" > {log}\n\
             kill -{sig} {target}\n\
             sleep 1",
            log = log.display()
        ),
    )
}

/// Polls `done` for up to 10 s (a process signalled at the same time as the pty's shell may
/// finish its cleanup a moment after the run returns).
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Each terminating signal, sent to agefleet alone and to its process group while the
/// editor runs, leaves no plaintext behind and the secret as it was. SIGINT and SIGQUIT sent
/// to agefleet alone belong to the editor (Ctrl-C in vi), and SIGPIPE is ignored (as by every
/// Rust program): the edit goes on and ends normally.
#[test]
#[ignore = "needs `age`, `script`, `ssh-keygen`"]
fn every_terminating_signal_during_edit_leaves_no_plaintext() {
    require_tool("script");
    require_tool("age");
    let f = common::Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let secret = f.age_file("x.age", &[&admin], b"signal-test-plaintext\n");
    let before = std::fs::read(&secret).unwrap();
    let xdg = private_runtime_dir();
    let log = f.tmp.path().join("dir.log");
    for sig in TERMINATING {
        for (target, whom) in [("\"$af\"", "agefleet"), ("0", "its process group")] {
            let _ = std::fs::remove_file(&log);
            let ed = signalling_editor(f.tmp.path(), &log, sig, target);
            let run = edit_as_root(&f, &ed, &xdg.0);
            let what = format!("SIG{sig} to {whom}");
            let used = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                used.starts_with(xdg.0.to_str().unwrap()),
                "{what}: {used:?} {}",
                run.screen
            );
            if whom == "agefleet" && (sig == "INT" || sig == "QUIT" || sig == "PIPE") {
                assert_eq!(run.code, Some(0), "{what}: {}", run.screen);
            } else {
                assert_ne!(run.code, Some(0), "{what}: {}", run.screen);
            }
            assert!(
                eventually(|| std::fs::read_dir(&xdg.0).unwrap().count() == 0),
                "{what}: plaintext left in {}: {:?}",
                xdg.0.display(),
                std::fs::read_dir(&xdg.0)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect::<Vec<_>>()
            );
            assert_eq!(std::fs::read(&secret).unwrap(), before, "{what}");
        }
    }
}

/// SIGKILL cannot be handled: the killed edit's buffer stays. The next edit of the same user
/// removes it and says so once; a buffer in use (its lock held, as a live edit holds it)
/// and another user's buffer are left alone.
#[test]
#[ignore = "needs root, `age`, `flock`, `script`, `ssh-keygen`, `useradd`"]
fn a_killed_edits_plaintext_is_swept_by_the_next_edit() {
    require_root();
    require_tool("script");
    require_tool("age");
    require_tool("flock");
    let f = common::Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let secret = f.age_file("x.age", &[&admin], b"killed-edit-plaintext\n");
    let before = std::fs::read(&secret).unwrap();
    let xdg = private_runtime_dir();
    let log = f.tmp.path().join("dir.log");
    let ed = signalling_editor(f.tmp.path(), &log, "KILL", "\"$af\"");
    let killed = edit_as_root(&f, &ed, &xdg.0);
    assert_ne!(killed.code, Some(0), "{}", killed.screen);
    assert_eq!(std::fs::read(&secret).unwrap(), before);
    let left = PathBuf::from(std::fs::read_to_string(&log).unwrap().trim());
    assert_eq!(
        std::fs::read(left.join("x.age")).unwrap(),
        b"killed-edit-plaintext\n",
        "the killed edit left no buffer: nothing to sweep"
    );

    // A buffer in use, and another user's.
    let in_use = xdg.0.join("agefleet.00000000000000aa");
    let theirs = xdg.0.join("agefleet.00000000000000bb");
    for d in [&in_use, &theirs] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(d.join("x.age"), b"other").unwrap();
    }
    let group = TestGroup::new("atg");
    let user = TestUser::new("atu", &group);
    std::os::unix::fs::chown(&theirs, Some(user.uid), Some(group.gid)).unwrap();
    // -F: flock execs sleep, so killing this one process releases the lock. It waits for
    // the lock (no -n): the probe below may hold it for a moment.
    let mut holder = Command::new("flock")
        .arg("-F")
        .arg(&in_use)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    // Held once sleep runs.
    assert!(eventually(|| run(Command::new("flock")
        .arg("-n")
        .arg(&in_use)
        .arg("true"))
    .status
    .code()
        == Some(1)));

    let edit = |input: &[u8]| {
        common::run_with_stdin(
            f.cmd()
                .args(["edit", "x.age"])
                .env("XDG_RUNTIME_DIR", &xdg.0),
            input,
        )
    };
    let out = edit(b"new\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let warning = format!(
        "warning: removed 1 plaintext buffer(s) left by an edit that was killed: {}",
        left.display()
    );
    assert_eq!(
        stderr(&out).matches("plaintext buffer").count(),
        1,
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&warning), "{}", stderr(&out));
    assert!(!left.exists());
    assert!(in_use.join("x.age").exists() && theirs.join("x.age").exists());
    // Once: the next edit has nothing to say.
    let out = edit(b"newer\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("plaintext buffer"),
        "{}",
        stderr(&out)
    );
    // The holder gone, its buffer is a leftover too.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = edit(b"newest\n");
    assert!(
        stderr(&out).contains(&format!("killed: {}", in_use.display())),
        "{}",
        stderr(&out)
    );
    assert!(!in_use.exists() && theirs.join("x.age").exists());
    std::fs::remove_dir_all(&theirs).unwrap();
}
