//! age plugins through agefleet, with the real test plugin (examples/age-plugin-agefleettest.rs)
//! speaking the plugin protocol: encrypt, decrypt, rekey, status, prompts on the terminal,
//! no terminal, plugin missing. Interop with the Go `age` CLI, which runs the same plugin.

use std::time::Duration;

use crate::common::plugin::{path_with_plugin, plugin_keygen};
use crate::common::pty::run_in_pty;
use crate::common::*;

/// A fleet whose `p.age` rule lists a plugin recipient (and the admin when `with_admin`),
/// and agefleet commands with the plugin on PATH.
struct PluginFleet {
    f: Fleet,
    identity: std::path::PathBuf,
    recipient: String,
}

impl PluginFleet {
    fn new(with_admin: bool) -> PluginFleet {
        let f = Fleet::new();
        let (identity, recipient) = plugin_keygen(f.tmp.path(), "plugin-identity.txt");
        let admin = f.admin.public_line.clone();
        let keys: Vec<&str> = if with_admin {
            vec![&recipient, &admin]
        } else {
            vec![&recipient]
        };
        f.rules(&[("p.age", &keys, false)]);
        PluginFleet {
            f,
            identity,
            recipient,
        }
    }

    fn cmd(&self) -> std::process::Command {
        let mut c = self.f.cmd();
        c.env("PATH", path_with_plugin());
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        run(self.cmd().args(args))
    }

    fn create(&self, plaintext: &[u8]) {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(["-e", "p.age"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(plaintext).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }

    fn id(&self) -> String {
        self.identity.to_string_lossy().into_owned()
    }
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn plugin_secret_round_trips_and_go_age_decrypts_it() {
    require_tool("age");
    let p = PluginFleet::new(false);
    p.create(b"plugin only");
    let header = std::fs::read(p.f.path("p.age")).unwrap();
    assert!(
        String::from_utf8_lossy(&header).contains("-> agefleettest "),
        "no plugin stanza"
    );
    let out = p.run(&["-d", "p.age", "-i", &p.id()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"plugin only");
    // The Go reference runs the same plugin binary for the identity.
    let go = run(std::process::Command::new("age")
        .env("PATH", path_with_plugin())
        .args(["-d", "-i"])
        .arg(&p.identity)
        .arg(p.f.path("p.age")));
    assert!(go.status.success(), "{}", stderr(&go));
    assert_eq!(go.stdout, b"plugin only");
    // Rekey with the plugin identity (the file has no stanza for anything else).
    let out = p.run(&["-r", "-i", &p.id()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.run(&["-d", "p.age", "-i", &p.id()]);
    assert_eq!(out.stdout, b"plugin only", "{}", stderr(&out));
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn status_does_not_claim_to_check_plugin_recipients() {
    let p = PluginFleet::new(true);
    p.create(b"x");
    let out = p.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &v["files"][0];
    assert_eq!(entry["file"], "p.age");
    assert_eq!(entry["problems"], serde_json::json!([]), "{v}");
    assert_eq!(entry["plugin_recipients_unchecked"], 1, "{v}");
    let out = p.run(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 age plugin recipient(s) not checked"),
        "{}",
        stdout(&out)
    );
    // The SSH half is still checked: dropping the admin from the header is drift.
    let only_plugin = std::fs::read(p.f.path("p.age")).unwrap();
    let q = PluginFleet::new(false);
    q.create(b"y");
    let moved = std::fs::read(q.f.path("p.age")).unwrap();
    std::fs::write(p.f.path("p.age"), moved).unwrap();
    let out = p.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("recipients-drift"),
        "{}",
        stdout(&out)
    );
    std::fs::write(p.f.path("p.age"), only_plugin).unwrap();
    // status reads headers only: no plugin needed on PATH.
    let out = run(p.f.cmd().args(["status", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
#[ignore = "needs `script`, `setsid`, `ssh-keygen`"]
fn plugin_prompts_on_the_terminal_and_fails_cleanly_without_one() {
    require_tool("script");
    require_tool("setsid");
    let p = PluginFleet::new(false);
    p.create(b"pin protected");
    let bin = env!("CARGO_BIN_EXE_agefleet");
    let path = path_with_plugin();
    let id = p.id();
    let env = |pin: &'static str| {
        vec![
            ("PATH", path.as_os_str()),
            ("HOME", p.f.home.as_os_str()),
            ("NO_COLOR", std::ffi::OsStr::new("1")),
            ("AGEFLEETTEST_PIN", std::ffi::OsStr::new(pin)),
        ]
    };
    let argv = [bin, "-d", "p.age", "-i", &id];
    let good = run_in_pty(
        &env("4321"),
        &p.f.dir,
        &argv,
        b"4321\n",
        Duration::from_secs(30),
    );
    assert_eq!(good.code, Some(0), "{}", good.screen);
    assert!(good.screen.contains("agefleettest PIN:"), "{}", good.screen);
    assert!(
        good.screen.contains("touch the imaginary key"),
        "{}",
        good.screen
    );
    assert!(good.screen.contains("pin protected"), "{}", good.screen);
    assert!(
        !good.screen.contains("4321\r\npin"),
        "PIN echoed: {}",
        good.screen
    );

    let bad = run_in_pty(
        &env("4321"),
        &p.f.dir,
        &argv,
        b"0000\n",
        Duration::from_secs(30),
    );
    assert_eq!(bad.code, Some(1), "{}", bad.screen);
    assert!(bad.screen.contains("wrong PIN"), "{}", bad.screen);
    assert!(!bad.screen.contains("pin protected"), "{}", bad.screen);

    // No terminal: the plugin's request is declined at once, no hang.
    let out = run(std::process::Command::new("setsid")
        .arg("-w")
        .arg(bin)
        .args(["-d", "p.age", "-i", &id])
        .current_dir(&p.f.dir)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", &p.f.home)
        .env("AGEFLEETTEST_PIN", "4321"));
    assert_clean_failure(&out, "no PIN given");
    assert!(out.stdout.is_empty());
}

#[test]
#[ignore = "needs `script`, `ssh-keygen`"]
fn plugin_confirmations_are_asked_on_the_terminal() {
    require_tool("script");
    let p = PluginFleet::new(false);
    p.create(b"confirmed");
    let bin = env!("CARGO_BIN_EXE_agefleet");
    let path = path_with_plugin();
    let id = p.id();
    let env = [
        ("PATH", path.as_os_str()),
        ("HOME", p.f.home.as_os_str()),
        ("NO_COLOR", std::ffi::OsStr::new("1")),
        ("AGEFLEETTEST_CONFIRM", std::ffi::OsStr::new("1")),
    ];
    let argv = [bin, "-d", "p.age", "-i", &id];
    // An answer that is neither choice is asked again.
    let yes = run_in_pty(
        &env,
        &p.f.dir,
        &argv,
        b"maybe\nyes\n",
        Duration::from_secs(30),
    );
    assert_eq!(yes.code, Some(0), "{}", yes.screen);
    assert_eq!(
        yes.screen
            .matches("use the imaginary key? [yes/no]")
            .count(),
        2,
        "{}",
        yes.screen
    );
    assert!(yes.screen.contains("confirmed"), "{}", yes.screen);
    let no = run_in_pty(&env, &p.f.dir, &argv, b"no\n", Duration::from_secs(30));
    assert_eq!(no.code, Some(1), "{}", no.screen);
    assert!(no.screen.contains("declined"), "{}", no.screen);
    // End of input on the terminal is no answer: declined at once, no loop.
    let eof = run_in_pty(&env, &p.f.dir, &argv, b"\x04", Duration::from_secs(30));
    assert_eq!(eof.code, Some(1), "{}", eof.screen);
    assert!(eof.screen.contains("declined"), "{}", eof.screen);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn missing_plugin_is_a_clear_error_and_nothing_is_written() {
    let p = PluginFleet::new(true);
    // Without the plugin on PATH: encrypting to it fails, naming the binary.
    let out = run(p.f.cmd().args(["-e", "p.age"]));
    assert_clean_failure(&out, "age-plugin-agefleettest");
    assert!(!p.f.path("p.age").exists());
    // Decrypting with a plugin identity whose plugin is missing fails the same way, while
    // the admin key alone still opens a file that has its stanza.
    p.create(b"both");
    let out = run(p.f.cmd().args(["-d", "p.age", "-i", &p.id()]));
    assert_clean_failure(&out, "age-plugin-agefleettest");
    let out = run(p.f.cmd().args(["-d", "p.age"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"both");
    assert!(p.recipient.starts_with("age1agefleettest1"));
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn bad_plugin_strings_are_rejected_by_name() {
    let f = Fleet::new();
    // A plugin recipient with a broken checksum.
    let (_, good) = plugin_keygen(f.tmp.path(), "id");
    let mut bad = good.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'q' { 'p' } else { 'q' });
    f.rules(&[("x.age", &[&bad], false)]);
    let out = run(f
        .cmd()
        .env("PATH", path_with_plugin())
        .args(["-e", "x.age"]));
    assert_clean_failure(&out, "invalid age plugin recipient");
    // A broken plugin identity line names the file and line.
    let id = f.tmp.path().join("bad-id.txt");
    std::fs::write(&id, "# comment\nAGE-PLUGIN-AGEFLEETTEST-1QQQQ\n").unwrap();
    f.rules(&[("x.age", &[&good], false)]);
    f.age_file("y.age", &[&f.admin.public_line], b"y");
    let out = run(f
        .cmd()
        .env("PATH", path_with_plugin())
        .args(["-d", "y.age", "-i"])
        .arg(&id));
    assert_clean_failure(&out, "line 2: invalid age plugin identity");
}
