//! The `generator` attribute of a rule: how `agefleet generate` makes the secret's value.
//! A kind name (`generator = "wireguard";`) or a set with the kind and its parameters
//! (`generator = { kind = "password"; length = 48; };`); `null` means none. Checked strictly:
//! an unknown kind, an attribute the kind does not take or a parameter out of range makes
//! the rule bad, so a typo never silently yields a default.

use serde::Serialize;

/// Passwords: `length` bounds and default.
pub const PASSWORD_LENGTH: (u64, u64, u64) = (8, 4096, 32);
/// `hex` and `base64`: `bytes` bounds and default.
pub const RANDOM_BYTES: (u64, u64, u64) = (1, 4096, 32);

/// How a secret's value is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Generator {
    /// `length` characters from `[A-Za-z0-9]` (plus ASCII punctuation other than quotes,
    /// backslash and backtick with `symbols`), each uniformly chosen.
    Password {
        /// Number of characters.
        length: usize,
        /// Whether punctuation is part of the alphabet.
        symbols: bool,
    },
    /// `bytes` random bytes as lowercase hex.
    Hex {
        /// Number of random bytes (twice as many characters).
        bytes: usize,
    },
    /// `bytes` random bytes as standard, padded base64.
    Base64 {
        /// Number of random bytes.
        bytes: usize,
    },
    /// A WireGuard private key, as `wg genkey` prints it; the public key is the companion.
    Wireguard,
    /// An OpenSSH ed25519 private key without passphrase; the public line is the companion.
    SshEd25519,
    /// An age X25519 identity file; the recipient is the companion.
    Age,
    /// An age hybrid post-quantum identity file; the recipient is the companion.
    AgePq,
    /// The standard output of `argv`, run without a shell.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
    },
}

/// Every kind name, in the order errors list them.
pub const KINDS: [&str; 8] = [
    "password",
    "hex",
    "base64",
    "wireguard",
    "ssh-ed25519",
    "age",
    "age-pq",
    "command",
];

impl Generator {
    /// The kind's name, as written in `secrets.nix`.
    pub fn kind(&self) -> &'static str {
        match self {
            Generator::Password { .. } => "password",
            Generator::Hex { .. } => "hex",
            Generator::Base64 { .. } => "base64",
            Generator::Wireguard => "wireguard",
            Generator::SshEd25519 => "ssh-ed25519",
            Generator::Age => "age",
            Generator::AgePq => "age-pq",
            Generator::Command { .. } => "command",
        }
    }

    /// Whether the kind has a public half, written to the `.pub` companion file.
    pub fn has_companion(&self) -> bool {
        matches!(
            self,
            Generator::Wireguard | Generator::SshEd25519 | Generator::Age | Generator::AgePq
        )
    }

    /// The generator a rule's evaluated `generator` attribute describes; `None` for `null`.
    /// The error says what is wrong, without naming the file or secret.
    pub fn from_json(v: &serde_json::Value) -> Result<Option<Generator>, GeneratorError> {
        use serde_json::Value as J;
        let (kind, params) = match v {
            J::Null => return Ok(None),
            J::String(kind) => (kind.as_str(), None),
            J::Object(set) => match set.get("kind") {
                Some(J::String(kind)) => (kind.as_str(), Some(set)),
                Some(other) => return Err(GeneratorError::wrong_type("kind", other, "a string")),
                None => return Err(GeneratorError::NoKind),
            },
            other => {
                return Err(GeneratorError::NotKindOrSet {
                    found: super::convert::json_type(other),
                })
            }
        };
        let allowed: &'static [&'static str] = match kind {
            "password" => &["length", "symbols"],
            "hex" | "base64" => &["bytes"],
            "command" => &["argv"],
            k if KINDS.contains(&k) => &[],
            other => {
                return Err(GeneratorError::UnknownKind {
                    kind: other.to_string(),
                })
            }
        };
        let empty = serde_json::Map::new();
        let params = params.unwrap_or(&empty);
        if let Some(extra) = params
            .keys()
            .find(|k| *k != "kind" && !allowed.contains(&k.as_str()))
        {
            return Err(GeneratorError::UnexpectedAttribute {
                attribute: extra.clone(),
                kind: kind.to_string(),
                allowed,
            });
        }
        let int = |attribute: &'static str,
                   (min, max, default): (u64, u64, u64)|
         -> Result<usize, GeneratorError> {
            let n = match params.get(attribute) {
                None => default,
                Some(J::Number(n)) if !n.is_f64() => match n.as_u64() {
                    Some(n) if (min..=max).contains(&n) => n,
                    _ => {
                        return Err(GeneratorError::OutOfRange {
                            attribute,
                            value: n.clone(),
                            min,
                            max,
                        })
                    }
                },
                Some(other) => {
                    return Err(GeneratorError::wrong_type(attribute, other, "an integer"))
                }
            };
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        };
        Ok(Some(match kind {
            "password" => Generator::Password {
                length: int("length", PASSWORD_LENGTH)?,
                symbols: match params.get("symbols") {
                    None => false,
                    Some(J::Bool(b)) => *b,
                    Some(other) => {
                        return Err(GeneratorError::wrong_type("symbols", other, "a Boolean"))
                    }
                },
            },
            "hex" => Generator::Hex {
                bytes: int("bytes", RANDOM_BYTES)?,
            },
            "base64" => Generator::Base64 {
                bytes: int("bytes", RANDOM_BYTES)?,
            },
            "wireguard" => Generator::Wireguard,
            "ssh-ed25519" => Generator::SshEd25519,
            "age" => Generator::Age,
            "age-pq" => Generator::AgePq,
            _ => Generator::Command {
                argv: argv(params.get("argv"))?,
            },
        }))
    }
}

/// Why a rule's `generator` attribute is refused. Says what is wrong, without naming the
/// file or secret (the rule's error adds them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GeneratorError {
    /// Neither `null`, a kind name nor a set.
    #[error("generator is {found} while a kind name or a set with kind was expected")]
    NotKindOrSet {
        /// What it is instead (`an integer`, `a list`…).
        found: &'static str,
    },
    /// A set without `kind`.
    #[error("generator has no kind attribute")]
    NoKind,
    /// A kind that is not one of [`KINDS`].
    #[error("generator kind {kind:?} is unknown (known: {})", KINDS.join(", "))]
    UnknownKind {
        /// The kind as written.
        kind: String,
    },
    /// An attribute the kind does not take.
    #[error(
        "generator attribute {attribute:?} is not one kind {kind:?} takes ({})",
        if allowed.is_empty() { "it takes none".to_string() } else { allowed.join(", ") }
    )]
    UnexpectedAttribute {
        /// The attribute as written.
        attribute: String,
        /// The generator's kind.
        kind: String,
        /// The attributes the kind takes besides `kind`.
        allowed: &'static [&'static str],
    },
    /// An attribute (`kind`, `length`, `symbols`, `argv`…) of the wrong type.
    #[error("generator.{attribute} is {found} while {expected} was expected")]
    WrongType {
        /// The attribute.
        attribute: &'static str,
        /// What it is (`a string`, `a float`…).
        found: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// An integer parameter outside its bounds.
    #[error("generator.{attribute} = {value} is out of range ({min} to {max})")]
    OutOfRange {
        /// The attribute (`length`, `bytes`).
        attribute: &'static str,
        /// The number as written.
        value: serde_json::Number,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// Kind `command` without `argv`.
    #[error(
        "generator kind \"command\" needs argv, e.g. argv = [ \"openssl\" \"rand\" \"-base64\" \"48\" ]"
    )]
    NoArgv,
    /// An `argv` element that is not a string.
    #[error("generator.argv element {position} is {found} while a string was expected")]
    ArgvElement {
        /// 1-based position in the list.
        position: usize,
        /// What it is instead.
        found: &'static str,
    },
    /// An empty `argv`.
    #[error("generator.argv is empty: it needs at least the program to run")]
    EmptyArgv,
    /// `argv` whose first element is the empty string.
    #[error("generator.argv starts with an empty program name")]
    EmptyProgram,
    /// An `argv` element with a NUL character (it cannot be passed to a program).
    #[error("generator.argv holds a NUL character")]
    ArgvNul,
}

impl GeneratorError {
    fn wrong_type(
        attribute: &'static str,
        found: &serde_json::Value,
        expected: &'static str,
    ) -> Self {
        GeneratorError::WrongType {
            attribute,
            found: super::convert::json_type(found),
            expected,
        }
    }
}

/// `argv` of a command generator: a non-empty list of strings, the program not empty.
fn argv(v: Option<&serde_json::Value>) -> Result<Vec<String>, GeneratorError> {
    let Some(v) = v else {
        return Err(GeneratorError::NoArgv);
    };
    let Some(list) = v.as_array() else {
        return Err(GeneratorError::wrong_type("argv", v, "a list of strings"));
    };
    let argv = list
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.as_str()
                .map(str::to_string)
                .ok_or_else(|| GeneratorError::ArgvElement {
                    position: i + 1,
                    found: super::convert::json_type(a),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match argv.first() {
        None => Err(GeneratorError::EmptyArgv),
        Some(p) if p.is_empty() => Err(GeneratorError::EmptyProgram),
        Some(p) if p.contains('\0') || argv.iter().any(|a| a.contains('\0')) => {
            Err(GeneratorError::ArgvNul)
        }
        Some(_) => Ok(argv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Option<Generator>, GeneratorError> {
        Generator::from_json(&v)
    }

    #[test]
    fn kinds_by_name_and_by_set_with_defaults() {
        assert_eq!(
            parse(json!("password")).unwrap(),
            Some(Generator::Password {
                length: 32,
                symbols: false
            })
        );
        assert_eq!(
            parse(json!({"kind": "password", "length": 48, "symbols": true})).unwrap(),
            Some(Generator::Password {
                length: 48,
                symbols: true
            })
        );
        assert_eq!(
            parse(json!({"kind": "hex", "bytes": 1})).unwrap(),
            Some(Generator::Hex { bytes: 1 })
        );
        assert_eq!(
            parse(json!("base64")).unwrap(),
            Some(Generator::Base64 { bytes: 32 })
        );
        for (name, g) in [
            ("wireguard", Generator::Wireguard),
            ("ssh-ed25519", Generator::SshEd25519),
            ("age", Generator::Age),
            ("age-pq", Generator::AgePq),
        ] {
            assert_eq!(parse(json!(name)).unwrap().as_ref(), Some(&g));
            assert_eq!(g.kind(), name);
            assert!(g.has_companion());
            assert_eq!(serde_json::to_value(&g).unwrap(), json!({"kind": name}));
        }
        assert_eq!(
            parse(json!({"kind": "command", "argv": ["openssl", "rand", "-hex", "8"]})).unwrap(),
            Some(Generator::Command {
                argv: vec!["openssl".into(), "rand".into(), "-hex".into(), "8".into()]
            })
        );
        assert_eq!(parse(json!(null)).unwrap(), None);
    }

    #[test]
    fn wrong_types_unknown_kinds_and_out_of_range_parameters_are_refused() {
        let e = |v| parse(v).unwrap_err().to_string();
        assert!(e(json!("pasword")).contains("kind \"pasword\" is unknown (known: password"));
        assert!(e(json!(3)).contains("generator is an integer"));
        assert!(e(json!({"length": 3})).contains("no kind attribute"));
        assert!(e(json!({"kind": 1})).contains("generator.kind is an integer"));
        assert!(e(json!({"kind": "password", "length": 0})).contains("out of range (8 to 4096)"));
        assert!(e(json!({"kind": "password", "length": 4097})).contains("out of range"));
        assert!(e(json!({"kind": "password", "length": -1})).contains("out of range"));
        assert!(e(json!({"kind": "password", "length": 9.5})).contains("a float"));
        assert!(e(json!({"kind": "password", "lenght": 9})).contains("\"lenght\" is not one"));
        assert!(e(json!({"kind": "hex", "bytes": 0})).contains("out of range (1 to 4096)"));
        assert!(e(json!({"kind": "base64", "length": 8})).contains("\"length\" is not one"));
        assert!(e(json!({"kind": "password", "symbols": "yes"})).contains("a Boolean"));
        assert!(e(json!({"kind": "wireguard", "bytes": 8})).contains("it takes none"));
        assert!(e(json!("command")).contains("needs argv"));
        assert!(e(json!({"kind": "command", "argv": []})).contains("argv is empty"));
        assert!(e(json!({"kind": "command", "argv": "ls"})).contains("a string while a list"));
        assert!(e(json!({"kind": "command", "argv": ["ls", 1]})).contains("element 2"));
        assert!(e(json!({"kind": "command", "argv": [""]})).contains("empty program"));
        assert!(!e(json!("a\nb")).contains('\n'));
        assert_eq!(
            parse(json!({"kind": "hex", "bytes": 5000})),
            Err(GeneratorError::OutOfRange {
                attribute: "bytes",
                value: 5000.into(),
                min: 1,
                max: 4096
            })
        );
        assert_eq!(
            parse(json!({"kind": "command", "argv": ["ls", "a\u{0}"]})),
            Err(GeneratorError::ArgvNul)
        );
    }
}
