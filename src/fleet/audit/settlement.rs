//! Settlement: with identities, debt on a value that changed after its last commit is
//! settled (that version and the current file are decrypted and compared). Apart from the
//! plan, which reads headers only and needs no identity.

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Plan, Report, MAX_WHOLE_BLOB};
use crate::envelope::{self, DecryptionKeys, EnvelopeError};

/// Whether a value changed after a version, as decided by decrypting both.
enum Settlement {
    Rotated,
    Unchanged,
    Unknown(String),
}

/// Settles the plan's debt with `keys` (none: nothing is settled) and reports what remains.
pub fn execute<K: DecryptionKeys + ?Sized>(mut plan: Plan, keys: Option<&K>) -> Report {
    if let Some(keys) = keys {
        for s in &mut plan.secrets {
            if s.debt.is_empty() {
                continue;
            }
            let current = plan.current.get(&s.name);
            let mut current_plain: Option<Result<Zeroizing<Vec<u8>>, EnvelopeError>> = None;
            let mut decided: HashMap<usize, Settlement> = HashMap::new();
            for d in &mut s.debt {
                let short = d.last_commit.short.clone();
                let outcome = decided.entry(d.version).or_insert_with(|| {
                    if let Some(size) = plan.too_large.get(&d.version) {
                        return Settlement::Unknown(format!(
                            "the version of {short} is {} MiB, over {} MiB: not read",
                            size >> 20,
                            MAX_WHOLE_BLOB >> 20
                        ));
                    }
                    let version = &plan.blobs[d.version];
                    settle(version, current, &mut current_plain, keys, &short)
                });
                match outcome {
                    Settlement::Rotated => {
                        d.settled = true;
                        d.note = Some(format!("the value changed after {short}"));
                    }
                    Settlement::Unchanged => {
                        d.note = Some(format!("the value is unchanged since {short}"));
                    }
                    Settlement::Unknown(why) => d.note = Some(why.clone()),
                }
            }
        }
    }
    let unsettled = plan
        .secrets
        .iter()
        .flat_map(|s| &s.debt)
        .filter(|d| !d.settled)
        .count();
    Report {
        repository: plan.repository,
        since: plan.since,
        commits: plan.commits,
        settlement_checked: keys.is_some(),
        unsettled,
        secrets: plan.secrets,
        warnings: plan.warnings,
    }
}

/// Whether the value of `version` changed in `current` (the current file, or why it could
/// not be read); `current_plain` holds the current plaintext once decrypted.
fn settle<K: DecryptionKeys + ?Sized>(
    version: &[u8],
    current: Option<&Result<Arc<Vec<u8>>, std::io::Error>>,
    current_plain: &mut Option<Result<Zeroizing<Vec<u8>>, EnvelopeError>>,
    keys: &K,
    short: &str,
) -> Settlement {
    let current = match current {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Settlement::Unknown(format!("cannot read the current file: {e}")),
        None => return Settlement::Unknown("no current file".into()),
    };
    if current.as_slice() == version {
        return Settlement::Unchanged;
    }
    let now = current_plain.get_or_insert_with(|| envelope::decrypt(current, keys));
    let now = match now {
        Ok(p) => p,
        Err(e) => return Settlement::Unknown(format!("cannot decrypt the current file: {e}")),
    };
    match envelope::decrypt(version, keys) {
        Ok(then) if then.as_slice() == now.as_slice() => Settlement::Unchanged,
        Ok(_) => Settlement::Rotated,
        Err(e) => Settlement::Unknown(format!("cannot decrypt the version of {short}: {e}")),
    }
}
