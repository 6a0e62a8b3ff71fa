//! Rigs for activation tests: a private mount namespace per test, real users and groups,
//! and manifests.
//!
//! A test calls [`in_mount_namespace`] first. Outside the namespace it re-runs the same test
//! (its own test binary, `--exact NAME`) under `unshare -m --propagation private` with a fresh
//! temp directory, checks that the child ran and passed it, and returns `None`; inside, it
//! returns that directory and the test body runs. Mounts made by the body vanish with the
//! namespace; the host's /run is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{require_root, require_tool, run, stderr, stdout};

const NS_DIR_ENV: &str = "AGEFLEET_TEST_MOUNT_NS_DIR";

/// See the module doc. `test_name` must be the test function's name.
pub fn in_mount_namespace(test_name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(NS_DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    require_root();
    require_tool("unshare");
    // `--exact` needs the test's full path (`attacks::NAME`: every area is a module of one
    // binary); libtest names each test's thread after it.
    let full_name = std::thread::current()
        .name()
        .filter(|n| n.rsplit("::").next() == Some(test_name))
        .unwrap_or(test_name)
        .to_owned();
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current test binary");
    let out = run(Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(exe)
        // The test is `#[ignore]`d (it needs root): the child must run it anyway.
        .args([
            "--exact",
            &full_name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NS_DIR_ENV, tmp.path()));
    let (so, se) = (stdout(&out), stderr(&out));
    print!("{so}");
    eprint!("{se}");
    assert!(
        out.status.success(),
        "{test_name} failed inside the mount namespace"
    );
    assert!(
        so.contains("test result: ok. 1 passed"),
        "{test_name} did not run inside the mount namespace"
    );
    None
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A unique short name for users and groups of this test run.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 1_000_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a shadow-utils command, retrying while another test holds the passwd/group lock.
fn shadow(cmd: &str, args: &[&str]) -> Output {
    for _ in 0..50 {
        let out = run(Command::new(cmd).args(args));
        let err = stderr(&out);
        if out.status.success() || !(err.contains("lock") || err.contains("try again")) {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run(Command::new(cmd).args(args))
}

/// A group made with `groupadd`, removed on drop (also when the test fails).
pub struct TestGroup {
    pub name: String,
    pub gid: u32,
}

impl TestGroup {
    pub fn new(prefix: &str) -> Self {
        Self::named(&unique_name(prefix))
    }

    pub fn named(name: &str) -> Self {
        let out = shadow("groupadd", &[name]);
        assert!(out.status.success(), "groupadd {name}: {}", stderr(&out));
        let gid = lookup_id("group", name).expect("gid of the new group");
        TestGroup {
            name: name.to_string(),
            gid,
        }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = shadow("groupdel", &[&self.name]);
    }
}

/// A user made with `useradd` (no home, primary group `group`), removed on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
}

impl TestUser {
    pub fn new(prefix: &str, group: &TestGroup) -> Self {
        let name = unique_name(prefix);
        let out = shadow(
            "useradd",
            &[
                "-M",
                "-N",
                "-g",
                &group.name,
                "-s",
                "/usr/sbin/nologin",
                &name,
            ],
        );
        assert!(out.status.success(), "useradd {name}: {}", stderr(&out));
        let uid = lookup_id("passwd", &name).expect("uid of the new user");
        TestUser { name, uid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = shadow("userdel", &[&self.name]);
    }
}

/// The id of `name` in /etc/passwd or /etc/group.
pub fn lookup_id(db: &str, name: &str) -> Option<u32> {
    let out = run(Command::new("getent").args([db, name]));
    stdout(&out).split(':').nth(2)?.trim().parse().ok()
}

/// An age identity and a place for `.age` files.
pub struct Fixture {
    pub layout: Layout,
    pub key: PathBuf,
    pub recipient: String,
    pub store: PathBuf,
}

impl Fixture {
    pub fn new(root: &Path) -> Self {
        super::require_tool("age");
        super::require_tool("age-keygen");
        let keys = root.join("keys");
        std::fs::create_dir(&keys).unwrap();
        let (key, recipient) = super::age_keygen(&keys, "host.key");
        let store = root.join("store");
        std::fs::create_dir(&store).unwrap();
        Fixture {
            layout: Layout::new(root),
            key,
            recipient,
            store,
        }
    }

    /// Encrypts `plaintext` to the fixture key as `store/<file>`.
    pub fn age(&self, file: &str, plaintext: &[u8]) -> PathBuf {
        let out = self.store.join(file);
        super::age_encrypt(&[&self.recipient], false, plaintext, &out);
        out
    }

    pub fn manifest(&self, secrets: &[Secret]) -> PathBuf {
        self.layout
            .manifest("manifest.json", &[&self.key], "tmpfs", secrets)
    }

    pub fn home(&self) -> &Path {
        &self.layout.root
    }
}

/// One secret of a manifest.
#[derive(Clone)]
pub struct Secret {
    pub name: String,
    pub file: PathBuf,
    pub path: Option<String>,
    pub mode: &'static str,
    pub owner: String,
    pub group: String,
    pub symlink: bool,
    /// `restartUnits` / `reloadUnits` (left out of the manifest when empty).
    pub restart_units: Vec<String>,
    pub reload_units: Vec<String>,
}

impl Secret {
    pub fn new(name: &str, file: &Path) -> Self {
        Secret {
            name: name.into(),
            file: file.into(),
            path: None,
            mode: "0400",
            owner: "0".into(),
            group: "0".into(),
            symlink: true,
            restart_units: Vec::new(),
            reload_units: Vec::new(),
        }
    }
}

/// Where a test activates to: `root/agenix` (secretsDir) and `root/agenix.d` (mount point).
pub struct Layout {
    pub root: PathBuf,
    pub secrets_dir: PathBuf,
    pub mount_point: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
            secrets_dir: root.join("agenix"),
            mount_point: root.join("agenix.d"),
        }
    }

    /// Writes a manifest for `secrets` with identities `ids` and filesystem `fs`.
    pub fn manifest(&self, file: &str, ids: &[&Path], fs: &str, secrets: &[Secret]) -> PathBuf {
        let secrets_json: Vec<serde_json::Value> = secrets
            .iter()
            .map(|s| {
                let mut v = serde_json::json!({
                    "name": s.name,
                    "file": s.file,
                    "path": s.path.clone().unwrap_or_else(|| format!("{}/{}", self.secrets_dir.display(), s.name)),
                    "mode": s.mode,
                    "owner": s.owner,
                    "group": s.group,
                    "symlink": s.symlink,
                });
                if !s.restart_units.is_empty() {
                    v["restartUnits"] = serde_json::json!(s.restart_units);
                }
                if !s.reload_units.is_empty() {
                    v["reloadUnits"] = serde_json::json!(s.reload_units);
                }
                v
            })
            .collect();
        let manifest = serde_json::json!({
            "version": 1,
            "secretsDir": self.secrets_dir,
            "secretsMountPoint": self.mount_point,
            "identityPaths": ids,
            "fs": fs,
            "secrets": secrets_json,
        });
        let path = self.root.join(file);
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        path
    }

    /// The generation `secretsDir` points at.
    pub fn current_generation(&self) -> Option<String> {
        let target = std::fs::read_link(&self.secrets_dir).ok()?;
        assert_eq!(target.parent(), Some(self.mount_point.as_path()));
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// The names in the mount point, sorted, without the install records
    /// (`.agefleet-N.json`), each of which must belong to a generation present.
    pub fn generations(&self) -> Vec<String> {
        let all: Vec<String> = std::fs::read_dir(&self.mount_point)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut names: Vec<String> = all
            .iter()
            .filter(|n| !n.starts_with(".agefleet-"))
            .cloned()
            .collect();
        for record in all.iter().filter(|n| n.starts_with(".agefleet-")) {
            let n = record
                .strip_prefix(".agefleet-")
                .and_then(|r| r.strip_suffix(".json"))
                .unwrap_or_else(|| panic!("unexpected {record} in the mount point"));
            assert!(
                names.iter().any(|g| g == n),
                "{record} without its generation"
            );
        }
        names.sort();
        names
    }
}

/// Runs `agefleet activate --manifest M [extra…]`.
pub fn activate(home: &Path, manifest: &Path, extra: &[&str]) -> Output {
    run(super::agefleet(home)
        .arg("activate")
        .arg("--manifest")
        .arg(manifest)
        .args(extra))
}

/// The filesystem type of `path` as `stat -f` names it (tmpfs, ramfs, ext2/ext3…).
pub fn fs_type(path: &Path) -> String {
    let out = run(Command::new("stat").args(["-f", "-c", "%T"]).arg(path));
    assert!(out.status.success(), "stat -f: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// The mount options of the mount at `path` in this namespace, from /proc/self/mounts.
pub fn mount_options(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let want = path.to_str()?;
    mounts.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 3 && f[1] == want).then(|| format!("{} {}", f[2], f[3]))
    })
}

/// (uid, gid, mode & 0o7777) of `path`, not following a symlink.
pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}
