//! Stanza attribution: who a committed header shows could decrypt that the current rule no
//! longer lists. Every header goes through [`presence::match_header`], the one model
//! `status` (drift) and `access` use, so the three cannot disagree on a rule × header; the
//! only step of audit's own is attributing anonymous stanzas by the rule of the commit that
//! introduced the version (see the parent module's docs).

use std::collections::HashMap;
use std::sync::Arc;

use super::history::Seen;
use super::{Evidence, ParsedKeys};
use crate::envelope::Header;
use crate::presence::{self, Presence, Stray};
use crate::recipient::{Recipient, RecipientKind};
use crate::rules::RuleEntry;

/// Who a stanza stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Who {
    /// A stanza the current rule does not explain (anonymous ones: one per kind, whatever
    /// their number, `count` 0).
    Stray(Stray),
    /// A key of the rule that introduced the version, by its anonymous stanza.
    Key { kind: &'static str, key: String },
}

/// The current rule's recipients, as a header is compared with them.
pub(super) struct Current {
    recipients: Vec<Recipient>,
}

impl Current {
    /// The recipients of a rule listing `keys` (those that do not parse are left out).
    pub(super) fn of(keys: &[String], parsed: &mut ParsedKeys) -> Current {
        Current {
            recipients: keys.iter().filter_map(|k| parsed.parse(k)).collect(),
        }
    }
}

/// A historical `secrets.nix`, evaluated (`None`: it was not).
pub(super) type Evaluated = Option<Arc<Vec<RuleEntry>>>;

/// The keys of the rule `name` in `then` (the rules of the commit that introduced a
/// version): `None` when that commit's rules were not evaluated, have no such rule, or list
/// a key that does not parse.
pub(super) fn rule_then(
    then: Option<&Evaluated>,
    name: &str,
    parsed: &mut ParsedKeys,
) -> Option<Vec<Recipient>> {
    let entries = then?.as_deref()?;
    let e = entries.iter().find(|e| e.name == name)?;
    let keys = &e.rule.as_ref().ok()?.public_keys;
    keys.iter()
        .map(|k| parsed.parse(k))
        .collect::<Option<Vec<_>>>()
}

/// Who could decrypt some version of one secret, with the newest commit (index) where they
/// could, that commit's version and the evidence.
#[derive(Default)]
pub(super) struct Found(HashMap<Who, (usize, git2::Oid, Evidence)>);

impl Found {
    /// Notes that `who` could decrypt the version `oid`, seen in the commits `seen`.
    pub(super) fn record(&mut self, who: Who, seen: &Seen, oid: git2::Oid, evidence: Evidence) {
        let e = self.0.entry(who).or_insert((seen.newest, oid, evidence));
        if seen.newest < e.0 {
            *e = (seen.newest, oid, evidence);
        }
    }

    /// Each recipient found, with its newest commit, version and evidence (in no order).
    pub(super) fn into_entries(self) -> impl Iterator<Item = (Who, (usize, git2::Oid, Evidence))> {
        self.0.into_iter()
    }
}

/// Who could decrypt a version with `header` and is not among the `current` rule's
/// recipients (the strays of [`presence::match_header`], as `status` and `access` see
/// them); `historical` is the rule of the commit that introduced the version (its keys),
/// which attributes anonymous stanzas (see the module docs).
pub(super) fn former_recipients(
    header: &Header,
    current: &Current,
    historical: Option<&[Recipient]>,
) -> Vec<(Who, Evidence)> {
    let now: Vec<&Recipient> = current.recipients.iter().collect();
    let m = presence::match_header(&now, header);
    // Anonymous stanzas the rule of that commit accounts for, key by key: present by count
    // (as many keys of that kind as stanzas, and no plugin recipient, which may write
    // stanzas of any type).
    let mut attributed: Vec<(RecipientKind, &Recipient)> = Vec::new();
    if let Some(h) = historical {
        let then: Vec<&Recipient> = h.iter().collect();
        let hm = presence::match_header(&then, header);
        for (r, p) in then.iter().zip(&hm.recipients) {
            let anonymous = hm.count(r.kind).is_some();
            if anonymous && *p == Presence::Present {
                attributed.push((r.kind, r));
            }
        }
    }
    let mut out = Vec::new();
    for stray in m.stray {
        let stray = match stray {
            Stray::Anonymous { kind, .. } if attributed.iter().any(|(k, _)| *k == kind) => continue,
            Stray::Anonymous { kind, .. } => Stray::Anonymous { kind, count: 0 },
            other => other,
        };
        out.push((Who::Stray(stray), Evidence::Header));
    }
    for (kind, k) in attributed {
        if !now.iter().any(|n| n.matches_key(&k.text)) {
            let who = Who::Key {
                kind: kind.as_str(),
                key: k.text.clone(),
            };
            out.push((who, Evidence::Rule));
        }
    }
    out
}

/// Who `audit` finds in `header` outside `rule` with no history to attribute anonymous
/// stanzas: their names (test support for the one-model property test).
#[cfg(test)]
pub(crate) fn header_debt(header: &Header, rule: &[Recipient]) -> Vec<String> {
    let current = Current {
        recipients: rule.to_vec(),
    };
    former_recipients(header, &current, None)
        .into_iter()
        .map(|(who, _)| match who {
            Who::Stray(s) => s.name(),
            Who::Key { key, .. } => key,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StanzaKind;

    const ADMIN: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe";

    #[test]
    fn anonymous_stanzas_are_attributed_by_the_introducing_rule_when_counts_match() {
        const BOB: &str = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";
        const PLUGIN: &str =
            "age1agefleettest1pykvdp8dpxml7tuf4gxhz05w3vktjkz5x2kkqvzfa4fxgq5klgkqvy0xxr";
        let parse = |k: &str| Recipient::parse(k).unwrap();
        let mut parsed = ParsedKeys::default();
        let tag = crate::recipient::tag_of(ADMIN).unwrap().unwrap();
        let h = |x25519: usize| Header {
            armored: false,
            stanzas: std::iter::once(StanzaKind::SshEd25519 { tag: tag.clone() })
                .chain(std::iter::repeat_n(StanzaKind::X25519, x25519))
                .collect(),
        };
        let admin_only = Current::of(&[ADMIN.to_string()], &mut parsed);
        let with_bob = Current::of(&[ADMIN.to_string(), BOB.to_string()], &mut parsed);
        let then = [parse(ADMIN), parse(BOB)];
        // bob's key was the rule's only X25519 key when the version was written.
        let found = former_recipients(&h(1), &admin_only, Some(&then));
        assert_eq!(
            found,
            [(
                Who::Key {
                    kind: "X25519",
                    key: BOB.to_string()
                },
                Evidence::Rule
            )]
        );
        // Still in the rule: no debt.
        assert!(former_recipients(&h(1), &with_bob, Some(&then)).is_empty());
        // Two stanzas, one key in that rule: unknowable, reported as unknown.
        let anonymous = [(
            Who::Stray(Stray::Anonymous {
                kind: RecipientKind::X25519,
                count: 0,
            }),
            Evidence::Header,
        )];
        assert_eq!(
            former_recipients(&h(2), &admin_only, Some(&then)),
            anonymous
        );
        // A plugin recipient in that rule may have written X25519 stanzas too.
        let with_plugin = [parse(ADMIN), parse(BOB), parse(PLUGIN)];
        assert_eq!(
            former_recipients(&h(1), &admin_only, Some(&with_plugin)),
            anonymous
        );
        // No rule of that commit, and no more stanzas than the current rule has keys.
        assert!(former_recipients(&h(1), &with_bob, None).is_empty());
    }
}
