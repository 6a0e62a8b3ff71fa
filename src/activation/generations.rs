//! Generations: `secretsMountPoint/N` directories, the atomic `secretsDir` swap, and the
//! removal of old generations.
//!
//! Numbering follows agenix: N+1 where N is the basename of the current `secretsDir` link
//! target (1 when there is none, e.g. after boot), so switching between agenix and agefleet
//! keeps working. Old generations are unlinked, never truncated: a process that still holds
//! an open file of one keeps reading its content.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::{HashMap, HashSet};

use zeroize::Zeroizing;

use super::ownership::UserDb;
use super::place::{self, Installed, PlaceError, Plan, Previous, Source, Target};
use super::state::{self, Record, Written};
use super::units::{ListFiles, UnitLists};
use super::{ActivationError, Layout, SecretFailure};
use crate::identity::IdentitySet;
use crate::platform::append::AppendError;
use crate::recipient::plugin::PluginUi;
use crate::sys;

/// Where the units go, and every name the manifest lists (what is not among them but was
/// in the previous generation was removed: its units are listed).
pub(crate) struct Units {
    /// The list files.
    pub files: ListFiles,
    /// The names of the manifest's secrets and templates.
    pub names: HashSet<String>,
}

/// What one phase did to the secrets.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The generation the phase worked on.
    pub generation: u64,
    /// Names of the secrets installed (or chowned).
    pub done: Vec<String>,
    /// The secrets that failed, each with why; the others are still done.
    pub failures: Vec<SecretFailure>,
    /// Files of `symlink = false` secrets no longer in the manifest, removed.
    pub removed: Vec<PathBuf>,
    /// For each secret and template installed (or, dry, that would be): whether its
    /// content changed against the previous generation.
    pub changed: Vec<(String, bool)>,
    /// The units listed (or, dry, that would be) for what changed.
    pub units: UnitLists,
    /// Why the units could not be listed.
    pub unit_error: Option<AppendError>,
}

/// The generation number `secretsDir` points at: the numeric basename of its link target,
/// and whether that target is directly inside the mount point.
fn current(layout: &Layout) -> Result<Option<(u64, PathBuf)>, ActivationError> {
    let sd = &layout.secrets_dir;
    let Some(target) = sys::read_link(sd).map_err(|e| ActivationError::io(sd, e))? else {
        return Ok(None);
    };
    let target = PathBuf::from(target);
    let n = target
        .file_name()
        .and_then(OsStr::to_str)
        .and_then(|s| s.parse::<u64>().ok());
    Ok(n.map(|n| (n, target)))
}

/// The number of the generation an install creates.
pub(crate) fn next_generation(layout: &Layout) -> Result<u64, ActivationError> {
    match current(layout)? {
        None => Ok(1),
        Some((n, _)) => n
            .checked_add(1)
            .ok_or_else(|| ActivationError::at(&layout.secrets_dir, "generation number overflow")),
    }
}

/// Install phase: a new generation with every secret that can be installed, the swap of
/// `secretsDir`, and the removal of older generations. With `owners` (phase all), owner and
/// group are applied to each file before its rename, and the directories get group `keys`.
pub(crate) fn install(
    layout: &Layout,
    plans: &[Plan],
    owners: Option<&UserDb>,
    plugin_ui: Option<&Arc<dyn PluginUi>>,
    lists: &Units,
    warnings: &mut Vec<String>,
) -> Result<Outcome, ActivationError> {
    let mp = &layout.mount_point;
    let sd = &layout.secrets_dir;
    // Refuse before any work if the swap could not replace what is at secretsDir.
    if let Ok(meta) = std::fs::symlink_metadata(sd) {
        if !meta.file_type().is_symlink() {
            return Err(ActivationError::at(
                sd,
                "exists and is not a symlink; refusing to replace it",
            ));
        }
    }
    let mp_fd = sys::open_dir_nofollow(mp).map_err(|e| ActivationError::io(mp, e))?;
    // Two activations at once (a switch racing the boot unit) would pick the same number.
    sys::lock_exclusive(&mp_fd).map_err(|e| ActivationError::io(mp, e))?;
    let generation = next_generation(layout)?;
    // What the current generation wrote outside the mount, to clean up after the swap.
    let previous = previous_record(layout, &mp_fd, warnings);
    // What change detection compares against (none on the first activation after boot).
    let prev = previous_generation(layout, &mp_fd).map(|gen| Previous {
        gen,
        record: previous.clone(),
    });
    let gen_name = PathBuf::from(generation.to_string());
    let gen_path = mp.join(&gen_name);
    // A leftover of an interrupted activation; it is not current (current is N-1).
    sys::remove_tree_at(&mp_fd, &gen_name).map_err(|e| ActivationError::io(&gen_path, e))?;
    sys::mkdir_at(&mp_fd, &gen_name, 0o751).map_err(|e| ActivationError::io(&gen_path, e))?;
    let gen_fd = match prepare_generation(&mp_fd, &gen_name, owners) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = sys::remove_tree_at(&mp_fd, &gen_name);
            return Err(ActivationError::io(&gen_path, e));
        }
    };

    // Owners are resolved up front; an unknown one fails that secret, which is still
    // installed owned by root (what `--phase install` followed by `--phase chown` leaves).
    let mut failures = Vec::new();
    let owner_of: Vec<Option<(u32, u32)>> = plans
        .iter()
        .map(|p| {
            let db = owners?;
            match db
                .uid(&p.owner)
                .and_then(|u| db.gid(&p.group).map(|g| (u, g)))
            {
                Ok(ids) => Some(ids),
                Err(reason) => {
                    failures.push(SecretFailure {
                        name: p.name.clone(),
                        reason: format!("{reason}; installed owned by root"),
                    });
                    None
                }
            }
        })
        .collect();
    let failed_owner: std::collections::HashSet<&str> =
        failures.iter().map(|f| f.name.as_str()).collect();

    let (ids, id_warnings) = place::load_identities(&layout.identity_paths);
    let ids = match plugin_ui {
        Some(ui) => ids.with_plugin_ui(ui.clone()),
        None => ids,
    };
    warnings.extend(id_warnings);
    warnings.extend(place::identity_warnings(&layout.identity_paths));
    if ids.identities.is_empty() && !plans.is_empty() {
        warnings.push("no usable identity among identityPaths: no secret can be decrypted".into());
    }
    let n_secrets = plans.iter().take_while(|p| !p.is_template()).count();
    let needed = used_by_templates(&plans[n_secrets..]);
    let placed = run_all(
        &plans[..n_secrets],
        &layout.identity_paths,
        ids,
        |plan, i, ids| {
            let keep = needed.contains(plan.name.as_str());
            place::place_one(
                plan,
                &gen_fd,
                &gen_path,
                sd,
                ids,
                owner_of[i],
                prev.as_ref(),
                keep,
            )
        },
    );
    let mut plaintexts: HashMap<&str, Zeroizing<Vec<u8>>> = HashMap::new();
    let mut results: Vec<Result<Installed, PlaceError>> = Vec::with_capacity(plans.len());
    for (plan, r) in plans.iter().zip(placed) {
        results.push(r.map(|(installed, plaintext)| {
            if let Some(p) = plaintext {
                plaintexts.insert(plan.name.as_str(), p);
            }
            installed
        }));
    }
    for (i, plan) in plans.iter().enumerate().skip(n_secrets) {
        results.push(render(plan, &plaintexts).and_then(|bytes| {
            place::write(
                plan,
                &bytes,
                &gen_fd,
                &gen_path,
                sd,
                owner_of[i],
                prev.as_ref(),
            )
        }));
    }
    drop(plaintexts);
    let mut done = Vec::with_capacity(plans.len());
    let mut changed = Vec::with_capacity(plans.len());
    let mut units = UnitLists::default();
    let mut install_failures = Vec::new();
    let mut record = Record::default();
    for (plan, result) in plans.iter().zip(results) {
        match result {
            Ok(installed) => {
                let outside = match &plan.target {
                    Target::File(path) => Some(path.clone()),
                    Target::Generation | Target::Link(_) => None,
                };
                if let (Some(path), true) = (&outside, installed.on_disk) {
                    warnings.push(format!(
                        "secret {}: {} is not on a RAM-backed filesystem: its plaintext is on disk \
                         (symlink = true keeps it in RAM)",
                        crate::text::escape_controls(&plan.name),
                        path.display()
                    ));
                }
                record.secrets.push(Written {
                    name: plan.name.clone(),
                    outside,
                    id: installed.id,
                    content: installed.content,
                    restart_units: plan.restart_units.clone(),
                    reload_units: plan.reload_units.clone(),
                });
                changed.push((plan.name.clone(), installed.changed));
                if installed.changed {
                    units.add(&plan.restart_units, &plan.reload_units);
                }
                if !failed_owner.contains(plan.name.as_str()) {
                    done.push(plan.name.clone());
                }
            }
            Err(e) => install_failures.push(SecretFailure {
                name: plan.name.clone(),
                reason: e.to_string(),
            }),
        }
    }
    // Every path the manifest still writes: an earlier file there is not removed, and the
    // record of one whose install failed this time is kept, so it is still known later.
    let listed: std::collections::HashSet<PathBuf> = plans
        .iter()
        .map(|p| place::target_path(p, layout))
        .collect();
    for w in previous.iter().flat_map(|r| &r.secrets) {
        let still = w.outside.as_ref().is_some_and(|p| listed.contains(p));
        if still && !record.secrets.iter().any(|n| n.name == w.name) {
            record.secrets.push(w.clone());
        }
    }
    if let Err(e) = state::save(&mp_fd, generation, &record) {
        let _ = sys::remove_tree_at(&mp_fd, &gen_name);
        return Err(ActivationError::io(
            &mp.join(state::file_name(generation)),
            e,
        ));
    }
    if prev.is_some() {
        add_removed(&mut units, previous.as_ref(), &lists.names);
    }
    drop(prev);
    // Owner failures of secrets that did not install at all are superseded by the install error.
    failures.retain(|f| !install_failures.iter().any(|g| g.name == f.name));
    failures.extend(install_failures);

    // One directory sync for the whole generation (a no-op on tmpfs, cheap elsewhere).
    let _ = sys::sync(&gen_fd);
    drop(gen_fd);
    if let Err(source) = swap(layout, &gen_path) {
        let _ = sys::remove_tree_at(&mp_fd, &gen_name);
        return Err(ActivationError::Swap {
            path: sd.clone(),
            generation: gen_path,
            source,
        });
    }
    remove_old(&mp_fd, mp, generation, warnings);
    let removed = remove_unlisted(previous, &listed, warnings);
    // After the swap: the units see the new generation when they restart.
    let unit_error = if units.is_empty() {
        None
    } else {
        lists.files.append(&units, warnings).err()
    };
    Ok(Outcome {
        generation,
        done,
        failures,
        removed,
        changed,
        units,
        unit_error,
    })
}

/// `NIXOS_ACTION=dry-activate`: nothing is mounted, written or swapped. Each secret is
/// decrypted and each template rendered in memory and compared with the current
/// generation; the units that a real activation would list go to the `dry-` lists.
pub(crate) fn dry_run(
    layout: &Layout,
    plans: &[Plan],
    lists: &Units,
    warnings: &mut Vec<String>,
) -> Result<Outcome, ActivationError> {
    let mp = &layout.mount_point;
    let mut outcome = Outcome::default();
    let mp_fd = match sys::open_dir_nofollow(mp) {
        Ok(fd) => fd,
        // Nothing installed yet: nothing would be listed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(outcome),
        Err(e) => return Err(ActivationError::io(mp, e)),
    };
    let Some(gen) = previous_generation(layout, &mp_fd) else {
        return Ok(outcome);
    };
    if let Some((n, _)) = current(layout)? {
        outcome.generation = n;
    }
    let previous = previous_record(layout, &mp_fd, warnings);
    let prev = Previous {
        gen,
        record: previous.clone(),
    };
    let (ids, id_warnings) = place::load_identities(&layout.identity_paths);
    warnings.extend(id_warnings);
    let n_secrets = plans.iter().take_while(|p| !p.is_template()).count();
    let needed = used_by_templates(&plans[n_secrets..]);
    let decrypted = run_all(
        &plans[..n_secrets],
        &layout.identity_paths,
        ids,
        |plan, _, ids| {
            let plaintext = place::decrypt(plan, ids)?;
            let changed = place::changed(plan, &plaintext, &prev);
            Ok((
                changed,
                needed.contains(plan.name.as_str()).then_some(plaintext),
            ))
        },
    );
    let mut plaintexts: HashMap<&str, Zeroizing<Vec<u8>>> = HashMap::new();
    let mut results = Vec::with_capacity(plans.len());
    for (plan, r) in plans.iter().zip(decrypted) {
        results.push(r.map(|(changed, plaintext)| {
            if let Some(p) = plaintext {
                plaintexts.insert(plan.name.as_str(), p);
            }
            changed
        }));
    }
    for plan in &plans[n_secrets..] {
        results.push(render(plan, &plaintexts).map(|bytes| place::changed(plan, &bytes, &prev)));
    }
    drop(plaintexts);
    for (plan, r) in plans.iter().zip(results) {
        match r {
            Ok(changed) => {
                outcome.changed.push((plan.name.clone(), changed));
                if changed {
                    outcome.units.add(&plan.restart_units, &plan.reload_units);
                }
            }
            Err(e) => outcome.failures.push(SecretFailure {
                name: plan.name.clone(),
                reason: e.to_string(),
            }),
        }
    }
    add_removed(&mut outcome.units, previous.as_ref(), &lists.names);
    if !outcome.units.is_empty() {
        outcome.unit_error = lists.files.dry().append(&outcome.units, warnings).err();
    }
    Ok(outcome)
}

/// The directory of the generation `secretsDir` points at, if it is one in the mount.
fn previous_generation(layout: &Layout, mp_fd: &OwnedFd) -> Option<OwnedFd> {
    let (n, target) = current(layout).ok()??;
    if target != layout.mount_point.join(n.to_string()) {
        return None;
    }
    sys::open_dir_at(mp_fd, Path::new(&n.to_string())).ok()
}

/// The secrets whose plaintext the templates among `plans` need.
fn used_by_templates(plans: &[Plan]) -> HashSet<&str> {
    plans
        .iter()
        .flat_map(|p| match &p.source {
            Source::Template { parsed, .. } => parsed.secrets(),
            Source::Age(_) => Vec::new(),
        })
        .collect()
}

/// A template's rendered bytes, from the plaintexts of the secrets installed.
fn render(
    plan: &Plan,
    plaintexts: &HashMap<&str, Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>, PlaceError> {
    match &plan.source {
        Source::Template { content, parsed } => {
            Ok(parsed.render(content, &|n| plaintexts.get(n).map(|p| p.as_slice()))?)
        }
        Source::Age(_) => Err(PlaceError::NotATemplate),
    }
}

/// The units of what the previous generation had and the manifest no longer lists.
fn add_removed(units: &mut UnitLists, previous: Option<&Record>, listed: &HashSet<String>) {
    for w in previous.iter().flat_map(|r| &r.secrets) {
        if !listed.contains(&w.name) {
            units.add(&w.restart_units, &w.reload_units);
        }
    }
}

/// The record of the generation `secretsDir` points at now, if it has one.
fn previous_record(layout: &Layout, mp_fd: &OwnedFd, warnings: &mut Vec<String>) -> Option<Record> {
    let (n, target) = current(layout).ok()??;
    if target != layout.mount_point.join(n.to_string()) {
        return None;
    }
    match state::load(mp_fd, n) {
        Ok(r) => r,
        Err(e) => {
            warnings.push(format!(
                "{}: {e}; files of removed secrets are not cleaned up",
                layout.mount_point.join(state::file_name(n)).display()
            ));
            None
        }
    }
}

/// Removes the outside files of `previous` at paths the manifest no longer lists.
fn remove_unlisted(
    previous: Option<Record>,
    listed: &std::collections::HashSet<PathBuf>,
    warnings: &mut Vec<String>,
) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for w in previous.map(|r| r.secrets).unwrap_or_default() {
        let Some(path) = w.outside else { continue };
        if listed.contains(&path) {
            continue;
        }
        match place::remove_written(&path, w.id, &w.content) {
            Ok(true) => removed.push(path),
            Ok(false) => {}
            Err(e) => warnings.push(e.to_string()),
        }
    }
    removed
}

fn prepare_generation(
    mp_fd: &OwnedFd,
    gen_name: &Path,
    owners: Option<&UserDb>,
) -> std::io::Result<OwnedFd> {
    let gen_fd = sys::open_dir_at(mp_fd, gen_name)?;
    sys::fchmod(&gen_fd, 0o751)?;
    if let Some(db) = owners {
        let gid = db.keys_gid().unwrap_or(0);
        sys::fchown(mp_fd, 0, gid)?;
        sys::fchown(&gen_fd, 0, gid)?;
    }
    Ok(gen_fd)
}

/// Runs `work` over `plans` on a few threads. Each worker thread loads its own identity set
/// (identity types need not be shareable across threads); `ids` serves the calling thread.
fn run_all<T: Send, F>(
    plans: &[Plan],
    identity_paths: &[PathBuf],
    ids: IdentitySet,
    work: F,
) -> Vec<Result<T, PlaceError>>
where
    F: Fn(&Plan, usize, &IdentitySet) -> Result<T, PlaceError> + Sync,
{
    // Below this many secrets per thread, loading identities again costs more than it saves.
    const MIN_PER_THREAD: usize = 64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores
        .min(16)
        .min(plans.len().div_ceil(MIN_PER_THREAD))
        .max(1);
    let chunk = plans.len().div_ceil(threads).max(1);
    let plugin_ui = ids.plugin_ui().cloned();
    let run_chunk = |start: usize, ids: &IdentitySet| -> Vec<Result<T, PlaceError>> {
        let start = start.min(plans.len());
        plans[start..(start + chunk).min(plans.len())]
            .iter()
            .enumerate()
            .map(|(k, plan)| work(plan, start + k, ids))
            .collect()
    };
    if threads == 1 {
        return run_chunk(0, &ids);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads)
            .map(|t| {
                let run_chunk = &run_chunk;
                let plugin_ui = plugin_ui.clone();
                scope.spawn(move || {
                    let (ids, _) = place::load_identities(identity_paths);
                    let ids = match plugin_ui {
                        Some(ui) => ids.with_plugin_ui(ui),
                        None => ids,
                    };
                    run_chunk(t * chunk, &ids)
                })
            })
            .collect();
        let mut results = run_chunk(0, &ids);
        for (t, worker) in workers.into_iter().enumerate() {
            match worker.join() {
                Ok(part) => results.extend(part),
                // A panicking worker must not lose its secrets silently.
                Err(_) => {
                    let start = ((t + 1) * chunk).min(plans.len());
                    let end = (start + chunk).min(plans.len());
                    results.extend((start..end).map(|_| Err(PlaceError::WorkerPanicked)));
                }
            }
        }
        results
    })
}

/// Points `secretsDir` at `gen_path`: a symlink at a temp name, renamed over `secretsDir`.
fn swap(layout: &Layout, gen_path: &Path) -> Result<(), PlaceError> {
    place::link_atomic(gen_path, &layout.secrets_dir)
}

/// Removes every numbered generation other than `keep`. Trouble is a warning: the new
/// generation is already in place.
fn remove_old(mp_fd: &OwnedFd, mp: &Path, keep: u64, warnings: &mut Vec<String>) {
    let names = match sys::list_dir(mp_fd) {
        Ok(names) => names,
        Err(e) => {
            warnings.push(format!(
                "{}: cannot list old generations: {e}",
                mp.display()
            ));
            return;
        }
    };
    for name in names {
        if state::generation_of(&name).is_some_and(|n| n != keep) {
            if let Err(e) = sys::unlink_at(mp_fd, Path::new(&name)) {
                warnings.push(format!("{}: cannot remove: {e}", mp.join(&name).display()));
            }
            continue;
        }
        let Some(n) = name.to_str().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        if n == keep {
            continue;
        }
        if let Err(e) = sys::remove_tree_at(mp_fd, Path::new(&name)) {
            warnings.push(format!(
                "{}: cannot remove old generation: {e}",
                mp.join(&name).display()
            ));
        }
    }
}

/// Chown phase: owner and group for every secret of the generation `secretsDir` points at,
/// group `keys` (or root) for the mount point and that generation.
pub(crate) fn chown_current(
    layout: &Layout,
    plans: &[Plan],
    owners: &UserDb,
) -> Result<Outcome, ActivationError> {
    let mp = &layout.mount_point;
    let sd = &layout.secrets_dir;
    let not_installed = || {
        ActivationError::at(
            sd,
            format!(
                "does not point at a generation in {}; run the install phase first",
                mp.display()
            ),
        )
    };
    let mp_fd = match sys::open_dir_nofollow(mp) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_installed()),
        Err(e) => return Err(ActivationError::io(mp, e)),
    };
    sys::lock_exclusive(&mp_fd).map_err(|e| ActivationError::io(mp, e))?;
    let generation = match current(layout)? {
        Some((n, target)) if target == mp.join(n.to_string()) => n,
        _ => return Err(not_installed()),
    };
    let gen_name = PathBuf::from(generation.to_string());
    let gen_path = mp.join(&gen_name);
    let gen_fd =
        sys::open_dir_at(&mp_fd, &gen_name).map_err(|e| ActivationError::io(&gen_path, e))?;
    let gid = owners.keys_gid().unwrap_or(0);
    sys::fchown(&mp_fd, 0, gid).map_err(|e| ActivationError::io(mp, e))?;
    sys::fchown(&gen_fd, 0, gid).map_err(|e| ActivationError::io(&gen_path, e))?;
    let record = state::load(&mp_fd, generation)
        .map_err(|e| ActivationError::io(&mp.join(state::file_name(generation)), e))?
        .unwrap_or_default();
    let mut outcome = Outcome {
        generation,
        ..Outcome::default()
    };
    for plan in plans {
        let installed = record.written_as(&plan.name);
        let failure = match owners
            .uid(&plan.owner)
            .and_then(|u| owners.gid(&plan.group).map(|g| (u, g)))
        {
            Ok((u, g)) => place::chown_one(plan, &gen_fd, &gen_path, u, g, installed)
                .err()
                .map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => outcome.done.push(plan.name.clone()),
            Some(reason) => outcome.failures.push(SecretFailure {
                name: plan.name.clone(),
                reason,
            }),
        }
    }
    Ok(outcome)
}
