//! `rules` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::RulesArgs;

pub fn run(_ctx: &Context, _args: &RulesArgs) -> Result<Outcome> {
    Err(Error::Failed("rules: not implemented yet".into()))
}
