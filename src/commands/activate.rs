//! `activate`: install the secrets of a manifest written by the Nix module.
//! Messages go to stderr; with `--json` the report goes to stdout.

use super::{ui, Context, Error, Outcome, Result};
use crate::activation::{self, Env, Manifest, MountState, Phase};
use crate::cli::{self, ActivateArgs};
use crate::sys::{FsKind, RamMount};

pub fn run(ctx: &Context, args: &ActivateArgs) -> Result<Outcome> {
    let manifest = Manifest::load(&args.manifest)?;
    let phase = match args.phase {
        cli::Phase::Install => Phase::Install,
        cli::Phase::Chown => Phase::Chown,
        cli::Phase::All => Phase::All,
    };
    let env = Env {
        plugin_ui: Some(ui::plugin_ui()),
        ..Env::system()
    };
    let report = activation::activate(&manifest, &args.manifest, phase, &env)?;

    for w in &report.warnings {
        ui::warn(w);
    }
    for path in &report.removed {
        ui::info(&format!(
            "removed {} (its secret is no longer in the manifest)",
            crate::text::escape_controls(&path.display().to_string())
        ));
    }
    for f in &report.failures {
        let kind = if manifest.templates.iter().any(|t| t.name == f.name) {
            "template"
        } else {
            "secret"
        };
        ui::error(&format!("{kind} {}: {}", shown(&f.name), f.reason));
    }
    if let Some(e) = &report.unit_error {
        ui::error(&format!("units not listed: {e}"));
    }
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(Error::failed)?;
        ui::out(&json)?;
    } else {
        if let Some(mount) = &report.mount {
            ctx.verbose(&match mount {
                MountState::Mounted {
                    fs: RamMount::TmpfsNoswap,
                } => "mounted tmpfs (noswap)".into(),
                MountState::Mounted {
                    fs: RamMount::Ramfs,
                } => "mounted ramfs".into(),
                MountState::Reused { fs } => format!("reusing the existing {} mount", fs_name(*fs)),
                MountState::Directory { fs } => {
                    format!("using the directory as it is ({})", fs_name(*fs))
                }
            });
        }
        let verb = match phase {
            Phase::Chown => "chowned",
            Phase::Install | Phase::All => "installed",
        };
        let (restart, reload) = if report.dry_run {
            ("would restart", "would reload")
        } else {
            ("restart", "reload")
        };
        for (what, units) in [
            (restart, &report.restart_units),
            (reload, &report.reload_units),
        ] {
            if !units.is_empty() {
                ui::info(&format!("{what}: {}", units.join(" ")));
            }
        }
        if report.dry_run {
            return Ok(Outcome::from_failed(report.failed()));
        }
        let templates = if report.rendered.is_empty() {
            String::new()
        } else {
            format!(" and {} template(s)", report.rendered.len())
        };
        ui::info(&format!(
            "{verb} {} secret(s){templates} in generation {} ({}){}",
            report.done.len(),
            report.generation,
            report.secrets_dir.display(),
            if !report.failures.is_empty() {
                format!("; {} failed", report.failures.len())
            } else {
                String::new()
            }
        ));
    }
    Ok(Outcome::from_failed(report.failed()))
}

fn fs_name(fs: FsKind) -> String {
    match fs {
        FsKind::Tmpfs => "tmpfs".into(),
        FsKind::Ramfs => "ramfs".into(),
        FsKind::Other(magic) => format!("filesystem type {magic:#x}"),
    }
}

/// A secret name for a message: quoted, with control characters escaped.
fn shown(name: &str) -> String {
    format!("{name:?}")
}
