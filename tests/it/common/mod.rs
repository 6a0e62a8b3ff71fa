//! Shared integration-test helpers: the binary, tool/root requirements, key generation, a
//! temporary fleet. Area-specific rigs live in sibling files (`sshd.rs`, …).
#![allow(dead_code)]

pub mod activation;
pub mod agenix;
pub mod keyscan;
pub mod nix;
pub mod plugin;
pub mod sshd;
pub mod strace;
pub mod typage;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod pty;

/// Fails the test unless `tool` is on PATH. Tests that need a tool are
/// `#[ignore = "needs …"]`: they run only when asked for (`--include-ignored`, as CI does),
/// and then a missing tool is a failure, never a silent pass.
pub fn require_tool(tool: &str) {
    assert!(
        which(tool).is_some(),
        "this test needs `{tool}`: scripts/deps.sh installs it (as root)"
    );
}

/// Fails the test unless it runs as root (such tests are `#[ignore = "needs root …"]`).
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (CI runs as root)"
    );
}

/// The directory of the reference data (the CCTV vectors, the Nix sources; pinned and laid
/// out as `scripts/reference.pins` says): `$AGEFLEET_REFERENCE_DIR`, else `../shared` beside
/// the repository when it exists, else `target/reference` (where `scripts/reference.sh`
/// fetches it).
pub fn reference_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AGEFLEET_REFERENCE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let beside = repo.join("../shared");
    if beside.is_dir() {
        return beside;
    }
    repo.join("target/reference")
}

/// The reference tree `sub` (`cctv-age/testdata`, `nix-src/agenix`, …): the directory named
/// by `override_var` when that is set (a copy kept elsewhere, e.g. a nixpkgs checkout), else
/// `sub` under [`reference_dir`]. Fails the test with one line saying what is missing and how
/// to provide it (the tests that need it are `#[ignore = "needs … the reference data"]`).
pub fn reference(sub: &str, override_var: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(override_var).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "{override_var}={} is not a directory",
            dir.display()
        );
        return dir;
    }
    let dir = reference_dir().join(sub);
    assert!(
        dir.is_dir(),
        "reference data {sub} not found at {}: run scripts/reference.sh to fetch it \
         (pins in scripts/reference.pins), or set AGEFLEET_REFERENCE_DIR to a copy",
        dir.display()
    );
    dir
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A `Command` for the agefleet binary with a scrubbed environment: HOME points at `home`,
/// no RULES/EDITOR leak in from the caller.
pub fn agefleet(home: &Path) -> Command {
    agefleet_env(Command::new(env!("CARGO_BIN_EXE_agefleet")), home)
}

/// [`agefleet`] under `ulimit -v KIB`: past that much address space an allocation fails
/// (what a memory bomb must meet as a clear error, never an abort or the machine's memory).
/// Arguments added to the command go to agefleet.
pub fn agefleet_with_memory_limit(home: &Path, kib: u64) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_agefleet"));
    agefleet_env(cmd, home)
}

fn agefleet_env(mut cmd: Command, home: &Path) -> Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("LANG", "C.UTF-8");
    if let Some(v) = std::env::var_os("XDG_RUNTIME_DIR") {
        cmd.env("XDG_RUNTIME_DIR", v);
    }
    cmd
}

/// Runs `cmd` with stdin closed (`/dev/null`) and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .expect("spawn command")
}

/// Runs `cmd` with `input` on its stdin (a pipe, not a terminal), collecting its output.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn command");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An OpenSSH key pair made by `ssh-keygen` (the reference implementation).
pub struct SshKey {
    pub private: PathBuf,
    pub public_line: String,
}

/// Generates a key with `ssh-keygen -t <kind>` at `dir/name`, optionally with a passphrase.
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> SshKey {
    require_tool("ssh-keygen");
    let private = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&private);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "ssh-keygen failed: {}", stderr(&out));
    let public_line = std::fs::read_to_string(private.with_extension("pub"))
        .expect("read .pub")
        .trim()
        .to_string();
    SshKey {
        private,
        public_line,
    }
}

/// An age X25519 identity made by `age-keygen`: (identity file, recipient).
pub fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    require_tool("age-keygen");
    let path = dir.join(name);
    let out = run(Command::new("age-keygen").arg("-o").arg(&path));
    assert!(out.status.success(), "age-keygen failed: {}", stderr(&out));
    let text = std::fs::read_to_string(&path).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key comment")
        .to_string();
    (path, recipient)
}

/// Decrypts `file` with the reference `age` CLI and identity `key`.
pub fn age_decrypt(key: &Path, file: &Path) -> Output {
    require_tool("age");
    run(Command::new("age").arg("-d").arg("-i").arg(key).arg(file))
}

/// Encrypts `plaintext` with the reference `age` CLI to `recipients` into `out`.
pub fn age_encrypt(recipients: &[&str], armor: bool, plaintext: &[u8], out: &Path) {
    use std::io::Write;
    require_tool("age");
    let mut cmd = Command::new("age");
    cmd.arg("-e");
    if armor {
        cmd.arg("-a");
    }
    for r in recipients {
        cmd.arg("-r").arg(r);
    }
    cmd.arg("-o").arg(out);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn age");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plaintext)
        .expect("write plaintext");
    let status = child.wait().unwrap();
    assert!(status.success(), "age -e failed");
}

/// Writes a `secrets.nix` mapping each secret name to its keys (and armor flag).
pub fn write_rules(dir: &Path, rules: &[(&str, &[&str], bool)]) -> PathBuf {
    let mut s = String::from("{\n");
    for (name, keys, armor) in rules {
        s.push_str(&format!("  {}.publicKeys = [", nix_string(name)));
        for k in *keys {
            s.push_str(&format!(" {}", nix_string(k)));
        }
        s.push_str(" ];\n");
        if *armor {
            s.push_str(&format!("  {}.armor = true;\n", nix_string(name)));
        }
    }
    s.push_str("}\n");
    let path = dir.join("secrets.nix");
    std::fs::write(&path, s).unwrap();
    path
}

/// A Nix string literal for `s`.
pub fn nix_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Mode bits of a file (permission part).
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A temporary fleet: a HOME, an admin ed25519 key made by ssh-keygen, a secrets directory.
pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub dir: PathBuf,
    pub admin: SshKey,
}

impl Fleet {
    pub fn new() -> Fleet {
        Self::in_dir(tempfile::tempdir().unwrap())
    }

    /// A fleet on the filesystem of the build directory (`target/`): persistent storage,
    /// where `/tmp` may be tmpfs (the durability tests need a disk).
    pub fn on_disk() -> Fleet {
        Self::in_dir(tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap())
    }

    fn in_dir(tmp: tempfile::TempDir) -> Fleet {
        let home = tmp.path().join("home");
        let dir = tmp.path().join("secrets");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let admin = ssh_keygen(&home.join(".ssh"), "id_ed25519", "ed25519", "");
        Fleet {
            tmp,
            home,
            dir,
            admin,
        }
    }

    /// Writes `secrets.nix` in the secrets dir.
    pub fn rules(&self, rules: &[(&str, &[&str], bool)]) -> PathBuf {
        write_rules(&self.dir, rules)
    }

    /// agefleet run in the secrets directory with HOME set.
    pub fn cmd(&self) -> Command {
        let mut c = agefleet(&self.home);
        c.current_dir(&self.dir);
        c
    }

    /// Runs agefleet with `args` and stdin closed.
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// Runs agefleet with `args`, `input` on stdin (not a terminal).
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_stdin(self.cmd().args(args), input)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Encrypts `plaintext` with the reference age CLI into the secrets dir.
    pub fn age_file(&self, name: &str, recipients: &[&str], plaintext: &[u8]) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        age_encrypt(recipients, false, plaintext, &p);
        p
    }

    /// Decrypts with the reference age CLI and the given key; panics on failure.
    pub fn age_plaintext(&self, key: &Path, name: &str) -> Vec<u8> {
        let out = age_decrypt(key, &self.path(name));
        assert!(out.status.success(), "age -d {name}: {}", stderr(&out));
        out.stdout
    }
}

/// A fleet in a fresh git repository whose first commit, `initial`, has admin and web1
/// reading tls.age (`tls v1`) and admin alone reading db.age (`db v1`): the start of a
/// history in which web1 is later removed (the rotation-debt tests). Needs `git` and `age`.
pub fn fleet_with_web1_in_git() -> (Fleet, SshKey) {
    require_tool("git");
    require_tool("age");
    let fleet = Fleet::new();
    let web1 = ssh_keygen(fleet.tmp.path(), "web1", "ed25519", "");
    let admin = fleet.admin.public_line.clone();
    let rules = format!(
        "let\n  admin = \"{admin}\";\n  web1 = \"{}\";\nin {{\n  \"tls.age\".publicKeys = [ admin web1 ];\n  \"db.age\".publicKeys = [ admin ];\n}}\n",
        web1.public_line
    );
    std::fs::write(fleet.path("secrets.nix"), rules).unwrap();
    fleet.age_file("tls.age", &[&admin, &web1.public_line], b"tls v1");
    fleet.age_file("db.age", &[&admin], b"db v1");
    sshd::git(&fleet.dir, &["init", "-q"]);
    sshd::git(&fleet.dir, &["add", "-A"]);
    sshd::git(&fleet.dir, &["commit", "-q", "-m", "initial"]);
    (fleet, web1)
}

/// Asserts a failure: non-zero exit, no panic, a one-line error mentioning `needle`.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(
        err.contains(needle),
        "stderr does not mention {needle:?}: {err}"
    );
    let error_lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("agefleet:") || l.starts_with("error:"))
        .collect();
    assert!(!error_lines.is_empty(), "no error line: {err}");
    for l in error_lines {
        assert!(!l.trim().is_empty());
    }
}
