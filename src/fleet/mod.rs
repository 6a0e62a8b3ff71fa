//! Fleet onboarding and revocation: `host add/remove` as verified in-place edits of
//! `secrets.nix` ([`edit`]), a host's key fetched with `ssh-keyscan` ([`keyscan`]) and
//! compared with the fleet's live host keys ([`verify`]), who can
//! read what ([`access`]), and who could read what in the git history ([`audit`]: rotation
//! debt), whether a system flake's lock pins the secrets repository's newest commit
//! ([`pin`]). Library code: plans and reports, never prints.

pub mod access;
pub mod audit;
pub mod edit;
pub mod keyscan;
pub mod pin;
pub mod syntax;
pub mod verify;
