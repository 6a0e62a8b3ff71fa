//! `activate` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::ActivateArgs;

pub fn run(_ctx: &Context, _args: &ActivateArgs) -> Result<Outcome> {
    Err(Error::Failed("activate: not implemented yet".into()))
}
