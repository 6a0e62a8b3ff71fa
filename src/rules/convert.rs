//! The evaluated JSON value of one rule -> [`Rule`], checking its shape only (the key
//! strings themselves are parsed by `recipient`).

use super::{Rule, RuleError};

pub(super) fn json_type(v: &serde_json::Value) -> &'static str {
    use serde_json::Value as J;
    match v {
        J::Null => "null",
        J::Bool(_) => "a Boolean",
        J::Number(n) if n.is_f64() => "a float",
        J::Number(_) => "an integer",
        J::String(_) => "a string",
        J::Array(_) => "a list",
        J::Object(_) => "a set",
    }
}

/// `<where>: secret "<name>": <what>`, where `<where>` is the rules file, with
/// `:line:col` when known.
pub fn entry_error(location: &str, name: &str, what: &str) -> RuleError {
    RuleError {
        message: format!("{location}: secret {name:?}: {what}"),
    }
}

/// Splits `publicKeys` strings into one recipient per line, trimmed, empty lines dropped.
pub fn split_keys(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// Checks one entry's shape: a set with `publicKeys` (a list of strings), optional
/// Booleans `armor` and `pq` and an optional `generator` ([`super::Generator`]); other
/// attributes are ignored.
/// `location` names the rules file (and line:col of the entry when known) in errors.
pub fn rule_from_json(
    location: &str,
    name: &str,
    v: &serde_json::Value,
) -> Result<Rule, RuleError> {
    let err = |what: String| Err(entry_error(location, name, &what));
    let Some(obj) = v.as_object() else {
        return err(format!(
            "the rule is {} while a set with publicKeys was expected",
            json_type(v)
        ));
    };
    let Some(keys) = obj.get("publicKeys") else {
        return err("the rule has no publicKeys attribute".into());
    };
    let Some(keys) = keys.as_array() else {
        return err(format!(
            "publicKeys is {} while a list of strings was expected",
            json_type(keys)
        ));
    };
    let mut public_keys = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match k.as_str() {
            Some(s) => public_keys.extend(split_keys(s)),
            None => {
                return err(format!(
                    "publicKeys element {} is {} while a string was expected",
                    i + 1,
                    json_type(k)
                ))
            }
        }
    }
    let flag = |attr: &str| match obj.get(attr) {
        None => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(other) => Err(entry_error(
            location,
            name,
            &format!(
                "{attr} is {} while a Boolean was expected",
                json_type(other)
            ),
        )),
    };
    let armor = flag("armor")?;
    let pq = flag("pq")?;
    let generator = match obj.get("generator") {
        None => None,
        Some(g) => super::Generator::from_json(g)
            .map_err(|e| entry_error(location, name, &e.to_string()))?,
    };
    Ok(Rule {
        public_keys,
        armor,
        pq,
        generator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> Result<Rule, RuleError> {
        rule_from_json("secrets.nix", "a.age", &v)
    }

    #[test]
    fn multi_line_keys_split_trimmed_and_empty_lines_dropped() {
        let r = rule(json!({"publicKeys": ["  ssh-ed25519 AAAA a\n\n ssh-ed25519 BBBB b  \n", "age1x"], "armor": true, "other": 1})).unwrap();
        assert_eq!(
            r.public_keys,
            ["ssh-ed25519 AAAA a", "ssh-ed25519 BBBB b", "age1x"]
        );
        assert!(r.armor);
    }

    #[test]
    fn bad_shapes_name_the_file_and_secret() {
        assert_eq!(
            rule(json!({"publicKeys": "age1x"})).unwrap_err().message,
            "secrets.nix: secret \"a.age\": publicKeys is a string while a list of strings was expected"
        );
        assert!(rule(json!({}))
            .unwrap_err()
            .message
            .contains("no publicKeys"));
        assert!(rule(json!({"publicKeys": [1]}))
            .unwrap_err()
            .message
            .contains("element 1 is an integer"));
        assert!(rule(json!({"publicKeys": [], "armor": "yes"}))
            .unwrap_err()
            .message
            .contains("armor is a string"));
        assert!(rule(json!([1]))
            .unwrap_err()
            .message
            .contains("the rule is a list"));
        assert!(!rule(json!({"publicKeys": []})).unwrap().armor);
        assert!(rule(json!({"publicKeys": [], "pq": 1}))
            .unwrap_err()
            .message
            .contains("pq is an integer while a Boolean was expected"));
        assert!(!rule(json!({"publicKeys": []})).unwrap().pq);
        assert!(rule(json!({"publicKeys": [], "pq": true})).unwrap().pq);
        assert_eq!(
            rule(json!({"publicKeys": [], "generator": "pasword"}))
                .unwrap_err()
                .to_string(),
            "secrets.nix: secret \"a.age\": generator kind \"pasword\" is unknown (known: \
             password, hex, base64, wireguard, ssh-ed25519, age, age-pq, command)"
        );
        assert_eq!(
            rule(json!({"publicKeys": [], "generator": "hex"}))
                .unwrap()
                .generator,
            Some(crate::rules::Generator::Hex { bytes: 32 })
        );
    }
}
