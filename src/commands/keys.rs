//! `create-keys`, `copy-keys`, `check-keys` (work in progress).
use super::{Context, Error, Outcome, Result};
use crate::cli::{CheckKeysArgs, CopyKeysArgs, CreateKeysArgs};

pub fn create(_ctx: &Context, _args: &CreateKeysArgs) -> Result<Outcome> {
    Err(Error::Failed("create-keys: not implemented yet".into()))
}
pub fn copy(_ctx: &Context, _args: &CopyKeysArgs) -> Result<Outcome> {
    Err(Error::Failed("copy-keys: not implemented yet".into()))
}
pub fn check(_ctx: &Context, _args: &CheckKeysArgs) -> Result<Outcome> {
    Err(Error::Failed("check-keys: not implemented yet".into()))
}
