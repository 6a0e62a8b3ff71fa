//! `access [--json | --html FILE]`: the recipients × secrets matrix (`fleet::access`).
//! Exit 1 when a cell needs a rekey (as `status` does on drift). When the rules are in a
//! git work tree, the rotation debt of its history (`audit`, settled with `-i` when given)
//! is marked too; debt alone does not change the exit code (`audit` exits 1 on it).

use super::{ui, Context, Outcome, Result};
use crate::cli::AccessArgs;
use crate::fleet::access;
use crate::fleet::audit::AuditError;

pub fn run(ctx: &Context, args: &AccessArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    let text = access::rules_text(&rules);
    let mut matrix = access::build(&rules, text.as_deref());
    match super::audit::report(ctx, &rules, text.as_deref(), None) {
        Ok(report) => {
            for w in &report.warnings {
                ctx.verbose(&format!("audit: {w}"));
            }
            access::mark_debt(&mut matrix, &report);
        }
        // No history to audit: the matrix as it is.
        Err(e @ super::Error::Audit(AuditError::NotARepository { .. })) => {
            ctx.verbose(&format!("no rotation debt shown: {e}"))
        }
        Err(e) => ui::warn(&format!("rotation debt not shown: {e}")),
    }
    if args.json {
        let j = serde_json::to_string_pretty(&matrix).map_err(super::Error::failed)?;
        ui::out(&j)?;
    } else if let Some(file) = &args.html {
        let title = format!("agefleet access: {}", rules.path.display());
        crate::fsutil::atomic_write(file, access::to_html(&matrix, &title).as_bytes(), 0o644)?;
        ui::info(&format!("wrote {}", file.display()));
    } else {
        ui::out_bytes(ui::printable_lines(&access::to_text(&matrix)).as_bytes())?;
    }
    if matrix.drifted() {
        ui::warn("some secrets need a rekey (+ pending, - stale): run `agefleet rekey --drifted`");
    }
    if matrix.in_debt() {
        ui::warn(
            "former recipients could read committed versions: rekeying is not revocation — \
             rotate these values (see `agefleet audit`)",
        );
    }
    Ok(Outcome::from_failed(matrix.drifted()))
}
