//! Fleet onboarding and revocation: `host add/remove` as verified in-place edits of
//! `secrets.nix` ([`edit`]), a host's key fetched with `ssh-keyscan` ([`keyscan`]), and who can read what ([`access`]). Library code: plans and
//! reports, never prints.

pub mod access;
pub mod edit;
pub mod keyscan;
pub mod syntax;
