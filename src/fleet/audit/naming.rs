//! How recipients are named in the report: by the `let` binding of the current
//! `secrets.nix` whose key matches, else by a binding of a historical `secrets.nix` (newest
//! first), else by their abbreviated key when a rule once listed it, else `tag:XXXX`. Kept
//! apart from attribution: this decides what a recipient is called, never whether it could
//! decrypt.

use super::attribution::Who;
use super::{CommitInfo, Debt, Evidence, NamedFrom, ParsedKeys};
use crate::presence::Stray;
use crate::recipient::{abbreviate, Recipient};
use crate::rules::RuleEntry;

/// A public key with the name it is known by.
struct Known {
    recipient: Recipient,
    name: Option<(String, NamedFrom)>,
}

/// Every key seen in the current and historical rules, best name first (the first file
/// added names a key first).
#[derive(Default)]
pub(super) struct Names {
    known: Vec<Known>,
}

impl Names {
    fn add(&mut self, parsed: &mut ParsedKeys, key: &str, name: Option<(String, NamedFrom)>) {
        let Some(r) = parsed.parse(key) else {
            return;
        };
        match self
            .known
            .iter_mut()
            .find(|k| k.recipient.matches_key(&r.text))
        {
            Some(k) if k.name.is_none() => k.name = name,
            Some(_) => {}
            None => self.known.push(Known { recipient: r, name }),
        }
    }

    /// The bindings of a rules file's `let` block, then the keys of its rules.
    pub(super) fn add_file(
        &mut self,
        parsed: &mut ParsedKeys,
        text: &str,
        entries: &[RuleEntry],
        from: NamedFrom,
    ) {
        if let Some(layout) = crate::fleet::syntax::layout(text) {
            for b in layout.bindings {
                if let Some(key) = &b.key {
                    self.add(parsed, key, Some((b.name, from)));
                }
            }
        }
        for e in entries {
            if let Ok(rule) = &e.rule {
                for k in &rule.public_keys {
                    self.add(parsed, k, None);
                }
            }
        }
    }

    fn by_tag(&self, tag: &str) -> Option<&Known> {
        let named = self
            .known
            .iter()
            .find(|k| k.name.is_some() && k.recipient.tag.as_deref() == Some(tag));
        named.or_else(|| {
            self.known
                .iter()
                .find(|k| k.recipient.tag.as_deref() == Some(tag))
        })
    }

    fn by_key(&self, key: &str) -> Option<&Known> {
        self.known.iter().find(|k| k.recipient.matches_key(key))
    }

    /// The debt entry for `who`, named: its newest commit `last_commit` and its version
    /// (an index into the plan's blobs).
    pub(super) fn debt(
        &self,
        who: &Who,
        last_commit: CommitInfo,
        evidence: Evidence,
        version: usize,
    ) -> Debt {
        let from_known = |k: Option<&Known>| match k {
            Some(Known {
                name: Some((n, from)),
                recipient,
            }) => (Some(n.clone()), Some(*from), Some(recipient.text.clone())),
            Some(k) => (None, None, Some(k.recipient.text.clone())),
            None => (None, None, None),
        };
        let (recipient, kind, tag, key, named_from) = match who {
            Who::Stray(stray @ Stray::Tag { kind, tag }) => {
                let (name, from, key) = from_known(self.by_tag(tag));
                let shown = name
                    .or_else(|| key.as_deref().map(abbreviate))
                    .unwrap_or_else(|| stray.name());
                (
                    shown,
                    kind.as_str().to_string(),
                    Some(tag.clone()),
                    key,
                    from,
                )
            }
            Who::Key { kind, key } => {
                let (name, from, _) = from_known(self.by_key(key));
                let shown = name.unwrap_or_else(|| abbreviate(key));
                (shown, kind.to_string(), None, Some(key.clone()), from)
            }
            Who::Stray(s) => (s.name(), s.stanza_type(), None, None, None),
        };
        Debt {
            recipient,
            kind,
            tag,
            key,
            named_from,
            evidence,
            last_commit,
            settled: false,
            note: None,
            version,
        }
    }
}
