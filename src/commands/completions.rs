//! `completions SHELL`: print a completion script generated from the clap definitions.
use clap::CommandFactory;

use super::{ui, Outcome, Result};
use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: &CompletionsArgs) -> Result<Outcome> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "agefleet", &mut script);
    ui::out_bytes(&script)?;
    Ok(Outcome::Success)
}
