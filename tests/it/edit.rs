//! `edit` / `-e`: stdin as plaintext, a real editor under a pty, the agenix behaviours kept and
//! the agenix bugs fixed.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use crate::common::pty::run_in_pty;
use crate::common::*;

fn mtime(p: &std::path::Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// A fleet whose rules give `x.age` to the admin key, and `x.age` made by the `age` CLI with
/// `plaintext`.
fn fleet_with_secret(plaintext: &[u8]) -> (Fleet, std::path::PathBuf) {
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let p = f.age_file("x.age", &[&admin], plaintext);
    (f, p)
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn new_secret_from_stdin_needs_no_identity_and_age_decrypts_it() {
    require_tool("age");
    let f = Fleet::new();
    let host = ssh_keygen(f.tmp.path(), "host", "ed25519", "");
    let admin = f.admin.public_line.clone();
    f.rules(&[("new.age", &[&admin, &host.public_line], false)]);
    // No identity at all: remove the admin key.
    std::fs::remove_file(&f.admin.private).unwrap();
    let out = f.run_stdin(&["-e", "new.age"], b"fresh\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.age_plaintext(&host.private, "new.age"), b"fresh\n");
    assert_eq!(mode_of(&f.path("new.age")), 0o644);
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn armor_rule_writes_armored_file() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("a.age", &[&admin], true)]);
    let out = f.run_stdin(&["edit", "a.age"], b"armored");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(f.path("a.age")).unwrap();
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    assert_eq!(f.age_plaintext(&f.admin.private, "a.age"), b"armored");
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn unchanged_content_is_not_reencrypted_and_mode_is_kept() {
    require_tool("age");
    let (f, p) = fleet_with_secret(b"same");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::read(&p).unwrap();
    let t0 = mtime(&p);
    std::thread::sleep(Duration::from_millis(20));
    let out = f.run_stdin(&["-e", "x.age"], b"same");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("wasn't changed"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert_eq!(mtime(&p), t0);
    // Changed content: re-encrypted, mode 0600 kept.
    let out = f.run_stdin(&["-e", "x.age"], b"different");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.age_plaintext(&f.admin.private, "x.age"), b"different");
    assert_eq!(mode_of(&p), 0o600);
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn names_with_spaces_and_leading_dash() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[
        ("my secret.age", &[&admin], false),
        ("-dash.age", &[&admin], false),
        ("dir/sub dir/x.age", &[&admin], false),
    ]);
    std::fs::create_dir_all(f.path("dir/sub dir")).unwrap();
    for (arg, name) in [
        ("my secret.age", "my secret.age"),
        ("./-dash.age", "-dash.age"),
        ("dir/sub dir/x.age", "dir/sub dir/x.age"),
    ] {
        let out = f.run_stdin(&["edit", arg], name.as_bytes());
        assert!(out.status.success(), "{arg}: {}", stderr(&out));
        assert_eq!(f.age_plaintext(&f.admin.private, name), name.as_bytes());
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn a_bad_rule_elsewhere_does_not_stop_editing() {
    require_tool("age");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[
        ("good.age", &[&admin], false),
        ("bad.age", &["ssh-ed25519 AAAAnot-a-key"], false),
    ]);
    let out = f.run_stdin(&["-e", "good.age"], b"fine");
    assert!(out.status.success(), "{}", stderr(&out));
    // The bad entry itself: one clear error naming it, nothing written.
    let out = f.run_stdin(&["-e", "bad.age"], b"nope");
    assert_clean_failure(&out, "bad.age");
    assert!(!f.path("bad.age").exists());
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn no_rule_and_bad_rules_file_fail_cleanly() {
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let out = f.run_stdin(&["-e", "other.age"], b"x");
    assert_clean_failure(&out, "other.age");
    assert!(!f.path("other.age").exists());
    std::fs::write(f.path("secrets.nix"), "{ \"x.age\".publicKeys = [ ; }").unwrap();
    let out = f.run_stdin(&["-e", "x.age", "--nix-eval", "builtin"], b"x");
    assert_clean_failure(&out, "secrets.nix:1:");
    assert!(!f.path("x.age").exists());
}

/// Writes an editor script that records what it saw and then runs `action` on the file.
fn editor(f: &Fleet, action: &str) -> std::path::PathBuf {
    let log = f.tmp.path().join("editor.log");
    let script = f.tmp.path().join("editor.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# $1 = --wait (from EDITOR), $2 = the plaintext file\n\
             f=\"$2\"\n\
             {{ echo \"args=$1\"; echo \"file=$f\"; echo \"dir=$(dirname \"$f\")\";\n\
               stat -c 'dirmode=%a' \"$(dirname \"$f\")\"; stat -f -c 'fstype=%T' \"$(dirname \"$f\")\";\n\
               [ -e \"$f\" ] && stat -c 'filemode=%a' \"$f\"; echo \"ppid=$PPID\"; }} > {log}\n\
             {action}\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn pty_env(f: &Fleet, editor: &std::path::Path) -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("HOME", f.home.clone().into_os_string()),
        ("PATH", std::env::var_os("PATH").unwrap()),
        ("EDITOR", format!("{} --wait", editor.display()).into()),
        ("NO_COLOR", "1".into()),
    ]
}

fn edit_in_pty(f: &Fleet, editor: &std::path::Path, name: &str) -> common::pty::PtyRun {
    let env = pty_env(f, editor);
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    run_in_pty(
        &env,
        &f.dir,
        &[env!("CARGO_BIN_EXE_agefleet"), "-e", name],
        b"",
        Duration::from_secs(60),
    )
}

fn log_field(f: &Fleet, key: &str) -> String {
    let log = std::fs::read_to_string(f.tmp.path().join("editor.log")).unwrap();
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

#[test]
#[ignore = "needs `age`, `script`, `ssh-keygen`"]
fn editor_gets_private_tmpfs_copy_and_its_result_is_encrypted() {
    require_tool("age");
    require_tool("script");
    let (f, _) = fleet_with_secret(b"old\n");
    let ed = editor(&f, "grep -q '^old$' \"$f\" && printf 'new\\n' > \"$f\"");
    let run = edit_in_pty(&f, &ed, "x.age");
    assert_eq!(run.code, Some(0), "{}", run.screen);
    assert_eq!(f.age_plaintext(&f.admin.private, "x.age"), b"new\n");
    // EDITOR was split into words, the plaintext sat in a 0700 dir on tmpfs as a 0600 file
    // with the secret's basename, and the dir is gone.
    assert_eq!(log_field(&f, "args"), "--wait");
    assert_eq!(log_field(&f, "dirmode"), "700");
    assert_eq!(log_field(&f, "filemode"), "600");
    assert!(
        matches!(log_field(&f, "fstype").as_str(), "tmpfs" | "ramfs"),
        "{}",
        log_field(&f, "fstype")
    );
    assert!(log_field(&f, "file").ends_with("/x.age"));
    assert!(
        !std::path::Path::new(&log_field(&f, "dir")).exists(),
        "temp dir left behind"
    );
}

#[test]
#[ignore = "needs `age`, `script`, `ssh-keygen`"]
fn failing_editor_leaves_secret_untouched() {
    require_tool("age");
    require_tool("script");
    let (f, p) = fleet_with_secret(b"keep");
    let before = std::fs::read(&p).unwrap();
    let ed = editor(&f, "printf 'garbage' > \"$f\"; exit 3");
    let run = edit_in_pty(&f, &ed, "x.age");
    assert_eq!(run.code, Some(1), "{}", run.screen);
    assert!(run.screen.contains("untouched"), "{}", run.screen);
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert!(!std::path::Path::new(&log_field(&f, "dir")).exists());
}

#[test]
#[ignore = "needs `script`, `ssh-keygen`"]
fn new_secret_not_saved_is_not_created() {
    require_tool("script");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false)]);
    let ed = editor(&f, "true");
    let run = edit_in_pty(&f, &ed, "x.age");
    assert_eq!(run.code, Some(0), "{}", run.screen);
    assert!(run.screen.contains("wasn't created"), "{}", run.screen);
    assert!(!f.path("x.age").exists());
}

#[test]
#[ignore = "needs `age`, `script`, `ssh-keygen`"]
fn sigterm_during_edit_removes_plaintext_and_keeps_secret() {
    require_tool("age");
    require_tool("script");
    let (f, p) = fleet_with_secret(b"keep");
    let before = std::fs::read(&p).unwrap();
    // The editor kills its parent (agefleet) with SIGTERM, then would overwrite the file.
    let ed = editor(&f, "kill -TERM $PPID; sleep 1; printf 'late' > \"$f\"");
    let run = edit_in_pty(&f, &ed, "x.age");
    assert_ne!(run.code, Some(0), "{}", run.screen);
    assert_eq!(std::fs::read(&p).unwrap(), before);
    let dir = log_field(&f, "dir");
    // The editor may recreate its file after the cleanup; give it its second, then check the
    // plaintext copy made by agefleet is gone.
    std::thread::sleep(Duration::from_millis(1500));
    let leftover = std::path::Path::new(&dir).join("x.age");
    let content = std::fs::read(&leftover).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&content).contains("keep"),
        "plaintext left in {dir}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs `git`, `ssh-keygen`"]
fn untracked_secret_warns_and_git_add_adds_it() {
    require_tool("git");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    f.rules(&[("a.age", &[&admin], false), ("b.age", &[&admin], false)]);
    let git = |args: &[&str]| {
        let out = run(std::process::Command::new("git")
            .args(args)
            .current_dir(&f.dir));
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    git(&["init", "-q"]);
    git(&["add", "secrets.nix"]);
    let out = f.run_stdin(&["edit", "a.age"], b"a");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not tracked by git") && err.contains("git add a.age"),
        "{err}"
    );
    assert_eq!(git(&["status", "--porcelain", "a.age"]).trim(), "?? a.age");
    let out = f.run_stdin(&["edit", "--git-add", "b.age"], b"b");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not tracked"), "{}", stderr(&out));
    assert_eq!(git(&["status", "--porcelain", "b.age"]).trim(), "A b.age");
    // Tracked now: editing again gives no warning.
    let out = f.run_stdin(&["edit", "b.age"], b"b2");
    assert!(!stderr(&out).contains("not tracked"), "{}", stderr(&out));
}

/// A secret that is a symlink is refused before the editor or stdin is used, with a message
/// that says so (a rewrite would replace the link, not its target).
#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn symlinked_secret_is_refused_up_front_and_clearly() {
    require_tool("age");
    let (f, real) = fleet_with_secret(b"real");
    let moved = f.path("real.age");
    std::fs::rename(&real, &moved).unwrap();
    std::os::unix::fs::symlink("real.age", f.path("x.age")).unwrap();
    let out = f.run_stdin(&["-e", "x.age"], b"typed");
    assert_clean_failure(&out, "x.age is a symlink (to real.age)");
    assert_eq!(f.age_plaintext(&f.admin.private, "real.age"), b"real");
    assert!(std::fs::symlink_metadata(f.path("x.age"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// With a terminal, `EDITOR=:` (a shell builtin) runs like agenix runs it: nothing is edited
/// and an up-to-date secret is left as it is; a quoted editor path with a space works, since
/// `EDITOR` is shell code.
#[test]
#[ignore = "needs `age`, `script`, `ssh-keygen`"]
fn editor_runs_through_the_shell_on_a_terminal() {
    require_tool("age");
    require_tool("script");
    let (f, p) = fleet_with_secret(b"kept\n");
    let before = std::fs::read(&p).unwrap();
    let env = |editor: &str| {
        vec![
            ("HOME", f.home.clone().into_os_string()),
            ("PATH", std::env::var_os("PATH").unwrap()),
            ("EDITOR", editor.into()),
            ("NO_COLOR", "1".into()),
        ]
    };
    let run = |editor: &str| {
        let env = env(editor);
        let env: Vec<(&str, &std::ffi::OsStr)> =
            env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let argv = [env!("CARGO_BIN_EXE_agefleet"), "-e", "x.age"];
        run_in_pty(&env, &f.dir, &argv, b"", Duration::from_secs(60))
    };
    let colon = run(":");
    assert_eq!(colon.code, Some(0), "{}", colon.screen);
    assert!(colon.screen.contains("wasn't changed"), "{}", colon.screen);
    assert_eq!(std::fs::read(&p).unwrap(), before);

    let spaced = f.tmp.path().join("my editors");
    std::fs::create_dir(&spaced).unwrap();
    let script = spaced.join("ed.sh");
    std::fs::write(&script, "#!/bin/sh\nprintf 'via %s\\n' \"$1\" > \"$2\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let quoted = run(&format!("'{}' shell", script.display()));
    assert_eq!(quoted.code, Some(0), "{}", quoted.screen);
    assert_eq!(f.age_plaintext(&f.admin.private, "x.age"), b"via shell\n");
}

/// An empty stdin (cron, CI, `ssh host agefleet edit …` without `-t`) does not empty an
/// existing non-empty secret: refused, exit 1, the file byte for byte as it was. A new secret
/// may start empty, and `--allow-empty` stores an empty one.
#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn empty_stdin_does_not_empty_a_secret_without_allow_empty() {
    require_tool("age");
    let (f, p) = fleet_with_secret(b"keep");
    let before = std::fs::read(&p).unwrap();
    for argv in [&["-e", "x.age"][..], &["edit", "x.age"]] {
        let out = f.run_stdin(argv, b"");
        assert_eq!(out.status.code(), Some(1), "{argv:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim_end(),
            "agefleet: standard input was empty; pass --allow-empty to store an empty secret"
        );
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }
    let admin = f.admin.public_line.clone();
    f.rules(&[("x.age", &[&admin], false), ("new.age", &[&admin], false)]);
    let out = f.run_stdin(&["edit", "new.age"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.age_plaintext(&f.admin.private, "new.age"), b"");
    let out = f.run_stdin(&["edit", "--allow-empty", "x.age"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.age_plaintext(&f.admin.private, "x.age"), b"");
    // Empty stays empty without the flag (nothing is lost).
    let out = f.run_stdin(&["edit", "x.age"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
}
