//! Every flag in one place: the agenix-compatible top-level flags and the subcommands.
//!
//! The binary also answers to other names through argv[0] (symlinks made by the flake):
//! `create-keys`, `copy-keys`, `check-keys` and `install-with-secrets` act as that
//! subcommand; `agenix` is the plain CLI.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// agenix-compatible secrets lifecycle tool.
#[derive(Debug, Parser)]
#[command(
    name = "agefleet",
    version,
    about = "agenix-compatible secrets lifecycle tool: edit, decrypt, rekey, drift, keys, activation",
    long_about = None,
    after_help = "agenix-compatible: `agefleet -e FILE`, `agefleet -d FILE`, `agefleet -r` behave like agenix.\n\
                  Rules file: --rules, else $RULES, else ./secrets.nix."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Edit FILE using $EDITOR (agenix -e).
    #[arg(
        short = 'e',
        long = "edit",
        value_name = "FILE",
        group = "agenix_action",
        // As agenix: the next argument is the file, whatever it starts with.
        allow_hyphen_values = true
    )]
    pub edit: Option<PathBuf>,

    /// Decrypt FILE to stdout (agenix -d).
    #[arg(
        short = 'd',
        long = "decrypt",
        value_name = "FILE",
        group = "agenix_action",
        // As agenix: the next argument is the file, whatever it starts with.
        allow_hyphen_values = true
    )]
    pub decrypt: Option<PathBuf>,

    /// Re-encrypt all secrets with the recipients in the rules (agenix -r).
    #[arg(short = 'r', long = "rekey", group = "agenix_action")]
    pub rekey: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every verb understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Identity to decrypt with (repeatable): OpenSSH private key or age identity file.
    /// Default: ~/.ssh/id_rsa then ~/.ssh/id_ed25519.
    #[arg(short = 'i', long = "identity", value_name = "KEY", global = true)]
    pub identity: Vec<PathBuf>,

    /// Say more about what is being done.
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,

    /// The rules file (default: $RULES, else ./secrets.nix).
    #[arg(long = "rules", value_name = "FILE", global = true, env = "RULES")]
    pub rules: Option<PathBuf>,

    /// How to evaluate the rules file: builtin evaluator, nix-instantiate, or builtin with
    /// a fallback to Nix for what the builtin evaluator does not support.
    #[arg(long = "nix-eval", value_enum, default_value_t = NixEval::Auto, global = true)]
    pub nix_eval: NixEval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NixEval {
    Auto,
    Builtin,
    Nix,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or edit a secret with $EDITOR (stdin becomes the plaintext when it is not a TTY).
    Edit(EditArgs),
    /// Decrypt a secret to stdout (raw bytes), or to --output.
    Decrypt(DecryptArgs),
    /// Re-encrypt secrets to the recipients the rules list.
    Rekey(RekeyArgs),
    /// Show drift between the rules and the files' headers, without decrypting.
    Status(StatusArgs),
    /// Print the evaluated rules file.
    Rules(RulesArgs),
    /// Create the fleet's SSH keys (git access + agenix identity).
    CreateKeys(CreateKeysArgs),
    /// Copy a key set from a mounted source (e.g. a USB stick) into the SSH directory.
    CopyKeys(CopyKeysArgs),
    /// Check the SSH keys and which secrets they can open.
    CheckKeys(CheckKeysArgs),
    /// Provision a first install with its secrets over a forwarded SSH agent.
    InstallWithSecrets(InstallArgs),
    /// Install secrets from a manifest into the RAM-backed secrets directory.
    Activate(ActivateArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Generate an age identity (X25519, or post-quantum with --pq), or print the recipients
    /// of an identity file (-y).
    Keygen(KeygenArgs),
    /// Add, replace or remove a host's key in secrets.nix (editing the file in place, then
    /// rekeying), or verify the fleet's live host keys against it.
    #[command(subcommand)]
    Host(HostCommand),
    /// Show who can read which secret: recipients × secrets, with drift (and rotation
    /// debt when the rules are in a git work tree).
    Access(AccessArgs),
    /// Report rotation debt from the git history: recipients that could decrypt a committed
    /// version of a secret but are no longer in its rule. With -i, a value rotated since is
    /// settled. Exit 1 while debt remains.
    Audit(AuditArgs),
    /// Compare the secrets commit a system flake pins (flake.lock) with the secrets
    /// repository: current, behind (and what the hosts miss), ahead, diverged or unknown.
    /// Exit 0 when current, 1 otherwise.
    Pin(PinArgs),
    /// Make the secrets whose rules have a generator and whose files do not exist yet
    /// (idempotent); with --rotate or --rotate-debt, give existing ones new values.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The system flake's directory (holding flake.lock).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub flake: PathBuf,
    /// The flake's secrets input (default: the input locking a remote of the secrets
    /// repository, else `secrets`).
    #[arg(long, value_name = "NAME")]
    pub input: Option<String>,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Bind NAME to a key in the let block and add it to the lists that give it its secrets
    /// (--replace: give the bound NAME a new key, keeping its lists); then rekey.
    Add(HostAddArgs),
    /// Remove NAME's binding and every reference to it.
    Remove(HostRemoveArgs),
    /// Compare each host's live ed25519 key (ssh-keyscan) with its key in secrets.nix:
    /// match, changed, unreachable or no-ed25519-key. Exit 1 when a key changed.
    Verify(HostVerifyArgs),
}

#[derive(Debug, Args)]
pub struct HostVerifyArgs {
    /// The bindings to check (default: every ssh-ed25519 binding that is a host: given an
    /// --address, or whose name resolves).
    pub names: Vec<String>,
    /// Scan NAME at HOST[:PORT] (IPv6 as [ADDR]:PORT) instead of its name (repeatable).
    #[arg(long = "address", value_name = "NAME=HOST[:PORT]")]
    pub addresses: Vec<String>,
    /// Hosts scanned at once.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Seconds each host may take to answer (ssh-keyscan -T; the scan is killed shortly
    /// after).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=300))]
    pub timeout: u32,
    /// Also exit 1 when a host is unreachable or offers no ed25519 key.
    #[arg(long)]
    pub strict: bool,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key_source").required(true).args(["key", "key_file", "keyscan", "generate_key"])))]
pub struct HostAddArgs {
    /// The name to bind (a plain Nix identifier).
    pub name: String,
    /// The host's public key line (`ssh-ed25519 AAAA…`, `ssh-rsa …` or `age1…`).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// A file holding the public key line (e.g. /etc/ssh/ssh_host_ed25519_key.pub).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Fetch the host's ed25519 key with `ssh-keyscan` (IPv6 as `[ADDR]:PORT`); its SHA256
    /// fingerprint must match --fingerprint, or be confirmed on the terminal.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub keyscan: Option<String>,
    /// The scanned key's expected fingerprint, as `ssh-keygen -lf` prints it on the host.
    #[arg(
        long,
        value_name = "SHA256:…",
        requires = "keyscan",
        conflicts_with_all = ["key", "key_file"]
    )]
    pub fingerprint: Option<String>,
    /// Generate the host's ed25519 key into DIR/etc/ssh/ssh_host_ed25519_key (0600, with
    /// its .pub) for a first install (`nixos-anywhere --extra-files DIR`); refuses to
    /// overwrite.
    #[arg(long, value_name = "DIR")]
    pub generate_key: Option<PathBuf>,
    /// With --generate-key: also the post-quantum identity
    /// DIR/etc/ssh/id_mlkem768x25519_agenix (0600).
    #[arg(long, requires = "generate_key")]
    pub pq: bool,
    /// NAME is already bound: replace its key in place, keeping every list it is in.
    #[arg(long, conflicts_with_all = ["like", "to"])]
    pub replace: bool,
    /// Give NAME exactly the secrets OTHER can read (add it wherever OTHER is listed).
    #[arg(
        long,
        value_name = "OTHER",
        conflicts_with = "to",
        required_unless_present_any = ["to", "replace"]
    )]
    pub like: Option<String>,
    /// Give NAME these secrets (rule names; `*` and `?` wildcards).
    #[arg(long, value_name = "SECRET", num_args = 1..)]
    pub to: Vec<String>,
    /// Edit secrets.nix only; do not rekey.
    #[arg(long)]
    pub no_rekey: bool,
    /// Print the diff of secrets.nix, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct AccessArgs {
    /// Report as JSON.
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Audit only the commits after REV (REV itself excluded), e.g. the last rotation's tag.
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Only these secrets (default: every secret whose rule has a generator). With
    /// --rotate, the secrets to give new values (`*` and `?` wildcards match rule names).
    #[arg(value_name = "SECRET", allow_hyphen_values = true)]
    pub secrets: Vec<PathBuf>,
    /// Give the named secrets new values, even when they exist.
    #[arg(long, requires = "secrets", conflicts_with = "rotate_debt")]
    pub rotate: bool,
    /// Give new values to every secret with a generator that `agefleet audit` reports in
    /// rotation debt (settled with -i as audit does); exit 1 while debt on secrets without
    /// a generator remains.
    #[arg(long, conflicts_with = "secrets")]
    pub rotate_debt: bool,
    /// Say what would be made, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// `git add --intent-to-add` the files made (secrets and companions).
    #[arg(long)]
    pub git_add: bool,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HostRemoveArgs {
    /// The binding to remove.
    pub name: String,
    /// Edit secrets.nix only; do not rekey.
    #[arg(long)]
    pub no_rekey: bool,
    /// Print the diff of secrets.nix, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The secret to create or edit, as named in the rules.
    #[arg(allow_hyphen_values = true)]
    pub file: PathBuf,
    /// `git add --intent-to-add` the secret when it is not tracked.
    #[arg(long)]
    pub git_add: bool,
    /// Store an empty secret when stdin is empty (without it, empty stdin on an existing
    /// non-empty secret is refused).
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The secret to decrypt.
    #[arg(allow_hyphen_values = true)]
    pub file: PathBuf,
    /// Write the plaintext here (created 0600) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Default, Args)]
pub struct RekeyArgs {
    /// Only these secrets (default: every secret in the rules).
    pub files: Vec<PathBuf>,
    /// Only secrets whose header disagrees with the rules (recipients or armor).
    #[arg(long)]
    pub drifted: bool,
    /// Only secrets whose rules list this public key.
    #[arg(long, value_name = "KEY")]
    pub recipient: Option<String>,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also say, in one line, whether this system flake's lock pins the secrets
    /// repository's HEAD (see `pin`).
    #[arg(long, value_name = "DIR", env = "AGEFLEET_FLAKE")]
    pub flake: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Print the JSON value `nix-instantiate --eval --strict --json` would print.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyRole {
    Git,
    Agenix,
}

#[derive(Debug, Args)]
pub struct CreateKeysArgs {
    /// Where the keys go.
    #[arg(long, value_name = "DIR")]
    pub ssh_dir: Option<PathBuf>,
    /// Only create one of the two keys.
    #[arg(long, value_enum)]
    pub only: Option<KeyRole>,
    /// Comment stored in the keys.
    #[arg(long, value_name = "C")]
    pub comment: Option<String>,
    /// Read a passphrase for the git key from stdin (the agenix key is never encrypted).
    #[arg(long)]
    pub passphrase_stdin: bool,
    /// Move existing keys to a timestamped backup instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Also create the host's post-quantum age identity, id_mlkem768x25519_agenix (0600).
    #[arg(long)]
    pub pq: bool,
    /// Say what would be done, do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Generate a hybrid post-quantum identity (AGE-SECRET-KEY-PQ-1…, recipient age1pq1…).
    #[arg(long, conflicts_with = "recipients_of")]
    pub pq: bool,
    /// Write the identity to this new file (0600; an existing file is never replaced) and
    /// print its recipient; without it the identity goes to stdout.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        conflicts_with = "recipients_of"
    )]
    pub output: Option<PathBuf>,
    /// Print the recipients of an identity file instead of generating one.
    #[arg(short = 'y', value_name = "FILE")]
    pub recipients_of: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CopyKeysArgs {
    /// Source directory (e.g. a mounted USB stick).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Destination SSH directory.
    #[arg(long, value_name = "DIR")]
    pub ssh_dir: Option<PathBuf>,
    /// Owner of the copied files.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub owner: Option<String>,
    /// Replace different existing keys (after a backup).
    #[arg(long)]
    pub force: bool,
    /// Say what would be done, do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckKeysArgs {
    /// SSH directory holding the keys.
    #[arg(long, value_name = "DIR")]
    pub ssh_dir: Option<PathBuf>,
    /// Prove each openable secret decrypts (to nowhere).
    #[arg(long)]
    pub try_decrypt: bool,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The flake and host to install: DIR#HOST.
    #[arg(long, value_name = "DIR#HOST")]
    pub flake: String,
    /// Where the target system is mounted.
    #[arg(long, value_name = "DIR", default_value = "/mnt")]
    pub root: PathBuf,
    /// The secrets repository (default: the locked git+ssh input of the flake).
    #[arg(long, value_name = "URL")]
    pub secrets_url: Option<String>,
    /// The flake input that holds the secrets.
    #[arg(long, value_name = "NAME", default_value = "secrets")]
    pub secrets_input: String,
    /// known_hosts file to check the secrets server's host key against.
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// The host's identity: a private key file, or `generate`.
    #[arg(long, value_name = "FILE|generate")]
    pub host_key: Option<String>,
    /// Also place a post-quantum age identity (an AGE-SECRET-KEY-PQ-1… file, or `generate`)
    /// at <root>/etc/ssh/id_mlkem768x25519_agenix; every secret listing it must open with it.
    #[arg(long, value_name = "FILE|generate")]
    pub pq_key: Option<String>,
    /// A directory whose tree is copied under the root.
    #[arg(long, value_name = "DIR")]
    pub extra_files: Option<PathBuf>,
    /// The partitioning command.
    #[arg(long, value_name = "CMD")]
    pub disko_cmd: Option<String>,
    /// The install command.
    #[arg(long, value_name = "CMD")]
    pub nixos_install_cmd: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Run the preflight and print the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    Install,
    Chown,
    All,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The JSON manifest written by the Nix module.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Which part of activation to run.
    #[arg(long, value_enum, default_value_t = Phase::All)]
    pub phase: Phase,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Names the binary answers to through argv[0], and the subcommand each one means.
pub const ARGV0_ALIASES: &[(&str, &str)] = &[
    ("create-keys", "create-keys"),
    ("copy-keys", "copy-keys"),
    ("check-keys", "check-keys"),
    ("install-with-secrets", "install-with-secrets"),
];

/// Parses argv, first rewriting an argv[0] alias into its subcommand.
pub fn parse(mut args: Vec<OsString>) -> Result<Cli, clap::Error> {
    if let Some(sub) = args
        .first()
        .and_then(|a0| std::path::Path::new(a0).file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| ARGV0_ALIASES.iter().find(|(alias, _)| *alias == n))
        .map(|(_, sub)| *sub)
    {
        args[0] = OsString::from("agefleet");
        args.insert(1, OsString::from(sub));
    }
    Cli::try_parse_from(args)
}

/// A clap usage error as the one line `main` prints after `agefleet: `: clap's first
/// paragraph (the message and any indented detail such as the missing arguments or the
/// possible values) joined into one line, without clap's usage block.
pub fn usage_error_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first_paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = first_paragraph.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message} (see --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_error(args: &[&str]) -> String {
        let args = args.iter().map(OsString::from).collect();
        usage_error_line(&parse(args).expect_err("a usage error"))
    }

    #[test]
    fn usage_errors_are_one_line_with_their_details() {
        let missing = usage_error(&["agefleet", "activate"]);
        assert_eq!(
            missing,
            "the following required arguments were not provided: --manifest <FILE> (see --help)"
        );
        assert!(!usage_error(&["agefleet", "-d"]).is_empty());
        let bad_value = usage_error(&["agefleet", "--nix-eval", "foo", "status"]);
        assert!(bad_value.contains("[possible values: auto, builtin, nix]"));
        assert!(!usage_error(&["agefleet", "--bogus"]).contains('\n'));
    }

    #[test]
    fn file_arguments_may_start_with_a_hyphen() {
        let parse_ok = |args: &[&str]| parse(args.iter().map(OsString::from).collect()).unwrap();
        let cli = parse_ok(&["agefleet", "-d", "-leading-hyphen-filename.age"]);
        assert_eq!(
            cli.decrypt.unwrap(),
            PathBuf::from("-leading-hyphen-filename.age")
        );
        let cli = parse_ok(&["agefleet", "-e", "-x.age", "-v"]);
        assert_eq!(cli.edit.unwrap(), PathBuf::from("-x.age"));
        assert!(cli.global.verbose);
        let cli = parse_ok(&["agefleet", "--decrypt", "--x.age"]);
        assert_eq!(cli.decrypt.unwrap(), PathBuf::from("--x.age"));
        match parse_ok(&["agefleet", "decrypt", "-x.age"]).command {
            Some(Command::Decrypt(a)) => assert_eq!(a.file, PathBuf::from("-x.age")),
            other => panic!("{other:?}"),
        }
    }
}
