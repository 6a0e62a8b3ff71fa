//! Parsing a rules file with rnix: nesting guard, syntax errors with line:col, positions.

use rnix::ParseError;
use rnix::SyntaxKind;

/// Deepest bracket / interpolation / prefix-operator nesting accepted before parsing.
/// rnix's parser is recursive; this keeps hostile input from exhausting the stack.
pub const MAX_NESTING: usize = 500;

/// A syntax error: byte offset in the source and a one-line message.
#[derive(Debug)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// Parses `text`, refusing over-deep nesting before rnix's recursive parser sees it.
pub fn parse(text: &str) -> Result<rnix::ast::Expr, SyntaxError> {
    check_nesting(text)?;
    let parse = rnix::Root::parse(text);
    if let Some(err) = parse.errors().first() {
        return Err(describe(err, text));
    }
    // An error node the parser built without reporting it still means the file is
    // malformed (error tokens are caught while checking the nesting).
    let root = parse.tree();
    use rowan::ast::AstNode;
    if let Some(bad) = root
        .syntax()
        .descendants()
        .find(|n| n.kind() == SyntaxKind::NODE_ERROR)
    {
        let range = bad.text_range();
        let snippet = first_line(&text[usize::from(range.start())..usize::from(range.end())]);
        return Err(SyntaxError {
            offset: range.start().into(),
            message: format!("syntax error, unexpected '{snippet}'"),
        });
    }
    // rnix takes an indented string as an attribute name (`{ ''a''.x = 1; }`, `a.''b''`);
    // Nix's grammar does not, and the two backends must agree.
    if let Some(ind) = root
        .syntax()
        .descendants()
        .filter(|n| {
            matches!(
                n.kind(),
                SyntaxKind::NODE_ATTRPATH | SyntaxKind::NODE_INHERIT
            )
        })
        .flat_map(|path| path.children())
        .find(|n| {
            n.kind() == SyntaxKind::NODE_STRING
                && n.first_token()
                    .is_some_and(|t| t.kind() == SyntaxKind::TOKEN_STRING_START && t.text() == "''")
        })
    {
        return Err(SyntaxError {
            offset: ind.text_range().start().into(),
            message: "syntax error, unexpected IND_STRING_OPEN (an indented string cannot be an attribute name)".into(),
        });
    }
    root.expr().ok_or(SyntaxError {
        offset: 0,
        message: "syntax error, the file holds no expression".into(),
    })
}

/// Longest accepted chain of one right-associative operator (`++`, `//`, `->`) at one
/// bracket level: rnix parses those chains recursively too.
pub const MAX_CHAIN: usize = 5_000;

fn check_nesting(text: &str) -> Result<(), SyntaxError> {
    use SyntaxKind::*;
    let too_deep = |offset| SyntaxError {
        offset,
        message: format!("expression nested too deeply (more than {MAX_NESTING} levels)"),
    };
    // One entry per open bracket: the right-associative chain length at that level.
    let mut chains: Vec<usize> = vec![0];
    let mut prefix_run = 0usize;
    let mut prev: Option<SyntaxKind> = None;
    let mut offset = 0usize;
    for (kind, tok) in rnix::tokenize(text) {
        let here = offset;
        offset += tok.len();
        if kind.is_trivia() {
            continue;
        }
        if kind == TOKEN_ERROR {
            return Err(SyntaxError {
                offset: here,
                message: format!("syntax error, unexpected '{}'", first_line(tok)),
            });
        }
        match kind {
            TOKEN_L_PAREN | TOKEN_L_BRACK | TOKEN_L_BRACE | TOKEN_INTERPOL_START => {
                chains.push(0);
                if chains.len() > MAX_NESTING {
                    return Err(too_deep(here));
                }
            }
            TOKEN_R_PAREN | TOKEN_R_BRACK | TOKEN_R_BRACE | TOKEN_INTERPOL_END
                if chains.len() > 1 =>
            {
                chains.pop();
            }
            TOKEN_CONCAT | TOKEN_UPDATE | TOKEN_IMPLICATION => {
                if let Some(n) = chains.last_mut() {
                    *n += 1;
                    if *n > MAX_CHAIN {
                        return Err(SyntaxError {
                            offset: here,
                            message: format!(
                                "operator chain too long (more than {MAX_CHAIN} operators)"
                            ),
                        });
                    }
                }
            }
            TOKEN_SEMICOLON | TOKEN_IN | TOKEN_COMMA => {
                if let Some(n) = chains.last_mut() {
                    *n = 0;
                }
            }
            _ => {}
        }
        // `!` and `-` in prefix position nest (`!!!x`, `- - x`).
        let prefix_pos = !matches!(
            prev,
            Some(
                TOKEN_IDENT
                    | TOKEN_INTEGER
                    | TOKEN_FLOAT
                    | TOKEN_PATH_ABS
                    | TOKEN_PATH_REL
                    | TOKEN_PATH_HOME
                    | TOKEN_PATH_SEARCH
                    | TOKEN_CUR_POS
                    | TOKEN_URI
                    | TOKEN_STRING_END
                    | TOKEN_R_PAREN
                    | TOKEN_R_BRACK
                    | TOKEN_R_BRACE
            )
        );
        if matches!(kind, TOKEN_INVERT | TOKEN_SUB) && prefix_pos {
            prefix_run += 1;
            if prefix_run > MAX_NESTING {
                return Err(too_deep(here));
            }
        } else {
            prefix_run = 0;
        }
        prev = Some(kind);
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(40).collect();
    if line.chars().count() > 40 {
        out.push('…');
    }
    out
}

fn describe(err: &ParseError, text: &str) -> SyntaxError {
    let snippet = |r: &rnix::TextRange| {
        first_line(&text[usize::from(r.start())..usize::from(r.end()).min(text.len())])
    };
    let (offset, message) = match err {
        ParseError::Unexpected(r) => (
            r.start().into(),
            format!("syntax error, unexpected '{}'", snippet(r)),
        ),
        ParseError::UnexpectedExtra(r) => (
            r.start().into(),
            format!(
                "syntax error, unexpected '{}' after the expression",
                snippet(r)
            ),
        ),
        ParseError::UnexpectedWanted(_, r, wanted) => (
            r.start().into(),
            format!(
                "syntax error, unexpected '{}', expecting {}",
                snippet(r),
                wanted_list(wanted)
            ),
        ),
        ParseError::UnexpectedDoubleBind(r) => {
            (r.start().into(), "syntax error, double '@' binding".into())
        }
        ParseError::UnexpectedEOF => (text.len(), "syntax error, unexpected end of file".into()),
        ParseError::UnexpectedEOFWanted(wanted) => (
            text.len(),
            format!(
                "syntax error, unexpected end of file, expecting {}",
                wanted_list(wanted)
            ),
        ),
        ParseError::DuplicatedArgs(r, name) => (
            r.start().into(),
            format!("duplicate formal function argument '{name}'"),
        ),
        ParseError::RecursionLimitExceeded => {
            (0, "expression nested too deeply for the parser".into())
        }
        _ => (0, "syntax error".into()),
    };
    SyntaxError { offset, message }
}

fn wanted_list(kinds: &[SyntaxKind]) -> String {
    kinds
        .iter()
        .map(|k| token_name(*k))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn token_name(k: SyntaxKind) -> String {
    use SyntaxKind::*;
    let s = match k {
        TOKEN_SEMICOLON => "';'",
        TOKEN_ASSIGN => "'='",
        TOKEN_R_BRACE => "'}'",
        TOKEN_R_BRACK => "']'",
        TOKEN_R_PAREN => "')'",
        TOKEN_L_BRACE => "'{'",
        TOKEN_IN => "'in'",
        TOKEN_THEN => "'then'",
        TOKEN_ELSE => "'else'",
        TOKEN_COLON => "':'",
        TOKEN_COMMA => "','",
        TOKEN_IDENT => "an identifier",
        TOKEN_STRING_END => "the end of the string",
        TOKEN_STRING_CONTENT => "string content",
        TOKEN_INTERPOL_START => "'${'",
        TOKEN_L_BRACK => "'['",
        TOKEN_L_PAREN => "'('",
        TOKEN_DOT => "'.'",
        TOKEN_QUESTION => "'?'",
        TOKEN_AT => "'@'",
        TOKEN_ELLIPSIS => "'...'",
        TOKEN_INTERPOL_END => "'}'",
        other => return format!("{other:?}").to_lowercase().replace("token_", ""),
    };
    s.to_string()
}

/// Byte offset of the first token that is not whitespace or a comment.
pub fn first_token_offset(text: &str) -> usize {
    let mut offset = 0;
    for (kind, tok) in rnix::tokenize(text) {
        if !kind.is_trivia() {
            return offset;
        }
        offset += tok.len();
    }
    0
}

/// Byte offsets at which the lines of `text` start.
pub fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// [`line_col`] with a precomputed [`line_starts`] index (a binary search, not a scan).
pub fn line_col_indexed(text: &str, starts: &[usize], offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let line = starts.partition_point(|&s| s <= offset).max(1);
    let start = starts.get(line - 1).copied().unwrap_or(0);
    let col = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based() {
        assert_eq!(line_col("abc\ndef", 0), (1, 1));
        assert_eq!(line_col("abc\ndef", 5), (2, 2));
        assert_eq!(line_col("abc\n", 4), (2, 1));
        for text in ["abc\ndef", "abc\n", "", "\n\né\nx"] {
            let starts = line_starts(text);
            for offset in 0..=text.len() + 1 {
                if text.is_char_boundary(offset.min(text.len())) {
                    assert_eq!(
                        line_col_indexed(text, &starts, offset),
                        line_col(text, offset),
                        "{text:?} {offset}"
                    );
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for open in [
            "[", "(", "{ a = ", "!", "- ", "[ 1 ++ ", "\"${", "x: ", "let a = ",
        ] {
            let src = open.repeat(20_000) + "1";
            let err = parse(&src).unwrap_err();
            assert!(
                err.message.contains("nested too deeply"),
                "{open}: {}",
                err.message
            );
        }
    }

    #[test]
    fn indented_strings_are_not_attribute_names() {
        for text in [
            "{ ''a.age''.publicKeys = []; }",
            "{ x.''a'' = 1; }",
            "let a = { b = 1; }; in a.''b''",
            "{ a = 1; } ? ''a''",
            "let a = 1; in { inherit ''a''; }",
        ] {
            let e = parse(text).expect_err(text);
            assert!(
                e.message.contains("IND_STRING_OPEN"),
                "{text}: {}",
                e.message
            );
        }
        parse("{ \"a.age\".publicKeys = [ ''k'' ]; }").unwrap();
        parse("{ ${''a''} = 1; }").unwrap();
    }

    #[test]
    fn syntax_error_has_offset() {
        let err = parse("{\n  a = ;\n}").unwrap_err();
        assert_eq!(line_col("{\n  a = ;\n}", err.offset), (2, 7));
    }
}
