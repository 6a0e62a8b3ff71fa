//! `edit` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::EditArgs;

pub fn run(_ctx: &Context, _args: &EditArgs) -> Result<Outcome> {
    Err(Error::Failed("edit: not implemented yet".into()))
}
