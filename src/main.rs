//! Entry point: argv[0] dispatch, then hand over to `commands`, then map the outcome to an
//! exit code. Nothing else lives here.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match agefleet::cli::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap renders help/version on stdout (exit 0) and usage errors on stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match agefleet::commands::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) => {
            eprintln!("agefleet: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
