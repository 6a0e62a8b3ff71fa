//! Drift between a rule and a file's header, found without any identity: SSH stanza tags
//! present in one and not the other, a different number of X25519 stanzas or of hybrid
//! post-quantum stanzas (both anonymous), armor that differs from the rule's `armor`.
//!
//! age plugin recipients (`age1<name>1…`) cannot be checked this way: the plugin chooses its
//! stanzas' types and arguments (they may even be X25519 stanzas), and only the plugin could
//! say which stanza is whose. They are counted as unchecked, never reported as drift; with
//! plugin recipients in a rule, more X25519 stanzas than the rule's X25519 keys is not drift
//! either (fewer still is).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::envelope::Header;
use crate::recipient::{Recipient, RecipientKind};

/// How a file's header differs from its rule's recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecipientDrift {
    /// Recipients (as written in the rules) whose SSH tag is missing from the header.
    pub added: Vec<String>,
    /// SSH tags in the header that no rule recipient has.
    pub removed_tags: Vec<String>,
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
            && !self.x25519_differs()
            && self.mlkem768x25519_expected == self.mlkem768x25519_found
    }

    /// Whether the X25519 stanzas disagree with the rule, as far as a header can tell.
    pub fn x25519_differs(&self) -> bool {
        if self.plugins_unchecked > 0 {
            self.x25519_found < self.x25519_expected
        } else {
            self.x25519_found != self.x25519_expected
        }
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
    let header_tags: BTreeSet<&str> = header.ssh_tags().collect();
    let rule_tags: BTreeSet<&str> = recipients.iter().filter_map(|r| r.tag.as_deref()).collect();
    let added = recipients
        .iter()
        .filter(|r| r.tag.as_deref().is_some_and(|t| !header_tags.contains(t)))
        .map(|r| r.text.clone())
        .collect();
    let removed_tags = header_tags
        .difference(&rule_tags)
        .map(|t| t.to_string())
        .collect();
    let x25519_expected = recipients
        .iter()
        .filter(|r| r.kind == RecipientKind::X25519)
        .count();
    let mlkem768x25519_expected = recipients
        .iter()
        .filter(|r| r.kind == RecipientKind::MlKem768X25519)
        .count();
    Drift {
        recipients: RecipientDrift {
            added,
            removed_tags,
            x25519_expected,
            x25519_found: header.x25519_count(),
            plugins_unchecked: recipients
                .iter()
                .filter(|r| r.kind == RecipientKind::Plugin)
                .count(),
            mlkem768x25519_expected,
            mlkem768x25519_found: header.mlkem768x25519_count(),
        },
        armor_expected: (header.armored != armor).then_some(armor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StanzaKind;

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
