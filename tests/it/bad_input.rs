//! Bad-input sweep: malformed rules, `.age` files, identities, manifests, key
//! directories and argv, each run through the real binary. Every case must exit non-zero
//! without a panic or stack overflow, print its error as one line naming the input (and
//! line:col for rules), and leave every file of its test directory as it was.
//!
//! The rules corpus lives in `tests/bad_input/*.nix`; the other inputs are built per case.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{require_tool, stderr, stdout};

/// What every test ciphertext holds; no failing case may print it.
const PLAINTEXT: &[u8] = b"S3CRET-PLAINTEXT-7731";

/// Keys and ciphertexts made once by the reference tools and copied into each case.
struct Shared {
    _tmp: tempfile::TempDir,
    admin_private: Vec<u8>,
    admin_public: String,
    locked_private: Vec<u8>,
    locked_public: String,
    good_age: Vec<u8>,
    good_armored: Vec<u8>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let admin = common::ssh_keygen(tmp.path(), "admin", "ed25519", "");
        let locked = common::ssh_keygen(tmp.path(), "locked", "ed25519", "secret passphrase");
        let bin = tmp.path().join("good.age");
        common::age_encrypt(&[&admin.public_line], false, PLAINTEXT, &bin);
        let armored = tmp.path().join("good-armored.age");
        common::age_encrypt(&[&admin.public_line], true, PLAINTEXT, &armored);
        Shared {
            admin_private: std::fs::read(&admin.private).unwrap(),
            admin_public: admin.public_line,
            locked_private: std::fs::read(&locked.private).unwrap(),
            locked_public: locked.public_line,
            good_age: std::fs::read(bin).unwrap(),
            good_armored: std::fs::read(armored).unwrap(),
            _tmp: tmp,
        }
    })
}

/// How the error is expected to be reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    /// The command stops: exactly one `agefleet: …` line (warnings allowed besides).
    Fatal,
    /// The command reports per item (`error: …` lines, a summary, a table on stdout).
    Report,
}

/// One invocation: what to run and what its failure must look like.
struct Run {
    args: Vec<String>,
    /// Text the error must contain: the input's name (and line:col for rules).
    needle: String,
    style: Style,
    code: i32,
    /// Run under `setsid -w`: no controlling terminal.
    setsid: bool,
    /// Extra environment (the test otherwise runs with a scrubbed one).
    env: Vec<(&'static str, String)>,
}

impl Run {
    fn with_args(self, args: &[&str], needle: &str) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            needle: needle.to_string(),
            ..self
        }
    }
}

fn fatal(args: &[&str], needle: &str) -> Run {
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        needle: needle.to_string(),
        style: Style::Fatal,
        code: 1,
        setsid: false,
        env: Vec::new(),
    }
}

fn report(args: &[&str], needle: &str) -> Run {
    Run {
        style: Style::Report,
        ..fatal(args, needle)
    }
}

fn usage(args: &[&str], needle: &str) -> Run {
    Run {
        code: 2,
        ..fatal(args, needle)
    }
}

/// A case's directory: `home/.ssh/id_ed25519` is the admin key, `secrets.nix` maps `a.age`
/// to it, nothing else exists until the case's setup writes it.
struct Dir {
    root: PathBuf,
}

impl Dir {
    fn new(tmp: &Path) -> Dir {
        let s = shared();
        let ssh = tmp.join("home/.ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700)).unwrap();
        let d = Dir {
            root: tmp.to_path_buf(),
        };
        d.write_mode("home/.ssh/id_ed25519", &s.admin_private, 0o600);
        d.write("home/.ssh/id_ed25519.pub", s.admin_public.as_bytes());
        d.rules(&format!(
            "{{ \"a.age\".publicKeys = [ \"{}\" ]; }}\n",
            s.admin_public
        ));
        d
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn write_mode(&self, rel: &str, bytes: &[u8], mode: u32) {
        self.write(rel, bytes);
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn rules(&self, text: &str) {
        self.write("secrets.nix", text.as_bytes());
    }

    /// Copies `tests/bad_input/<name>` in as `secrets.nix`.
    fn corpus_rules(&self, name: &str) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/bad_input")
            .join(name);
        self.write("secrets.nix", &std::fs::read(src).unwrap());
    }

    fn symlink(&self, target: &str, rel: &str) {
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
    }

    fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).unwrap();
    }
}

/// The good binary ciphertext with `edit` applied.
fn good_age_with(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = shared().good_age.clone();
    edit(&mut b);
    b
}

/// The good ciphertext with its `ssh-ed25519` stanza (line 2: `-> ssh-ed25519 TAG EPK`,
/// line 3: the body) edited; arguments are `["ssh-ed25519", TAG, EPK]`.
fn stanza_with(edit: impl FnOnce(&mut Vec<String>, &mut String)) -> Vec<u8> {
    let text = &shared().good_age;
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let first = String::from_utf8(lines[1].clone()).unwrap();
    let mut args: Vec<String> = first
        .strip_prefix("-> ")
        .unwrap()
        .split(' ')
        .map(str::to_string)
        .collect();
    assert_eq!(args[0], "ssh-ed25519");
    let mut body = String::from_utf8(lines[2].clone()).unwrap();
    edit(&mut args, &mut body);
    lines[1] = format!("-> {}", args.join(" ")).into_bytes();
    lines[2] = body.into_bytes();
    lines.join(&b'\n')
}

fn header_end(b: &[u8]) -> usize {
    b.windows(5).position(|w| w == b"\n--- ").unwrap()
}

fn manifest(body: &str) -> String {
    format!(
        r#"{{"version":1,"secretsDir":"/run/agefleet-bad-input","secretsMountPoint":"/run/agefleet-bad-input.d",
        "identityPaths":["/nonexistent/key"],"fs":"tmpfs","secrets":[{body}]}}"#
    )
}

/// The socket of the test's `ssh-agent` holding the admin key (set by the test before the
/// cases run; install preflight needs an agent with a key to get past its first checks).
static AGENT_SOCK: OnceLock<String> = OnceLock::new();

/// An `ssh-agent -D` of this test, killed on drop (also when the test fails).
struct Agent {
    child: std::process::Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh-agent");
        let agent = Agent {
            child,
            sock,
            _dir: dir,
        };
        for _ in 0..500 {
            if agent.sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let key = agent._dir.path().join("admin");
        std::fs::write(&key, &shared().admin_private).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = common::run(
            Command::new("ssh-add")
                .arg("-q")
                .arg(&key)
                .env("SSH_AUTH_SOCK", &agent.sock),
        );
        assert!(out.status.success(), "ssh-add: {}", stderr(&out));
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `install-with-secrets` of `flake#h` with fake disko and install commands (preflight
/// fails before either would run), `--dry-run`, and the test's agent.
fn install(extra: &[&str], needle: &str) -> Run {
    let mut args = vec![
        "install-with-secrets",
        "--flake",
        "flake#h",
        "--root",
        "target-root",
        "--disko-cmd",
        "true",
        "--nixos-install-cmd",
        "true",
        "--dry-run",
    ];
    args.extend_from_slice(extra);
    Run {
        code: 4,
        env: vec![(
            "SSH_AUTH_SOCK",
            AGENT_SOCK.get().cloned().unwrap_or_default(),
        )],
        ..fatal(&args, needle)
    }
}

/// A minimal flake directory (`flake/flake.nix`, and `flake/flake.lock` when given).
fn flake(d: &Dir, lock: Option<&str>) {
    d.write("flake/flake.nix", b"{ outputs = _: { }; }\n");
    if let Some(lock) = lock {
        d.write("flake/flake.lock", lock.as_bytes());
    }
}

type Setup = fn(&Dir) -> Run;

/// Every case: a name, and a setup that writes its inputs and says how to run it.
fn cases() -> Vec<(&'static str, Setup)> {
    let mut c: Vec<(&'static str, Setup)> = vec![
        // ---- rules files (corpus under tests/bad_input/) ----
        ("rules: missing semicolon", |d| {
            d.corpus_rules("missing_semicolon.nix");
            fatal(&["rules"], "secrets.nix:4:1: syntax error")
        }),
        ("rules: unclosed string", |d| {
            d.corpus_rules("unclosed_string.nix");
            fatal(&["status"], "secrets.nix:3:27: syntax error")
        }),
        ("rules: stray closing brace", |d| {
            d.corpus_rules("stray_brace.nix");
            fatal(&["-e", "a.age"], "secrets.nix:3:1: syntax error")
        }),
        ("rules: top level is a list", |d| {
            d.corpus_rules("top_level_list.nix");
            fatal(
                &["rekey"],
                "secrets.nix:1:1: the rules file evaluates to a list",
            )
        }),
        ("rules: undefined variable", |d| {
            d.corpus_rules("undefined_variable.nix");
            report(
                &["rules"],
                "secrets.nix:3:26: secret \"a.age\": undefined variable",
            )
        }),
        ("rules: assert false", |d| {
            d.corpus_rules("assert_false.nix");
            fatal(&["status"], "secrets.nix:1:1: assertion")
        }),
        ("rules: calling an integer", |d| {
            d.corpus_rules("call_non_function.nix");
            fatal(&["-e", "a.age"], "secrets.nix:2:24: secret \"a.age\"")
        }),
        ("rules: rec cycle", |d| {
            d.corpus_rules("rec_cycle.nix");
            report(
                &["rekey"],
                "secrets.nix:3:7: secret \"a.age\": infinite recursion",
            )
        }),
        ("rules: missing import", |d| {
            d.corpus_rules("missing_import.nix");
            fatal(
                &["-e", "a.age"],
                "secrets.nix:1:12: secret \"a.age\": cannot import",
            )
        }),
        ("rules: bad fromJSON", |d| {
            d.corpus_rules("bad_fromjson.nix");
            report(&["rules"], "secrets.nix:1:24: secret \"a.age\"")
        }),
        ("rules: readFile of a missing file", |d| {
            d.corpus_rules("readfile_missing.nix");
            report(
                &["rules"],
                "secrets.nix:1:27: secret \"a.age\": cannot read",
            )
        }),
        // ---- rules files (inline) ----
        ("rules: let x = x; in x", |d| {
            d.rules("let x = x; in x");
            fatal(&["rules"], "secrets.nix:1:9: infinite recursion")
        }),
        ("rules: 20,000 nested lists", |d| {
            d.rules(&format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)));
            fatal(&["status"], "secrets.nix:1:")
        }),
        ("rules: 20,000 nested parentheses", |d| {
            d.rules(&format!("{}1{}", "(".repeat(20_000), ")".repeat(20_000)));
            fatal(&["rules"], "secrets.nix:1:")
        }),
        ("rules: 20,000 nested attrsets", |d| {
            d.rules(&format!("{}1{}", "{a=".repeat(20_000), ";}".repeat(20_000)));
            fatal(&["-e", "a.age"], "secrets.nix:1:")
        }),
        ("rules: 20,000 nested with", |d| {
            d.rules(&format!("{}{{}}", "with {}; ".repeat(20_000)));
            fatal(&["rules"], "secrets.nix:1:1")
        }),
        ("rules: 20,000 ++ operators", |d| {
            d.rules(&vec!["[]"; 20_001].join(" ++ "));
            fatal(&["rules"], "secrets.nix:1:")
        }),
        ("rules: 20,000 nested interpolations", |d| {
            d.rules(&format!(
                "{}\"x\"{}",
                "\"${".repeat(20_000),
                "}\"".repeat(20_000)
            ));
            fatal(&["status"], "secrets.nix:1:")
        }),
        ("rules: 1,000,000-deep evaluation", |d| {
            d.rules("let f = n: if n == 0 then {} else f (n - 1); in f 1000000");
            fatal(&["rules", "--nix-eval", "builtin"], "secrets.nix:1:")
        }),
        ("rules: 5 MB file with an error on its last line", |d| {
            let key = &shared().admin_public;
            let mut text = String::from("{\n");
            let mut lines = 1;
            while text.len() < 5 << 20 {
                text.push_str(&format!("  \"s{lines}.age\".publicKeys = [ \"{key}\" ];\n"));
                lines += 1;
            }
            text.push_str("  \"last.age\".publicKeys = [ ;\n}\n");
            d.rules(&text);
            let needle = format!("secrets.nix:{}:", lines + 1);
            Run {
                needle,
                ..fatal(&["status"], "")
            }
        }),
        ("rules: throw", |d| {
            d.rules("throw \"no rules today\"");
            fatal(&["rules"], "secrets.nix:1:1: no rules today")
        }),
        ("rules: abort", |d| {
            d.rules("abort \"stop\"");
            fatal(&["status"], "secrets.nix:1:1: evaluation aborted")
        }),
        ("rules: integer overflow", |d| {
            d.rules("{ \"a.age\".publicKeys = 9223372036854775807 + 1; }");
            fatal(&["-e", "a.age"], "secrets.nix:1:24: secret \"a.age\"")
        }),
        ("rules: publicKeys is an integer", |d| {
            d.rules("{ \"a.age\".publicKeys = 3; }");
            fatal(
                &["-e", "a.age"],
                "secrets.nix:1:3: secret \"a.age\": publicKeys is an integer",
            )
        }),
        ("rules: armor is a string", |d| {
            let key = &shared().admin_public;
            d.rules(&format!(
                "{{ \"a.age\" = {{ publicKeys = [ \"{key}\" ]; armor = \"yes\"; }}; }}"
            ));
            fatal(
                &["-e", "a.age"],
                "secrets.nix:1:3: secret \"a.age\": armor is a string",
            )
        }),
        ("rules: invalid public key", |d| {
            d.rules("{ \"a.age\".publicKeys = [ \"ssh-ed25519 AAAAnotbase64!\" ]; }");
            fatal(
                &["-e", "a.age"],
                "secrets.nix: secret \"a.age\": invalid public key",
            )
        }),
        ("rules: empty publicKeys", |d| {
            d.write("a.age", &shared().good_age);
            d.rules("{ \"a.age\".publicKeys = [ ]; }");
            report(
                &["rekey"],
                "secrets.nix: secret \"a.age\": publicKeys is empty",
            )
        }),
        ("rules: not UTF-8", |d| {
            d.write(
                "secrets.nix",
                b"{ \"a.age\".publicKeys = [ \"\xff\xfe\" ]; }",
            );
            fatal(&["rules"], "secrets.nix")
        }),
        ("rules: empty file", |d| {
            d.rules("");
            fatal(&["rules"], "secrets.nix:1:1")
        }),
        ("rules: file missing", |_| {
            fatal(&["--rules", "absent.nix", "status"], "absent.nix")
        }),
        ("rules: a directory", |d| {
            d.mkdir("rulesdir.nix");
            fatal(&["--rules", "rulesdir.nix", "status"], "rulesdir.nix")
        }),
        // ---- .age files ----
        ("age: empty", |d| {
            d.write("a.age", b"");
            fatal(&["-d", "a.age"], "a.age: not an age file")
        }),
        ("age: truncated header", |d| {
            d.write("a.age", &shared().good_age[..60]);
            fatal(&["-d", "a.age"], "a.age: corrupt or truncated")
        }),
        ("age: truncated payload (edit)", |d| {
            let g = &shared().good_age;
            d.write("a.age", &g[..g.len() - 5]);
            fatal(&["-e", "a.age"], "a.age: corrupt or truncated")
        }),
        ("age: plaintext", |d| {
            d.write("a.age", b"password=hunter2\n");
            fatal(&["-d", "a.age"], "a.age: not an age file")
        }),
        ("age: bad armor", |d| {
            d.write(
                "a.age",
                b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!not base64!!!\n-----END AGE ENCRYPTED FILE-----\n",
            );
            fatal(&["-d", "a.age"], "a.age: corrupt or truncated")
        }),
        ("age: armor without its end line", |d| {
            let g = &shared().good_armored;
            d.write("a.age", &g[..g.len() - 36]);
            report(&["rekey"], "a.age")
        }),
        ("age: flipped MAC byte", |d| {
            d.write(
                "a.age",
                &good_age_with(|b| {
                    // Another valid base64 digit in the MAC's first place: still a
                    // well-formed MAC, just the wrong one.
                    let i = header_end(b) + 5;
                    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
                }),
            );
            fatal(
                &["-d", "a.age"],
                "a.age: corrupt or truncated age file (header MAC",
            )
        }),
        ("age: flipped payload byte", |d| {
            d.write(
                "a.age",
                &good_age_with(|b| {
                    let i = b.len() - 3;
                    b[i] ^= 1;
                }),
            );
            report(&["rekey", "a.age"], "a.age")
        }),
        ("age: our key's stanza with a short ephemeral share", |d| {
            // A header error, as in Go's age: not "no identity matches".
            d.write("a.age", &stanza_with(|args, _| args[2] = "AAAA".into()));
            fatal(
                &["-d", "a.age"],
                "a.age: corrupt or truncated age file (invalid header)",
            )
        }),
        (
            "age: our key's stanza with a low-order ephemeral share",
            |d| {
                d.write("a.age", &stanza_with(|args, _| args[2] = "A".repeat(43)));
                fatal(&["-d", "a.age"], "a.age: corrupt or truncated")
            },
        ),
        ("age: our key's stanza with a short body", |d| {
            d.write("a.age", &stanza_with(|_, body| *body = "AAAA".into()));
            fatal(&["-e", "a.age"], "a.age: corrupt or truncated")
        }),
        ("age: wrong version line", |d| {
            d.write(
                "a.age",
                &good_age_with(|b| {
                    let i = b.iter().position(|&c| c == b'\n').unwrap();
                    b.splice(..i, b"age-encryption.org/v2".iter().copied());
                }),
            );
            fatal(&["-d", "a.age"], "a.age: not an age file")
        }),
        ("age: header over 1 MiB", |d| {
            d.write(
                "a.age",
                &good_age_with(|b| {
                    let i = b.iter().position(|&c| c == b'\n').unwrap() + 1;
                    let mut grease = b"-> grease x\n".to_vec();
                    for _ in 0..(1100 * 1024 / 65) {
                        grease.extend_from_slice(&[b'A'; 64]);
                        grease.push(b'\n');
                    }
                    grease.extend_from_slice(b"AAAA\n");
                    b.splice(i..i, grease);
                }),
            );
            fatal(&["-d", "a.age"], "a.age: corrupt or truncated")
        }),
        (
            "age: a name with a terminal escape and a newline (rekey)",
            |d| {
                let key = &shared().admin_public;
                d.rules(&format!(
                    "{{ \"e\u{1b}[2J\\n.age\".publicKeys = [ \"{key}\" ]; }}"
                ));
                d.write("e\u{1b}[2J\n.age", b"not an age file");
                report(&["rekey"], "e\\u{1b}[2J\\n.age: not an age file")
            },
        ),
        // A newline in a path given on the command line is kept by the final error line
        // (Nix's own stderr, shown verbatim, is the one multi-line message); escapes are not.
        ("age: a name with a terminal escape (-d)", |d| {
            d.write("e\u{1b}]0;title\u{7}.age", b"not an age file");
            fatal(
                &["-d", "e\u{1b}]0;title\u{7}.age"],
                "e\\u{1b}]0;title\\u{7}.age: not an age file",
            )
        }),
        ("age: a directory", |d| {
            d.mkdir("a.age");
            fatal(&["-d", "a.age"], "a.age")
        }),
        ("age: symlink to /dev/zero", |d| {
            d.symlink("/dev/zero", "a.age");
            fatal(&["-d", "a.age"], "a.age: not a regular file")
        }),
        ("age: symlink to /dev/zero (rekey)", |d| {
            d.symlink("/dev/zero", "a.age");
            report(&["rekey"], "a.age: not a regular file")
        }),
        ("decrypt --output: corrupt input creates no output", |d| {
            d.write(
                "a.age",
                b"age-encryption.org/v1\n-> X25519 AAAA\n--- AAAA\n",
            );
            fatal(&["decrypt", "a.age", "--output", "out.txt"], "a.age: ")
        }),
        (
            "decrypt --output: an existing file is not overwritten",
            |d| {
                d.write("a.age", &shared().good_age);
                d.write("out.txt", b"keep me");
                Run {
                    code: 3,
                    ..fatal(
                        &["decrypt", "a.age", "--output", "out.txt"],
                        "out.txt: already exists",
                    )
                }
            },
        ),
        ("edit subcommand: bad rules", |d| {
            d.rules("{ \"a.age\".publicKeys = [ 1 ]; }");
            fatal(&["edit", "a.age"], "secrets.nix:1:")
        }),
        ("age: decrypt of a missing file", |_| {
            fatal(&["-d", "a.age"], "a.age")
        }),
        ("age: status of an unreadable header", |d| {
            d.write("a.age", b"age-encryption.org/v1\n-> X25519\n");
            report(&["status"], "a.age")
        }),
        // ---- identities ----
        ("identity: garbage", |d| {
            d.write("a.age", &shared().good_age);
            d.write_mode("garbage.key", b"not a key\n", 0o600);
            fatal(&["-d", "a.age", "-i", "garbage.key"], "garbage.key")
        }),
        ("identity: a public key", |d| {
            d.write("a.age", &shared().good_age);
            fatal(
                &["-d", "a.age", "-i", "home/.ssh/id_ed25519.pub"],
                "id_ed25519.pub: this is a public key",
            )
        }),
        ("identity: a directory", |d| {
            d.write("a.age", &shared().good_age);
            d.mkdir("keydir");
            fatal(&["-d", "a.age", "-i", "keydir"], "keydir")
        }),
        ("identity: a FIFO", |d| {
            d.write("a.age", &shared().good_age);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                d.path("fifo.key"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            fatal(
                &["-d", "a.age", "-i", "fifo.key"],
                "fifo.key: not a regular file",
            )
        }),
        ("identity: missing", |d| {
            d.write("a.age", &shared().good_age);
            fatal(&["-d", "a.age", "-i", "absent.key"], "absent.key")
        }),
        ("identity: bad age identity", |d| {
            d.write("a.age", &shared().good_age);
            d.write_mode("age.key", b"AGE-SECRET-KEY-1QQQQ\n", 0o600);
            fatal(&["-d", "a.age", "-i", "age.key"], "age.key")
        }),
        ("identity: truncated OpenSSH key", |d| {
            d.write("a.age", &shared().good_age);
            let k = &shared().admin_private;
            d.write_mode("cut.key", &k[..k.len() / 2], 0o600);
            fatal(&["-d", "a.age", "-i", "cut.key"], "cut.key")
        }),
        ("identity: encrypted key without a terminal", |d| {
            let s = shared();
            d.write_mode("locked.key", &s.locked_private, 0o600);
            d.rules(&format!(
                "{{ \"b.age\".publicKeys = [ \"{}\" ]; }}\n",
                s.locked_public
            ));
            let p = d.path("b.age");
            common::age_encrypt(&[&s.locked_public], false, PLAINTEXT, &p);
            Run {
                setsid: true,
                ..fatal(&["-d", "b.age", "-i", "locked.key"], "locked.key")
            }
        }),
        // ---- activation manifests (all fail before any mount) ----
        ("manifest: bad JSON", |d| {
            d.write("m.json", b"{\"version\": 1,");
            fatal(&["activate", "--manifest", "m.json"], "m.json:1:")
        }),
        ("manifest: wrong version", |d| {
            d.write(
                "m.json",
                manifest("")
                    .replace("\"version\":1", "\"version\":9")
                    .as_bytes(),
            );
            fatal(&["activate", "--manifest", "m.json"], "m.json")
        }),
        ("manifest: unknown field", |d| {
            d.write(
                "m.json",
                manifest("")
                    .replace("\"fs\"", "\"fss\":1,\"fs\"")
                    .as_bytes(),
            );
            fatal(&["activate", "--manifest", "m.json"], "m.json:")
        }),
        ("manifest: secret without a mode", |d| {
            let body = r#"{"name":"x","file":"/x.age","path":"/run/agefleet-bad-input/x","owner":"0","group":"0","symlink":true}"#;
            d.write("m.json", manifest(body).as_bytes());
            fatal(&["activate", "--manifest", "m.json"], "m.json:")
        }),
        ("manifest: not an object", |d| {
            d.write("m.json", b"[1, 2]");
            fatal(
                &["activate", "--manifest", "m.json", "--phase", "chown"],
                "m.json",
            )
        }),
        ("manifest: empty", |d| {
            d.write("m.json", b"");
            fatal(&["activate", "--manifest", "m.json"], "m.json")
        }),
        ("manifest: /dev/zero", |_| {
            fatal(&["activate", "--manifest", "/dev/zero"], "/dev/zero: ")
        }),
        ("manifest: missing", |_| {
            fatal(&["activate", "--manifest", "absent.json"], "absent.json")
        }),
        // ---- key directories ----
        ("check-keys: garbage keys", |d| {
            for name in ["id_ed25519", "id_ed25519_agenix"] {
                d.write_mode(&format!("keys/{name}"), b"garbage\n", 0o600);
                d.write(&format!("keys/{name}.pub"), b"garbage\n");
            }
            report(&["check-keys", "--ssh-dir", "keys"], "keys/id_ed25519")
        }),
        ("check-keys: symlinked keys", |d| {
            let s = shared();
            d.write_mode("real", &s.admin_private, 0o600);
            d.write("real.pub", s.admin_public.as_bytes());
            d.mkdir("keys");
            for name in ["id_ed25519", "id_ed25519_agenix"] {
                d.symlink("../real", &format!("keys/{name}"));
                d.symlink("../real.pub", &format!("keys/{name}.pub"));
            }
            report(&["check-keys", "--ssh-dir", "keys"], "a symbolic link")
        }),
        ("check-keys: a rule name with a terminal escape", |d| {
            let s = shared();
            d.write_mode("keys/id_ed25519_agenix", &s.admin_private, 0o600);
            d.write("keys/id_ed25519_agenix.pub", s.admin_public.as_bytes());
            d.rules(&format!(
                "{{ \"e\u{1b}]0;t\u{7}.age\".publicKeys = [ \"{}\" ]; }}",
                s.admin_public
            ));
            report(
                &["check-keys", "--ssh-dir", "keys", "--rules", "secrets.nix"],
                "e\\u{1b}]0;t\\u{7}.age",
            )
        }),
        ("copy-keys: garbage source", |d| {
            d.write_mode("usb/id_ed25519", b"garbage\n", 0o600);
            fatal(
                &["copy-keys", "--from", "usb", "--ssh-dir", "dest"],
                "usb/id_ed25519",
            )
        }),
        ("copy-keys: dangling symlink source", |d| {
            d.mkdir("usb");
            d.symlink("nowhere", "usb/id_ed25519");
            fatal(
                &["copy-keys", "--from", "usb", "--ssh-dir", "dest"],
                "usb/id_ed25519",
            )
        }),
        ("copy-keys: source key symlinked to a device", |d| {
            d.mkdir("usb");
            d.symlink("/dev/zero", "usb/id_ed25519");
            fatal(
                &["copy-keys", "--from", "usb", "--ssh-dir", "dest"],
                "usb/id_ed25519",
            )
        }),
        ("copy-keys: private and .pub do not match", |d| {
            let s = shared();
            d.write_mode("usb/id_ed25519", &s.admin_private, 0o600);
            d.write("usb/id_ed25519.pub", s.locked_public.as_bytes());
            fatal(
                &["copy-keys", "--from", "usb", "--ssh-dir", "dest"],
                "usb/id_ed25519",
            )
        }),
        (
            "copy-keys: destination key is a symlink out of the directory",
            |d| {
                let s = shared();
                d.write_mode("usb/id_ed25519", &s.admin_private, 0o600);
                d.write("usb/id_ed25519.pub", s.admin_public.as_bytes());
                d.write("victim", b"must stay");
                d.mkdir("dest");
                d.symlink("../victim", "dest/id_ed25519");
                Run {
                    code: 3,
                    ..report(
                        &["copy-keys", "--from", "usb", "--ssh-dir", "dest"],
                        "dest/id_ed25519: exists and differs",
                    )
                }
            },
        ),
        ("copy-keys: source is a file", |d| {
            d.write("usb", b"");
            fatal(&["copy-keys", "--from", "usb", "--ssh-dir", "dest"], "usb")
        }),
        ("create-keys: ssh dir is a file", |d| {
            d.write("sshfile", b"");
            fatal(&["create-keys", "--ssh-dir", "sshfile"], "sshfile")
        }),
        // ---- install-with-secrets (all fail in preflight: exit 4, nothing touched) ----
        ("install: --flake without a host", |d| {
            flake(d, None);
            Run {
                code: 2,
                ..install(&[], "")
            }
            .with_args(
                &["install-with-secrets", "--flake", "flake", "--dry-run"],
                "expected DIR#HOST",
            )
        }),
        ("install: flake directory missing", |_| {
            install(&[], "flake: flake directory")
        }),
        ("install: no flake.nix", |d| {
            d.mkdir("flake");
            install(&[], "flake: no flake.nix")
        }),
        ("install: install command not found", |d| {
            flake(d, None);
            let mut r = install(&[], "`/nonexistent/nixos-install` not found");
            let at = r
                .args
                .iter()
                .position(|a| a == "--nixos-install-cmd")
                .unwrap();
            r.args[at + 1] = "/nonexistent/nixos-install".into();
            r
        }),
        ("install: SSH_AUTH_SOCK not set", |d| {
            flake(d, None);
            Run {
                env: Vec::new(),
                ..install(&[], "SSH_AUTH_SOCK is not set")
            }
        }),
        ("install: agent socket missing", |d| {
            flake(d, None);
            Run {
                env: vec![("SSH_AUTH_SOCK", "/nonexistent/agent.sock".into())],
                ..install(&[], "/nonexistent/agent.sock")
            }
        }),
        ("install: flake.lock not JSON", |d| {
            flake(d, Some("{ nodes"));
            install(&[], "flake/flake.lock: not valid JSON")
        }),
        ("install: flake.lock without the secrets input", |d| {
            flake(d, Some("{\"nodes\": {}}"));
            install(&[], "flake/flake.lock: the flake has no input \"secrets\"")
        }),
        ("install: known_hosts missing", |d| {
            flake(d, None);
            install(
                &[
                    "--secrets-url",
                    "ssh://git@127.0.0.1:1/secrets",
                    "--known-hosts",
                    "absent_known_hosts",
                ],
                "absent_known_hosts",
            )
        }),
        ("install: a private key inside the flake", |d| {
            flake(d, None);
            d.write_mode("flake/leaked_key", &shared().admin_private, 0o600);
            install(&[], "leaked_key")
        }),
        ("install: unsplittable --disko-cmd", |d| {
            flake(d, None);
            let mut r = install(&[], "--disko-cmd");
            let at = r.args.iter().position(|a| a == "--disko-cmd").unwrap();
            r.args[at + 1] = "\"unclosed".into();
            Run { code: 2, ..r }
        }),
        // ---- argv ----
        ("argv: unknown flag", |_| usage(&["--bogus"], "'--bogus'")),
        ("argv: -e and -d together", |_| {
            usage(&["-e", "a.age", "-d", "a.age"], "cannot be used with")
        }),
        ("argv: -d without a value", |_| {
            usage(&["-d"], "'--decrypt <FILE>'")
        }),
        ("argv: --rules without a value", |_| {
            usage(&["status", "--rules"], "'--rules <FILE>'")
        }),
        ("argv: bad --nix-eval", |_| {
            usage(&["--nix-eval", "sometimes", "status"], "'sometimes'")
        }),
        ("argv: unknown shell", |_| {
            usage(&["completions", "tcsh"], "'tcsh'")
        }),
        ("argv: activate without --manifest", |_| {
            usage(&["activate"], "--manifest <FILE>")
        }),
        ("argv: -e with a subcommand", |_| {
            usage(&["-e", "a.age", "status"], "cannot be combined")
        }),
        ("argv: no action", |_| usage(&[], "no action given")),
        ("argv: unknown subcommand", |_| {
            usage(&["rekeyy"], "'rekeyy'")
        }),
    ];
    c.sort_by_key(|(name, _)| *name);
    c
}

/// One entry of a directory snapshot: what a change to the tree would alter.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    File {
        mode: u32,
        mtime_ns: i128,
        bytes: Vec<u8>,
    },
    Dir {
        mode: u32,
    },
    Symlink(PathBuf),
    Other(u32),
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.mode() & 0o7777;
            let node = if m.file_type().is_symlink() {
                Node::Symlink(std::fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                walk(root, &p, out);
                Node::Dir { mode }
            } else if m.is_file() {
                Node::File {
                    mode,
                    mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                    bytes: std::fs::read(&p).unwrap(),
                }
            } else {
                Node::Other(m.mode())
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Paths whose presence or content differs between two snapshots.
fn changed(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = a.keys().chain(b.keys()).cloned().collect();
    paths.sort();
    paths.dedup();
    paths.retain(|p| a.get(p) != b.get(p));
    paths
}

/// Kills the child on drop (a hung case must not outlive the test).
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs agefleet in `dir` with stdin closed; `None` if it did not finish in `limit` (a hang
/// guard, not a timing assertion).
fn run_case(dir: &Dir, run: &Run, limit: Duration) -> Option<Output> {
    let bin = env!("CARGO_BIN_EXE_agefleet");
    let mut cmd = if run.setsid {
        let mut c = Command::new("setsid");
        c.arg("-w").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(&run.args)
        .current_dir(&dir.root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path("home"))
        .env("NO_COLOR", "1")
        .env("LANG", "C.UTF-8")
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reap(cmd.spawn().expect("spawn agefleet"));
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.0.stdout.take().unwrap();
    let mut err_pipe = child.0.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut v).ok();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut v).ok();
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some(Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    })
}

/// Lines a per-item report may print besides `error:` lines.
fn is_report_line(l: &str) -> bool {
    l.starts_with("error: ")
        || l.starts_with("warning: ")
        || l.starts_with("rekeyed ")
        || l.starts_with("agefleet: ")
}

/// Everything wrong with one case's result, empty when it behaved.
fn problems(run: &Run, out: &Output, changes: &[PathBuf]) -> Vec<String> {
    let (err, so) = (stderr(out), stdout(out));
    let mut p = Vec::new();
    if out.status.code() != Some(run.code) {
        p.push(format!("exit {:?}, want {}", out.status.code(), run.code));
    }
    for bad in ["panicked", "stack overflow", "RUST_BACKTRACE"] {
        if err.contains(bad) {
            p.push(format!("stderr contains {bad:?}"));
        }
    }
    // NO_COLOR is set: an escape character can only come from an input, unescaped.
    if err.contains('\u{1b}') || so.contains('\u{1b}') {
        p.push("output holds a raw escape character".into());
    }
    let secret = String::from_utf8_lossy(PLAINTEXT);
    for leaked in [secret.as_ref(), "hunter2"] {
        if err.contains(leaked) || so.contains(leaked) {
            p.push(format!("output shows the plaintext {leaked:?}"));
        }
    }
    match run.style {
        Style::Fatal => {
            let errors: Vec<&str> = err
                .lines()
                .filter(|l| !l.starts_with("warning: "))
                .collect();
            if errors.len() != 1 || !errors[0].starts_with("agefleet: ") {
                p.push("want exactly one `agefleet: …` line besides warnings".into());
            } else if !errors[0].contains(&run.needle) {
                p.push(format!("the error does not contain {:?}", run.needle));
            }
        }
        Style::Report => {
            if let Some(l) = err.lines().find(|l| !is_report_line(l)) {
                p.push(format!(
                    "unexpected stderr line (a multi-line error?): {l:?}"
                ));
            }
            if !err.contains(&run.needle) && !so.contains(&run.needle) {
                p.push(format!("the report does not contain {:?}", run.needle));
            }
        }
    }
    if !changes.is_empty() {
        p.push(format!("files written or changed: {changes:?}"));
    }
    p
}

#[test]
#[ignore = "needs `age`, `setsid`, `ssh-agent`, `ssh-keygen`"]
fn every_bad_input_fails_cleanly_and_writes_nothing() {
    require_tool("ssh-keygen");
    require_tool("age");
    require_tool("setsid");
    require_tool("ssh-agent");
    let _agent = Agent::start();
    AGENT_SOCK
        .set(_agent.sock.to_string_lossy().into_owned())
        .unwrap();
    // install-with-secrets checks for root first; elsewhere its cases would all say so.
    let root = rustix::process::geteuid().is_root();
    let cases: Vec<_> = cases()
        .into_iter()
        .filter(|(name, _)| root || !name.starts_with("install:"))
        .collect();
    assert!(cases.len() >= 40, "the sweep has {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, setup) in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::new(tmp.path());
        let run = setup(&dir);
        let before = snapshot(&dir.root);
        let Some(out) = run_case(&dir, &run, Duration::from_secs(120)) else {
            failures.push(format!("{name}: did not finish (hang)"));
            continue;
        };
        let after = snapshot(&dir.root);
        let p = problems(&run, &out, &changed(&before, &after));
        if !p.is_empty() {
            failures.push(format!(
                "{name} ({:?}): {}\n  stderr: {}",
                run.args,
                p.join("; "),
                stderr(&out).trim_end().replace('\n', "\n          ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A private key readable by group and others: ssh refuses it, age and agenix accept it.
/// agefleet follows age for decryption (a key copied with a loose umask must still work)
/// with a warning, and check-keys fails on it; either way nothing crashes.
#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn a_group_readable_identity_decrypts_and_check_keys_flags_it() {
    require_tool("ssh-keygen");
    require_tool("age");
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::new(tmp.path());
    let s = shared();
    dir.write("a.age", &s.good_age);
    dir.write_mode("loose.key", &s.admin_private, 0o644);
    let out = run_case(
        &dir,
        &fatal(&["-d", "a.age", "-i", "loose.key"], ""),
        Duration::from_secs(60),
    )
    .expect("finished");
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(out.stdout, PLAINTEXT);
    assert!(
        stderr(&out).starts_with(
            "warning: loose.key: private key is accessible by group or others (mode 0644)"
        ),
        "no warning about the mode: {}",
        stderr(&out)
    );

    for name in ["id_ed25519", "id_ed25519_agenix"] {
        dir.write_mode(&format!("keys/{name}"), &s.admin_private, 0o644);
        dir.write(&format!("keys/{name}.pub"), s.admin_public.as_bytes());
    }
    let out = run_case(
        &dir,
        &fatal(&["check-keys", "--ssh-dir", "keys"], ""),
        Duration::from_secs(60),
    )
    .expect("finished");
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(
        stdout(&out).contains("0644") || stderr(&out).contains("0644"),
        "check-keys does not flag the mode: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// A reader that went away (`agefleet status | head -1`) ends every verb quietly: exit 0 for
/// reports, never a panic (exit 101). A closed stderr is not a panic either. The pipe's read
/// end is closed before the child starts, so every write meets EPIPE (no race).
#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn closed_pipes_end_every_verb_quietly() {
    require_tool("age");
    let f = common::Fleet::new();
    let admin = f.admin.public_line.clone();
    let many: Vec<String> = (0..50).map(|i| format!("s{i}.age")).collect();
    let mut rules: Vec<(&str, &[&str], bool)> = Vec::new();
    let keys = [admin.as_str()];
    for n in &many {
        f.age_file(n, &[&admin], n.as_bytes());
        rules.push((n, &keys[..], false));
    }
    f.rules(&rules);
    let closed_pipe = || {
        let (read, write) = rustix::pipe::pipe().unwrap();
        drop(read);
        Stdio::from(write)
    };
    let cases: &[&[&str]] = &[
        &["status"],
        &["status", "--json"],
        &["rules"],
        &["rules", "--json"],
        &["rekey", "--json"],
        &["-d", "s1.age"],
        &["decrypt", "s2.age"],
        &["completions", "bash"],
        &["check-keys", "--ssh-dir", "."],
        &["create-keys", "--dry-run", "--ssh-dir", "new-keys"],
        &["--help"],
        &["--version"],
    ];
    for args in cases {
        let out = f
            .cmd()
            .args(*args)
            .stdin(Stdio::null())
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        // Even check-keys, whose keys are missing here: nobody reads the verdict.
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
    // stdout and stderr both closed, with errors to report: still no panic.
    std::fs::write(f.path("s3.age"), b"not an age file").unwrap();
    let out = f
        .cmd()
        .args(["-r"])
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
