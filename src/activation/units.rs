//! `restartUnits` / `reloadUnits`: systemd unit names checked, collected once each for the
//! secrets and templates whose content changed, and appended to the files NixOS's
//! `switch-to-configuration` reads (`/run/nixos/activation-restart-list`,
//! `…-reload-list`; under `NIXOS_ACTION=dry-activate` the `dry-activation-…` files beside
//! them). The files are appended to, never truncated: other activation scripts write them
//! too. They are opened root-safe ([`crate::platform::append`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::manifest::Manifest;
use super::{paths, ActivationError};
use crate::platform::append::{self, AppendError};

/// The suffixes of systemd.unit(5).
const SUFFIXES: [&str; 11] = [
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// A `restartUnits` or `reloadUnits` entry that is not a systemd unit name (quoted
/// escaped, so the message stays one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a valid systemd unit name (NAME.service, NAME@INSTANCE.timer…)")]
pub struct InvalidUnitName {
    /// The name as written.
    pub name: String,
}

/// Checks a unit name as systemd.unit(5) defines it: `PREFIX[@INSTANCE].SUFFIX`, at most
/// 255 characters of `[A-Za-z0-9:_.\-]` (no `/`, no whitespace or control characters),
/// a known suffix, a non-empty instance after `@`.
pub fn check_unit_name(name: &str) -> Result<(), InvalidUnitName> {
    let bad = || {
        Err(InvalidUnitName {
            name: name.to_string(),
        })
    };
    if name.is_empty() || name.len() > 255 {
        return bad();
    }
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return bad();
    };
    if !SUFFIXES.contains(&suffix) {
        return bad();
    }
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_.-\\".contains(&b))
    };
    let ok = match stem.split_once('@') {
        Some((prefix, instance)) => valid(prefix) && valid(instance),
        None => valid(stem),
    };
    if ok {
        Ok(())
    } else {
        bad()
    }
}

/// The units to restart and reload, each once, in the order first met.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnitLists {
    /// Units to restart.
    pub restart: Vec<String>,
    /// Units to reload.
    pub reload: Vec<String>,
}

impl UnitLists {
    /// Adds the units of one changed secret or template.
    pub fn add(&mut self, restart: &[String], reload: &[String]) {
        push_new(&mut self.restart, restart);
        push_new(&mut self.reload, reload);
    }

    /// Whether there is nothing to list.
    pub fn is_empty(&self) -> bool {
        self.restart.is_empty() && self.reload.is_empty()
    }
}

fn push_new(list: &mut Vec<String>, units: &[String]) {
    let mut seen: HashSet<String> = list.iter().cloned().collect();
    for u in units {
        if seen.insert(u.clone()) {
            list.push(u.clone());
        }
    }
}

/// Where the lists go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFiles {
    /// The restart list (`/run/nixos/activation-restart-list`).
    pub restart: PathBuf,
    /// The reload list (`/run/nixos/activation-reload-list`).
    pub reload: PathBuf,
}

/// NixOS's restart list, when the manifest names none (as `nix/manifest.nix` defaults it).
pub const DEFAULT_RESTART_LIST: &str = "/run/nixos/activation-restart-list";
/// NixOS's reload list, when the manifest names none.
pub const DEFAULT_RELOAD_LIST: &str = "/run/nixos/activation-reload-list";

impl ListFiles {
    /// The list files of the manifest (NixOS's when it names none: the manifest leaves
    /// them out when no unit is configured, and a secret removed since the previous
    /// generation may still have had units).
    pub fn of(m: &Manifest, origin: &Path) -> Result<Self, ActivationError> {
        let get = |field: &str, v: &Option<String>, default: &str| {
            let raw = v.as_deref().unwrap_or(default);
            paths::check_absolute(raw).map_err(|r| ActivationError::Manifest {
                path: origin.to_path_buf(),
                reason: crate::text::escape_controls_owned(format!("{field}: {r} ({raw})")),
            })
        };
        Ok(ListFiles {
            restart: get(
                "activationRestartList",
                &m.activation_restart_list,
                DEFAULT_RESTART_LIST,
            )?,
            reload: get(
                "activationReloadList",
                &m.activation_reload_list,
                DEFAULT_RELOAD_LIST,
            )?,
        })
    }

    /// The files `switch-to-configuration dry-activate` reads: `dry-` before each name
    /// (`/run/nixos/dry-activation-restart-list`).
    pub fn dry(&self) -> Self {
        let dry = |p: &Path| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            p.with_file_name(format!("dry-{name}"))
        };
        ListFiles {
            restart: dry(&self.restart),
            reload: dry(&self.reload),
        }
    }

    /// Appends `lists` (one unit a line); a missing directory (not a NixOS switch) is a
    /// warning, a refused file an error naming it.
    pub fn append(&self, lists: &UnitLists, warnings: &mut Vec<String>) -> Result<(), AppendError> {
        for (units, file) in [
            (&lists.restart, &self.restart),
            (&lists.reload, &self.reload),
        ] {
            if units.is_empty() {
                continue;
            }
            let mut text = String::new();
            for u in units {
                text.push_str(u);
                text.push('\n');
            }
            match append::append(file, text.as_bytes(), 0o600) {
                Ok(true) => {}
                Ok(false) => warnings.push(format!(
                    "{}: its directory does not exist; units not listed: {}",
                    file.display(),
                    units.join(" ")
                )),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_as_systemd_defines_them() {
        for good in [
            "nginx.service",
            "getty@tty1.service",
            "a-b_c:d.timer",
            "x\\x2dy.mount",
            "sys-fs.automount",
        ] {
            assert!(check_unit_name(good).is_ok(), "{good}");
        }
        let long = format!("{}.service", "a".repeat(247));
        assert!(check_unit_name(&long).is_ok());
        let too_long = format!("{}.service", "a".repeat(248));
        for bad in [
            "",
            "nginx",
            "nginx.exe",
            "a/b.service",
            "a\nb.service",
            "a b.service",
            ".service",
            "getty@.service",
            "@x.service",
            "a\u{1b}.service",
            too_long.as_str(),
        ] {
            let e = check_unit_name(bad).unwrap_err();
            assert_eq!(e.name, bad);
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn lists_hold_each_unit_once_in_order() {
        let mut l = UnitLists::default();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        l.add(&s(&["b.service", "a.service"]), &s(&["r.service"]));
        l.add(&s(&["a.service", "c.service"]), &s(&["r.service"]));
        assert_eq!(l.restart, s(&["b.service", "a.service", "c.service"]));
        assert_eq!(l.reload, s(&["r.service"]));
    }

    #[test]
    fn dry_lists_are_beside_the_real_ones() {
        let f = ListFiles {
            restart: "/run/nixos/activation-restart-list".into(),
            reload: "/run/nixos/activation-reload-list".into(),
        }
        .dry();
        assert_eq!(
            f.restart,
            Path::new("/run/nixos/dry-activation-restart-list")
        );
        assert_eq!(f.reload, Path::new("/run/nixos/dry-activation-reload-list"));
    }
}
