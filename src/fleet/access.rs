//! Who can read what: recipients (named by the `let` binding whose string is their key)
//! × secrets, each cell compared with the file's header (no identity, no decryption) by
//! [`crate::presence`], the model `status` and `audit` use too.
//! [`mark_debt`] adds the rotation debt of an audit of the git history ([`super::audit`]):
//! former recipients that could read a committed version.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::envelope::Header;
use crate::presence::{self, Matching, Presence, Stray};
use crate::recipient::Recipient;
use crate::rules::Rules;

/// One cell: can this recipient read this secret, by the rule and by the file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cell {
    /// Neither the rule nor the header lists it.
    None,
    /// The rule lists it and the header has its stanza.
    Ok,
    /// The rule lists it, the header does not yet (rekey needed).
    Pending,
    /// The header still has its stanza, the rule no longer lists it (rekey needed).
    Stale,
    /// The rule lists it; the header cannot show whether it has its stanza (anonymous
    /// stanzas of another number than the rule's keys, or an age plugin recipient).
    Unknown,
    /// The rule lists it; the file is missing or its header unreadable.
    Declared,
    /// Neither lists it, but it could decrypt a committed version: rotation debt (rotate).
    Debt,
}

/// One recipient (a row of the matrix).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Binding name, else the abbreviated key, else `tag:XXXX` for a header-only stanza.
    pub name: String,
    /// The public key line, when the rules list it.
    pub key: Option<String>,
    /// Its SSH stanza tag (none for X25519 and post-quantum keys).
    pub tag: Option<String>,
}

/// One secret (a column of the matrix).
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// The rule's name (`x.age`).
    pub name: String,
    /// `ok`, `missing`, or why the rule or header is unusable.
    pub state: String,
    /// Whether the file's header differs from its rule (a rekey changes it): a pending or
    /// stale cell, or anonymous stanzas fewer than the rule's keys of that kind.
    pub drift: bool,
}

/// Who can read what: recipients × secrets, by the rules and by the files' headers.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// The rows.
    pub recipients: Vec<Row>,
    /// The columns.
    pub secrets: Vec<Column>,
    /// `cells[secret][recipient]`.
    pub cells: Vec<Vec<Cell>>,
    /// Rotation debt from the git history (only when some was found).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub debt: Vec<DebtCell>,
}

/// One former recipient in rotation debt for one secret.
#[derive(Debug, Clone, Serialize)]
pub struct DebtCell {
    /// The secret's rule name.
    pub secret: String,
    /// The row's name.
    pub recipient: String,
    /// The newest commit where it could decrypt the secret.
    pub last_commit: super::audit::CommitInfo,
}

impl Matrix {
    /// Whether any secret needs a rekey.
    pub fn drifted(&self) -> bool {
        self.secrets.iter().any(|c| c.drift)
    }

    /// Whether a former recipient could read a committed version of some secret.
    pub fn in_debt(&self) -> bool {
        !self.debt.is_empty()
    }
}

/// Marks the unsettled debt of `report` in `m`: a cell that is otherwise empty becomes
/// [`Cell::Debt`] (a stale cell stays stale: it already says rotate); a former recipient
/// with no row gets one. Every debt entry is listed in [`Matrix::debt`].
pub fn mark_debt(m: &mut Matrix, report: &super::audit::Report) {
    for (secret, d) in report.unsettled_debt() {
        let Some(j) = m.secrets.iter().position(|c| c.name == secret.name) else {
            continue;
        };
        let same = |row: &Row| match (&d.tag, &d.key, &row.key) {
            (Some(tag), _, _) => row.tag.as_deref() == Some(tag.as_str()),
            (None, Some(key), Some(row_key)) => {
                Recipient::parse(row_key).is_ok_and(|r| r.matches_key(key))
            }
            _ => row.key.is_none() && row.tag.is_none() && row.name == d.recipient,
        };
        let i = match m.recipients.iter().position(same) {
            Some(i) => i,
            None => {
                m.recipients.push(Row {
                    name: d.recipient.clone(),
                    key: d.key.clone(),
                    tag: d.tag.clone(),
                });
                for row in &mut m.cells {
                    row.push(Cell::None);
                }
                m.recipients.len() - 1
            }
        };
        if m.cells[j][i] == Cell::None {
            m.cells[j][i] = Cell::Debt;
        }
        m.debt.push(DebtCell {
            secret: secret.name.clone(),
            recipient: m.recipients[i].name.clone(),
            last_commit: d.last_commit.clone(),
        });
    }
}

/// The cells of one secret's rule `recipients` (in order) for its file's `header`, and the
/// matching they come from (its strays are the stale rows).
pub fn column(recipients: &[Recipient], header: &Header) -> (Vec<Cell>, Matching) {
    let refs: Vec<&Recipient> = recipients.iter().collect();
    let m = presence::match_header(&refs, header);
    let cells = m
        .recipients
        .iter()
        .map(|p| match p {
            Presence::Present => Cell::Ok,
            Presence::Absent => Cell::Pending,
            Presence::Unknown => Cell::Unknown,
        })
        .collect();
    (cells, m)
}

/// The rules file's text, which names keys by binding for [`build`] (a rules file evaluated
/// by Nix still has one); `None` when it cannot be read (the keys are then shown
/// abbreviated).
pub fn rules_text(rules: &Rules) -> Option<String> {
    std::fs::read_to_string(&rules.path).ok()
}

/// The matrix of `rules`; `rules_text` (the rules file's text) names keys by binding.
pub fn build(rules: &Rules, rules_text: Option<&str>) -> Matrix {
    let bindings: Vec<(String, Recipient)> = rules_text
        .and_then(super::syntax::layout)
        .map(|l| {
            l.bindings
                .into_iter()
                .filter_map(|b| Some((b.name, Recipient::parse(b.key.as_deref()?).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<Row> = Vec::new();
    let row_of_key = |rows: &mut Vec<Row>, r: &Recipient| -> usize {
        let same = |row: &Row| row.key.as_deref().is_some_and(|k| r.matches_key(k));
        if let Some(i) = rows.iter().position(same) {
            return i;
        }
        let name = bindings
            .iter()
            .find(|(_, b)| b.matches_key(&r.text))
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| crate::recipient::abbreviate(&r.text));
        rows.push(Row {
            name,
            key: Some(r.text.clone()),
            tag: r.tag.clone(),
        });
        rows.len() - 1
    };
    let mut secrets = Vec::new();
    let mut sparse: Vec<BTreeMap<usize, Cell>> = Vec::new();
    for entry in &rules.entries {
        let mut cells = BTreeMap::new();
        let rule = match &entry.rule {
            Ok(r) => r,
            Err(e) => {
                secrets.push(Column {
                    name: entry.name.clone(),
                    state: format!("bad rule: {e}"),
                    drift: false,
                });
                sparse.push(cells);
                continue;
            }
        };
        let recipients: Vec<Recipient> = rule
            .public_keys
            .iter()
            .filter_map(|k| Recipient::parse(k).ok())
            .collect();
        let file = rules.file_of(&entry.name);
        let header = match crate::fsutil::read_regular(&file) {
            Ok(bytes) => Header::parse(&bytes).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("missing".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let state = match (&header, recipients.len() == rule.public_keys.len()) {
            (Ok(_), true) => "ok".to_string(),
            (Ok(_), false) => "bad rule: a key does not parse".to_string(),
            (Err(e), _) => e.clone(),
        };
        let mut drift = false;
        match &header {
            Err(_) => {
                for r in &recipients {
                    cells.insert(row_of_key(&mut rows, r), Cell::Declared);
                }
            }
            Ok(h) => {
                let (own, m) = column(&recipients, h);
                drift = m.drifted();
                for (r, cell) in recipients.iter().zip(own) {
                    cells.insert(row_of_key(&mut rows, r), cell);
                }
                for stray in &m.stray {
                    let i = match stray {
                        Stray::Tag { tag, .. } => {
                            let tag = tag.as_str();
                            match rows.iter().position(|row| row.tag.as_deref() == Some(tag)) {
                                Some(i) => Some(i),
                                None => bindings
                                    .iter()
                                    .find(|(_, b)| b.tag.as_deref() == Some(tag))
                                    .map(|(_, b)| row_of_key(&mut rows, b)),
                            }
                        }
                        _ => rows.iter().position(|row| {
                            row.key.is_none() && row.tag.is_none() && row.name == stray.name()
                        }),
                    };
                    let i = i.unwrap_or_else(|| {
                        rows.push(Row {
                            name: stray.name(),
                            key: None,
                            tag: match stray {
                                Stray::Tag { tag, .. } => Some(tag.clone()),
                                _ => None,
                            },
                        });
                        rows.len() - 1
                    });
                    cells.insert(i, Cell::Stale);
                }
            }
        }
        secrets.push(Column {
            name: entry.name.clone(),
            state,
            drift,
        });
        sparse.push(cells);
    }
    let cells = sparse
        .into_iter()
        .map(|m| {
            (0..rows.len())
                .map(|i| m.get(&i).copied().unwrap_or(Cell::None))
                .collect()
        })
        .collect();
    Matrix {
        recipients: rows,
        secrets,
        cells,
        debt: Vec::new(),
    }
}

/// `s` safe inside HTML text and attribute values.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push_str(&format!("&#{};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1em}\
.wrap{overflow:auto;max-height:90vh}\
table{border-collapse:separate;border-spacing:0}\
th,td{border:1px solid #bbb;padding:4px 8px;text-align:center;white-space:nowrap}\
thead th{position:sticky;top:0;background:#eee;z-index:2}\
tbody th{position:sticky;left:0;background:#f6f6f6;text-align:left;z-index:1}\
thead th:first-child{left:0;z-index:3}\
td.ok{background:#8fd694}td.pending{background:#f7d774}td.stale{background:#f08a8a}\
td.declared{background:#c9d8f0}td.unknown{background:#e0e0e0}td.debt{background:#b48ee0}td.none{background:#fff}\
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border:1px solid #bbb}";

/// One self-contained HTML page: the matrix as a table with sticky headers, coloured by
/// cell state (no scripts, no external resources).
pub fn to_html(m: &Matrix, title: &str) -> String {
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    s.push_str(&format!(
        "<title>{}</title><style>{STYLE}</style></head><body>",
        html(title)
    ));
    s.push_str(&format!("<h1>{}</h1>", html(title)));
    s.push_str(
        "<p class=\"legend\"><span class=\"ok\" style=\"background:#8fd694\">ok</span>\
<span style=\"background:#f7d774\">pending: in the rule, not in the file (rekey)</span>\
<span style=\"background:#f08a8a\">stale: in the file, not in the rule (rekey, rotate)</span>\
<span style=\"background:#e0e0e0\">unknown: the header cannot tell (anonymous stanzas \
of another number than the rule's keys, or an age plugin)</span>\
<span style=\"background:#c9d8f0\">declared: no readable file</span>",
    );
    if m.in_debt() {
        s.push_str(
            "<span style=\"background:#b48ee0\">debt: could read a committed version \
(rotate; see agefleet audit)</span>",
        );
    }
    s.push_str("</p>");
    s.push_str("<div class=\"wrap\"><table id=\"access\"><thead><tr><th>recipient</th>");
    for c in &m.secrets {
        s.push_str(&format!(
            "<th scope=\"col\" title=\"{}\">{}</th>",
            html(&c.state),
            html(&c.name)
        ));
    }
    s.push_str("</tr></thead><tbody>");
    for (i, r) in m.recipients.iter().enumerate() {
        let title = r.key.as_deref().or(r.tag.as_deref()).unwrap_or("");
        s.push_str(&format!(
            "<tr><th scope=\"row\" title=\"{}\">{}</th>",
            html(title),
            html(&r.name)
        ));
        for (j, row) in m.cells.iter().enumerate() {
            let (class, text) = match row[i] {
                Cell::None => ("none", ""),
                Cell::Ok => ("ok", "✓"),
                Cell::Pending => ("pending", "+"),
                Cell::Stale => ("stale", "−"),
                Cell::Unknown => ("unknown", "?"),
                Cell::Declared => ("declared", "·"),
                Cell::Debt => ("debt", "!"),
            };
            let title = match row[i] {
                Cell::Debt => debt_title(m, &m.secrets[j].name, &r.name),
                _ => String::new(),
            };
            s.push_str(&format!("<td class=\"{class}\"{title}>{text}</td>"));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div></body></html>\n");
    s
}

/// The matrix as aligned text: one line per recipient, one column per secret.
pub fn to_text(m: &Matrix) -> String {
    let width = m
        .recipients
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(9);
    let mut s = String::new();
    for (j, c) in m.secrets.iter().enumerate() {
        s.push_str(&format!("{:width$}  {}{}\n", "", "| ".repeat(j), c.name));
    }
    for (i, r) in m.recipients.iter().enumerate() {
        s.push_str(&format!("{:width$} ", r.name));
        for row in &m.cells {
            s.push_str(match row[i] {
                Cell::None => " .",
                Cell::Ok => " x",
                Cell::Pending => " +",
                Cell::Stale => " -",
                Cell::Unknown => " ?",
                Cell::Declared => " d",
                Cell::Debt => " r",
            });
        }
        s.push('\n');
    }
    s.push_str(
        "x readable, + pending rekey, - stale (rekey and rotate), ? the header cannot tell, \
d no readable file",
    );
    if m.in_debt() {
        s.push_str(", r rotation debt: read a committed version (rotate; see `agefleet audit`)");
    }
    s.push('\n');
    s
}

/// ` title="…"` naming the last commit where `recipient` could read `secret`.
fn debt_title(m: &Matrix, secret: &str, recipient: &str) -> String {
    m.debt
        .iter()
        .find(|d| d.secret == secret && d.recipient == recipient)
        .map(|d| {
            format!(
                " title=\"{}\"",
                html(&format!(
                    "readable until {} {}",
                    d.last_commit.short, d.last_commit.summary
                ))
            )
        })
        .unwrap_or_default()
}
