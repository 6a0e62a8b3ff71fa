//! One module per verb. Commands are the only layer that prints: messages to stderr, data to
//! stdout. They return an [`Outcome`] (exit 0 or 1 after reporting every problem) or an
//! [`Error`] (one message, mapped to an exit code by `main`).

use std::path::PathBuf;

use crate::cli::{Cli, Command};

pub mod access;
pub mod activate;
pub mod audit;
pub mod common;
pub mod completions;
pub mod context;
pub mod decrypt;
pub mod edit;
pub mod generate;
pub mod gitcheck;
pub mod host;
pub mod install_with_secrets;
pub mod keygen;
pub mod keys;
pub mod pin;
pub mod rekey;
pub mod rules;
pub mod signals;
pub mod status;
pub mod ui;

pub use context::Context;

/// How a command that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done and is fine: exit 0.
    Success,
    /// Every item was processed and the problems were reported: exit 1.
    Problems,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Problems => 1,
        }
    }

    /// `Problems` if `failed`, else `Success`.
    pub fn from_failed(failed: bool) -> Self {
        if failed {
            Outcome::Problems
        } else {
            Outcome::Success
        }
    }
}

/// A command that stopped. The message is one line and never holds secret material; each
/// library error already names its file (and line:col) and is kept with its sources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Exit 1: the operation failed.
    #[error("{0}")]
    Failed(String),
    /// Exit 2: the command line or environment is not usable.
    #[error("{0}")]
    Usage(String),
    /// Exit 3: refused to overwrite something.
    #[error("{0}")]
    Refused(String),
    /// Exit 4: a preflight check failed before any destructive step.
    #[error("{0}")]
    Preflight(String),
    /// Exit 5: an external tool failed.
    #[error("{0}")]
    ExternalTool(String),
    /// Exit 0, quietly: whoever read our stdout went away (`agefleet status | head -1`).
    /// Not a failure of ours, as ripgrep treats it.
    #[error("standard output was closed")]
    StdoutClosed,
    /// Exit 1: the rules file cannot be evaluated.
    #[error("{0}")]
    Rules(#[from] crate::rules::RulesError),
    /// Exit 1: an age file cannot be read or written.
    #[error("{0}")]
    Envelope(#[from] crate::envelope::EnvelopeError),
    /// Exit 1: an identity cannot be loaded or unlocked.
    #[error("{0}")]
    Identity(#[from] crate::identity::IdentityError),
    /// Exit 1: there is no identity to decrypt with.
    #[error("{0}")]
    NoIdentity(#[from] crate::secrets::NoIdentity),
    /// Exit 1: a public key cannot be encrypted to.
    #[error("{0}")]
    Recipient(#[from] crate::recipient::RecipientError),
    /// Exit 1: a rule's recipients are bad.
    #[error("{0}")]
    RuleRecipients(#[from] crate::secrets::RuleRecipientsError),
    /// Exit 1: a secret file cannot be read, decrypted or encrypted.
    #[error("{0}")]
    Secret(#[from] crate::secrets::SecretError),
    /// Exit 1: a filesystem operation failed.
    #[error("{0}")]
    Fs(#[from] crate::fsutil::FsError),
    /// Exit 1: git failed.
    #[error("{0}")]
    Git(#[from] crate::git::GitError),
    /// Exit 1: a file argument designates no rule (or two).
    #[error("{0}")]
    Name(#[from] crate::names::NameError),
    /// Exit 1: a key cannot be created, copied or read (refusals are [`Error::Refused`]).
    #[error("{0}")]
    Key(#[from] crate::keys::KeyError),
    /// Exit 1: activation failed.
    #[error("{0}")]
    Activation(#[from] crate::activation::ActivationError),
    /// Exit 4: `install-with-secrets`' preflight refused, before any destructive step.
    #[error("{0}")]
    InstallPreflight(#[from] crate::provision::preflight::PreflightError),
    /// `audit`: exit 2 when the rules are in no git work tree or `--since` names no commit
    /// (the caller's to fix), else 1.
    #[error("{0}")]
    Audit(#[from] crate::fleet::audit::AuditError),
    /// `pin`: exit 2 for a missing or malformed flake.lock, an input that is not there or
    /// locks no commit, or rules outside a git work tree; else 1.
    #[error("{0}")]
    Pin(#[from] crate::fleet::pin::PinError),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Refused(_) => 3,
            Error::Preflight(_) | Error::InstallPreflight(_) => 4,
            Error::ExternalTool(_) => 5,
            Error::StdoutClosed => 0,
            Error::Audit(
                crate::fleet::audit::AuditError::NotARepository { .. }
                | crate::fleet::audit::AuditError::BadRevision { .. },
            ) => 2,
            Error::Pin(e) if e.is_usage() => 2,
            Error::Failed(_)
            | Error::Rules(_)
            | Error::Envelope(_)
            | Error::Identity(_)
            | Error::NoIdentity(_)
            | Error::Recipient(_)
            | Error::RuleRecipients(_)
            | Error::Secret(_)
            | Error::Fs(_)
            | Error::Git(_)
            | Error::Name(_)
            | Error::Key(_)
            | Error::Activation(_)
            | Error::Audit(_)
            | Error::Pin(_) => 1,
        }
    }

    /// An exit-1 failure with `e`'s message (for errors that have no variant of their own).
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Error::Failed(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    let Cli {
        global,
        edit,
        decrypt,
        rekey,
        command,
    } = cli;
    let ctx = Context::new(global);
    match (command, edit, decrypt, rekey) {
        (Some(_), e, d, r) if e.is_some() || d.is_some() || r => Err(Error::Usage(
            "-e, -d and -r cannot be combined with a subcommand".into(),
        )),
        (Some(cmd), ..) => run_command(&ctx, cmd),
        (None, Some(file), _, _) => edit::run(
            &ctx,
            &crate::cli::EditArgs {
                file,
                git_add: false,
                allow_empty: false,
            },
        ),
        (None, None, Some(file), _) => {
            decrypt::run(&ctx, &crate::cli::DecryptArgs { file, output: None })
        }
        (None, None, None, true) => rekey::run(&ctx, &crate::cli::RekeyArgs::default()),
        (None, None, None, false) => Err(Error::Usage(
            "no action given: use -e FILE, -d FILE, -r or a subcommand (see --help)".into(),
        )),
    }
}

fn run_command(ctx: &Context, cmd: Command) -> Result<Outcome> {
    match cmd {
        Command::Edit(a) => edit::run(ctx, &a),
        Command::Decrypt(a) => decrypt::run(ctx, &a),
        Command::Rekey(a) => rekey::run(ctx, &a),
        Command::Status(a) => status::run(ctx, &a),
        Command::Rules(a) => rules::run(ctx, &a),
        Command::CreateKeys(a) => keys::create(ctx, &a),
        Command::CopyKeys(a) => keys::copy(ctx, &a),
        Command::CheckKeys(a) => keys::check(ctx, &a),
        Command::InstallWithSecrets(a) => install_with_secrets::run(ctx, &a),
        Command::Activate(a) => activate::run(ctx, &a),
        Command::Completions(a) => completions::run(&a),
        Command::Keygen(a) => keygen::run(&a),
        Command::Host(crate::cli::HostCommand::Add(a)) => host::add(ctx, &a),
        Command::Host(crate::cli::HostCommand::Remove(a)) => host::remove(ctx, &a),
        Command::Host(crate::cli::HostCommand::Verify(a)) => host::verify(ctx, &a),
        Command::Access(a) => access::run(ctx, &a),
        Command::Audit(a) => audit::run(ctx, &a),
        Command::Pin(a) => pin::run(ctx, &a),
        Command::Generate(a) => generate::run(ctx, &a),
    }
}

/// The home directory, for default key paths.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
