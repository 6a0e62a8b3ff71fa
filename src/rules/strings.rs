//! String literals exactly as Nix reads them: escapes in `"…"` strings, and the lexing and
//! indentation stripping of `''…''` strings (Nix's `stripIndentation`), plus the string
//! builtins whose semantics are subtle (`replaceStrings`, `split`, `match`).

use rnix::ast;
use rnix::{NodeOrToken, SyntaxKind};
use rowan::ast::AstNode;

/// A piece of a string literal after unescaping: text, or an interpolated expression.
pub enum Piece {
    Text(String),
    Interp(ast::Interpol),
}

/// The pieces of a string literal, unescaped and (for `''` strings) with Nix's indentation
/// stripping applied.
pub fn pieces(s: &ast::Str) -> Vec<Piece> {
    let mut multiline = false;
    let mut raw: Vec<RawPart> = Vec::new();
    for child in s.syntax().children_with_tokens() {
        match child {
            NodeOrToken::Token(t) => match t.kind() {
                SyntaxKind::TOKEN_STRING_START => multiline = t.text() == "''",
                SyntaxKind::TOKEN_STRING_CONTENT => raw.push(RawPart::Text(t.text().to_string())),
                _ => {}
            },
            NodeOrToken::Node(n) => {
                if let Some(i) = ast::Interpol::cast(n) {
                    raw.push(RawPart::Interp(i));
                }
            }
        }
    }
    if multiline {
        strip_indentation(raw)
    } else {
        raw.into_iter()
            .map(|p| match p {
                RawPart::Text(t) => Piece::Text(unescape_double_quoted(&t)),
                RawPart::Interp(i) => Piece::Interp(i),
            })
            .collect()
    }
}

enum RawPart {
    Text(String),
    Interp(ast::Interpol),
}

/// `"…"` escapes: `\n \r \t`, and a backslash before anything else yields that character.
pub fn unescape_double_quoted(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One token of Nix's indented-string lexer. `indented` is false for escapes (`''$`,
/// `'''`, `''\x`) and lone `$`/`'`, which end a line's leading whitespace like an
/// interpolation does.
enum IndPart {
    Text { text: String, indented: bool },
    Interp(ast::Interpol),
}

/// Splits raw `''` string content into the tokens Nix's lexer produces.
fn lex_indented(raw: &str, out: &mut Vec<IndPart>) {
    let b = raw.as_bytes();
    let mut i = 0;
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<IndPart>| {
        if !run.is_empty() {
            out.push(IndPart::Text {
                text: std::mem::take(run),
                indented: true,
            });
        }
    };
    let lone = |s: &str, out: &mut Vec<IndPart>| {
        out.push(IndPart::Text {
            text: s.to_string(),
            indented: false,
        })
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'\'' && next == Some(b'\'') {
            flush(&mut run, out);
            match b.get(i + 2).copied() {
                Some(b'$') => {
                    lone("$", out);
                    i += 3;
                }
                Some(b'\'') => {
                    lone("''", out);
                    i += 3;
                }
                Some(b'\\') => {
                    // `''\` + any character: that character unescaped.
                    let rest = &raw[i + 3..];
                    let ch = rest.chars().next();
                    let s = match ch {
                        Some('n') => "\n".to_string(),
                        Some('r') => "\r".to_string(),
                        Some('t') => "\t".to_string(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    lone(&s, out);
                    i += 3 + ch.map_or(0, char::len_utf8);
                }
                // The tokenizer never leaves a closing `''` inside content; keep it literal.
                _ => {
                    run.push_str("''");
                    i += 2;
                }
            }
        } else if c == b'$' {
            // `$` followed by anything but `{` or `'` belongs to the run.
            match next {
                Some(b'{') | Some(b'\'') | None => {
                    flush(&mut run, out);
                    lone("$", out);
                    i += 1;
                }
                Some(_) => {
                    let n = raw[i + 1..].chars().next().map_or(0, char::len_utf8);
                    run.push_str(&raw[i..i + 1 + n]);
                    i += 1 + n;
                }
            }
        } else if c == b'\'' {
            match next {
                Some(b'$') | None => {
                    flush(&mut run, out);
                    lone("'", out);
                    i += 1;
                }
                Some(_) => {
                    let n = raw[i + 1..].chars().next().map_or(0, char::len_utf8);
                    run.push_str(&raw[i..i + 1 + n]);
                    i += 1 + n;
                }
            }
        } else {
            let n = raw[i..].chars().next().map_or(1, char::len_utf8);
            run.push_str(&raw[i..i + n]);
            i += n;
        }
    }
    flush(&mut run, out);
}

/// Nix's `stripIndentation` over the lexed parts of an indented string.
fn strip_indentation(raw: Vec<RawPart>) -> Vec<Piece> {
    let mut parts: Vec<IndPart> = Vec::new();
    for (idx, p) in raw.into_iter().enumerate() {
        match p {
            RawPart::Text(t) => {
                // The opening `''` swallows spaces followed by a newline.
                let t = if idx == 0 {
                    let trimmed = t.trim_start_matches(' ');
                    match trimmed.strip_prefix('\n') {
                        Some(rest) => rest.to_string(),
                        None => t,
                    }
                } else {
                    t
                };
                lex_indented(&t, &mut parts);
            }
            RawPart::Interp(i) => parts.push(IndPart::Interp(i)),
        }
    }

    // Minimum indentation; whitespace-only lines do not count.
    let mut at_start = true;
    let mut min_indent = usize::MAX;
    let mut cur = 0usize;
    for p in &parts {
        match p {
            IndPart::Text {
                text,
                indented: true,
            } => {
                for c in text.bytes() {
                    if at_start {
                        if c == b' ' {
                            cur += 1;
                        } else if c == b'\n' {
                            cur = 0;
                        } else {
                            at_start = false;
                            min_indent = min_indent.min(cur);
                        }
                    } else if c == b'\n' {
                        at_start = true;
                        cur = 0;
                    }
                }
            }
            _ => {
                if at_start {
                    at_start = false;
                    min_indent = min_indent.min(cur);
                }
            }
        }
    }

    let n = parts.len();
    let mut out = Vec::with_capacity(n);
    at_start = true;
    let mut dropped = 0usize;
    for (idx, p) in parts.into_iter().enumerate() {
        match p {
            IndPart::Interp(i) => {
                at_start = false;
                dropped = 0;
                out.push(Piece::Interp(i));
            }
            IndPart::Text { text, .. } => {
                let mut s = String::with_capacity(text.len());
                for c in text.chars() {
                    if at_start {
                        if c == ' ' {
                            if dropped >= min_indent {
                                s.push(c);
                            }
                            dropped += 1;
                        } else if c == '\n' {
                            dropped = 0;
                            s.push(c);
                        } else {
                            at_start = false;
                            dropped = 0;
                            s.push(c);
                        }
                    } else {
                        s.push(c);
                        if c == '\n' {
                            at_start = true;
                        }
                    }
                }
                // The last line is dropped when it holds only spaces.
                if idx + 1 == n {
                    if let Some(p) = s.rfind('\n') {
                        if s[p + 1..].bytes().all(|c| c == b' ') {
                            s.truncate(p + 1);
                        }
                    }
                }
                out.push(Piece::Text(s));
            }
        }
    }
    out
}

/// `builtins.replaceStrings`: at each position the first matching `from` wins; an empty
/// `from` matches everywhere, including at the end.
pub fn replace_strings(from: &[String], to: &[String], s: &str) -> String {
    let sb = s.as_bytes();
    let mut res: Vec<u8> = Vec::with_capacity(s.len());
    let mut p = 0;
    while p <= sb.len() {
        let mut found = false;
        for (f, t) in from.iter().zip(to) {
            if sb[p..].starts_with(f.as_bytes()) {
                found = true;
                res.extend_from_slice(t.as_bytes());
                if f.is_empty() {
                    if p < sb.len() {
                        res.push(sb[p]);
                    }
                    p += 1;
                } else {
                    p += f.len();
                }
                break;
            }
        }
        if !found {
            if p < sb.len() {
                res.push(sb[p]);
            }
            p += 1;
        }
    }
    String::from_utf8(res).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One element of `builtins.split`'s result.
#[derive(Debug, PartialEq)]
pub enum SplitItem {
    Text(String),
    Groups(Vec<Option<String>>),
}

/// A regular expression the `regex` crate does not accept.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression '{pattern}'")]
pub struct InvalidRegex {
    /// The expression as written in the rules file.
    pub pattern: String,
    /// Why the `regex` crate refused it.
    #[source]
    pub source: regex::Error,
}

/// Compiles a POSIX extended regular expression (as Nix uses) with the `regex` crate.
pub fn compile_regex(re: &str, anchored: bool) -> Result<regex::Regex, InvalidRegex> {
    let pattern = if anchored {
        format!("^(?:{re})$")
    } else {
        re.to_string()
    };
    regex::Regex::new(&pattern).map_err(|source| InvalidRegex {
        pattern: re.to_string(),
        source,
    })
}

/// `builtins.split re s`: non-matched text alternating with lists of capture groups.
/// Matches are found the way C++'s `std::regex_iterator` (which Nix uses) finds them: an
/// empty match may directly follow a non-empty one, and after an empty match the search
/// moves on by one character.
pub fn split(re: &regex::Regex, s: &str) -> Vec<SplitItem> {
    let mut out = Vec::new();
    let mut last = 0;
    let mut pos = 0;
    while pos <= s.len() {
        let Some(caps) = re.captures_at(s, pos) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        out.push(SplitItem::Text(s[last..m.start()].to_string()));
        out.push(SplitItem::Groups(
            caps.iter()
                .skip(1)
                .map(|g| g.map(|g| g.as_str().to_string()))
                .collect(),
        ));
        last = m.end();
        pos = if m.is_empty() {
            match s[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push(SplitItem::Text(s[last..].to_string()));
    out
}

/// `builtins.match re s`: the capture groups when `re` matches all of `s`.
pub fn full_match(re: &regex::Regex, s: &str) -> Option<Vec<Option<String>>> {
    re.captures(s).map(|caps| {
        caps.iter()
            .skip(1)
            .map(|g| g.map(|g| g.as_str().to_string()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(src: &str) -> String {
        let root = rnix::Root::parse(src).ok().expect("parses");
        let Some(ast::Expr::Str(s)) = root.expr() else {
            panic!("not a string")
        };
        pieces(&s)
            .into_iter()
            .map(|p| match p {
                Piece::Text(t) => t,
                Piece::Interp(i) => format!("<{}>", i.syntax().text()),
            })
            .collect()
    }

    #[test]
    fn indented_strings_follow_nix() {
        // Expected values checked against nix-instantiate 2.8.
        assert_eq!(lit("''\n  a\n  ''\\n  b\n  ''"), "a\n\nb\n");
        assert_eq!(lit("''\n  a\n ''$b''"), " a\n$b");
        assert_eq!(lit("''  \n  a\n    b\n  ''"), "a\n  b\n");
        assert_eq!(lit("''\n  ${\"x\"}\n    b''"), "<${\"x\"}>\n  b");
        assert_eq!(lit("''\n    a\n  ''\\t b\n''"), "  a\n\t b\n");
        assert_eq!(lit("''\n    a\n  ''$ b\n''"), "  a\n$ b\n");
        assert_eq!(lit("''\n    a\n  ''' b\n''"), "  a\n'' b\n");
        assert_eq!(lit("''\n    a\n    ${\"x\"}  ''"), "a\n<${\"x\"}>  ");
        assert_eq!(lit("''a\n    b\n  ''"), "a\n    b\n");
        assert_eq!(lit("'' \t\n  a\n''"), "\t\n a\n");
        assert_eq!(lit("''\n  a$\n  b''"), "a$\nb");
        assert_eq!(lit("''\n  a'\n  b''"), "a'\nb");
        assert_eq!(lit("''\n  a\n\n  b\n    \n  ''"), "a\n\nb\n  \n");
        assert_eq!(lit("''''"), "");
    }

    #[test]
    fn double_quoted_escapes() {
        assert_eq!(lit("\"a\\\n b\\$c$d\\q\""), "a\n b$c$dq");
        assert_eq!(lit("\"$${x}\""), "$${x}");
        assert_eq!(lit("\"a${b}c\""), "a<${b}>c");
    }

    #[test]
    fn replace_strings_semantics() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(replace_strings(&s(&[""]), &s(&["x"]), "ab"), "xaxbx");
        assert_eq!(
            replace_strings(&s(&["a", "ab"]), &s(&["1", "2"]), "abab"),
            "1b1b"
        );
        assert_eq!(replace_strings(&s(&["\n"]), &s(&[" "]), "a\nb"), "a b");
    }

    #[test]
    fn split_semantics() {
        let re = compile_regex("(a)|b", false).unwrap();
        assert_eq!(
            split(&re, "xaybz"),
            vec![
                SplitItem::Text("x".into()),
                SplitItem::Groups(vec![Some("a".into())]),
                SplitItem::Text("y".into()),
                SplitItem::Groups(vec![None]),
                SplitItem::Text("z".into()),
            ]
        );
        let nl = compile_regex("\n", false).unwrap();
        assert_eq!(split(&nl, "abc"), vec![SplitItem::Text("abc".into())]);
        let m = compile_regex("([a-z]+)-([0-9]+)", true).unwrap();
        assert_eq!(
            full_match(&m, "ab-12"),
            Some(vec![Some("ab".into()), Some("12".into())])
        );
        assert_eq!(full_match(&m, "ab-12x"), None);
    }
}
