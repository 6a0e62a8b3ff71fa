//! agefleet: an agenix-compatible secrets lifecycle library.
//!
//! A fleet keeps its secrets as `.age` files next to a `secrets.nix` recipient map (which
//! keys may open which file). This crate reads that map, encrypts, decrypts and rekeys the
//! files, reports drift between the map and the files without decrypting them, and installs
//! secrets at boot. The `agefleet` command-line tool is a thin shell over it.
//!
//! # The main nouns
//!
//! - [`Rules`], loaded with [`load_rules`]: the evaluated `secrets.nix` ([`RuleEntry`] per
//!   secret, its recipients as written).
//! - [`Recipient`] (parse with [`str::parse`], print with `Display`) and [`IdentitySet`]: the keys
//!   a file is encrypted to and the keys it is opened with (ssh-ed25519, ssh-rsa, age X25519,
//!   the hybrid post-quantum `mlkem768x25519`, and age plugins).
//! - [`Header`]: an age file's header, read without any key ([`Header::parse`]).
//! - [`encrypt`] and [`decrypt`]: whole files in memory; plaintext comes back zeroized on drop.
//! - The verbs: [`secrets::rekey`], [`secrets::generate`] and [`secrets::status`] (plan →
//!   execute → report),
//!   [`fleet`] (`access`, `audit`, host onboarding), [`keys`] (the key lifecycle),
//!   [`activation`] (boot-time install into a RAM-backed directory) and [`provision`]
//!   (first-install provisioning).
//!
//! By protocol layer, bottom up: [`envelope`] (the age file format), [`recipient`] and
//! [`identity`] (the keys), [`rules`] (the `secrets.nix` recipient map), [`presence`] (the one
//! model of which rule recipients a header serves) and [`drift`], [`policy`], then the verbs.
//!
//! Library functions never print and never exit; every error is a typed enum that keeps its
//! source. Public error enums are `#[non_exhaustive]`.
//!
//! # Examples
//!
//! Load a `secrets.nix` and list its rules:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let rules_file = dir.path().join("secrets.nix");
//! std::fs::write(
//!     &rules_file,
//!     r#"
//!     let
//!       web1 = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
//!     in {
//!       "api-key.age".publicKeys = [ web1 ];
//!       "smb.age" = { publicKeys = [ web1 ]; armor = true; };
//!     }
//!     "#,
//! )?;
//! let rules = agefleet::load_rules(&rules_file, agefleet::EvalMode::Builtin)?;
//! let names: Vec<&str> = rules.entries.iter().map(|e| e.name.as_str()).collect();
//! assert_eq!(names, ["api-key.age", "smb.age"]);
//! // Each entry's rule is checked on its own: one bad entry does not hide the others.
//! let smb = rules.entry("smb.age").unwrap().rule.clone()?;
//! assert!(smb.armor);
//! # Ok(())
//! # }
//! ```
//!
//! Encrypt to a rule's recipients and decrypt with a matching identity:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agefleet::{IdentitySet, Recipient};
//!
//! let recipient: Recipient =
//!     "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj".parse()?;
//! assert_eq!(recipient.kind, agefleet::RecipientKind::X25519);
//! let ciphertext = agefleet::encrypt(b"hunter2", &[&recipient], false)?;
//!
//! // The header names its stanzas without any key.
//! let header = agefleet::Header::parse(&ciphertext)?;
//! assert_eq!(header.x25519_count(), 1);
//!
//! # let dir = tempfile::tempdir()?;
//! let key_file = dir.path().join("key.txt");
//! std::fs::write(
//!     &key_file,
//!     "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n",
//! )?;
//! let (identities, _warnings) = IdentitySet::load(&[key_file], None)?;
//! let plaintext = agefleet::decrypt(&ciphertext, &identities)?;
//! assert_eq!(&plaintext[..], b"hunter2");
//! # Ok(())
//! # }
//! ```
//!
//! Rekey every secret of a fleet to its rule's recipients and read the report:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agefleet::secrets::rekey;
//! # let dir = tempfile::tempdir()?;
//! # let key_file = dir.path().join("key.txt");
//! # std::fs::write(
//! #     &key_file,
//! #     "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n",
//! # )?;
//! # let rules_file = dir.path().join("secrets.nix");
//! # std::fs::write(
//! #     &rules_file,
//! #     r#"{ "api-key.age".publicKeys = [ "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj" ]; }"#,
//! # )?;
//! # let first: agefleet::Recipient = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj".parse()?;
//! # std::fs::write(dir.path().join("api-key.age"), agefleet::encrypt(b"v", &[&first], false)?)?;
//! let rules = agefleet::load_rules(&rules_file, agefleet::EvalMode::Builtin)?;
//! let (identities, _warnings) = agefleet::IdentitySet::load(&[key_file], None)?;
//!
//! // Every rule (no file arguments, no recipient filter), under the fleet's write lock.
//! let selection = rekey::select(&rules, &[], dir.path(), None);
//! let lock = agefleet::secrets::WriteLock::acquire(dir.path())?;
//! let plan = rekey::plan(&rules, selection, false, &lock);
//! let report = rekey::execute(plan, &identities, &|_progress| {}, &lock);
//! assert_eq!(report.rekeyed(), 1);
//! assert_eq!(report.failed(), 0);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(unnameable_types)]

pub mod activation;
pub mod drift;
pub mod envelope;
pub mod fleet;
pub mod identity;
pub mod keys;
pub mod policy;
pub mod presence;
pub mod provision;
pub mod recipient;
pub mod rules;
pub mod secrets;

pub(crate) mod fsutil;
pub(crate) mod git;
pub(crate) mod names;
pub(crate) mod platform;
pub(crate) mod ssh;
pub(crate) mod sys;
pub(crate) mod text;

pub use envelope::{decrypt, encrypt, EnvelopeError, Header, StanzaKind};
pub use fsutil::FsError;
pub use identity::{IdentityError, IdentityProblem, IdentitySet, PassphrasePrompt};
pub use platform::walk::WalkError;
pub use recipient::plugin::PluginUi;
pub use recipient::{Recipient, RecipientError, RecipientKind};
pub use rules::{load as load_rules, EvalMode, RuleEntry, Rules, RulesError};

/// Not part of the API: what the `agefleet` binary and this repository's own tests use from
/// the crate's internals (atomic writes, the RAM-backed edit directory, git helpers, name
/// resolution, output escaping). No stability promise; anything here may change in any
/// release.
#[doc(hidden)]
pub mod internal {
    /// Atomic writes, write locks and the RAM-backed private directory.
    pub mod fsutil {
        pub use crate::fsutil::{
            atomic_write, create_parent_dirs, find_program, lock_for_writing, remove_empty_dirs,
            sweep_stale_private_dirs, symlink_target, temp_target, FsError, PrivateTempDir,
            StaleTemps, Sweep, WriteLock,
        };
    }
    /// Git work-tree helpers.
    pub mod git {
        pub use crate::git::{
            add_intent_to_add, clone_with_agent, is_tracked, Cloned, GitError, SshRemote,
        };
    }
    /// Secret names as the agenix CLI resolves them.
    pub mod names {
        pub use crate::names::{NameBase, NameError};
    }
    /// Operating-system facts.
    pub mod sys {
        pub use crate::sys::{new_file_mode, FsKind, RamMount};
    }
    /// Output escaping.
    pub mod text {
        pub use crate::text::escape_controls;
    }
}
