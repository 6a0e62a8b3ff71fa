//! `completions SHELL`: print a completion script generated from the clap definitions.
use clap::CommandFactory;

use super::{Outcome, Result};
use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: &CompletionsArgs) -> Result<Outcome> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "agefleet", &mut std::io::stdout());
    Ok(Outcome::Success)
}
