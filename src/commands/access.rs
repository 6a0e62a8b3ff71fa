//! `access [--json | --html FILE]`: the recipients × secrets matrix (`fleet::access`).
//! Exit 1 when a cell needs a rekey (as `status` does on drift).

use super::{ui, Context, Outcome, Result};
use crate::cli::AccessArgs;
use crate::fleet::access;

pub fn run(ctx: &Context, args: &AccessArgs) -> Result<Outcome> {
    let rules = ctx.load_rules()?;
    let matrix = access::of_rules(&rules);
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
    Ok(Outcome::from_failed(matrix.drifted()))
}
