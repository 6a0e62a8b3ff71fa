//! A loopback SSH rig with real OpenSSH parts: `sshd` on 127.0.0.1 with its own host key and
//! authorized_keys (agent forwarding allowed), an `ssh-agent` holding the only copy of an
//! operator key (the private key file is deleted after `ssh-add`), bare git repositories
//! reachable as `ssh://root@127.0.0.1:PORT/<abs path>`, and a known_hosts file for the server.
//! Every process started here is killed by PID when the rig is dropped, also on test failure.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{run, ssh_keygen, stderr};

/// sshd by absolute path (it refuses to run otherwise): /usr/sbin/sshd, else from PATH.
fn sshd_path() -> Option<PathBuf> {
    let debian = Path::new("/usr/sbin/sshd");
    if debian.is_file() {
        return Some(debian.to_path_buf());
    }
    super::which("sshd").and_then(|p| std::path::absolute(p).ok())
}

/// A running sshd + ssh-agent pair in a temp dir.
pub struct SshRig {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The rig agent's socket (the operator's `SSH_AUTH_SOCK`).
    pub agent_sock: PathBuf,
    /// known_hosts naming the rig's sshd as `[127.0.0.1]:PORT`.
    pub known_hosts: PathBuf,
    /// The operator's public key line (the agent holds the private half; not on disk).
    pub operator_public: String,
    /// sshd's host public key line.
    pub host_public: String,
    /// Public lines of further host keys (see [`SshRig::start_with_host_keys`]); these are
    /// not in `known_hosts`.
    pub extra_host_publics: Vec<String>,
    sshd: Option<Child>,
    agent: Option<Child>,
}

/// Fails the test unless this machine can run the rig: root, sshd and the OpenSSH client
/// tools, git (such tests are `#[ignore = "needs …"]`).
pub fn require() {
    super::require_root();
    if sshd_path().is_none() {
        super::require_tool("sshd");
    }
    for tool in ["ssh", "ssh-agent", "ssh-add", "ssh-keygen", "git"] {
        super::require_tool(tool);
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

fn wait_for(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl SshRig {
    /// Starts sshd and the agent. Call [`available`] first.
    pub fn start() -> SshRig {
        Self::start_with_host_keys(&[])
    }

    /// Starts the rig with sshd holding further host keys of the given `ssh-keygen -t` kinds
    /// (e.g. `"ecdsa"`) besides its ed25519 one; `known_hosts` lists only the ed25519 key.
    pub fn start_with_host_keys(extra_kinds: &[&str]) -> SshRig {
        let dir = tempfile::Builder::new()
            .prefix("agefleet-sshrig-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");

        let host = ssh_keygen(d, "ssh_host_ed25519_key", "ed25519", "");
        let extra: Vec<_> = extra_kinds
            .iter()
            .map(|k| ssh_keygen(d, &format!("ssh_host_{k}_key"), k, ""))
            .collect();
        let operator = ssh_keygen(d, "operator", "ed25519", "");
        std::fs::write(
            d.join("authorized_keys"),
            format!("{}\n", operator.public_line),
        )
        .unwrap();
        let port = free_port();
        let host_key_fields: Vec<&str> = host.public_line.split_whitespace().take(2).collect();
        let known_hosts = d.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", host_key_fields.join(" ")),
        )
        .unwrap();
        let cfg = d.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nStrictModes no\nUsePAM no\nAllowAgentForwarding yes\n\
                 PermitRootLogin yes\nAuthenticationMethods publickey\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 LogLevel VERBOSE\n{}",
                host.private.display(),
                d.join("authorized_keys").display(),
                d.join("sshd.pid").display(),
                extra
                    .iter()
                    .map(|k| format!("HostKey {}\n", k.private.display()))
                    .collect::<String>(),
            ),
        )
        .unwrap();

        let mut rig = SshRig {
            port,
            agent_sock: d.join("agent.sock"),
            known_hosts,
            operator_public: operator.public_line.clone(),
            host_public: host.public_line.clone(),
            extra_host_publics: extra.iter().map(|k| k.public_line.clone()).collect(),
            sshd: None,
            agent: None,
            dir,
        };
        let log = std::fs::File::create(rig.dir.path().join("sshd.log")).unwrap();
        rig.sshd = Some(
            Command::new(sshd_path().expect("sshd (checked by require())"))
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn sshd"),
        );
        rig.agent = Some(
            Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&rig.agent_sock)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ssh-agent"),
        );
        let sock = rig.agent_sock.clone();
        // The socket file appears at bind(), before listen(): wait until it accepts.
        wait_for("ssh-agent", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        wait_for("sshd", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let out = run(Command::new("ssh-add")
            .arg(&operator.private)
            .env("SSH_AUTH_SOCK", &rig.agent_sock));
        assert!(out.status.success(), "ssh-add: {}", stderr(&out));
        // The agent now holds the only copy of the operator key.
        std::fs::remove_file(&operator.private).unwrap();
        rig
    }

    /// PIDs of the processes this rig started.
    pub fn pids(&self) -> Vec<u32> {
        self.sshd
            .iter()
            .chain(self.agent.iter())
            .map(|c| c.id())
            .collect()
    }

    /// Creates a bare repository `name.git` in the rig holding `files` (one commit) and
    /// returns its `ssh://` URL.
    pub fn bare_repo(&self, name: &str, files: &[(&str, &[u8])]) -> String {
        let work = self.dir.path().join(format!("{name}-work"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        for (rel, content) in files {
            let p = work.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "secrets"]);
        let bare = self.dir.path().join(format!("{name}.git"));
        git(
            self.dir.path(),
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        self.url(&bare)
    }

    /// `ssh://root@127.0.0.1:PORT/<abs path>`.
    pub fn url(&self, repo: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, repo.display())
    }

    /// An `ssh -A` command to the rig's sshd as root, authenticated by the rig's agent and
    /// checking the server against the rig's known_hosts; `remote` is the remote command.
    pub fn ssh_forwarding(&self, remote: &[String]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SSH_AUTH_SOCK", &self.agent_sock)
            .args(["-A", "-F", "/dev/null", "-i", "/dev/null", "-p"])
            .arg(self.port.to_string())
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ForwardAgent=yes",
                "root@127.0.0.1",
                "--",
            ])
            .arg(shell_words::join(remote));
        cmd
    }

    /// sshd's log so far (for assertion messages).
    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshRig {
    fn drop(&mut self) {
        for child in [self.sshd.take(), self.agent.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a process with this PID is still running (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Runs git with a fixed identity in `dir`, asserting success.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "agefleet test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "agefleet test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org"));
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
