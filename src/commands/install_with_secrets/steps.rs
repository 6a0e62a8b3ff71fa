//! The external steps of `install-with-secrets`: partitioning (disko) and the install command,
//! run from an argv (no shell), stdin inherited, their stdout sent to our stderr.

use std::process::{Command, Stdio};

use crate::commands::{Error, Result};
use crate::provision::preflight::Disko;

pub(super) fn partition(disko: &Disko) -> Result<()> {
    match disko {
        Disko::Given(argv) => run_tool("the disko command", argv, false).map(|_| ()),
        Disko::FlakeScript(build) => {
            let out = run_tool("building the disko script", build, true)?;
            let script = out
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .ok_or_else(|| {
                    Error::ExternalTool("building the disko script printed no store path".into())
                })?
                .to_string();
            run_tool("the disko script", &[script], false).map(|_| ())
        }
    }
}

/// Runs `argv` with stdin inherited (nixos-install asks for a root password) and stdout
/// sent to our stderr (stdout is for `--json`), or captured when `capture`.
pub(super) fn run_tool(what: &str, argv: &[String], capture: bool) -> Result<String> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::inherit());
    if capture {
        cmd.stdout(Stdio::piped());
    } else {
        let err = std::io::stderr();
        let fd = std::os::fd::AsFd::as_fd(&err)
            .try_clone_to_owned()
            .map_err(|e| Error::Failed(format!("cannot duplicate stderr: {e}")))?;
        cmd.stdout(Stdio::from(fd));
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::ExternalTool(format!("{what}: cannot run `{}`: {e}", argv[0])))?;
    if !out.status.success() {
        return Err(Error::ExternalTool(format!(
            "{what} failed: `{}` {}",
            argv[0], out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
