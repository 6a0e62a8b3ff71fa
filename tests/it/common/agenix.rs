//! Side by side with agenix: its real script (`pkgs/agenix.sh` of the agenix source tree,
//! placeholders substituted with Debian's `age`, `jq`, `nix-instantiate`, `mktemp`, `diff`)
//! and agefleet run on two identical copies of one fleet directory, with the same HOME,
//! arguments, environment and stdin, so exit codes, files and plaintexts can be compared.
//! Both run without a controlling terminal (`setsid`).
//!
//! The agenix source is `nix-src/agenix` of the reference data ([`super::reference`];
//! `$AGEFLEET_AGENIX_SRC` overrides it).
//! `nix-instantiate` runs with `--store dummy://`: agenix only evaluates, and that store
//! needs neither root nor `/nix`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{require_tool, ssh_keygen, stderr, SshKey};

/// The agenix source tree, with its script; fails the test when it is missing.
pub fn agenix_src() -> PathBuf {
    let src = super::reference("nix-src/agenix", "AGEFLEET_AGENIX_SRC");
    assert!(
        src.join("pkgs/agenix.sh").is_file(),
        "{} has no pkgs/agenix.sh: not an agenix source tree",
        src.display()
    );
    src
}

/// Fails the test unless the side-by-side rig can run: the agenix source and its tools
/// (such tests are `#[ignore = "needs …"]`).
pub fn require_agenix() {
    agenix_src();
    for tool in [
        "bash",
        "age",
        "jq",
        "nix-instantiate",
        "mktemp",
        "diff",
        "setsid",
    ] {
        require_tool(tool);
    }
}

/// What one side did.
#[derive(Debug)]
pub struct Side {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl From<Output> for Side {
    fn from(o: Output) -> Self {
        Side {
            code: o.status.code(),
            stderr: stderr(&o),
            stdout: o.stdout,
        }
    }
}

/// One case's two runs.
#[derive(Debug)]
pub struct Pair {
    pub agenix: Side,
    pub agefleet: Side,
}

impl Pair {
    /// Both exited with `code`.
    pub fn assert_codes(&self, code: i32) {
        assert_eq!(
            (self.agenix.code, self.agefleet.code),
            (Some(code), Some(code)),
            "exit codes (agenix, agefleet); {self:#?}"
        );
    }
}

/// How a run is started.
#[derive(Default, Clone)]
pub struct Run<'a> {
    /// Working directory, relative to each side's root.
    pub cwd: &'a str,
    pub args: &'a [&'a str],
    /// Extra environment; `{root}` in a value becomes that side's root directory.
    pub env: &'a [(&'a str, &'a str)],
    /// Bytes on stdin (a pipe); `None` for `/dev/null`.
    pub stdin: Option<&'a [u8]>,
    /// The umask to run under (default 022).
    pub umask: Option<u32>,
}

/// Two copies of one fleet: `root/agenix` and `root/agefleet`, one HOME with an admin key.
pub struct Twin {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub admin: SshKey,
    script: PathBuf,
    bin: PathBuf,
}

impl Twin {
    /// A twin rig; fails the test when agenix or its tools are missing.
    pub fn new() -> Twin {
        require_agenix();
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for side in ["agenix", "agefleet"] {
            std::fs::create_dir_all(tmp.path().join(side)).unwrap();
        }
        let admin = ssh_keygen(&home.join(".ssh"), "id_ed25519", "ed25519", "");
        let script = install_script(&bin);
        Twin {
            tmp,
            home,
            admin,
            script,
            bin,
        }
    }

    /// A side's root directory.
    pub fn root(&self, side: &str) -> PathBuf {
        self.tmp.path().join(side)
    }

    /// Writes `rel` with `bytes` on both sides (parents created).
    pub fn write(&self, rel: &str, bytes: &[u8]) {
        for side in ["agenix", "agefleet"] {
            let p = self.root(side).join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
        }
    }

    /// Copies every file of `dir` into `rel` on both sides.
    pub fn copy_dir(&self, dir: &Path, rel: &str) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                let name = entry.file_name();
                let bytes = std::fs::read(entry.path()).unwrap();
                self.write(&format!("{rel}/{}", name.to_string_lossy()), &bytes);
            }
        }
    }

    /// `secrets.nix` at `rel` on both sides (see [`super::write_rules`]).
    pub fn rules(&self, rel: &str, rules: &[(&str, &[&str], bool)]) {
        let staging = tempfile::tempdir().unwrap();
        let text = std::fs::read(super::write_rules(staging.path(), rules)).unwrap();
        self.write(rel, &text);
    }

    /// Encrypts `plaintext` once with the `age` CLI and puts the same file at `rel` on both
    /// sides.
    pub fn age_file(&self, rel: &str, recipients: &[&str], plaintext: &[u8]) {
        let staging = tempfile::tempdir().unwrap();
        let p = staging.path().join("f.age");
        super::age_encrypt(recipients, false, plaintext, &p);
        self.write(rel, &std::fs::read(p).unwrap());
    }

    /// The bytes of `rel` on each side (`None`: missing).
    pub fn files(&self, rel: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let read = |side| std::fs::read(self.root(side).join(rel)).ok();
        (read("agenix"), read("agefleet"))
    }

    /// The permission bits of `rel` on each side.
    pub fn modes(&self, rel: &str) -> (u32, u32) {
        let mode = |side| super::mode_of(&self.root(side).join(rel));
        (mode("agenix"), mode("agefleet"))
    }

    /// What the `age` CLI decrypts `rel` to with `key`, on each side (`None`: it failed or
    /// the file is missing).
    pub fn plaintexts(&self, rel: &str, key: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let open = |side| {
            let p = self.root(side).join(rel);
            if !p.exists() {
                return None;
            }
            let out = super::age_decrypt(key, &p);
            out.status.success().then_some(out.stdout)
        };
        (open("agenix"), open("agefleet"))
    }

    /// Runs the case on both sides.
    pub fn run(&self, run: &Run) -> Pair {
        Pair {
            agenix: self.run_side("agenix", run),
            agefleet: self.run_side("agefleet", run),
        }
    }

    fn run_side(&self, side: &str, run: &Run) -> Side {
        let root = self.root(side);
        let program = match side {
            "agenix" => self.script.clone(),
            // Another build may be compared (e.g. to see a case fail before a fix).
            _ => std::env::var_os("AGEFLEET_COMPAT_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_agefleet"))),
        };
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let umask = format!("{:03o}", run.umask.unwrap_or(0o022));
        // setsid: no controlling terminal, so neither side can prompt on the developer's
        // terminal; the umask is set by the shell that then becomes the program.
        let mut cmd = Command::new("setsid");
        cmd.args(["-w", "/bin/sh", "-c"])
            .arg(format!("umask {umask} && exec \"$@\""))
            .arg("sh")
            .arg(&program)
            .args(run.args)
            .current_dir(root.join(run.cwd))
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env("LANG", "C.UTF-8");
        if let Some(v) = std::env::var_os("XDG_RUNTIME_DIR") {
            cmd.env("XDG_RUNTIME_DIR", v);
        }
        for (k, v) in run.env {
            cmd.env(k, v.replace("{root}", &root.to_string_lossy()));
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        match run.stdin {
            None => Side::from(cmd.stdin(Stdio::null()).output().expect("spawn")),
            Some(input) => {
                use std::io::Write;
                let mut child = cmd.stdin(Stdio::piped()).spawn().expect("spawn");
                // A side that does not read its stdin may close it early.
                let _ = child.stdin.take().unwrap().write_all(input);
                Side::from(child.wait_with_output().unwrap())
            }
        }
    }

    /// Puts `tool` (a file) on both sides' PATH.
    pub fn add_to_path(&self, tool: &Path) {
        let name = tool.file_name().unwrap();
        std::os::unix::fs::symlink(tool, self.bin.join(name)).unwrap();
    }
}

/// Writes agenix's script with its placeholders substituted, and a `nix-instantiate` that
/// evaluates against the dummy store, into `bin`; returns the script's path.
fn install_script(bin: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let src = agenix_src();
    let which = |t: &str| {
        super::which(t)
            .unwrap_or_else(|| panic!("{t} not on PATH"))
            .to_string_lossy()
            .into_owned()
    };
    let nix = bin.join("nix-instantiate-dummy-store");
    std::fs::write(
        &nix,
        format!(
            "#!/bin/sh\nexec {} --store dummy:// \"$@\"\n",
            which("nix-instantiate")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&nix, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(src.join("pkgs/agenix.sh")).unwrap();
    let text = text
        .replace("@version@", "0.15.0")
        .replace("@ageBin@", &which("age"))
        .replace("@jqBin@", &which("jq"))
        .replace("@nixInstantiate@", &nix.to_string_lossy())
        .replace("@mktempBin@", &which("mktemp"))
        .replace("@diffBin@", &which("diff"));
    assert!(!text.contains("@ageBin@") && !text.contains("@nixInstantiate@"));
    let script = bin.join("agenix");
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}
