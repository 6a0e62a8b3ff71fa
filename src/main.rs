//! Entry point: argv[0] dispatch, then hand over to `commands`, then map the outcome to an
//! exit code. Nothing else lives here.

#![forbid(unsafe_code)]

use std::process::ExitCode;

mod cli;
mod commands;

// The library's modules at the binary's root, so `crate::rules` means the same in
// `commands` as it does in the library.
use agefleet::internal::{fsutil, git, names, sys, text};
use agefleet::{
    activation, drift, envelope, fleet, identity, keys, provision, recipient, rules, secrets,
};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        // Usage errors: one `agefleet:` line like every other error, exit 2.
        Err(e) if e.use_stderr() => {
            commands::ui::err_line(&format!("agefleet: {}", cli::usage_error_line(&e)));
            return ExitCode::from(2);
        }
        // Help and version go to stdout, exit 0.
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match commands::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(commands::Error::StdoutClosed) => ExitCode::SUCCESS,
        Err(err) => {
            let message = commands::ui::printable_lines(&err.to_string());
            commands::ui::err_line(&format!("agefleet: {message}"));
            ExitCode::from(err.exit_code())
        }
    }
}
