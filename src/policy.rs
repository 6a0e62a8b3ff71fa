//! The `pq = true` rule attribute: every recipient of such a secret must be post-quantum
//! (`age1pq1…`). A secret is only as strong as its weakest recipient, so one classical key
//! (ssh-ed25519, ssh-rsa, X25519) in the list gives a future quantum adversary the file key.

use crate::recipient::{abbreviate, Recipient};

/// A `pq = true` rule that lists classical recipients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "pq = true, but {key} is a classical {kind} recipient{more}: list only post-quantum age1pq1… keys"
)]
pub struct NotPostQuantum {
    /// The first classical key, abbreviated.
    pub key: String,
    /// Its kind (`ssh-ed25519`, `ssh-rsa`, `X25519`, …).
    pub kind: &'static str,
    /// `" (and N more)"` when there are others.
    more: String,
}

/// `Err` naming the first classical recipient when `pq` is set and any recipient is not
/// post-quantum.
pub fn check(pq: bool, recipients: &[&Recipient]) -> Result<(), NotPostQuantum> {
    if !pq {
        return Ok(());
    }
    let mut classical = recipients.iter().filter(|r| !r.kind.is_post_quantum());
    let Some(first) = classical.next() else {
        return Ok(());
    };
    let others = classical.count();
    Err(NotPostQuantum {
        key: abbreviate(&first.text),
        kind: first.kind.as_str(),
        more: if others == 0 {
            String::new()
        } else {
            format!(" (and {others} more)")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_classical_recipient() {
        let pq = crate::identity::MlKem768X25519Identity::generate().recipient();
        let x = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";
        let pq = Recipient::parse(&pq).unwrap();
        let x = Recipient::parse(x).unwrap();
        assert!(check(true, &[&pq]).is_ok());
        assert!(check(false, &[&pq, &x]).is_ok());
        let e = check(true, &[&pq, &x, &x]).unwrap_err();
        assert_eq!(e.kind, "X25519");
        let msg = e.to_string();
        assert!(msg.contains("age1t7rxyev2z3rw82st…"), "{msg}");
        assert!(msg.contains("(and 1 more)"), "{msg}");
    }
}
