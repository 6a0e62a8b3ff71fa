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
}
