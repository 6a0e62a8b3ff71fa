//! `rekey` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::RekeyArgs;

pub fn run(_ctx: &Context, _args: &RekeyArgs) -> Result<Outcome> {
    Err(Error::Failed("rekey: not implemented yet".into()))
}
