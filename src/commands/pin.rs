//! `pin [--flake DIR] [--input NAME] [--json]`: the secrets commit a system flake locks,
//! compared with the secrets repository (`fleet::pin`). Exit 0 when current, 1 otherwise, 2
//! for a missing or malformed `flake.lock` or input.

use std::fmt::Write as _;
use std::path::Path;

use super::{ui, Context, Error, Outcome, Result};
use crate::cli::PinArgs;
use crate::fleet::pin::{self, Comparison, FoundBy, Report, State};

pub fn run(ctx: &Context, args: &PinArgs) -> Result<Outcome> {
    let report = check(ctx, &args.flake, args.input.as_deref())?;
    if args.json {
        let j = serde_json::to_string_pretty(&report).map_err(Error::failed)?;
        ui::out(&j)?;
    } else {
        ui::out_bytes(ui::printable_lines(&to_text(&report)).as_bytes())?;
    }
    if !report.uncommitted.is_empty() {
        ui::warn(&format!(
            "uncommitted changes to the secrets cannot be deployed: {}",
            report.uncommitted.join(", ")
        ));
    }
    if report.unpushed > 0 {
        ui::warn(&format!(
            "{} commit(s) of HEAD are not pushed: the flake cannot fetch them (push first)",
            report.unpushed
        ));
    }
    Ok(Outcome::from_failed(!report.is_current()))
}

/// The pin of the secrets repository holding the rules file, as locked in `flake`.
pub fn check(ctx: &Context, flake: &Path, input: Option<&str>) -> Result<Report> {
    let plan = pin::plan(&ctx.rules_path(), flake, input)?;
    ctx.verbose(&format!("{plan:?}"));
    Ok(pin::execute(plan)?)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// How the pin compares with one commit, in words.
fn state_words(c: &Comparison) -> String {
    match c.state {
        State::Current => format!("current with {} {}", c.name, short(&c.commit)),
        State::Behind { commits } => format!(
            "behind {} {} by {commits} commit(s)",
            c.name,
            short(&c.commit)
        ),
        State::Ahead { commits } => format!(
            "ahead of {} {} by {commits} commit(s) (pull the secrets repository?)",
            c.name,
            short(&c.commit)
        ),
        State::Diverged { behind, ahead } => format!(
            "diverged from {} {}: {behind} commit(s) missing, {ahead} not in it",
            c.name,
            short(&c.commit)
        ),
        State::Unknown => format!(
            "unknown to the repository (force-pushed away, or not fetched); {} is {}",
            c.name,
            short(&c.commit)
        ),
    }
}

/// The one-line summary `status --flake` prints.
pub fn summary(r: &Report) -> String {
    let mut s = format!(
        "pin: {} input {:?} is {}",
        r.flake.join("flake.lock").display(),
        r.input,
        state_words(&r.head)
    );
    if let Some(u) = r.upstream.as_ref().filter(|u| !u.state.is_current()) {
        let _ = write!(s, "; {}", state_words(u));
    }
    if !r.is_current() {
        s.push_str(" (see `agefleet pin`)");
    }
    s
}

fn to_text(r: &Report) -> String {
    let mut s = String::new();
    let found = match r.found_by {
        FoundBy::Named => "--input",
        FoundBy::Remote => "its URL names this repository",
        FoundBy::Default => "the default name",
    };
    let _ = writeln!(
        s,
        "flake:      {} input {:?} ({found}){}",
        r.flake.join("flake.lock").display(),
        r.input,
        r.url
            .as_deref()
            .map(|u| format!(" = {u}"))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "pinned:     {}", r.pinned);
    let _ = writeln!(s, "repository: {}", r.repository.display());
    let _ = writeln!(s, "pin is {}", state_words(&r.head));
    if let Some(u) = &r.upstream {
        let _ = writeln!(s, "pin is {}", state_words(u));
    }
    if let Some(m) = &r.missing {
        if m.is_empty() {
            let _ = writeln!(s, "the hosts miss no secret or rules change");
        } else {
            let _ = writeln!(s, "the hosts miss:");
            for (what, list) in [
                ("added", &m.added),
                ("rekeyed", &m.rekeyed),
                ("updated", &m.updated),
                ("removed", &m.removed),
            ] {
                for name in list {
                    let _ = writeln!(s, "  {what:<8} {name}");
                }
            }
            if m.rules_changed {
                let _ = writeln!(s, "  {:<8} the rules file", "changed");
            }
        }
    }
    if let Some(cmd) = &r.update_command {
        let _ = writeln!(s, "update the lock: {cmd}");
    }
    s
}
