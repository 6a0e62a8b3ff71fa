//! `audit [--json] [--since REV] [-i KEY]`: rotation debt from the git history of the
//! secrets repository (`fleet::audit`). Exit 1 while unsettled debt remains; a rules file
//! outside any git work tree, or a REV that names no commit, is a usage error (exit 2).

use super::{common, ui, Context, Error, Outcome, Result};
use crate::cli::AuditArgs;
use crate::envelope::Header;
use crate::fleet::audit::{self, Report};
use crate::identity::IdentitySet;

pub fn run(ctx: &Context, args: &AuditArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    let text = crate::fleet::access::rules_text(&rules);
    let report = report(ctx, &rules, text.as_deref(), args.since.as_deref())?;
    if args.json {
        let j = serde_json::to_string_pretty(&report).map_err(Error::failed)?;
        ui::out(&j)?;
    } else {
        ui::out_bytes(ui::printable_lines(&to_text(&report)).as_bytes())?;
    }
    for w in &report.warnings {
        ui::warn(w);
    }
    let secrets = report
        .secrets
        .iter()
        .filter(|s| s.debt.iter().any(|d| !d.settled))
        .count();
    let settled = report
        .secrets
        .iter()
        .flat_map(|s| &s.debt)
        .filter(|d| d.settled)
        .count();
    if settled > 0 {
        ui::info(&format!(
            "{settled} debt entr{} settled: the value changed since",
            if settled == 1 { "y" } else { "ies" }
        ));
    }
    if report.unsettled == 0 {
        ui::info(&format!("no rotation debt in {} commit(s)", report.commits));
    } else {
        ui::warn(&format!(
            "{secrets} secret(s) had recipients that are gone from their rules and could read \
             committed versions: rekeying is not revocation — rotate these values"
        ));
        if !report.settlement_checked {
            ui::info("with -i KEY, values rotated since are recognised and settled");
        }
    }
    Ok(Outcome::from_failed(report.unsettled > 0))
}

/// The audit of the repository holding `rules`, settled with the `-i` identities when some
/// are given and there is debt (shared with `access`).
pub fn report(
    ctx: &Context,
    rules: &crate::rules::Rules,
    text: Option<&str>,
    since: Option<&str>,
) -> Result<Report> {
    let plan = audit::plan(rules, text, since)?;
    if ctx.global.identity.is_empty() || !plan.has_debt() {
        let mut report = audit::execute::<IdentitySet>(plan, None);
        // Nothing to settle: the identities were not needed, but they were given.
        report.settlement_checked = !ctx.global.identity.is_empty();
        return Ok(report);
    }
    let headers = plan.headers();
    let refs: Vec<&Header> = headers.iter().collect();
    let ids = common::identities_for_each(ctx, &refs)?;
    Ok(audit::execute(plan, Some(&ids)))
}

/// Per secret with unsettled debt: each recipient, its tag or key, and the last commit
/// where it could decrypt.
fn to_text(report: &Report) -> String {
    let mut s = String::new();
    for secret in &report.secrets {
        let debt: Vec<_> = secret.debt.iter().filter(|d| !d.settled).collect();
        if debt.is_empty() {
            continue;
        }
        s.push_str(&format!("{}:\n", secret.name));
        for d in debt {
            let id = match (&d.tag, &d.key) {
                (Some(tag), _) => format!("{} tag:{tag}", d.kind),
                (None, Some(key)) => format!("{} {}", d.kind, crate::recipient::abbreviate(key)),
                (None, None) => d.kind.clone(),
            };
            let c = &d.last_commit;
            s.push_str(&format!(
                "  {}  ({id})  last readable at {} {:?} ({})\n",
                d.recipient,
                c.short,
                c.summary,
                &c.date[..10.min(c.date.len())]
            ));
            if let Some(note) = &d.note {
                s.push_str(&format!("    {note}\n"));
            }
        }
    }
    s
}
