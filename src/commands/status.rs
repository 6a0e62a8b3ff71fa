//! `status` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::StatusArgs;

pub fn run(_ctx: &Context, _args: &StatusArgs) -> Result<Outcome> {
    Err(Error::Failed("status: not implemented yet".into()))
}
