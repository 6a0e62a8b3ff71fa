//! Runs a command under a pseudo-terminal with `script(1)` (util-linux), typing `input` into
//! it, so terminal-only paths (passphrase prompts on /dev/tty, `$EDITOR`) run for real.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct PtyRun {
    pub code: Option<i32>,
    /// Everything the terminal showed (prompts, echoed input, stdout and stderr).
    pub screen: String,
}

/// Runs `argv` in `cwd` under a pty with exactly `env`, types `input`, and kills the whole
/// run after `timeout` (a test that would hang on a prompt fails instead).
pub fn run_in_pty(
    env: &[(&str, &std::ffi::OsStr)],
    cwd: &Path,
    argv: &[&str],
    input: &[u8],
    timeout: Duration,
) -> PtyRun {
    let cmdline = shell_words::join(argv);
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &cmdline, "/dev/null"])
        .current_dir(cwd)
        .env_clear()
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn script(1)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input)
        .expect("type input");
    let pid = child.id() as i32;
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > timeout {
            // Kill the whole process group: script, the shell and agefleet.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let out = child.wait_with_output().unwrap();
            panic!(
                "timed out after {timeout:?} (a prompt waited for input?); screen:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    PtyRun {
        code: out.status.code(),
        screen: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    }
}
