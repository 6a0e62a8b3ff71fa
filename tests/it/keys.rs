//! create-keys, copy-keys, check-keys end to end, with `ssh-keygen` as the oracle for what
//! was written and printed, `nix-instantiate` for the `secrets.nix` snippet, and a real user
//! (`useradd`) for `--owner`.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{agefleet, mode_of, require_root, require_tool, run, stderr, stdout};
use serde_json::Value;

const KEYS: [&str; 4] = [
    "id_ed25519",
    "id_ed25519.pub",
    "id_ed25519_agenix",
    "id_ed25519_agenix.pub",
];

/// Runs agefleet with `args` (HOME = `home`).
fn af(home: &Path, args: &[&str]) -> Output {
    run(agefleet(home).args(args))
}

/// Runs agefleet with `input` on stdin.
fn af_stdin(home: &Path, args: &[&str], input: &[u8]) -> Output {
    common::run_with_stdin(agefleet(home).args(args), input)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` (recursively) with its bytes; symlinks as `-> target`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(&p).unwrap();
            out.insert(p, format!("-> {}", t.display()).into_bytes());
        } else if meta.is_dir() {
            out.extend(snapshot(&p));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            out.insert(p, bytes);
        }
    }
    out
}

fn ssh_keygen_lf(path: &Path) -> String {
    let o = run(Command::new("ssh-keygen").arg("-lf").arg(path));
    assert!(
        o.status.success(),
        "ssh-keygen -lf {}: {}",
        path.display(),
        stderr(&o)
    );
    stdout(&o).trim().to_string()
}

/// `ssh-keygen -y` (public key from the private key), with a passphrase.
fn ssh_keygen_y(path: &Path, passphrase: &str) -> Output {
    run(Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(path))
}

fn read_trimmed(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

fn backup_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("bak"))
        .collect()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

// ---------------------------------------------------------------- create-keys

#[test]
#[ignore = "needs `ssh-keygen`, `stat`"]
fn create_writes_keys_that_ssh_keygen_reads_with_exact_modes() {
    require_tool("ssh-keygen");
    require_tool("stat");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home/.ssh");
    let o = af(
        tmp.path(),
        &[
            "create-keys",
            "--ssh-dir",
            s(&dir),
            "--comment",
            "ops@fleet",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);

    assert_eq!(mode_of(&dir), 0o700);
    for name in ["id_ed25519", "id_ed25519_agenix"] {
        let private = dir.join(name);
        let public = dir.join(format!("{name}.pub"));
        assert_eq!(mode_of(&private), 0o600, "{name}");
        assert_eq!(mode_of(&public), 0o644, "{name}.pub");
        // ssh-keygen reproduces the public line we wrote and printed.
        let y = ssh_keygen_y(&private, "");
        assert!(y.status.success(), "{}", stderr(&y));
        let pub_line = read_trimmed(&public);
        assert_eq!(stdout(&y).trim(), pub_line);
        assert!(pub_line.ends_with(" ops@fleet"));
        assert!(
            out.lines().any(|l| l == pub_line),
            "public line not printed:\n{out}"
        );
        // The printed fingerprint is exactly what ssh-keygen -lf prints, for both files.
        let lf = ssh_keygen_lf(&public);
        assert!(lf.starts_with("256 SHA256:") && lf.ends_with(" ops@fleet (ED25519)"));
        assert_eq!(ssh_keygen_lf(&private), lf);
        assert!(
            out.lines().any(|l| l == lf),
            "fingerprint {lf} not printed:\n{out}"
        );
    }
    // Once with stat(1) as well.
    let st = run(Command::new("stat")
        .args(["-c", "%a %n"])
        .arg(&dir)
        .arg(dir.join("id_ed25519"))
        .arg(dir.join("id_ed25519.pub")));
    let lines: Vec<String> = stdout(&st)
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(lines, ["700", "600", "644"]);
    // No temp files left.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, KEYS);
    // The snippet names the agenix key.
    let agenix_pub = read_trimmed(&dir.join("id_ed25519_agenix.pub"));
    assert!(
        out.lines()
            .any(|l| l.starts_with("  ") && l.ends_with(&format!("= \"{agenix_pub}\";"))),
        "{out}"
    );
}

#[test]
#[ignore = "needs `nix-instantiate`, `ssh-keygen`"]
fn create_json_and_snippet_are_machine_checked() {
    require_tool("ssh-keygen");
    require_tool("nix-instantiate");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    // A comment with everything Nix would otherwise interpret.
    let comment = r#"a"b\c ${builtins.throw "x"} $d"#;
    let o = af(
        tmp.path(),
        &[
            "create-keys",
            "--ssh-dir",
            s(&dir),
            "--comment",
            comment,
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["dry_run"], false);
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for (k, name) in keys.iter().zip(["id_ed25519", "id_ed25519_agenix"]) {
        let path = PathBuf::from(k["path"].as_str().unwrap());
        assert_eq!(path, dir.join(name));
        assert_eq!(k["name"], name);
        let public = PathBuf::from(k["public_path"].as_str().unwrap());
        assert_eq!(k["public"].as_str().unwrap(), read_trimmed(&public));
        assert_eq!(
            k["fingerprint_line"].as_str().unwrap(),
            ssh_keygen_lf(&public)
        );
        let fp = k["fingerprint"].as_str().unwrap();
        assert!(ssh_keygen_lf(&public).contains(&format!(" {fp} ")));
        assert_eq!(k["encrypted"], false);
    }
    assert!(v["backup"].is_null());
    // The snippet is valid Nix whose value is exactly the agenix public line.
    let snippet = v["secrets_nix"].as_str().unwrap();
    let ident = snippet.trim().split(' ').next().unwrap();
    let expr = format!("let\n{snippet}\nin {ident}");
    let e =
        run(Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "-E", &expr]));
    assert!(
        e.status.success(),
        "nix-instantiate: {}\n{expr}",
        stderr(&e)
    );
    let value: String = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(value, read_trimmed(&dir.join("id_ed25519_agenix.pub")));
    assert!(value.ends_with(comment));
}

#[test]
fn create_refuses_any_existing_target_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    assert_eq!(
        code(&af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)])),
        0
    );
    let before = snapshot(&dir);
    let o = af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refusing to overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&dir), before);
    // Dry run refuses the same way.
    let o = af(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&dir), "--dry-run"],
    );
    assert_eq!(code(&o), 3);
    assert_eq!(snapshot(&dir), before);

    // One stray file (even a dangling symlink) blocks the whole run: nothing else is created.
    for stray in ["file", "symlink"] {
        let dir = tmp.path().join(format!("ssh-{stray}"));
        std::fs::create_dir(&dir).unwrap();
        let p = dir.join("id_ed25519_agenix.pub");
        if stray == "file" {
            std::fs::write(&p, b"keep me").unwrap();
        } else {
            std::os::unix::fs::symlink("/nonexistent/target", &p).unwrap();
        }
        let before = snapshot(&dir);
        let o = af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)]);
        assert_eq!(code(&o), 3, "{stray}: {}", stderr(&o));
        assert_eq!(snapshot(&dir), before, "{stray}");
    }
    // --only git ignores the agenix files.
    let dir = tmp.path().join("ssh-file");
    let o = af(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&dir), "--only", "git"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(dir.join("id_ed25519").is_file() && !dir.join("id_ed25519_agenix").exists());
    assert_eq!(
        std::fs::read(dir.join("id_ed25519_agenix.pub")).unwrap(),
        b"keep me"
    );
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn create_force_moves_old_keys_into_a_backup() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    assert_eq!(
        code(&af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)])),
        0
    );
    let old: BTreeMap<String, Vec<u8>> = KEYS
        .iter()
        .map(|n| (n.to_string(), std::fs::read(dir.join(n)).unwrap()))
        .collect();
    // Dry run with --force: says what it would do, changes nothing.
    let before = snapshot(&dir);
    let o = af(
        tmp.path(),
        &[
            "create-keys",
            "--ssh-dir",
            s(&dir),
            "--force",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["would_back_up"].as_array().unwrap().len(), 4);
    assert_eq!(snapshot(&dir), before);

    let o = af(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&dir), "--force", "--json"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let baks = backup_dirs(&dir);
    assert_eq!(baks.len(), 1);
    let bak = &baks[0];
    assert_eq!(PathBuf::from(v["backup"]["dir"].as_str().unwrap()), *bak);
    assert_eq!(mode_of(bak), 0o700);
    assert_eq!(v["backup"]["moved"].as_array().unwrap().len(), 4);
    for (name, bytes) in &old {
        assert_eq!(
            &std::fs::read(bak.join(name)).unwrap(),
            bytes,
            "backup of {name}"
        );
        assert_ne!(
            &std::fs::read(dir.join(name)).unwrap(),
            bytes,
            "{name} replaced"
        );
    }
    // The backed-up private keys keep 0600 and still work.
    assert_eq!(mode_of(&bak.join("id_ed25519")), 0o600);
    assert!(ssh_keygen_y(&bak.join("id_ed25519"), "").status.success());
    for name in ["id_ed25519", "id_ed25519_agenix"] {
        assert_eq!(mode_of(&dir.join(name)), 0o600);
        assert_eq!(
            stdout(&ssh_keygen_y(&dir.join(name), "")).trim(),
            read_trimmed(&dir.join(format!("{name}.pub")))
        );
    }
    let name = bak.file_name().unwrap().to_string_lossy().into_owned();
    // bak-YYYYmmddTHHMMSSZ
    assert_eq!(name.len(), "bak-20260101T000000Z".len(), "{name}");
    assert!(name.starts_with("bak-") && name.ends_with('Z'));
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn create_passphrase_protects_the_git_key_only() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    let o = af_stdin(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&dir), "--passphrase-stdin"],
        b"correct horse\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("id_ed25519_agenix stays unencrypted"),
        "{}",
        stderr(&o)
    );
    let git = dir.join("id_ed25519");
    assert!(
        !ssh_keygen_y(&git, "").status.success(),
        "git key must need a passphrase"
    );
    assert!(!ssh_keygen_y(&git, "wrong").status.success());
    let y = ssh_keygen_y(&git, "correct horse");
    assert!(y.status.success(), "{}", stderr(&y));
    assert_eq!(stdout(&y).trim(), read_trimmed(&dir.join("id_ed25519.pub")));
    let agenix = ssh_keygen_y(&dir.join("id_ed25519_agenix"), "");
    assert!(agenix.status.success(), "agenix key must be unencrypted");
    // What ssh-keygen prints for the encrypted key's .pub is what we printed.
    assert!(stdout(&o)
        .lines()
        .any(|l| l == ssh_keygen_lf(&dir.join("id_ed25519.pub"))));

    // --only agenix with a passphrase is a usage error, nothing written.
    let d2 = tmp.path().join("ssh2");
    let o = af_stdin(
        tmp.path(),
        &[
            "create-keys",
            "--ssh-dir",
            s(&d2),
            "--only",
            "agenix",
            "--passphrase-stdin",
        ],
        b"pw\n",
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("stays unencrypted"), "{}", stderr(&o));
    assert!(!d2.exists());
    // An empty passphrase on stdin is a usage error too.
    let o = af_stdin(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&d2), "--passphrase-stdin"],
        b"\n",
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!d2.exists());
}

#[test]
fn create_dry_run_bad_comment_and_loose_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    let o = af(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&dir), "--dry-run", "--json"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    assert!(!dir.exists(), "dry run created the directory");

    let o = af(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&dir), "--comment", "a\nb"],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!dir.exists());

    // An existing directory with group/other bits is tightened to 0700, with a warning.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = af(
        tmp.path(),
        &["create-keys", "--ssh-dir", s(&dir), "--only", "agenix"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tightened it to 0700"),
        "{}",
        stderr(&o)
    );
    assert_eq!(mode_of(&dir), 0o700);
    assert!(!dir.join("id_ed25519").exists());

    // The default directory is ~/.ssh and the default comment user@host.
    let o = af(tmp.path(), &["create-keys", "--only", "git"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let line = read_trimmed(&tmp.path().join(".ssh/id_ed25519.pub"));
    let comment = line.split(' ').nth(2).unwrap();
    assert!(comment.contains('@'), "{line}");
}

// ---------------------------------------------------------------- copy-keys

/// A USB-stick layout made by ssh-keygen: `id_ed25519_github` without `.pub` (as the
/// templates keep it) and `id_ed25519_agenix` with its `.pub`.
fn usb(root: &Path) -> PathBuf {
    let src = root.join("usb");
    std::fs::create_dir_all(&src).unwrap();
    common::ssh_keygen(&src, "id_ed25519_github", "ed25519", "");
    std::fs::remove_file(src.join("id_ed25519_github.pub")).unwrap();
    common::ssh_keygen(&src, "id_ed25519_agenix", "ed25519", "");
    src
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn copy_maps_usb_names_and_regenerates_missing_pub() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let src = usb(tmp.path());
    let dir = tmp.path().join("ssh");
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src),
            "--ssh-dir",
            s(&dir),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let actions: Vec<(String, String)> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["file"].as_str().unwrap().to_string(),
                a["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = KEYS
        .iter()
        .map(|n| (s(&dir.join(n)).to_string(), "create".to_string()))
        .collect();
    assert_eq!(actions, expected);
    assert_eq!(v["actions"][1]["regenerated"], true);

    assert_eq!(
        std::fs::read(dir.join("id_ed25519")).unwrap(),
        std::fs::read(src.join("id_ed25519_github")).unwrap()
    );
    assert_eq!(
        std::fs::read(dir.join("id_ed25519_agenix.pub")).unwrap(),
        std::fs::read(src.join("id_ed25519_agenix.pub")).unwrap()
    );
    // The regenerated .pub is what ssh-keygen derives from the private key.
    let y = ssh_keygen_y(&src.join("id_ed25519_github"), "");
    assert_eq!(read_trimmed(&dir.join("id_ed25519.pub")), stdout(&y).trim());
    assert_eq!(mode_of(&dir), 0o700);
    for (n, m) in KEYS.iter().zip([0o600, 0o644, 0o600, 0o644]) {
        assert_eq!(mode_of(&dir.join(n)), m, "{n}");
    }
    assert_eq!(
        v["keys"][0]["fingerprint_line"].as_str().unwrap(),
        ssh_keygen_lf(&dir.join("id_ed25519.pub"))
    );

    // A source that calls the git key id_ed25519 works the same.
    let src2 = tmp.path().join("usb2");
    std::fs::create_dir(&src2).unwrap();
    let k = common::ssh_keygen(&src2, "id_ed25519", "ed25519", "");
    let dir2 = tmp.path().join("ssh2");
    let o = af(
        tmp.path(),
        &["copy-keys", "--from", s(&src2), "--ssh-dir", s(&dir2)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("no agenix identity"), "{}", stderr(&o));
    assert_eq!(read_trimmed(&dir2.join("id_ed25519.pub")), k.public_line);
    assert!(!dir2.join("id_ed25519_agenix").exists());
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn copy_identical_destination_is_a_no_op_and_fixes_only_modes() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let src = usb(tmp.path());
    let dir = tmp.path().join("ssh");
    let args = ["copy-keys", "--from", s(&src), "--ssh-dir", s(&dir)];
    assert_eq!(code(&af(tmp.path(), &args)), 0);
    let inode = std::fs::metadata(dir.join("id_ed25519")).unwrap().ino();
    let before = snapshot(&dir);
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let o = af(tmp.path(), &json_args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));
    let v = json(&o);
    assert!(v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["action"] == "unchanged"));
    assert_eq!(snapshot(&dir), before);
    assert_eq!(
        std::fs::metadata(dir.join("id_ed25519")).unwrap().ino(),
        inode
    );
    assert!(backup_dirs(&dir).is_empty());

    // Same bytes, loose mode: fixed in place, no backup, no refusal.
    std::fs::set_permissions(
        dir.join("id_ed25519"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = af(tmp.path(), &json_args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["actions"][0]["action"], "fix");
    assert_eq!(json(&o)["actions"][0]["previous_mode"], "0644");
    assert_eq!(mode_of(&dir.join("id_ed25519")), 0o600);
    assert_eq!(
        std::fs::metadata(dir.join("id_ed25519")).unwrap().ino(),
        inode
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn copy_different_destination_needs_force_and_backs_up() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let src = usb(tmp.path());
    let dir = tmp.path().join("ssh");
    // The destination already has other keys.
    assert_eq!(
        code(&af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)])),
        0
    );
    let before = snapshot(&dir);
    let args = ["copy-keys", "--from", s(&src), "--ssh-dir", s(&dir)];
    let o = af(tmp.path(), &args);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("refusing to overwrite"));
    assert_eq!(snapshot(&dir), before, "refusal changed the destination");
    let mut dry = args.to_vec();
    dry.extend(["--force", "--dry-run"]);
    assert_eq!(code(&af(tmp.path(), &dry)), 0);
    assert_eq!(snapshot(&dir), before, "dry run changed the destination");

    let mut forced = args.to_vec();
    forced.push("--force");
    let o = af(tmp.path(), &forced);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let baks = backup_dirs(&dir);
    assert_eq!(baks.len(), 1);
    for n in KEYS {
        assert_eq!(
            std::fs::read(baks[0].join(n)).unwrap(),
            before[&dir.join(n)],
            "backup of {n}"
        );
    }
    assert_eq!(
        std::fs::read(dir.join("id_ed25519_agenix")).unwrap(),
        std::fs::read(src.join("id_ed25519_agenix")).unwrap()
    );
    assert_eq!(mode_of(&dir.join("id_ed25519_agenix")), 0o600);
    // Now identical: a no-op.
    let after = snapshot(&dir);
    assert_eq!(code(&af(tmp.path(), &args)), 0);
    assert_eq!(snapshot(&dir), after);

    // A symlink at the destination is "different" too.
    std::fs::remove_file(dir.join("id_ed25519")).unwrap();
    std::os::unix::fs::symlink(src.join("id_ed25519_github"), dir.join("id_ed25519")).unwrap();
    let before = snapshot(&dir);
    assert_eq!(code(&af(tmp.path(), &args)), 3);
    assert_eq!(snapshot(&dir), before);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn copy_rejects_mismatched_pairs_and_bad_sources_writing_nothing() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let src = usb(tmp.path());
    let other = common::ssh_keygen(tmp.path(), "other", "ed25519", "");
    // The agenix .pub belongs to another key.
    std::fs::write(
        src.join("id_ed25519_agenix.pub"),
        format!("{}\n", other.public_line),
    )
    .unwrap();
    let dir = tmp.path().join("ssh");
    let o = af(
        tmp.path(),
        &["copy-keys", "--from", s(&src), "--ssh-dir", s(&dir)],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not match its public key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!dir.exists(), "nothing may be written");

    // Into an existing directory: its bytes stay.
    assert_eq!(
        code(&af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)])),
        0
    );
    let before = snapshot(&dir);
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src),
            "--ssh-dir",
            s(&dir),
            "--force",
        ],
    );
    assert_eq!(code(&o), 1);
    assert_eq!(snapshot(&dir), before);

    // A passphrase-protected agenix identity is refused (activation cannot prompt).
    let src2 = tmp.path().join("usb-enc");
    std::fs::create_dir(&src2).unwrap();
    common::ssh_keygen(&src2, "id_ed25519_agenix", "ed25519", "pw");
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src2),
            "--ssh-dir",
            s(&tmp.path().join("x")),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("passphrase-protected"),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("x").exists());

    // Garbage, an empty source, a missing source.
    let src3 = tmp.path().join("usb-bad");
    std::fs::create_dir(&src3).unwrap();
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src3),
            "--ssh-dir",
            s(&tmp.path().join("y")),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no keys found"), "{}", stderr(&o));
    std::fs::write(src3.join("id_ed25519"), b"not a key").unwrap();
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src3),
            "--ssh-dir",
            s(&tmp.path().join("y")),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!(
            "{}: not an OpenSSH private key",
            src3.join("id_ed25519").display()
        )),
        "{}",
        stderr(&o)
    );
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            "/nonexistent/usb",
            "--ssh-dir",
            s(&tmp.path().join("y")),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(!tmp.path().join("y").exists());
}

/// Removes a test user on drop.
struct TestUser(String);

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = run(Command::new("userdel").arg(&self.0));
    }
}

fn id_of(flag: &str, user: &str) -> u32 {
    let o = run(Command::new("id").arg(flag).arg(user));
    assert!(o.status.success(), "id {flag} {user}: {}", stderr(&o));
    stdout(&o).trim().parse().unwrap()
}

#[test]
#[ignore = "needs root, `ssh-keygen`, `useradd`"]
fn copy_owner_gives_files_and_new_dir_to_a_real_user() {
    require_root();
    require_tool("useradd");
    require_tool("ssh-keygen");
    let name = format!("afk-test-{}", std::process::id());
    let o = run(Command::new("useradd").args(["--no-create-home", "--user-group", &name]));
    assert!(o.status.success(), "useradd: {}", stderr(&o));
    let _guard = TestUser(name.clone());
    let (uid, gid) = (id_of("-u", &name), id_of("-g", &name));
    assert_ne!(uid, 0);

    let tmp = tempfile::tempdir().unwrap();
    let src = usb(tmp.path());
    let dir = tmp.path().join("home").join(&name).join(".ssh");
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src),
            "--ssh-dir",
            s(&dir),
            "--owner",
            &name,
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for p in std::iter::once(dir.clone()).chain(KEYS.iter().map(|n| dir.join(n))) {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{}", p.display());
    }
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&dir.join("id_ed25519")), 0o600);

    // USER:GROUP by number, on identical files: only ownership changes (a fix, no backup).
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src),
            "--ssh-dir",
            s(&dir),
            "--owner",
            &format!("{uid}:0"),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(json(&o)["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["action"] == "fix"));
    assert_eq!(std::fs::metadata(dir.join("id_ed25519")).unwrap().gid(), 0);
    assert!(backup_dirs(&dir).is_empty());

    // Unknown users are usage errors, before anything is written.
    let d2 = tmp.path().join("d2");
    let o = af(
        tmp.path(),
        &[
            "copy-keys",
            "--from",
            s(&src),
            "--ssh-dir",
            s(&d2),
            "--owner",
            "afk-no-such-user-x",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!d2.exists());
}

// ---------------------------------------------------------------- check-keys

#[test]
#[ignore = "needs `ssh-keygen`"]
fn check_reports_present_keys_with_fingerprints() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    assert_eq!(
        code(&af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)])),
        0
    );
    let o = af(tmp.path(), &["check-keys", "--ssh-dir", s(&dir)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "All SSH keys are present.");
    assert!(
        lines[1].starts_with("KEY") && lines[1].contains("PATH") && lines[1].contains("CHECKS")
    );
    for (line, name) in lines[2..4].iter().zip(["id_ed25519", "id_ed25519_agenix"]) {
        assert!(line.starts_with(name), "{line}");
        let lf = ssh_keygen_lf(&dir.join(format!("{name}.pub")));
        assert!(line.ends_with(&format!("ok: {lf}")), "{line} / {lf}");
    }
    assert_eq!(lines.len(), 4, "{out}");

    let o = af(tmp.path(), &["check-keys", "--ssh-dir", s(&dir), "--json"]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["all_present"], true);
    assert_eq!(v["secrets"], serde_json::json!([]));
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert_eq!(k["ok"], true);
        assert_eq!(k["mode"], "0600");
        assert_eq!(k["regular_file"], true);
        assert_eq!(k["matches_public"], true);
        assert_eq!(k["encrypted"], false);
    }
    // Default directory: ~/.ssh (absent here), everything missing.
    let o = af(tmp.path(), &["check-keys"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stdout(&o).lines().next(),
        Some("Some SSH keys are missing.")
    );
}

#[test]
fn check_reports_missing_keys_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    assert_eq!(
        code(&af(
            tmp.path(),
            &["create-keys", "--ssh-dir", s(&dir), "--only", "agenix"]
        )),
        0
    );
    let o = af(tmp.path(), &["check-keys", "--ssh-dir", s(&dir)]);
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Some SSH keys are missing.");
    assert_eq!(lines[1], "Missing: id_ed25519");
    assert!(lines[2].starts_with("KEY"));
    assert!(
        lines[3].starts_with("id_ed25519 ") && lines[3].ends_with("missing"),
        "{out}"
    );
    assert!(lines[4].starts_with("id_ed25519_agenix ") && lines[4].contains("ok: 256 SHA256:"));

    std::fs::remove_dir_all(&dir).unwrap();
    let o = af(tmp.path(), &["check-keys", "--ssh-dir", s(&dir), "--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["all_present"], false);
    assert!(v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["present"] == false));
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn check_fails_each_bad_key_state() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssh");
    let problems = |args: &[&str]| -> (i32, Vec<String>, Vec<String>) {
        let o = af(tmp.path(), args);
        let v = json(&o);
        let get = |i: usize| -> Vec<String> {
            v["keys"][i]["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect()
        };
        (code(&o), get(0), get(1))
    };
    let check = ["check-keys", "--ssh-dir", s(&dir), "--json"];
    assert_eq!(
        code(&af(tmp.path(), &["create-keys", "--ssh-dir", s(&dir)])),
        0
    );
    assert_eq!(problems(&check), (0, vec![], vec![]));

    // Group-readable private key.
    std::fs::set_permissions(
        dir.join("id_ed25519"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let (c, git, _) = problems(&check);
    assert_eq!(c, 1);
    assert_eq!(git, ["mode 0640 gives group/other access (want 0600)"]);
    std::fs::set_permissions(
        dir.join("id_ed25519"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    // .pub of another key; then no .pub.
    let other = common::ssh_keygen(tmp.path(), "other", "ed25519", "");
    std::fs::copy(tmp.path().join("other.pub"), dir.join("id_ed25519.pub")).unwrap();
    assert_eq!(problems(&check).1, ["does not match id_ed25519.pub"]);
    std::fs::remove_file(dir.join("id_ed25519.pub")).unwrap();
    assert_eq!(problems(&check).1, ["no id_ed25519.pub"]);

    // Unparsable private key.
    std::fs::write(dir.join("id_ed25519"), b"garbage").unwrap();
    let (c, git, _) = problems(&check);
    assert_eq!(c, 1);
    assert!(git[0].starts_with("not an OpenSSH private key"), "{git:?}");

    // A symlink instead of a regular file (present, but failing).
    std::fs::remove_file(dir.join("id_ed25519")).unwrap();
    std::os::unix::fs::symlink(&other.private, dir.join("id_ed25519")).unwrap();
    let o = af(tmp.path(), &["check-keys", "--ssh-dir", s(&dir)]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o).lines().next(), Some("All SSH keys are present."));
    assert_eq!(problems(&check).1, ["a symbolic link, not a regular file"]);

    // A passphrase-protected agenix identity.
    let enc = common::ssh_keygen(tmp.path(), "enc", "ed25519", "pw");
    std::fs::copy(&enc.private, dir.join("id_ed25519_agenix")).unwrap();
    std::fs::copy(
        tmp.path().join("enc.pub"),
        dir.join("id_ed25519_agenix.pub"),
    )
    .unwrap();
    let (_, _, agenix) = problems(&check);
    assert_eq!(
        agenix,
        ["passphrase-protected: activation cannot prompt for it"]
    );
}

#[test]
fn try_decrypt_without_rules_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = af(
        tmp.path(),
        &["check-keys", "--ssh-dir", s(tmp.path()), "--try-decrypt"],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

// ---------------------------------------------------------------- argv[0]

#[test]
#[ignore = "needs `ssh-keygen`"]
fn binary_answers_to_its_key_command_names() {
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["create-keys", "copy-keys", "check-keys"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_agefleet"), bin.join(name)).unwrap();
    }
    let via = |name: &str, args: &[&str]| -> Output {
        // The same scrubbed environment as `agefleet()`, under another program name.
        let template = agefleet(tmp.path());
        let mut c = Command::new(bin.join(name));
        c.env_clear();
        for (k, v) in template.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        run(c.args(args))
    };
    let dir = tmp.path().join("ssh");
    let o = via("create-keys", &["--ssh-dir", s(&dir), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["keys"].as_array().unwrap().len(), 2);

    let o = via("check-keys", &["--ssh-dir", s(&dir)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().next(), Some("All SSH keys are present."));

    let dir2 = tmp.path().join("ssh2");
    let o = via("copy-keys", &["--from", s(&dir), "--ssh-dir", s(&dir2)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for n in KEYS {
        assert_eq!(
            std::fs::read(dir.join(n)).unwrap(),
            std::fs::read(dir2.join(n)).unwrap()
        );
    }
    // Flags are passed through: a usage error is still exit 2 under the alias name.
    let o = via("check-keys", &["--no-such-flag"]);
    assert_eq!(code(&o), 2);
    let o = via("create-keys", &["--help"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("--passphrase-stdin"));
}

// ---------------------------------------------------------------- check-keys with rules

/// A fleet: keys made by create-keys, and a rules file (in its own directory, away from the
/// working directory) with secrets encrypted by the reference `age` CLI.
struct Fleet {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    ssh: PathBuf,
    rules: PathBuf,
    secrets: PathBuf,
}

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().to_path_buf();
    let ssh = home.join("ssh");
    let o = af(&home, &["create-keys", "--ssh-dir", s(&ssh)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mine = read_trimmed(&ssh.join("id_ed25519_agenix.pub"));
    let other = common::ssh_keygen(&home, "other_host", "ed25519", "");
    let (_, x25519) = common::age_keygen(&home, "admin.txt");
    let secrets = home.join("repo");
    std::fs::create_dir_all(secrets.join("sub")).unwrap();
    let both: &[&str] = &[&mine, &other.public_line, &x25519];
    let theirs: &[&str] = &[&other.public_line, &x25519];
    let only_mine: &[&str] = &[&mine];
    let rules = common::write_rules(
        &secrets,
        &[
            ("mine.age", both, false),
            ("theirs.age", theirs, false),
            ("sub/armored.age", only_mine, true),
            ("not-yet.age", only_mine, false),
        ],
    );
    common::age_encrypt(both, false, b"for me", &secrets.join("mine.age"));
    common::age_encrypt(theirs, false, b"not for me", &secrets.join("theirs.age"));
    common::age_encrypt(
        only_mine,
        true,
        b"armored",
        &secrets.join("sub/armored.age"),
    );
    Fleet {
        _tmp: tmp,
        home,
        ssh,
        rules,
        secrets,
    }
}

/// (file, decryptable, status, method) per secret.
fn secret_rows(v: &Value) -> Vec<(String, bool, String, String)> {
    v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["file"].as_str().unwrap().to_string(),
                x["decryptable"].as_bool().unwrap(),
                x["status"].as_str().unwrap().to_string(),
                x["method"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(file: &str, ok: bool, status: &str, method: &str) -> (String, bool, String, String) {
    (file.into(), ok, status.into(), method.into())
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn check_with_rules_lists_what_the_agenix_identity_can_open() {
    require_tool("age");
    require_tool("age-keygen");
    require_tool("ssh-keygen");
    let f = fleet();
    let args = ["check-keys", "--ssh-dir", s(&f.ssh), "--rules", s(&f.rules)];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let o = af(&f.home, &json_args);
    // A rule whose file does not exist yet is reported, not a failure.
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(
        secret_rows(&v),
        [
            row("mine.age", true, "openable", "header"),
            row("not-yet.age", false, "missing", "header"),
            row("sub/armored.age", true, "openable", "header"),
            row("theirs.age", false, "not-recipient", "header"),
        ]
    );
    assert_eq!(
        PathBuf::from(v["secrets"][0]["path"].as_str().unwrap()),
        f.secrets.join("mine.age")
    );

    // The same through $RULES, as a table.
    let o =
        run(agefleet(&f.home)
            .env("RULES", &f.rules)
            .args(["check-keys", "--ssh-dir", s(&f.ssh)]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().next(), Some("All SSH keys are present."));
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
            .to_string()
    };
    assert!(
        out.lines()
            .any(|l| l.starts_with("SECRET") && l.contains("CAN OPEN")),
        "{out}"
    );
    assert!(line("mine.age").contains("yes (header)"));
    assert!(line("theirs.age").contains(" no"));
    assert!(line("not-yet.age").contains("missing file"));

    // A relative rules path from the secrets directory (as agenix is used): same answer.
    let o = run(agefleet(&f.home).current_dir(&f.secrets).args([
        "check-keys",
        "--ssh-dir",
        s(&f.ssh),
        "--rules",
        "secrets.nix",
        "--json",
    ]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(secret_rows(&json(&o)), secret_rows(&v));

    // --try-decrypt proves it.
    let mut tried = json_args.clone();
    tried.push("--try-decrypt");
    let o = af(&f.home, &tried);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        secret_rows(&json(&o)),
        [
            row("mine.age", true, "openable", "decryption"),
            row("not-yet.age", false, "missing", "decryption"),
            row("sub/armored.age", true, "openable", "decryption"),
            row("theirs.age", false, "not-recipient", "decryption"),
        ]
    );
    // No plaintext anywhere in the output.
    assert!(!String::from_utf8_lossy(&o.stdout).contains("for me"));
    assert!(!stderr(&o).contains("for me"));

    // A loose mode fails the check, but the secrets are still listed.
    let agenix = f.ssh.join("id_ed25519_agenix");
    std::fs::set_permissions(&agenix, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = af(&f.home, &json_args);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(
        secret_rows(&v)[0],
        row("mine.age", true, "openable", "header")
    );
}

#[test]
#[ignore = "needs `age-keygen`, `age`, `ssh-keygen`"]
fn check_with_rules_fails_on_unreadable_or_undecryptable_secrets() {
    require_tool("age");
    require_tool("age-keygen");
    require_tool("ssh-keygen");
    let f = fleet();
    let base = [
        "check-keys",
        "--ssh-dir",
        s(&f.ssh),
        "--rules",
        s(&f.rules),
        "--json",
    ];

    // A payload corrupted after the header: the header still names us, so only
    // --try-decrypt can tell.
    let mine = f.secrets.join("mine.age");
    let mut bytes = std::fs::read(&mine).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&mine, &bytes).unwrap();
    let o = af(&f.home, &base);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        secret_rows(&json(&o))[0],
        row("mine.age", true, "openable", "header")
    );
    let mut tried = base.to_vec();
    tried.push("--try-decrypt");
    let o = af(&f.home, &tried);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(
        secret_rows(&v)[0],
        row("mine.age", false, "error", "decryption")
    );
    assert!(v["secrets"][0]["error"]
        .as_str()
        .unwrap()
        .contains("decryption failed"));
    assert_eq!(v["ok"], false);

    // Not an age file at all: an error with or without --try-decrypt.
    std::fs::write(f.secrets.join("theirs.age"), b"this is not age\n").unwrap();
    let o = af(&f.home, &base);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(
        secret_rows(&json(&o))[3],
        row("theirs.age", false, "error", "header")
    );
    assert!(stderr(&o).contains(&format!("{}:", f.secrets.join("theirs.age").display())));

    // With a broken agenix identity the secrets cannot be checked: failure.
    std::fs::write(f.ssh.join("id_ed25519_agenix"), b"garbage").unwrap();
    let o = af(&f.home, &base);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("secrets not checked"), "{}", stderr(&o));
    assert!(json(&o)["secrets"].as_array().unwrap().is_empty());

    // A rules file that does not evaluate: one error naming it.
    let bad = f.secrets.join("bad.nix");
    std::fs::write(&bad, "{ \"x.age\".publicKeys = [ ; }\n").unwrap();
    let o = af(
        &f.home,
        &["check-keys", "--ssh-dir", s(&f.ssh), "--rules", s(&bad)],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains(s(&bad)), "{}", stderr(&o));
}

#[test]
#[ignore = "needs root, `setpriv`, `ssh-keygen`"]
fn copy_owner_as_non_root_fails_preflight() {
    require_root();
    require_tool("setpriv");
    require_tool("ssh-keygen");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = usb(tmp.path());
    let dir = tmp.path().join("ssh");
    // As `nobody`, giving files to root is refused before anything is read or written.
    let o = run(Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_agefleet"))
        .args([
            "copy-keys",
            "--from",
            s(&src),
            "--ssh-dir",
            s(&dir),
            "--owner",
            "root",
        ]));
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("only root"), "{}", stderr(&o));
    assert!(!dir.exists());
}
