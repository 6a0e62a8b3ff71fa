//! Templates: a public text (in the manifest, so in the Nix store) whose placeholders are
//! replaced by secrets' plaintext at activation, in zeroized memory.
//!
//! A placeholder is `<AGEFLEET:PLACEHOLDER:HEX>` where HEX is the lowercase sha256 of the
//! secret's name: derived from the name only, never from the value (`nix/placeholder.nix`
//! defines the same token for the modules).

use std::collections::HashMap;
use std::ops::Range;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const OPEN: &str = "<AGEFLEET:PLACEHOLDER:";

/// The placeholder of the secret named `name`.
pub fn placeholder(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(name.as_bytes());
    let mut token = String::with_capacity(OPEN.len() + 65);
    token.push_str(OPEN);
    for b in digest {
        token.push(char::from(HEX[usize::from(b >> 4)]));
        token.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    token.push('>');
    token
}

/// The placeholders of a manifest's secrets, computed once for all its templates.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    by_token: HashMap<String, String>,
}

impl Placeholders {
    /// The placeholders of the secrets named `names`.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Placeholders {
            by_token: names
                .into_iter()
                .map(|n| (placeholder(n), n.to_string()))
                .collect(),
        }
    }
}

/// Why a template cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A placeholder of a name that is not a secret of the manifest (or a malformed one).
    #[error("uses the placeholder of a secret that is not in the manifest")]
    UnknownPlaceholder,
    /// A secret it uses failed, so there is no plaintext to put in.
    #[error("uses secret {name:?}, which could not be installed; not rendered")]
    SecretMissing {
        /// The secret's name.
        name: String,
    },
}

/// One part of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Bytes of the text itself.
    Text(Range<usize>),
    /// The plaintext of this secret.
    Secret(String),
}

/// A template's text split at its placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pieces: Vec<Piece>,
}

impl Parsed {
    /// Splits `content` at the placeholders of `secrets`. A placeholder of any other name
    /// (a secret not in the manifest) is an error.
    pub fn new(content: &str, secrets: &Placeholders) -> Result<Parsed, TemplateError> {
        let by_token = &secrets.by_token;
        let token_len = OPEN.len() + 65;
        let mut pieces = Vec::new();
        let mut at = 0;
        while let Some(found) = content[at..].find(OPEN) {
            let start = at + found;
            let end = start + token_len;
            let name = content
                .get(start..end)
                .and_then(|token| by_token.get(token))
                .ok_or(TemplateError::UnknownPlaceholder)?;
            if start > at {
                pieces.push(Piece::Text(at..start));
            }
            pieces.push(Piece::Secret(name.clone()));
            at = end;
        }
        if at < content.len() {
            pieces.push(Piece::Text(at..content.len()));
        }
        Ok(Parsed { pieces })
    }

    /// The secrets the template uses, in order of first use.
    pub fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Secret(n) = p {
                if !out.contains(&n.as_str()) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// The rendered bytes of `content` (the text this was parsed from), with `plaintext`
    /// giving each secret's value; a secret without one (it failed) is an error naming it.
    pub fn render<'v>(
        &self,
        content: &str,
        plaintext: &dyn Fn(&str) -> Option<&'v [u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, TemplateError> {
        let mut len = 0;
        for p in &self.pieces {
            len += match p {
                Piece::Text(r) => r.len(),
                Piece::Secret(n) => plaintext(n).map_or(0, <[u8]>::len),
            };
        }
        // Sized up front: a growing Vec would leave copies of plaintext behind.
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        for p in &self.pieces {
            match p {
                Piece::Text(r) => out.extend_from_slice(&content.as_bytes()[r.clone()]),
                Piece::Secret(n) => match plaintext(n) {
                    Some(bytes) => out.extend_from_slice(bytes),
                    None => return Err(TemplateError::SecretMissing { name: n.clone() }),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_sha256_of_the_name() {
        // sha256("db-password"), as `nix/placeholder.nix` computes it.
        assert_eq!(
            placeholder("db-password"),
            "<AGEFLEET:PLACEHOLDER:47facce23a4e378e2db6678d49886c2c01fb69ec0fba65258571f9c19c06eb7f>"
        );
    }

    #[test]
    fn renders_every_placeholder_and_keeps_the_rest() {
        let text = format!(
            "user = x\npw = {}\nagain {}{}\n<AGEFLEET:PLACE",
            placeholder("pw"),
            placeholder("pw"),
            placeholder("k")
        );
        let p = Parsed::new(&text, &Placeholders::new(["pw", "k", "unused"])).unwrap();
        assert_eq!(p.secrets(), ["pw", "k"]);
        let values = |n: &str| -> Option<&'static [u8]> {
            match n {
                "pw" => Some(&b"s3cret"[..]),
                "k" => Some(&b"KEY"[..]),
                _ => None,
            }
        };
        let out = p.render(&text, &values).unwrap();
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            "user = x\npw = s3cret\nagain s3cretKEY\n<AGEFLEET:PLACE"
        );
        let e = p
            .render(&text, &|n| (n == "pw").then_some(&b"x"[..]))
            .unwrap_err();
        assert_eq!(e, TemplateError::SecretMissing { name: "k".into() });
        assert_eq!(
            e.to_string(),
            "uses secret \"k\", which could not be installed; not rendered"
        );
    }

    #[test]
    fn undeclared_or_malformed_placeholders_are_refused() {
        let text = format!("a {}", placeholder("other"));
        let e = Parsed::new(&text, &Placeholders::new(["pw"])).unwrap_err();
        assert_eq!(e, TemplateError::UnknownPlaceholder);
        assert!(Parsed::new("x <AGEFLEET:PLACEHOLDER:zz>", &Placeholders::new(["pw"])).is_err());
        // Multi-byte text around a cut token never panics.
        assert!(Parsed::new("<AGEFLEET:PLACEHOLDER:ééééé", &Placeholders::new(["pw"])).is_err());
    }
}
