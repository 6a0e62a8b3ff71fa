//! Text that reaches a person: names and strings from repositories and manifests are quoted
//! in messages, where a newline would split a one-line error and an escape sequence could
//! drive the reader's terminal.

use std::borrow::Cow;

/// `s` with control characters escaped (`\n`, `\u{1b}`, …); borrowed when there are none.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// The first control character of `s` other than a tab (a field separator in key lines),
/// with its 1-based column in characters: what a public key line may not hold, since it is
/// printed and written into `secrets.nix`, where an ESC or CR could drive the terminal of
/// whoever reads it or hide a line from them.
pub fn first_control(s: &str) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() && c != '\t')
        .map(|(i, c)| (i + 1, c))
}

/// How a control character is named in messages: `U+001B`.
pub fn char_code(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// `s` with every run of whitespace (newlines included) collapsed to one space: library
/// messages (libgit2, libssh2) may span lines, and errors are one line.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` with control characters escaped like [`escape_controls`], reusing `s` when there
/// are none.
pub(crate) fn escape_controls_owned(s: String) -> String {
    match escape_controls(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(escaped) => escaped,
    }
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) of `secs` since the Unix epoch (git commit times).
pub fn utc_date_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_only() {
        assert!(matches!(
            escape_controls("plain é"),
            Cow::Borrowed("plain é")
        ));
        assert_eq!(escape_controls("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn first_control_skips_tabs_and_counts_characters() {
        assert_eq!(first_control("ssh-ed25519\tAAAA é"), None);
        assert_eq!(first_control("é\u{1b}[2K"), Some((2, '\u{1b}')));
        assert_eq!(first_control("a b\rc"), Some((4, '\r')));
        assert_eq!(first_control("x\u{9b}"), Some((2, '\u{9b}')));
        assert_eq!(char_code('\u{1b}'), "U+001B");
    }

    #[test]
    fn utc_date_times() {
        assert_eq!(utc_date_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date_time(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(utc_date_time(-1), "1969-12-31T23:59:59Z");
    }
}
