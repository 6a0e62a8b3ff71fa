//! Drift between a rule and a file's header, found without any identity: SSH stanza tags
//! present in one and not the other, a different number of X25519 stanzas or of hybrid
//! post-quantum stanzas (both anonymous), armor that differs from the rule's `armor`.

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
    /// Post-quantum (`age1pq1…`) recipients in the rule.
    pub mlkem768x25519_expected: usize,
    /// Post-quantum (`mlkem768x25519`) stanzas in the header.
    pub mlkem768x25519_found: usize,
}

impl RecipientDrift {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed_tags.is_empty()
            && self.x25519_expected == self.x25519_found
            && self.mlkem768x25519_expected == self.mlkem768x25519_found
    }
}

/// The drift of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub recipients: RecipientDrift,
    /// `Some(rule's armor)` when the file's armor differs from it.
    pub armor_expected: Option<bool>,
}

impl Drift {
    pub fn recipients_drift(&self) -> bool {
        !self.recipients.is_empty()
    }

    pub fn armor_drift(&self) -> bool {
        self.armor_expected.is_some()
    }

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
            mlkem768x25519_expected,
            mlkem768x25519_found: header.mlkem768x25519_count(),
        },
        armor_expected: (header.armored != armor).then_some(armor),
    }
}
