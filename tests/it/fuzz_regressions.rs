//! The fuzz targets' inputs in the normal suite, without cargo-fuzz: every seed
//! (`fuzz/seeds/<target>/`) and every crasher the fuzzers found (`fuzz/regressions/<target>/`)
//! goes through the same entry point and checks as its target in `fuzz/fuzz_targets/`.
//! Plus property tests of the rules evaluator over generated Nix expressions.

use std::path::{Path, PathBuf};

use agefleet::activation::{place, Env, Layout, Manifest};
use agefleet::envelope::Header;
use agefleet::rules;

/// Files of `fuzz/seeds/<target>` and `fuzz/regressions/<target>`.
pub(crate) fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(rd) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            out.push((p, bytes));
        }
    }
    out.sort();
    assert!(
        !out.is_empty(),
        "no inputs for {target} under {}",
        root.display()
    );
    out
}

/// What `fuzz_targets/rules_eval.rs` checks.
fn rules_eval(dir: &Path, data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    match rules::evaluate_str(&dir.join("secrets.nix"), text.to_owned()) {
        Ok(entries) => {
            for e in entries {
                if let Err(bad) = e.rule {
                    if bad.message.contains('\n') {
                        return Err(format!("multi-line entry error: {}", bad.message));
                    }
                }
            }
            Ok(())
        }
        Err(e) if e.to_string().contains('\n') => Err(format!("multi-line error: {e}")),
        Err(_) => Ok(()),
    }
}

/// What `fuzz_targets/age_header.rs` checks.
fn age_header(data: &[u8]) -> Result<(), String> {
    let parsed = Header::parse(data);
    match &parsed {
        Ok(h) => {
            let _ = h.ssh_tags().count();
            let _ = h.x25519_count();
        }
        Err(e) if e.to_string().contains('\n') => return Err(format!("multi-line error: {e}")),
        Err(_) => {}
    }
    if Header::read_from(data).is_ok() != parsed.is_ok() {
        return Err("read_from and parse disagree".into());
    }
    Ok(())
}

fn var(name: &str) -> Option<String> {
    match name {
        "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
        "HOME" => Some("/home/u".into()),
        _ => None,
    }
}

/// What `fuzz_targets/manifest.rs` checks.
fn manifest(data: &[u8]) -> Result<(), String> {
    let origin = Path::new("manifest.json");
    let one_line = |e: String| {
        if e.contains('\n') {
            Err(format!("multi-line error: {e}"))
        } else {
            Ok(())
        }
    };
    let m = match Manifest::parse(data, origin) {
        Ok(m) => m,
        Err(e) => return one_line(e.to_string()),
    };
    let env = Env {
        var: &var,
        etc: PathBuf::from("/nonexistent-etc"),
        plugin_ui: None,
    };
    let layout = match Layout::resolve(&m, origin, &env) {
        Ok(l) => l,
        Err(e) => return one_line(e.to_string()),
    };
    let (_plans, failures) = place::plan(&m, &layout, &var);
    for f in failures {
        one_line(f.reason)?;
    }
    Ok(())
}

#[test]
fn rules_eval_seeds_and_regressions() {
    let dir = tempfile::tempdir().unwrap();
    for (path, data) in inputs("rules_eval") {
        rules_eval(dir.path(), &data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn age_header_seeds_and_regressions() {
    for (path, data) in inputs("age_header") {
        age_header(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn manifest_seeds_and_regressions() {
    for (path, data) in inputs("manifest") {
        manifest(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// The checks pass what they should (the targets are not vacuous: good inputs go all the
/// way through).
#[test]
fn good_inputs_go_all_the_way_through() {
    assert!(manifest(br#"{"version":1}"#).is_ok());
    assert!(age_header(b"age-encryption.org/v1\n-> X25519 AAAA\n").is_ok());
    let dir = tempfile::tempdir().unwrap();
    // A good rules file evaluates, entries and all.
    let ok = rules::evaluate_str(
        &dir.path().join("secrets.nix"),
        r#"{ "a.age".publicKeys = [ "k1" "k2\nk3" ]; }"#.into(),
    )
    .unwrap();
    assert_eq!(ok[0].rule.as_ref().unwrap().public_keys, ["k1", "k2", "k3"]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Small Nix expressions from the rules subset, nested.
    fn expr() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(|i| i.to_string()),
            "[a-z]{1,3}".prop_map(|s| format!("\"{s}\"")),
            Just("true".to_string()),
            Just("null".to_string()),
            Just("x".to_string()),
            Just("builtins.length".to_string()),
            Just("(a: a)".to_string()),
        ];
        leaf.prop_recursive(5, 48, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[ {} ]", v.join(" "))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| format!("{{ a = {a}; b = {b}; }}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} ++ {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} // {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} == {b})")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(c, a, b)| format!("(if {c} then {a} else {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("(let x = {a}; in {b})")),
                (inner.clone(), inner.clone()).prop_map(|(f, a)| format!("({f} {a})")),
                inner.clone().prop_map(|a| format!("(builtins.toJSON {a})")),
                inner
                    .clone()
                    .prop_map(|a| format!("(builtins.attrNames {a})")),
                inner.clone().prop_map(|a| format!("(map (y: y) {a})")),
                inner.prop_map(|a| format!("({a}).a")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the expression, as a rule value or as the whole file: no panic, errors
        /// are one line and name the rules file.
        #[test]
        fn generated_rules_never_panic_and_errors_are_one_line(e in expr(), whole in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("secrets.nix");
            let text = if whole {
                e.clone()
            } else {
                format!("{{ \"s.age\" = {{ publicKeys = {e}; }}; \"t.age\".publicKeys = [ \"k\" ]; }}")
            };
            match rules::evaluate_str(&path, text) {
                Ok(entries) => {
                    for en in &entries {
                        if let Err(bad) = &en.rule {
                            prop_assert!(!bad.message.contains('\n'), "{}", bad.message);
                            prop_assert!(bad.message.contains("secrets.nix"), "{}", bad.message);
                        }
                    }
                    if !whole {
                        // A bad entry is bad alone: the other one still evaluates.
                        let t = entries.iter().find(|en| en.name == "t.age").unwrap();
                        prop_assert_eq!(&t.rule.as_ref().unwrap().public_keys, &vec!["k".to_string()]);
                    }
                }
                Err(err) => {
                    let msg = err.to_string();
                    prop_assert!(!msg.contains('\n'), "{}", msg);
                    prop_assert!(msg.contains("secrets.nix"), "{}", msg);
                }
            }
        }

        /// Key strings round-trip: lines split, blank lines dropped, whitespace trimmed.
        #[test]
        fn public_key_lines_are_split_and_trimmed(lines in prop::collection::vec("[ a-z0-9]{0,8}", 0..6)) {
            let dir = tempfile::tempdir().unwrap();
            let joined = lines.join("\\n");
            let text = format!("{{ \"s.age\".publicKeys = [ \"{joined}\" ]; }}");
            let entries = rules::evaluate_str(&dir.path().join("secrets.nix"), text).unwrap();
            let want: Vec<String> = lines
                .iter()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            prop_assert_eq!(&entries[0].rule.as_ref().unwrap().public_keys, &want);
        }
    }
}
