//! `rules`: print the evaluated rules file.
use std::fmt::Write as _;

use super::ui::printable;
use super::{Context, Error, Outcome, Result};
use crate::cli::RulesArgs;
use crate::rules::{self, Backend};

pub fn run(ctx: &Context, args: &RulesArgs) -> Result<Outcome> {
    let path = ctx.rules_path();
    let mode = ctx.eval_mode();
    if args.json {
        let (value, backend, fallback) = rules::evaluate_json(&path, mode)?;
        say_backend(ctx, backend, fallback.as_deref());
        super::ui::out(&serde_json::to_string(&value).map_err(Error::failed)?)?;
        return Ok(Outcome::Success);
    }
    let rules = rules::load(&path, mode)?;
    say_backend(ctx, rules.backend, rules.fallback_reason.as_deref());
    let mut bad = false;
    // Buffered, and written through `ui::out_bytes` (a closed stdout ends quietly).
    let mut out = String::new();
    for entry in &rules.entries {
        match &entry.rule {
            Ok(rule) => {
                let armor = if rule.armor { " (armor)" } else { "" };
                let pq = if rule.pq { " (post-quantum only)" } else { "" };
                let _ = writeln!(out, "{}{armor}{pq}", printable(&entry.name));
                for key in &rule.public_keys {
                    let _ = writeln!(out, "  {}", printable(key));
                }
            }
            Err(e) => {
                bad = true;
                let _ = writeln!(out, "{} (bad rule)", printable(&entry.name));
                // Keep the listing and the error in order when both go to a terminal.
                super::ui::out_bytes(std::mem::take(&mut out).as_bytes())?;
                super::ui::error(&e.to_string());
            }
        }
    }
    super::ui::out_bytes(out.as_bytes())?;
    Ok(Outcome::from_failed(bad))
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
