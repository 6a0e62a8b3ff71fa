//! `agefleet completions SHELL` prints a usable completion script for each shell.

use crate::common;

use crate::common::{require_tool, run, stderr, stdout};

fn completions(shell: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = run(common::agefleet(home.path()).args(["completions", shell]));
    assert!(
        out.status.success(),
        "completions {shell}: {}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn every_shell_gets_a_non_empty_script_naming_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = completions(shell);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        for word in ["rekey", "check-keys", "identity"] {
            assert!(script.contains(word), "{shell}: script lacks {word}");
        }
    }
}

#[test]
#[ignore = "needs `bash`"]
fn the_bash_script_parses() {
    require_tool("bash");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("agefleet.bash");
    std::fs::write(&script, completions("bash")).unwrap();
    let out = run(std::process::Command::new("bash").arg("-n").arg(&script));
    assert!(out.status.success(), "bash -n: {}", stderr(&out));
    // A script bash rejects would also fail here; one bash accepts must define the function.
    let out = run(std::process::Command::new("bash").arg("-c").arg(format!(
        "source {} && complete -p agefleet",
        script.display()
    )));
    assert!(out.status.success(), "sourcing: {}", stderr(&out));
    assert!(stdout(&out).contains("agefleet"), "{}", stdout(&out));
}
