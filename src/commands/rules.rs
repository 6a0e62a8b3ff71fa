//! `rules`: print the evaluated rules file.
use std::io::Write;

use super::ui::printable;
use super::{Context, Error, Outcome, Result};
use crate::cli::RulesArgs;
use crate::rules::{self, Backend};

pub fn run(ctx: &Context, args: &RulesArgs) -> Result<Outcome> {
    let path = ctx.rules_path();
    let mode = ctx.eval_mode();
    if args.json {
        let (value, backend, fallback) =
            rules::evaluate_json(&path, mode).map_err(Error::failed)?;
        say_backend(ctx, backend, fallback.as_deref());
        super::ui::out(&serde_json::to_string(&value).map_err(Error::failed)?)?;
        return Ok(Outcome::Success);
    }
    let rules = rules::load(&path, mode).map_err(Error::failed)?;
    say_backend(ctx, rules.backend, rules.fallback_reason.as_deref());
    let mut bad = false;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for entry in &rules.entries {
        match &entry.rule {
            Ok(rule) => {
                let armor = if rule.armor { " (armor)" } else { "" };
                let pq = if rule.pq { " (post-quantum only)" } else { "" };
                writeln!(out, "{}{armor}{pq}", printable(&entry.name)).map_err(write_failed)?;
                for key in &rule.public_keys {
                    writeln!(out, "  {}", printable(key)).map_err(write_failed)?;
                }
            }
            Err(e) => {
                bad = true;
                writeln!(out, "{} (bad rule)", printable(&entry.name)).map_err(write_failed)?;
                // Keep the listing and the error in order when both go to a terminal.
                out.flush().map_err(write_failed)?;
                super::ui::error(&e.to_string());
            }
        }
    }
    out.flush().map_err(write_failed)?;
    Ok(Outcome::from_failed(bad))
}

fn write_failed(e: std::io::Error) -> Error {
    super::ui::stdout_error(e)
}

fn say_backend(ctx: &Context, backend: Backend, fallback: Option<&str>) {
    if let Some(reason) = fallback {
        ctx.verbose(&format!("falling back to nix-instantiate: {reason}"));
    } else {
        let name = match backend {
            Backend::Builtin => "the builtin evaluator",
            Backend::Nix => "nix-instantiate",
        };
        ctx.verbose(&format!("rules evaluated by {name}"));
    }
}
