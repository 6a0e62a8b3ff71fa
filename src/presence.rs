//! Who a file's header says can open it, against a rule's recipients: the one model that
//! `status` (its drift, [`crate::drift`]), `access` (its cells, [`crate::fleet::access`]) and
//! `audit` (its attribution, [`crate::fleet::audit`]) all derive from, so they cannot
//! disagree. Pure: no identity, no decryption, no I/O.
//!
//! What a header can tell, recipient kind by kind (age v1):
//! - `ssh-ed25519` and `ssh-rsa` stanzas carry the recipient's key tag: a rule's SSH key is
//!   [`Presence::Present`] when a stanza of its type has its tag, else
//!   [`Presence::Absent`]; a tag no rule key has is a [`Stray::Tag`].
//! - `X25519` and `mlkem768x25519` (`age1pq1…`) stanzas are anonymous: only their number
//!   can be compared with the rule's keys of that kind. None in the header: every such key
//!   is absent. As many as the rule's keys (and no plugin recipient in the rule): present,
//!   as far as a header can tell. Any other number: which keys they are for cannot be known
//!   ([`Presence::Unknown`]); fewer than the rule's keys is drift, more is a
//!   [`Stray::Anonymous`] surplus (unless a plugin recipient may have written them).
//! - age plugin recipients (`age1<name>1…`) choose their stanzas' types and arguments (they
//!   may even write X25519 or `mlkem768x25519` stanzas): only the plugin could say which
//!   stanza is whose, so they are always [`Presence::Unknown`], and stanzas of a type no
//!   built-in recipient writes are then theirs, not strays.
//! - `scrypt` is a passphrase ([`Stray::Passphrase`]); grease stanzas (`…-grease`, which
//!   the age crate adds to headers) are ignored; any other stanza type comes from a plugin
//!   the rule does not list ([`Stray::Foreign`]).

use std::collections::BTreeSet;

use crate::envelope::{Header, StanzaKind};
use crate::recipient::{Recipient, RecipientKind};

/// Whether a header shows one rule recipient's stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The header has its stanza (by tag, or by count for anonymous kinds).
    Present,
    /// The header has no stanza it could have written.
    Absent,
    /// A header cannot tell (anonymous stanzas of another number, or an age plugin).
    Unknown,
}

/// A rule's keys of one anonymous kind against the header's stanzas of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Keys of that kind in the rule.
    pub expected: usize,
    /// Stanzas of that kind in the header.
    pub found: usize,
}

/// A stanza (or group of anonymous stanzas) that no rule recipient accounts for: someone
/// outside the rule could open the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stray {
    /// An SSH stanza whose tag no rule key has.
    Tag {
        /// [`RecipientKind::SshEd25519`] or [`RecipientKind::SshRsa`].
        kind: RecipientKind,
        /// The tag as written in the header.
        tag: String,
    },
    /// More anonymous stanzas of a kind than the rule has keys of that kind.
    Anonymous {
        /// [`RecipientKind::X25519`] or [`RecipientKind::MlKem768X25519`].
        kind: RecipientKind,
        /// How many more.
        count: usize,
    },
    /// A passphrase (`scrypt`) stanza.
    Passphrase,
    /// A stanza type no recipient of the rule writes (an age plugin's), the rule having no
    /// plugin recipient.
    Foreign {
        /// The stanza type.
        kind: String,
    },
}

/// How a header matches a rule's recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    /// One per rule recipient, in the rule's order.
    pub recipients: Vec<Presence>,
    /// What the header has that the rule does not explain, sorted.
    pub stray: Vec<Stray>,
    /// The rule's X25519 keys against the header's X25519 stanzas.
    pub x25519: Count,
    /// The rule's `age1pq1…` keys against the header's `mlkem768x25519` stanzas.
    pub mlkem768x25519: Count,
    /// age plugin recipients in the rule (never confirmed or denied by a header).
    pub plugins: usize,
}

impl Matching {
    /// Whether the file differs from its rule as far as its header can tell (a rekey
    /// changes it): a rule key absent, fewer anonymous stanzas than the rule's keys, or a
    /// stray stanza.
    pub fn drifted(&self) -> bool {
        self.recipients.contains(&Presence::Absent)
            || !self.stray.is_empty()
            || self.x25519.found < self.x25519.expected
            || self.mlkem768x25519.found < self.mlkem768x25519.expected
    }

    /// The count of an anonymous kind (`X25519` or `mlkem768x25519`).
    pub fn count(&self, kind: RecipientKind) -> Option<Count> {
        match kind {
            RecipientKind::X25519 => Some(self.x25519),
            RecipientKind::MlKem768X25519 => Some(self.mlkem768x25519),
            _ => None,
        }
    }
}

/// Whether a stanza type is grease (ignored: the age crate adds one to every header).
pub fn is_grease(kind: &str) -> bool {
    kind.ends_with("-grease")
}

/// Matches a rule's `recipients` against a file's `header` (see the module docs).
pub fn match_header(recipients: &[&Recipient], header: &Header) -> Matching {
    let of_kind = |kind| recipients.iter().filter(|r| r.kind == kind).count();
    let plugins = of_kind(RecipientKind::Plugin);
    let count = |kind, stanza: &StanzaKind| Count {
        expected: of_kind(kind),
        found: header.stanzas.iter().filter(|s| *s == stanza).count(),
    };
    let x25519 = count(RecipientKind::X25519, &StanzaKind::X25519);
    let mlkem768x25519 = count(RecipientKind::MlKem768X25519, &StanzaKind::MlKem768X25519);
    let anonymous = |c: Count| {
        if c.found == 0 {
            Presence::Absent
        } else if c.found == c.expected && plugins == 0 {
            Presence::Present
        } else {
            Presence::Unknown
        }
    };
    let has_tag = |kind: RecipientKind, tag: &str| {
        header.stanzas.iter().any(|s| match (kind, s) {
            (RecipientKind::SshEd25519, StanzaKind::SshEd25519 { tag: t })
            | (RecipientKind::SshRsa, StanzaKind::SshRsa { tag: t }) => t == tag,
            _ => false,
        })
    };
    let presence = recipients
        .iter()
        .map(|r| match (r.kind, &r.tag) {
            (RecipientKind::SshEd25519 | RecipientKind::SshRsa, Some(tag)) => {
                if has_tag(r.kind, tag) {
                    Presence::Present
                } else {
                    Presence::Absent
                }
            }
            (RecipientKind::X25519, _) => anonymous(x25519),
            (RecipientKind::MlKem768X25519, _) => anonymous(mlkem768x25519),
            _ => Presence::Unknown,
        })
        .collect();
    let mut stray = BTreeSet::new();
    for s in &header.stanzas {
        match s {
            StanzaKind::SshEd25519 { tag } | StanzaKind::SshRsa { tag } => {
                let kind = match s {
                    StanzaKind::SshRsa { .. } => RecipientKind::SshRsa,
                    _ => RecipientKind::SshEd25519,
                };
                let ours = recipients
                    .iter()
                    .any(|r| r.kind == kind && r.tag.as_deref() == Some(tag.as_str()));
                if !ours {
                    stray.insert(Stray::Tag {
                        kind,
                        tag: tag.clone(),
                    });
                }
            }
            StanzaKind::Scrypt => {
                stray.insert(Stray::Passphrase);
            }
            StanzaKind::Other { kind } if is_grease(kind) || plugins > 0 => {}
            StanzaKind::Other { kind } => {
                stray.insert(Stray::Foreign { kind: kind.clone() });
            }
            StanzaKind::X25519 | StanzaKind::MlKem768X25519 => {}
        }
    }
    if plugins == 0 {
        for (kind, c) in [
            (RecipientKind::X25519, x25519),
            (RecipientKind::MlKem768X25519, mlkem768x25519),
        ] {
            if c.found > c.expected {
                stray.insert(Stray::Anonymous {
                    kind,
                    count: c.found - c.expected,
                });
            }
        }
    }
    Matching {
        recipients: presence,
        stray: stray.into_iter().collect(),
        x25519,
        mlkem768x25519,
        plugins,
    }
}

impl Stray {
    /// The stanza type: `ssh-ed25519`, `ssh-rsa`, `X25519`, `mlkem768x25519`, `scrypt`, or
    /// a plugin's type.
    pub fn stanza_type(&self) -> String {
        match self {
            Stray::Tag { kind, .. } | Stray::Anonymous { kind, .. } => kind.as_str().to_string(),
            Stray::Passphrase => "scrypt".to_string(),
            Stray::Foreign { kind } => kind.clone(),
        }
    }

    /// How reports name whoever holds this stanza when no key is known for it:
    /// `tag:XXXX`, `unknown X25519 recipient`, `passphrase (scrypt)` or `stanza:TYPE`.
    pub fn name(&self) -> String {
        match self {
            Stray::Tag { tag, .. } => format!("tag:{tag}"),
            Stray::Anonymous { kind, .. } => format!("unknown {} recipient", kind.as_str()),
            Stray::Passphrase => "passphrase (scrypt)".to_string(),
            Stray::Foreign { kind } => format!("stanza:{kind}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;
    use crate::drift;
    use crate::fleet::{access, audit};

    const PLUGIN: &str =
        "age1agefleettest1pykvdp8dpxml7tuf4gxhz05w3vktjkz5x2kkqvzfa4fxgq5klgkqvy0xxr";

    /// Two keys of every kind but plugins, one plugin (generated once: RSA is slow).
    fn pool() -> &'static [Recipient] {
        static POOL: OnceLock<Vec<Recipient>> = OnceLock::new();
        POOL.get_or_init(|| {
            let ed = |seed: u8| {
                let k = ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
                ssh_key::PrivateKey::from(k)
                    .public_key()
                    .to_openssh()
                    .unwrap()
            };
            let rsa = || {
                let k = ssh_key::private::RsaKeypair::random(&mut rand::rngs::OsRng, 2048).unwrap();
                ssh_key::PrivateKey::from(k)
                    .public_key()
                    .to_openssh()
                    .unwrap()
            };
            let x = || age::x25519::Identity::generate().to_public().to_string();
            let pq = || crate::identity::MlKem768X25519Identity::generate().recipient();
            let keys = [
                ed(1),
                ed(2),
                rsa(),
                rsa(),
                x(),
                x(),
                pq(),
                pq(),
                PLUGIN.to_string(),
            ];
            keys.iter().map(|k| Recipient::parse(k).unwrap()).collect()
        })
    }

    /// The stanza `r` writes (a plugin: one of its own type).
    fn stanza_of(r: &Recipient) -> StanzaKind {
        match (r.kind, r.tag.clone()) {
            (RecipientKind::SshEd25519, Some(tag)) => StanzaKind::SshEd25519 { tag },
            (RecipientKind::SshRsa, Some(tag)) => StanzaKind::SshRsa { tag },
            (RecipientKind::X25519, _) => StanzaKind::X25519,
            (RecipientKind::MlKem768X25519, _) => StanzaKind::MlKem768X25519,
            _ => StanzaKind::Other {
                kind: "agefleettest".into(),
            },
        }
    }

    /// Stanzas no pool key writes, and some every kind writes.
    fn extra(i: usize) -> StanzaKind {
        match i % 8 {
            0 => StanzaKind::SshEd25519 {
                tag: "AAAAAA".into(),
            },
            1 => StanzaKind::SshRsa {
                tag: "BBBBBB".into(),
            },
            2 => StanzaKind::X25519,
            3 => StanzaKind::MlKem768X25519,
            4 => StanzaKind::Scrypt,
            5 => StanzaKind::Other {
                kind: "piv-p256".into(),
            },
            6 => StanzaKind::Other {
                kind: "a-grease".into(),
            },
            _ => stanza_of(&pool()[i % pool().len()]),
        }
    }

    fn header(stanzas: Vec<StanzaKind>) -> Header {
        Header {
            armored: false,
            stanzas,
        }
    }

    /// status (drift), access (cells) and audit (debt) for one rule and header.
    struct Verdicts {
        status: drift::Drift,
        cells: Vec<access::Cell>,
        access_drift: bool,
        stale_rows: usize,
        debt: Vec<String>,
    }

    fn verdicts(rule: &[Recipient], h: &Header) -> Verdicts {
        let refs: Vec<&Recipient> = rule.iter().collect();
        let (cells, m) = access::column(rule, h);
        Verdicts {
            status: drift::compare(&refs, false, h),
            cells,
            access_drift: m.drifted(),
            stale_rows: m.stray.len(),
            debt: audit::header_debt(h, rule),
        }
    }

    /// The case: a rule `[ ssh-ed25519 a, age1pq1 p ]` and a file encrypted to `a`
    /// only. `p` cannot read it: status drifts, access says pending, audit owes nothing.
    #[test]
    fn post_quantum_key_missing_from_the_header_is_pending_and_drift_everywhere() {
        let (a, p) = (pool()[0].clone(), pool()[6].clone());
        let h = header(vec![stanza_of(&a)]);
        let v = verdicts(&[a, p.clone()], &h);
        assert_eq!(v.cells, [access::Cell::Ok, access::Cell::Pending]);
        assert!(v.access_drift);
        assert!(v.status.recipients_drift(), "{:?}", v.status);
        assert_eq!(v.status.recipients.added, [p.text]);
        assert!(v.debt.is_empty());
    }

    /// Every kind, present, absent, and stray, in the three verdicts.
    #[test]
    fn every_recipient_kind_present_absent_and_stray() {
        use access::Cell::{Ok as Yes, Pending, Unknown};
        let p = pool();
        for (i, r) in p.iter().enumerate() {
            let other = p[if i == 0 { 1 } else { 0 }].clone();
            let plugin = r.kind == RecipientKind::Plugin;
            // Present: the file has exactly the rule's stanzas.
            let rule = [other.clone(), r.clone()];
            let h = header(vec![stanza_of(&other), stanza_of(r)]);
            let v = verdicts(&rule, &h);
            assert_eq!(v.cells, [Yes, if plugin { Unknown } else { Yes }], "{r:?}");
            assert!(!v.status.recipients_drift() && !v.access_drift, "{r:?}");
            assert!(v.debt.is_empty(), "{r:?}: {:?}", v.debt);
            // Absent: the file lacks its stanza (a plugin's can never be denied).
            let h = header(vec![stanza_of(&other)]);
            let v = verdicts(&rule, &h);
            assert_eq!(
                v.cells,
                [Yes, if plugin { Unknown } else { Pending }],
                "{r:?}"
            );
            assert_eq!(v.status.recipients_drift(), !plugin, "{r:?}");
            assert_eq!(v.access_drift, !plugin, "{r:?}");
            assert!(v.debt.is_empty(), "{r:?}: {:?}", v.debt);
            // Stray: the file has its stanza, the rule no longer lists it.
            let h = header(vec![stanza_of(&other), stanza_of(r)]);
            let v = verdicts(std::slice::from_ref(&other), &h);
            let expected = match r.kind {
                RecipientKind::SshEd25519 | RecipientKind::SshRsa => {
                    format!("tag:{}", r.tag.as_deref().unwrap())
                }
                RecipientKind::X25519 => "unknown X25519 recipient".into(),
                RecipientKind::MlKem768X25519 => "unknown mlkem768x25519 recipient".into(),
                RecipientKind::Plugin => "stanza:agefleettest".into(),
            };
            assert_eq!(v.debt, [expected], "{r:?}");
            assert_eq!(v.stale_rows, 1, "{r:?}");
            assert!(v.status.recipients_drift() && v.access_drift, "{r:?}");
        }
    }

    #[test]
    fn anonymous_stanzas_of_another_number_cannot_be_attributed() {
        use access::Cell::Unknown;
        let p = pool();
        // Two X25519 keys, one stanza: one of them is missing, which one is unknowable.
        let v = verdicts(
            &[p[4].clone(), p[5].clone()],
            &header(vec![StanzaKind::X25519]),
        );
        assert_eq!(v.cells, [Unknown, Unknown]);
        assert!(v.status.recipients_drift() && v.access_drift);
        assert!(v.debt.is_empty());
        // With a plugin recipient, extra anonymous stanzas may be the plugin's.
        let rule = [p[6].clone(), p[8].clone()];
        assert_eq!(p[8].kind, RecipientKind::Plugin);
        let two = header(vec![StanzaKind::MlKem768X25519, StanzaKind::MlKem768X25519]);
        let v = verdicts(&rule, &two);
        assert_eq!(v.cells, [Unknown, Unknown]);
        assert!(!v.status.recipients_drift() && !v.access_drift);
        assert!(v.debt.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// status, access and audit never disagree on a rule × header, and never claim
        /// more than the header shows.
        #[test]
        fn status_access_and_audit_never_disagree(
            in_rule in proptest::collection::vec(any::<bool>(), 9),
            dropped in proptest::collection::vec(any::<bool>(), 9),
            extras in proptest::collection::vec(0usize..40, 0..4),
        ) {
            let p = pool();
            let rule: Vec<Recipient> =
                (0..p.len()).filter(|&i| in_rule[i]).map(|i| p[i].clone()).collect();
            let kept: Vec<&Recipient> =
                (0..p.len()).filter(|&i| in_rule[i] && !dropped[i]).map(|i| &p[i]).collect();
            let mut stanzas: Vec<StanzaKind> = kept.iter().map(|r| stanza_of(r)).collect();
            stanzas.extend(extras.iter().map(|&i| extra(i)));
            let h = header(stanzas);
            let v = verdicts(&rule, &h);
            let status = v.status.recipients_drift();

            // The three agree: drift, pending cells, strays.
            prop_assert_eq!(status, v.access_drift);
            for (r, cell) in rule.iter().zip(&v.cells) {
                let pending = *cell == access::Cell::Pending;
                prop_assert_eq!(pending, v.status.recipients.added.contains(&r.text));
                if pending {
                    prop_assert!(status);
                }
            }
            prop_assert_eq!(v.stale_rows, v.debt.len());
            if !v.debt.is_empty() {
                prop_assert!(status);
            }
            let stray_in_status = !v.status.recipients.removed_tags.is_empty()
                || !v.status.recipients.stray_stanzas.is_empty()
                || (v.status.recipients.plugins_unchecked == 0
                    && (v.status.recipients.x25519_found > v.status.recipients.x25519_expected
                        || v.status.recipients.mlkem768x25519_found
                            > v.status.recipients.mlkem768x25519_expected));
            prop_assert_eq!(stray_in_status, !v.debt.is_empty());

            // Sound: readable only when the header has a stanza of that key's type.
            for (r, cell) in rule.iter().zip(&v.cells) {
                if *cell == access::Cell::Ok {
                    prop_assert!(h.stanzas.contains(&stanza_of(r)), "{:?}", r);
                }
            }
            // Exactly the rule's stanzas (and grease): nothing to report anywhere.
            let only_grease = extras.iter().all(|&i| i % 8 == 6);
            let none_dropped = rule.iter().all(|r| kept.iter().any(|k| k.text == r.text));
            if only_grease && none_dropped {
                prop_assert!(!status && v.debt.is_empty());
                prop_assert!(!v.cells.contains(&access::Cell::Pending));
            }
            // A key whose kind's stanzas were all dropped (and none added back) is missing.
            for (r, cell) in rule.iter().zip(&v.cells) {
                if r.kind != RecipientKind::Plugin && !h.stanzas.contains(&stanza_of(r)) {
                    prop_assert_eq!(*cell, access::Cell::Pending);
                    prop_assert!(status);
                }
            }
        }
    }
}
