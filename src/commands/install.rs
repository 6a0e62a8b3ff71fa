//! `install` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::InstallArgs;

pub fn run(_ctx: &Context, _args: &InstallArgs) -> Result<Outcome> {
    Err(Error::Failed("install: not implemented yet".into()))
}
