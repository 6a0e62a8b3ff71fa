//! agefleet: an agenix-compatible secrets lifecycle library.
//!
//! Flow is one-directional: `cli` (clap definitions) -> `commands` (one module per verb,
//! the only place that prints) -> library modules (`rules`, `recipient`, `identity`,
//! `envelope`, `fsutil`, `git`, `keys`, `activation`), which never print or exit and return
//! typed errors.

#![forbid(unsafe_code)]

pub mod activation;
pub mod cli;
pub mod commands;
pub mod drift;
pub mod envelope;
pub mod fleet;
pub mod fsutil;
pub mod git;
pub mod identity;
pub mod install;
pub mod keys;
pub mod names;
pub mod platform;
pub mod policy;
pub mod recipient;
pub mod rules;
pub mod sys;
pub mod text;
