//! `rules`: print the evaluated rules file.
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
        println!("{value}");
        return Ok(Outcome::Success);
    }
    let rules = rules::load(&path, mode).map_err(Error::failed)?;
    say_backend(ctx, rules.backend, rules.fallback_reason.as_deref());
    let mut bad = false;
    for entry in &rules.entries {
        match &entry.rule {
            Ok(rule) => {
                let armor = if rule.armor { " (armor)" } else { "" };
                println!("{}{armor}", entry.name);
                for key in &rule.public_keys {
                    println!("  {key}");
                }
            }
            Err(e) => {
                bad = true;
                println!("{} (bad rule)", entry.name);
                super::ui::error(&e.to_string());
            }
        }
    }
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
