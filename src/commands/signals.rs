//! Removing a private directory when a signal ends the run: a drop guard does not run when a
//! signal kills the process, so plaintext (edit) or a staged secrets repo (install) would
//! outlive it.

use std::path::Path;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use super::{Error, Result};

/// What to do with SIGINT and SIGQUIT while the guard is alive.
pub enum Interrupt {
    /// Swallow them: a foreground child (the editor) owns Ctrl-C.
    LeaveToChild,
    /// Treat them like SIGTERM.
    Stop,
}

/// While alive, SIGTERM and SIGHUP (and SIGINT/SIGQUIT with [`Interrupt::Stop`]) remove
/// `dir`, print `message` and exit with `code`.
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
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGQUIT, SIGTERM, SIGHUP])
                .map_err(|e| Error::Failed(format!("cannot install signal handlers: {e}")))?;
        let handle = signals.handle();
        let dir = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                let fatal = match interrupt {
                    Interrupt::Stop => true,
                    Interrupt::LeaveToChild => sig == SIGTERM || sig == SIGHUP,
                };
                if fatal {
                    let _ = std::fs::remove_dir_all(&dir);
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

impl Drop for CleanupOnSignal {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
