//! `decrypt` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::DecryptArgs;

pub fn run(_ctx: &Context, _args: &DecryptArgs) -> Result<Outcome> {
    Err(Error::Failed("decrypt: not implemented yet".into()))
}
