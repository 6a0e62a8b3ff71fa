//! Drift between a rule and a file's header, found without any identity, as
//! [`crate::presence`] models it (the same model `access` and `audit` use): SSH stanza tags
//! present in one and not the other, a different number of X25519 stanzas or of hybrid
//! post-quantum stanzas (both anonymous), passphrase or plugin stanzas the rule does not
//! explain, armor that differs from the rule's `armor`.
//!
//! age plugin recipients (`age1<name>1…`) cannot be checked this way: the plugin chooses its
//! stanzas' types and arguments (they may even be X25519 stanzas), and only the plugin could
//! say which stanza is whose. They are counted as unchecked, never reported as drift; with
//! plugin recipients in a rule, more anonymous stanzas than the rule's keys of that kind is
//! not drift either (fewer still is).

use serde::Serialize;

use crate::envelope::Header;
use crate::presence::{self, Presence, Stray};
use crate::recipient::Recipient;

/// How a file's header differs from its rule's recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecipientDrift {
    /// Recipients (as written in the rules) the header shows no stanza for.
    pub added: Vec<String>,
    /// SSH tags in the header that no rule recipient has.
    pub removed_tags: Vec<String>,
    /// Other stanzas no rule recipient explains: `scrypt` (a passphrase) or a plugin's
    /// stanza type when the rule has no plugin recipient.
    pub stray_stanzas: Vec<String>,
    /// X25519 recipients in the rule.
    pub x25519_expected: usize,
    /// X25519 stanzas in the header.
    pub x25519_found: usize,
    /// age plugin recipients in the rule, which a header cannot confirm or deny.
    pub plugins_unchecked: usize,
    /// Post-quantum (`age1pq1…`) recipients in the rule.
    pub mlkem768x25519_expected: usize,
    /// Post-quantum (`mlkem768x25519`) stanzas in the header.
    pub mlkem768x25519_found: usize,
}

impl RecipientDrift {
    /// Whether the header agrees with the rule's recipients, as far as a header can tell.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed_tags.is_empty()
            && self.stray_stanzas.is_empty()
            && !self.x25519_differs()
            && !self.mlkem768x25519_differs()
    }

    /// Whether the X25519 stanzas disagree with the rule, as far as a header can tell.
    pub fn x25519_differs(&self) -> bool {
        self.anonymous_differs(self.x25519_expected, self.x25519_found)
    }

    /// Whether the post-quantum stanzas disagree with the rule, as far as a header can tell.
    pub fn mlkem768x25519_differs(&self) -> bool {
        self.anonymous_differs(self.mlkem768x25519_expected, self.mlkem768x25519_found)
    }

    /// Fewer anonymous stanzas than keys is drift; more is too unless a plugin may have
    /// written them.
    fn anonymous_differs(&self, expected: usize, found: usize) -> bool {
        found < expected || (found > expected && self.plugins_unchecked == 0)
    }
}

/// The drift of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// How the header's recipients differ from the rule's.
    pub recipients: RecipientDrift,
    /// `Some(rule's armor)` when the file's armor differs from it.
    pub armor_expected: Option<bool>,
}

impl Drift {
    /// Whether the recipients differ (a rekey changes them).
    pub fn recipients_drift(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// Whether the armor differs from the rule's `armor`.
    pub fn armor_drift(&self) -> bool {
        self.armor_expected.is_some()
    }

    /// Whether the file drifted at all.
    pub fn any(&self) -> bool {
        self.recipients_drift() || self.armor_drift()
    }
}

/// Compares a rule (its parsed recipients and armor flag) with a header.
pub fn compare(recipients: &[&Recipient], armor: bool, header: &Header) -> Drift {
    let m = presence::match_header(recipients, header);
    let added = recipients
        .iter()
        .zip(&m.recipients)
        .filter(|(_, p)| **p == Presence::Absent)
        .map(|(r, _)| r.text.clone())
        .collect();
    let mut removed_tags = Vec::new();
    let mut stray_stanzas = Vec::new();
    for s in &m.stray {
        match s {
            Stray::Tag { tag, .. } => removed_tags.push(tag.clone()),
            Stray::Passphrase => stray_stanzas.push("scrypt".to_string()),
            Stray::Foreign { kind } => stray_stanzas.push(kind.clone()),
            // Counted below.
            Stray::Anonymous { .. } => {}
        }
    }
    removed_tags.dedup();
    Drift {
        recipients: RecipientDrift {
            added,
            removed_tags,
            stray_stanzas,
            x25519_expected: m.x25519.expected,
            x25519_found: m.x25519.found,
            plugins_unchecked: m.plugins,
            mlkem768x25519_expected: m.mlkem768x25519.expected,
            mlkem768x25519_found: m.mlkem768x25519.found,
        },
        armor_expected: (header.armored != armor).then_some(armor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StanzaKind;
    use crate::recipient::RecipientKind;

    const PLUGIN: &str =
        "age1agefleettest1pykvdp8dpxml7tuf4gxhz05w3vktjkz5x2kkqvzfa4fxgq5klgkqvy0xxr";
    const X25519: &str = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";

    fn header(stanzas: Vec<StanzaKind>) -> Header {
        Header {
            armored: false,
            stanzas,
        }
    }

    #[test]
    fn plugin_recipients_are_unchecked_not_drift() {
        let plugin = Recipient::parse(PLUGIN).unwrap();
        assert_eq!(plugin.kind, RecipientKind::Plugin);
        assert_eq!(plugin.tag, None);
        let x = Recipient::parse(X25519).unwrap();
        let other = StanzaKind::Other {
            kind: "agefleettest".into(),
        };
        // The plugin's stanza is whatever it chose; nothing to match: not drift.
        let d = compare(&[&plugin], false, &header(vec![other.clone()]));
        assert!(!d.any(), "{d:?}");
        assert_eq!(d.recipients.plugins_unchecked, 1);
        // A plugin may write X25519 stanzas: more of them than the rule's keys is not drift…
        let d = compare(
            &[&plugin, &x],
            false,
            &header(vec![StanzaKind::X25519, StanzaKind::X25519]),
        );
        assert!(!d.any(), "{d:?}");
        // …fewer still is, and so is any mismatch without plugins.
        let d = compare(&[&plugin, &x], false, &header(vec![other]));
        assert!(d.recipients_drift(), "{d:?}");
        let d = compare(
            &[&x],
            false,
            &header(vec![StanzaKind::X25519, StanzaKind::X25519]),
        );
        assert!(d.recipients_drift(), "{d:?}");
    }
}
