//! A fake `ssh-keyscan` for tests of what agefleet does with its output (hostile output,
//! the argv it is given), without a server.
#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;

/// A fake `ssh-keyscan` first on PATH: it logs its arguments (one a line) to `args.log`
/// and prints the bytes of `output` on stdout and `err` on stderr.
pub struct FakeKeyscan {
    pub dir: tempfile::TempDir,
}

impl FakeKeyscan {
    pub fn new(output: &[u8], err: &str) -> FakeKeyscan {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("out"), output).unwrap();
        std::fs::write(d.join("err"), err).unwrap();
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{0}/args.log'\ncat '{0}/out'\ncat '{0}/err' >&2\nexit 0\n",
            d.display()
        );
        let tool = d.join("ssh-keyscan");
        std::fs::write(&tool, script).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeKeyscan { dir }
    }

    pub fn path_env(&self) -> OsString {
        let mut p = OsString::from(self.dir.path());
        p.push(":");
        p.push(std::env::var_os("PATH").unwrap_or_default());
        p
    }

    pub fn ran(&self) -> bool {
        self.dir.path().join("args.log").exists()
    }

    pub fn args(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("args.log"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
