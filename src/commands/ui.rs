//! Terminal output helpers: warnings, info, colour (only on a TTY and never with NO_COLOR),
//! and the terminal passphrase prompt.

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::{Error, Result};

/// Writes report data to stdout: the one place that does. A closed stdout (the reader went
/// away) gives [`Error::StdoutClosed`], which ends the run quietly with exit 0.
pub fn out_bytes(data: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(data)
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// [`out_bytes`] of `text` and a newline.
pub fn out(text: &str) -> Result<()> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    out_bytes(line.as_bytes())
}

/// What a failed write to stdout means: a closed pipe ends the run quietly; anything else
/// is a failure.
pub fn stdout_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::StdoutClosed
    } else {
        Error::Failed(format!("cannot write to standard output: {e}"))
    }
}

/// One line on stderr. A closed stderr is ignored: there is nobody left to tell, and a
/// message must never turn into a panic.
pub fn err_line(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// Whether stdout gets colour (a terminal, and no `NO_COLOR`).
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stderr gets colour.
pub fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn paint(code: &str, s: &str) -> String {
    if color_stderr() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// `warning: …` on stderr.
pub fn warn(msg: &str) {
    err_line(&format!("{} {}", paint("33", "warning:"), printable(msg)));
}

/// `error: …` on stderr, for one failing item among many.
pub fn error(msg: &str) {
    err_line(&format!("{} {}", paint("31", "error:"), printable(msg)));
}

/// A plain message on stderr.
pub fn info(msg: &str) {
    err_line(&printable(msg));
}

/// A message of several lines on stderr (a plan, a snippet), each line escaped on its own:
/// the lines are meant, a control character inside one is not.
pub fn info_lines(msg: &str) {
    err_line(&printable_lines(msg));
}

/// `s` with control characters escaped (`\n`, `\u{1b}`…). Names of secrets and files come
/// from the repository: printed raw, an escape sequence in one could drive the reader's
/// terminal, and a newline would split a one-line message.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    crate::text::escape_controls(s)
}

/// [`printable`] line by line: a message whose lines are meant (Nix's own stderr, shown
/// verbatim) keeps them.
pub fn printable_lines(s: &str) -> String {
    s.split('\n')
        .map(|l| printable(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asks `question` on stderr and reads the answer from stdin, which must be a terminal:
/// `None` when it is not (the caller says how to proceed without asking), else whether the
/// answer was `y`/`yes` (any case). End of input or anything else is no.
pub fn confirm(question: &str) -> Result<Option<bool>> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    {
        // A closed stderr must not panic; the answer is still read.
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{} [y/N] ", printable(question));
        let _ = stderr.flush();
    }
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Failed(format!("reading the answer: {e}")))?;
    let answer = answer.trim();
    Ok(Some(
        answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"),
    ))
}

/// Asks for passphrases on the controlling terminal (`/dev/tty`), never on stdin, so piped
/// plaintext and prompts do not mix. Without a terminal it answers `None` at once: no hang.
pub struct TerminalPrompt;

impl crate::identity::PassphrasePrompt for TerminalPrompt {
    fn passphrase(&self, key_path: &Path) -> Option<age::secrecy::SecretString> {
        let prompt = format!("Enter passphrase for {}: ", key_path.display());
        // rpassword opens /dev/tty itself; failure to open it means there is no terminal.
        rpassword::prompt_password(prompt)
            .ok()
            .map(age::secrecy::SecretString::from)
    }
}

/// Shows age plugins' messages on stderr and asks their questions on the controlling
/// terminal (`/dev/tty`), as age does; without a terminal every question is declined.
pub struct TerminalPluginUi;

/// The terminal as the UI of age plugins (PINs, touches), for the library calls that take one.
pub fn plugin_ui() -> std::sync::Arc<dyn crate::recipient::plugin::PluginUi> {
    std::sync::Arc::new(TerminalPluginUi)
}

impl TerminalPluginUi {
    /// One line typed on the terminal after `prompt`; `None` without a terminal.
    fn ask_line(prompt: &str) -> Option<String> {
        use std::io::{BufRead, Write};
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let mut out = &tty;
        write!(out, "{prompt}").ok()?;
        out.flush().ok()?;
        let mut line = String::new();
        // End of input (Ctrl-D) is no answer, not an empty one.
        if std::io::BufReader::new(&tty).read_line(&mut line).ok()? == 0 {
            return None;
        }
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

impl crate::recipient::plugin::PluginUi for TerminalPluginUi {
    fn message(&self, message: &str) {
        info(message);
    }

    fn confirm(&self, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        let no = no.unwrap_or("no");
        let prompt = format!(
            "{} [{}/{}]: ",
            printable(message),
            printable(yes),
            printable(no)
        );
        loop {
            let answer = Self::ask_line(&prompt)?;
            if answer == yes {
                return Some(true);
            }
            if answer == no {
                return Some(false);
            }
        }
    }

    fn request_public(&self, description: &str) -> Option<String> {
        Self::ask_line(&format!("{} ", printable(description)))
    }

    fn request_secret(&self, description: &str) -> Option<age::secrecy::SecretString> {
        rpassword::prompt_password(format!("{} ", printable(description)))
            .ok()
            .map(age::secrecy::SecretString::from)
    }
}

/// A progress bar on stderr for work over many items; hidden unless stderr is a terminal and
/// there is enough work to be worth watching.
pub fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    const WORTH_SHOWING: usize = 50;
    if len < WORTH_SHOWING || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("plain näme.age"), "plain näme.age");
        assert_eq!(
            printable("a\nb\u{1b}]0;x\u{7}.age"),
            "a\\nb\\u{1b}]0;x\\u{7}.age"
        );
        assert_eq!(printable_lines("one\u{1b}[31m\ntwo"), "one\\u{1b}[31m\ntwo");
    }
}
