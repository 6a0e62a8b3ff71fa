//! The ready-to-paste `secrets.nix` snippet: a `let` binding naming a host's agenix public key,
//! with the name made a safe Nix identifier and the key a properly escaped Nix string.

/// Keywords, and builtins a `let` binding in `secrets.nix` must not shadow.
const RESERVED: &[&str] = &[
    "if",
    "then",
    "else",
    "assert",
    "with",
    "let",
    "in",
    "rec",
    "inherit",
    "or",
    "true",
    "false",
    "null",
    "builtins",
    "import",
    "throw",
    "abort",
    "map",
    "toString",
    "derivation",
    "baseNameOf",
    "dirOf",
    "isNull",
    "removeAttrs",
];

/// A Nix string literal whose value is exactly `s`. `$` is always escaped so no `${`
/// interpolation can form; `"` and `\` are escaped; newline, CR and tab use escapes.
pub fn nix_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A plain Nix identifier (`[A-Za-z_][A-Za-z0-9_'-]*`, not reserved) for a host name: the
/// first DNS label, other characters replaced by `_`, prefixed with `host-` when it would
/// start with something else or be reserved.
pub fn nix_identifier(host: &str) -> String {
    let short = host.split('.').next().unwrap_or_default();
    let mut id: String = short
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\'') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let starts_ok = id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if id.is_empty() {
        id = "host".to_string();
    } else if !starts_ok || RESERVED.contains(&id.as_str()) {
        id = format!("host-{id}");
    }
    id
}

/// Whether `name` is usable as is for a `let` binding: a plain Nix identifier
/// (`[A-Za-z_][A-Za-z0-9_'-]*`) that is not reserved.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''))
        && !RESERVED.contains(&name)
}

/// `  <host> = "<public line>";` — one binding for the `let` block of `secrets.nix`.
pub fn secrets_nix_binding(host: &str, public_line: &str) -> String {
    format!(
        "  {} = {};",
        nix_identifier(host),
        nix_string(public_line.trim())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_everything_nix_interprets() {
        assert_eq!(nix_string("plain"), r#""plain""#);
        assert_eq!(nix_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(nix_string("${x} $y"), r#""\${x} \$y""#);
        assert_eq!(nix_string("a\nb\tc\r"), r#""a\nb\tc\r""#);
    }

    #[test]
    fn identifiers_are_valid_and_not_reserved() {
        assert_eq!(nix_identifier("laptop"), "laptop");
        assert_eq!(nix_identifier("web-1.example.com"), "web-1");
        assert_eq!(nix_identifier("1st"), "host-1st");
        assert_eq!(nix_identifier("let"), "host-let");
        assert_eq!(nix_identifier("true"), "host-true");
        assert_eq!(nix_identifier("my host!"), "my_host_");
        assert_eq!(nix_identifier(""), "host");
        assert_eq!(nix_identifier("_x"), "_x");
        assert_eq!(nix_identifier("ünï"), "_n_");
    }

    #[test]
    fn plain_identifiers_only() {
        assert!(is_identifier("web-1"));
        assert!(is_identifier("_x'"));
        assert!(!is_identifier("1st"));
        assert!(!is_identifier("let"));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier(""));
    }

    #[test]
    fn binding_is_one_line() {
        assert_eq!(
            secrets_nix_binding("box", "ssh-ed25519 AAAA c@d\n"),
            r#"  box = "ssh-ed25519 AAAA c@d";"#
        );
    }
}
