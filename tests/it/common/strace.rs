//! A syscall recorder for durability checks: runs a command under
//! `strace -f -y` and parses the writes, flushes and renames it made (every thread and child),
//! in the order strace saw them complete (a rename counts from when it started).
//!
//! [`Trace::durability_violations`] checks the promise behind every atomic replace: each file
//! published by a rename had its data made durable before the rename (its own
//! `fsync`/`fdatasync`, or a `syncfs` of its filesystem issued after its last write), and each
//! directory a rename changed on a persistent filesystem is synced after the rename.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{require_tool, run, stderr};

/// The syscalls recorded: `-y` makes strace print each descriptor's path.
const TRACED: &str =
    "trace=write,pwrite64,writev,pwritev,pwritev2,openat,fsync,fdatasync,syncfs,sync,rename,renameat,renameat2";

/// One recorded (successful) call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Data written to this file.
    Write(PathBuf),
    /// `fsync`/`fdatasync` of this file or directory.
    Sync(PathBuf),
    /// `syncfs` of the filesystem holding this path.
    SyncFs(PathBuf),
    /// `sync`: every filesystem.
    SyncAll,
    /// A rename, both sides resolved to absolute paths.
    Rename { from: PathBuf, to: PathBuf },
}

/// The calls of one run, in order.
#[derive(Debug)]
pub struct Trace {
    pub calls: Vec<Call>,
}

/// Runs `cmd` (its program, arguments, environment and directory) under strace, with `input`
/// on its stdin (closed when `None`); returns its output and the calls it made. Needs `strace`.
pub fn record(cmd: &Command, input: Option<&[u8]>) -> (Output, Trace) {
    require_tool("strace");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut traced = Command::new("strace");
    traced
        .args([
            "-f",
            "-y",
            "-qq",
            "-s",
            "0",
            "-e",
            "signal=none",
            "-e",
            TRACED,
            "-o",
        ])
        .arg(log.path())
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    // Commands of the rigs start from a cleared environment; keep exactly what they set.
    traced.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            traced.env(k, v);
        }
    }
    let cwd = cmd
        .get_current_dir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::current_dir().unwrap());
    traced.current_dir(&cwd);
    let out = match input {
        None => run(&mut traced),
        Some(input) => super::run_with_stdin(&mut traced, input),
    };
    let text = std::fs::read_to_string(log.path()).unwrap();
    let trace = Trace::parse(&text, &cwd);
    assert!(
        !trace.calls.is_empty(),
        "strace recorded nothing: {}",
        stderr(&out)
    );
    (out, trace)
}

impl Trace {
    /// Parses `strace -f -y -qq` output; relative paths of `rename` are against `cwd` (the
    /// traced commands never change directory).
    pub fn parse(text: &str, cwd: &Path) -> Trace {
        // Per pid: the call started on an `<unfinished ...>` line, and its slot in `calls`.
        let mut pending: HashMap<&str, (String, String, usize)> = HashMap::new();
        let mut calls: Vec<Option<Call>> = Vec::new();
        for line in text.lines() {
            let Some((pid, rest)) = line.split_once(' ') else {
                continue;
            };
            let rest = rest.trim_start();
            if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
                let Some((name, args)) = start.split_once('(') else {
                    continue;
                };
                // A rename counts from its start (a flush that completes while it runs is
                // too late): its slot is taken now and filled if it succeeds.
                let slot = if name.starts_with("rename") {
                    calls.push(None);
                    calls.len() - 1
                } else {
                    usize::MAX
                };
                pending.insert(pid, (name.to_string(), args.to_string(), slot));
                continue;
            }
            let (name, args, ret, slot) = if let Some(resumed) = rest.strip_prefix("<... ") {
                let Some((name, tail)) = resumed.split_once(" resumed>") else {
                    continue;
                };
                let Some((n, started, slot)) = pending.remove(pid) else {
                    continue;
                };
                assert_eq!(n, name, "strace: resumed call does not match: {line}");
                let Some((more, ret)) = tail.rsplit_once(" = ") else {
                    continue;
                };
                (n, format!("{started}{more}"), ret.to_string(), slot)
            } else {
                let Some((name, tail)) = rest.split_once('(') else {
                    continue;
                };
                let Some((args, ret)) = tail.rsplit_once(" = ") else {
                    continue;
                };
                (
                    name.to_string(),
                    args.to_string(),
                    ret.to_string(),
                    usize::MAX,
                )
            };
            if ret.trim_start().starts_with('-') || ret.trim() == "?" {
                continue; // failed (or never returned): it made nothing durable or visible
            }
            let args = args.trim_end().trim_end_matches(')').to_string();
            let call = Self::call(&name, &args, cwd);
            match calls.get_mut(slot) {
                Some(taken) => *taken = call,
                None => calls.push(call),
            }
        }
        Trace {
            calls: calls.into_iter().flatten().collect(),
        }
    }

    fn call(name: &str, args: &str, cwd: &Path) -> Option<Call> {
        let a = split_args(args);
        let fd_path = |i: usize| a.get(i).and_then(|s| descriptor_path(s));
        match name {
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => {
                let p = fd_path(0)?;
                // Only data written to files counts (not a pipe, socket or terminal).
                p.is_absolute().then_some(Call::Write(p))
            }
            "fsync" | "fdatasync" => fd_path(0).map(Call::Sync),
            "syncfs" => fd_path(0).map(Call::SyncFs),
            "sync" => Some(Call::SyncAll),
            "rename" => Some(Call::Rename {
                from: cwd.join(unquote(a.first()?)?),
                to: cwd.join(unquote(a.get(1)?)?),
            }),
            "renameat" | "renameat2" => Some(Call::Rename {
                from: fd_path(0)?.join(unquote(a.get(1)?)?),
                to: fd_path(2)?.join(unquote(a.get(3)?)?),
            }),
            _ => None,
        }
    }

    /// How many recorded calls match `f`.
    pub fn count(&self, f: impl Fn(&Call) -> bool) -> usize {
        self.calls.iter().filter(|c| f(c)).count()
    }

    /// Every breach of the durability promise (see the module doc), one line each; and the
    /// number of files published with data (so a caller can check the run did something).
    pub fn durability_violations(&self) -> (Vec<String>, usize) {
        let mut synced: HashMap<&Path, Vec<usize>> = HashMap::new();
        let mut syncfs: Vec<(usize, Option<u64>)> = Vec::new(); // None: every filesystem
        for (i, c) in self.calls.iter().enumerate() {
            match c {
                Call::Sync(p) => synced.entry(p).or_default().push(i),
                Call::SyncFs(p) => syncfs.push((i, device_of(p))),
                Call::SyncAll => syncfs.push((i, None)),
                _ => {}
            }
        }
        // Whether `path` was flushed by a call strictly between `after` and `before`: its own
        // fsync/fdatasync, or a syncfs of its filesystem.
        let flushed = |path: &Path, after: usize, before: usize| {
            let dev = device_of(path);
            let within = |j: usize| after < j && j < before;
            synced
                .get(path)
                .is_some_and(|s| s.iter().any(|&j| within(j)))
                || syncfs
                    .iter()
                    .any(|&(j, d)| within(j) && (d.is_none() || d == dev))
        };
        let mut last_write: HashMap<&Path, usize> = HashMap::new();
        let mut problems = Vec::new();
        let mut published = 0;
        for (i, c) in self.calls.iter().enumerate() {
            match c {
                Call::Write(p) => {
                    last_write.insert(p, i);
                }
                Call::Rename { from, to } => {
                    if let Some(&w) = last_write.get(from.as_path()) {
                        published += 1;
                        if !flushed(from, w, i) {
                            problems.push(format!(
                                "{} published as {} without its data made durable first",
                                from.display(),
                                to.display()
                            ));
                        }
                    }
                    let dir = to.parent().unwrap_or(Path::new("/"));
                    // On tmpfs/ramfs nothing survives a power cut: nothing to sync.
                    if persistent(dir) && !flushed(dir, i, usize::MAX) {
                        problems.push(format!(
                            "{}: not synced after a rename into it (call {i})",
                            dir.display()
                        ));
                    }
                }
                _ => {}
            }
        }
        (problems, published)
    }
}

/// Splits strace's argument list at top-level commas (not inside quotes, braces or brackets).
fn split_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut depth, mut quoted, mut escaped) = (String::new(), 0i32, false, false);
    for ch in args.chars() {
        if quoted {
            cur.push(ch);
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => {
                quoted = true;
                cur.push(ch);
            }
            '{' | '[' | '<' => {
                depth += 1;
                cur.push(ch);
            }
            '}' | ']' | '>' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The path strace's `-y` shows for a descriptor: `3</dir/file>`, `AT_FDCWD</dir>`.
fn descriptor_path(arg: &str) -> Option<PathBuf> {
    let (_, rest) = arg.split_once('<')?;
    let path = rest.strip_suffix('>')?;
    // Pipes and sockets show as `pipe:[…]`, `socket:[…]`; a deleted file has a suffix.
    Some(PathBuf::from(
        path.strip_suffix(" (deleted)").unwrap_or(path),
    ))
}

/// A path argument, unquoted (the test's paths hold no escapes).
fn unquote(arg: &str) -> Option<PathBuf> {
    let s = arg.strip_prefix('"')?.strip_suffix('"')?;
    assert!(!s.contains('\\'), "escaped path in the trace: {arg}");
    Some(PathBuf::from(s))
}

/// The device of `path`, or of its nearest existing ancestor (temp files are gone by now).
fn device_of(path: &Path) -> Option<u64> {
    path.ancestors()
        .find_map(|a| std::fs::symlink_metadata(a).ok())
        .map(|m| m.dev())
}

/// Whether `path` (or its nearest existing ancestor) is on a filesystem that survives a
/// power cut: not tmpfs or ramfs.
pub fn persistent(path: &Path) -> bool {
    const TMPFS: i64 = 0x0102_1994;
    const RAMFS: i64 = 0x8584_58f6_u32 as i64;
    let Some(existing) = path.ancestors().find(|a| a.exists()) else {
        return true;
    };
    let st = rustix::fs::statfs(existing).expect("statfs");
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let kind = st.f_type as i64;
    kind != TMPFS && kind != RAMFS
}
