//! Removing a private directory when a signal ends the run: a drop guard does not run when a
//! signal kills the process, so plaintext (edit) or a staged secrets repo (install) would
//! outlive it.

use std::path::Path;

use signal_hook::consts::{
    SIGABRT, SIGALRM, SIGHUP, SIGINT, SIGPROF, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGVTALRM,
    SIGXCPU, SIGXFSZ,
};

use super::{Error, Result};

/// Every signal a handler can catch whose default action ends the process: a `kill` of any
/// of them (short of SIGKILL, which nothing can catch) gets the cleanup. Left out are the
/// synchronous fault signals (SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGSYS, SIGTRAP): a handler
/// that returns from a real fault re-runs the faulting instruction, forever. Left out too is
/// SIGPIPE: the Rust runtime ignores it (a closed pipe is an `EPIPE` error, and a closed
/// stdout a quiet exit), so it cannot end the run; and handling it looped forever: a signal
/// arriving once the guard's self-pipe was closed made the handler's own write fail with
/// EPIPE, which raised SIGPIPE, whose handler wrote again.
fn terminating() -> Vec<i32> {
    #[allow(unused_mut)]
    let mut all = vec![
        SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGXCPU, SIGXFSZ,
        SIGVTALRM, SIGPROF,
    ];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        all.extend([libc::SIGIO, libc::SIGPWR, libc::SIGSTKFLT]);
        all.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    }
    all
}

/// What to do with SIGINT and SIGQUIT while the guard is alive.
pub enum Interrupt {
    /// Swallow them: a foreground child (the editor) owns Ctrl-C.
    LeaveToChild,
    /// Treat them like SIGTERM.
    Stop,
}

/// While alive, every terminating signal ([`terminating`]; SIGINT and SIGQUIT only with
/// [`Interrupt::Stop`]) removes `dir`, prints `message` and exits with `code`.
pub struct CleanupOnSignal {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CleanupOnSignal {
    pub fn install(
        dir: &Path,
        interrupt: Interrupt,
        message: &'static str,
        code: i32,
    ) -> Result<Self> {
        let mut signals = signal_hook::iterator::Signals::new(terminating())
            .map_err(|e| Error::Failed(format!("cannot install signal handlers: {e}")))?;
        let handle = signals.handle();
        let dir = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                let fatal = match interrupt {
                    Interrupt::Stop => true,
                    Interrupt::LeaveToChild => sig != SIGINT && sig != SIGQUIT,
                };
                if fatal {
                    remove_while_the_child_dies(&dir);
                    super::ui::err_line(&format!("agefleet: {message}"));
                    std::process::exit(code);
                }
            }
        });
        Ok(CleanupOnSignal {
            handle,
            thread: Some(thread),
        })
    }
}

/// Removes `dir`, trying again for up to a second until it is gone: a signal sent to the
/// whole process group reaches the editor at the same moment, and an editor still writing its
/// buffer (or a swap file) while it dies can add an entry after `remove_dir_all` listed the
/// directory; and the main thread may be removing the same directory at the same time (its
/// run ended as the signal came), so an entry that vanished under us is not success either.
/// Only the directory being gone is.
fn remove_while_the_child_dies(dir: &Path) {
    for _ in 0..50 {
        let _ = std::fs::remove_dir_all(dir);
        if std::fs::symlink_metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Drop for CleanupOnSignal {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
