//! What `install-with-secrets` shows: the plan (stderr), the placed files (stderr) and the
//! `--json` report (stdout). Never file contents or key material.

use std::path::Path;

use serde::Serialize;

use crate::commands::{ui, Error, Result};
use crate::provision::preflight::Plan;
use crate::provision::stage::Placed;

/// The `--json` report.
#[derive(Debug, Serialize)]
pub(super) struct Report<'a> {
    pub(super) plan: &'a Plan,
    pub(super) dry_run: bool,
    pub(super) installed: bool,
    pub(super) placed: Vec<Placed>,
}

pub(super) fn print_plan(plan: &Plan) {
    let mut s = format!(
        "plan for {} (flake {}):\n  secrets: {} ({}) at {}, {} secret(s) for this host: {}\n  host key: {} ({}{})\n",
        plan.host,
        plan.flake.display(),
        plan.secrets.url,
        plan.secrets.input,
        plan.secrets.commit,
        plan.secrets.for_host.len(),
        plan.secrets.for_host.join(", "),
        plan.host_key.fingerprint,
        plan.host_key.source.label(),
        plan.host_key
            .kept_at
            .as_ref()
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default(),
    );
    if let Some(pq) = &plan.pq_key {
        s.push_str(&format!(
            "  post-quantum key: {} ({}{}), {} secret(s): {}\n",
            crate::recipient::abbreviate(&pq.recipient),
            pq.source.label(),
            pq.kept_at
                .as_ref()
                .map(|p| format!(", {}", p.display()))
                .unwrap_or_default(),
            pq.for_host.len(),
            pq.for_host.join(", ")
        ));
    }
    for step in &plan.disko {
        s.push_str(&format!("  partition: {}\n", shell_words::join(step)));
    }
    s.push_str(&format!("  root: {}\n", plan.root.display()));
    for p in &plan.place {
        s.push_str(&format!("  place: {}: {}\n", p.path.display(), p.what));
    }
    s.push_str(&format!("  install: {}", shell_words::join(&plan.install)));
    ui::info_lines(&s);
}

pub(super) fn report(placed: &[Placed], root: &Path) {
    let nixos = root.join("etc/nixos");
    let flake_count = placed.iter().filter(|p| p.path.starts_with(&nixos)).count();
    let mut s = format!(
        "installed. placed:\n  {}: {flake_count} flake files",
        nixos.display()
    );
    for p in placed.iter().filter(|p| !p.path.starts_with(&nixos)) {
        s.push_str(&format!("\n  {}", p.path.display()));
        if let Some(m) = &p.mode {
            s.push_str(&format!(" {m}"));
        } else {
            s.push_str(&format!(" {}", p.kind));
        }
        if let Some(f) = &p.fingerprint {
            s.push_str(&format!(" {f}"));
        }
    }
    ui::info_lines(&s);
}

pub(super) fn print_json(report: &Report<'_>) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(Error::failed)?;
    ui::out(&text)
}
