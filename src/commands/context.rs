//! What every command shares: the global flags.
use crate::cli::GlobalArgs;

pub struct Context {
    pub global: GlobalArgs,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Self {
        Context { global }
    }
}
