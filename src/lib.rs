//! agefleet: an agenix-compatible secrets lifecycle library.
//!
//! The `agefleet` binary is a thin shell over this crate: its `cli` (clap definitions) and
//! `commands` (one module per verb: flags in, typed report out, the only place that prints)
//! are not part of the library. The library's modules never print or exit; each verb is
//! plan → execute → report and returns typed errors that keep their sources.
//!
//! By protocol layer, bottom up: [`envelope`] (the age file format: header, armor, STREAM),
//! [`recipient`] and [`identity`] (the keys it is encrypted to and decrypted with),
//! [`rules`] (the `secrets.nix` recipient map), [`drift`] (rules against headers),
//! [`platform`] (root-safe filesystem walks, atomic writes, user lookup), and the verbs:
//! [`keys`], [`provision`] (first-install provisioning for `install-with-secrets`),
//! [`activation`] (its `place` module is the boot-time install phase), [`fleet`], and
//! [`secrets`] (what edit, decrypt, rekey and status share, with the [`secrets::rekey`],
//! [`secrets::generate`] and [`secrets::status`] verbs).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod activation;
pub mod drift;
pub mod envelope;
pub mod fleet;
pub mod fsutil;
pub mod git;
pub mod identity;
pub mod keys;
pub mod names;
pub mod platform;
pub mod policy;
pub mod provision;
pub mod recipient;
pub mod rules;
pub mod secrets;
pub mod sys;
pub mod text;
