//! What `host add/remove` and `access` read from a rules file's lossless syntax tree (rnix):
//! the top-level `let` block's bindings, the rules attrset, and where text can be inserted
//! or removed so that everything else stays byte-identical.

use rnix::SyntaxKind::{self, *};
use rnix::{NodeOrToken, SyntaxNode, TextRange};

/// A `let` binding of the rules file's top-level `let` block.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// The bound name.
    pub name: String,
    /// The value when it is a plain string literal (no interpolation, no escapes).
    pub key: Option<String>,
    /// The whole binding (`name = value;`).
    pub node: SyntaxNode,
}

/// The parts of a rules file the editor works on.
pub(crate) struct Layout {
    /// The `let … in` around the rules, when there is one.
    pub let_in: Option<SyntaxNode>,
    /// `NAME = …;` bindings of that `let`, in file order.
    pub bindings: Vec<Binding>,
    /// Names bound by `inherit` in that `let` (their values are not literal), with where.
    pub inherited: Vec<(String, usize)>,
    /// The rules attrset, when the rules are one literal attrset (after the `let`).
    pub rules: Option<SyntaxNode>,
    /// The expression the rules file holds (where a new `let` would go).
    pub top: SyntaxNode,
}

/// Parses `text` (already known to evaluate) into its [`Layout`]. `None`: rnix found a
/// syntax error.
pub(crate) fn layout(text: &str) -> Option<Layout> {
    let parse = rnix::Root::parse(text);
    if !parse.errors().is_empty() {
        return None;
    }
    let root = parse.syntax();
    let top = root.children().next()?;
    let (let_in, body) = if top.kind() == NODE_LET_IN {
        let body = top
            .children()
            .filter(|c| !matches!(c.kind(), NODE_ATTRPATH_VALUE | NODE_INHERIT))
            .last();
        (Some(top.clone()), body)
    } else {
        (None, Some(top.clone()))
    };
    let mut bindings = Vec::new();
    let mut inherited = Vec::new();
    if let Some(l) = &let_in {
        for child in l.children() {
            match child.kind() {
                NODE_ATTRPATH_VALUE => {
                    if let Some(name) = single_ident_path(&child) {
                        let key = value_of(&child).and_then(|v| plain_string(&v));
                        bindings.push(Binding {
                            name,
                            key,
                            node: child,
                        });
                    }
                }
                NODE_INHERIT => inherited.extend(
                    child
                        .children()
                        .filter(|c| c.kind() == NODE_IDENT)
                        .map(|c| (c.text().to_string(), start(&c))),
                ),
                _ => {}
            }
        }
    }
    let rules = body.filter(|b| b.kind() == NODE_ATTR_SET);
    Some(Layout {
        let_in,
        bindings,
        inherited,
        rules,
        top,
    })
}

impl Layout {
    /// The `=` binding named `name`, if any.
    pub(crate) fn binding(&self, name: &str) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.name == name)
    }

    /// Where `name` is bound by the `let` block (by `=` or `inherit`), as a byte offset.
    pub(crate) fn bound_at(&self, name: &str) -> Option<usize> {
        self.binding(name).map(|b| start(&b.node)).or_else(|| {
            self.inherited
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, at)| *at)
        })
    }

    /// The `publicKeys` expressions of the rules attrset, by rule name (as written, quotes
    /// removed): `"x.age".publicKeys = …;` and `"x.age" = { publicKeys = …; };`.
    pub(crate) fn public_keys_exprs(&self) -> Vec<(String, SyntaxNode)> {
        let mut out = Vec::new();
        let Some(rules) = &self.rules else {
            return out;
        };
        for entry in rules.children().filter(|c| c.kind() == NODE_ATTRPATH_VALUE) {
            let Some(path) = attr_path(&entry) else {
                continue;
            };
            let Some(value) = value_of(&entry) else {
                continue;
            };
            match path.as_slice() {
                [name, pk] if pk == "publicKeys" => out.push((name.clone(), value)),
                [name] if value.kind() == NODE_ATTR_SET => {
                    for inner in value.children().filter(|c| c.kind() == NODE_ATTRPATH_VALUE) {
                        if attr_path(&inner).as_deref() == Some(&["publicKeys".to_string()][..]) {
                            if let Some(v) = value_of(&inner) {
                                out.push((name.clone(), v));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// Every identifier expression named `name` (references, not attribute names).
pub(crate) fn references(root: &SyntaxNode, name: &str) -> Vec<SyntaxNode> {
    root.descendants()
        .filter(|n| n.kind() == NODE_IDENT && n.text() == name)
        .filter(|n| {
            n.parent()
                .is_none_or(|p| !matches!(p.kind(), NODE_ATTRPATH | NODE_INHERIT))
        })
        .collect()
}

/// The value expression of a `path = value;` binding.
fn value_of(binding: &SyntaxNode) -> Option<SyntaxNode> {
    binding.children().nth(1)
}

fn single_ident_path(binding: &SyntaxNode) -> Option<String> {
    let path = binding.children().next()?;
    let parts: Vec<SyntaxNode> = path.children().collect();
    match parts.as_slice() {
        [one] if one.kind() == NODE_IDENT => Some(one.text().to_string()),
        _ => None,
    }
}

/// The attribute path of a binding as plain names; `None` when a part is computed.
fn attr_path(binding: &SyntaxNode) -> Option<Vec<String>> {
    let path = binding.children().next()?;
    path.children()
        .map(|part| match part.kind() {
            NODE_IDENT => Some(part.text().to_string()),
            NODE_STRING => plain_string(&part),
            _ => None,
        })
        .collect()
}

/// The value of a `"…"` literal without interpolation or escapes.
pub(crate) fn plain_string(node: &SyntaxNode) -> Option<String> {
    if node.kind() != NODE_STRING {
        return None;
    }
    let mut content = String::new();
    for part in node.children_with_tokens() {
        match part {
            NodeOrToken::Token(t) if t.kind() == TOKEN_STRING_START && t.text() == "\"" => {}
            NodeOrToken::Token(t) if t.kind() == TOKEN_STRING_END => {}
            NodeOrToken::Token(t)
                if t.kind() == TOKEN_STRING_CONTENT && !t.text().contains('\\') =>
            {
                content.push_str(t.text())
            }
            _ => return None,
        }
    }
    Some(content)
}

/// A change to the text: replace `range` by `text` (insertions have an empty range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextEdit {
    /// Byte range of `text` replaced.
    pub range: std::ops::Range<usize>,
    /// The replacement.
    pub text: String,
}

/// `edits` applied to `text` (ranges must not overlap).
pub(crate) fn apply(text: &str, mut edits: Vec<TextEdit>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse((e.range.start, e.range.end)));
    let mut out = text.to_string();
    for e in edits {
        out.replace_range(e.range, &e.text);
    }
    out
}

fn span(r: TextRange) -> std::ops::Range<usize> {
    usize::from(r.start())..usize::from(r.end())
}

fn prev_whitespace(node: &SyntaxNode) -> Option<rnix::SyntaxToken> {
    match node.prev_sibling_or_token()? {
        NodeOrToken::Token(t) if t.kind() == TOKEN_WHITESPACE => Some(t),
        _ => None,
    }
}

/// How items are separated before `node`: a newline and its indentation when `node`
/// starts a line, else one space.
fn separator_before(node: &SyntaxNode) -> String {
    match prev_whitespace(node) {
        Some(ws) => match ws.text().rfind('\n') {
            Some(i) => ws.text()[i..].to_string(),
            None => " ".to_string(),
        },
        None => " ".to_string(),
    }
}

/// The end of `node` including a `# comment` that follows it on the same line (the comment
/// belongs to the item).
fn end_with_line_comment(node: &SyntaxNode) -> usize {
    let mut end = usize::from(node.text_range().end());
    let mut next = node.next_sibling_or_token();
    if let Some(NodeOrToken::Token(t)) = &next {
        if t.kind() == TOKEN_WHITESPACE && !t.text().contains('\n') {
            next = t.next_sibling_or_token();
        }
    }
    if let Some(NodeOrToken::Token(t)) = next {
        if t.kind() == TOKEN_COMMENT && t.text().starts_with('#') {
            end = usize::from(t.text_range().end());
        }
    }
    end
}

/// Inserts `item` after `node` (a list element or a binding), laid out as `node` is: on
/// its own line with the same indentation, or after a space.
pub(crate) fn insert_after(node: &SyntaxNode, item: &str) -> TextEdit {
    let sep = separator_before(node);
    let at = if sep.starts_with('\n') {
        end_with_line_comment(node)
    } else {
        usize::from(node.text_range().end())
    };
    TextEdit {
        range: at..at,
        text: format!("{sep}{item}"),
    }
}

/// Removes `node` (a list element or a binding) with its separator and same-line comment.
pub(crate) fn remove(node: &SyntaxNode) -> TextEdit {
    let range = span(node.text_range());
    let ws = prev_whitespace(node);
    let range = match ws.as_ref().map(|w| (w, w.text().rfind('\n'))) {
        Some((w, Some(i))) => usize::from(w.text_range().start()) + i..end_with_line_comment(node),
        Some((w, None)) => usize::from(w.text_range().start())..range.end,
        None => match node.next_sibling_or_token() {
            Some(NodeOrToken::Token(t)) if t.kind() == TOKEN_WHITESPACE => {
                range.start..usize::from(t.text_range().end())
            }
            _ => range,
        },
    };
    TextEdit {
        range,
        text: String::new(),
    }
}

/// Adds `item` at the end of the `publicKeys` expression `expr`: into its last list
/// literal, else as `expr ++ [ item ]`. `None` when `expr` is not of a shape where that
/// is sure to parse as meant.
pub(crate) fn append_to_keys(expr: &SyntaxNode, item: &str) -> Option<TextEdit> {
    match expr.kind() {
        NODE_LIST => Some(match expr.children().last() {
            Some(last) => insert_after(&last, item),
            None => {
                let open = expr
                    .children_with_tokens()
                    .find(|t| t.kind() == TOKEN_L_BRACK)?;
                let at = usize::from(open.text_range().end());
                TextEdit {
                    range: at..at,
                    text: format!(" {item}"),
                }
            }
        }),
        NODE_BIN_OP if operator(expr) == Some(TOKEN_CONCAT) => {
            let rhs = expr.children().nth(1)?;
            if rhs.kind() == NODE_LIST || rhs.kind() == NODE_BIN_OP {
                append_to_keys(&rhs, item)
            } else {
                Some(concat_after(&rhs, item))
            }
        }
        NODE_IDENT | NODE_SELECT | NODE_PAREN | NODE_APPLY => Some(concat_after(expr, item)),
        _ => None,
    }
}

fn concat_after(expr: &SyntaxNode, item: &str) -> TextEdit {
    let at = usize::from(expr.text_range().end());
    TextEdit {
        range: at..at,
        text: format!(" ++ [ {item} ]"),
    }
}

fn operator(binop: &SyntaxNode) -> Option<SyntaxKind> {
    binop
        .children_with_tokens()
        .filter_map(|c| c.into_token())
        .map(|t| t.kind())
        .find(|k| !k.is_trivia())
}

/// Where a new key binding goes when there is no binding to put it after: after `let`, or
/// a new `let … in` before the rules.
pub(crate) fn new_binding_without_anchor(layout: &Layout, binding: &str) -> Option<TextEdit> {
    match &layout.let_in {
        Some(l) => {
            let let_token = l.children_with_tokens().find(|t| t.kind() == TOKEN_LET)?;
            let at = usize::from(let_token.text_range().end());
            Some(TextEdit {
                range: at..at,
                text: format!("\n  {binding}"),
            })
        }
        None => {
            let at = usize::from(layout.top.text_range().start());
            Some(TextEdit {
                range: at..at,
                text: format!("let\n  {binding}\nin\n"),
            })
        }
    }
}

/// Replaces the value of the binding `binding` (`name = value;`) with `text`.
pub(crate) fn replace_value(binding: &SyntaxNode, text: &str) -> Option<TextEdit> {
    let value = value_of(binding)?;
    Some(TextEdit {
        range: span(value.text_range()),
        text: text.to_string(),
    })
}

/// The byte offset where `node` starts.
pub(crate) fn start(node: &SyntaxNode) -> usize {
    usize::from(node.text_range().start())
}
