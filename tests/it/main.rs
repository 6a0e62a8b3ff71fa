//! The integration tests: one binary (linked once), one module per area. Shared rigs and
//! helpers (fleet, keys, sshd + agent, users, Nix sources, pty, typage, agenix) live in
//! `common/`. Tests that need root or a tool outside Rust are `#[ignore = "needs …"]` with the
//! reason; CI (`scripts/test.sh` with `CI=true`) runs them with `--include-ignored`, where a
//! missing requirement fails the test instead of skipping it.

mod common;

mod access;
mod activate;
mod agenix_compat;
mod attacks;
mod audit;
mod bad_input;
mod cctv;
mod closed_stdout;
mod completions;
mod crash;
mod decrypt;
mod differential;
mod durability;
mod edit;
mod fuzz_regressions;
mod generate;
mod host;
mod host_generate;
mod host_verify;
mod install;
mod interop;
mod keys;
mod keyscan;
mod man;
mod nix;
mod nix_activation;
mod nix_eval;
mod pin;
mod plugin;
mod pq;
mod rekey;
mod rules;
mod status;
mod units;
