//! `agefleet rules` and the rules library: the builtin evaluator against
//! `nix-instantiate` on every fixture, and the failure paths (one-line errors naming
//! file:line:col, non-zero exit, no crash).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use agefleet::rules::{self, Backend, EvalMode, RulesError};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/rules exists")
        .map(|e| e.unwrap().path().join("secrets.nix"))
        .filter(|p| p.is_file())
        .collect();
    dirs.sort();
    dirs
}

fn nix_json(file: &Path) -> serde_json::Value {
    let out = common::run(
        Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json"])
            .arg(file),
    );
    assert!(
        out.status.success(),
        "nix-instantiate failed on {}: {}",
        file.display(),
        common::stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("nix prints JSON")
}

fn cli_json(home: &Path, file: &Path) -> serde_json::Value {
    let out = common::run(
        common::agefleet(home)
            .args(["rules", "--json", "--nix-eval=builtin", "--rules"])
            .arg(file),
    );
    assert!(
        out.status.success(),
        "agefleet rules --json failed on {}: {}",
        file.display(),
        common::stderr(&out)
    );
    let text = common::stdout(&out);
    assert_eq!(text.trim_end().lines().count(), 1, "one line of JSON");
    serde_json::from_str(&text).expect("agefleet prints JSON")
}

#[test]
fn at_least_22_fixtures() {
    assert!(fixtures().len() >= 22, "{} fixtures", fixtures().len());
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn every_fixture_evaluates_like_nix_instantiate() {
    common::require_tool("nix-instantiate");
    let home = tempfile::tempdir().unwrap();
    for file in fixtures() {
        let expected = nix_json(&file);
        assert_eq!(cli_json(home.path(), &file), expected, "{}", file.display());
        let (lib, backend, fallback) = rules::evaluate_json(&file, EvalMode::Builtin).unwrap();
        assert_eq!(lib, expected, "{}", file.display());
        assert_eq!(backend, Backend::Builtin);
        assert!(fallback.is_none());
    }
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn load_agrees_between_backends_on_every_fixture() {
    common::require_tool("nix-instantiate");
    for file in fixtures() {
        let builtin = rules::load(&file, EvalMode::Builtin).unwrap();
        let nix = rules::load(&file, EvalMode::Nix).unwrap();
        assert_eq!(builtin.backend, Backend::Builtin);
        assert_eq!(nix.backend, Backend::Nix);
        let summary = |r: &rules::Rules| {
            r.entries
                .iter()
                .map(|e| (e.name.clone(), e.rule.clone().map_err(|e| e.message)))
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&builtin), summary(&nix), "{}", file.display());
        assert!(builtin.entries.iter().all(|e| e.rule.is_ok()));
        assert_eq!(builtin.dir, file.parent().unwrap());
    }
}

#[test]
fn multi_line_key_strings_become_one_recipient_per_line() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules/27-hosts-dir-keys/secrets.nix");
    let rules = rules::load(&file, EvalMode::Builtin).unwrap();
    let whole = rules
        .entry("whole-file.age")
        .unwrap()
        .rule
        .as_ref()
        .unwrap();
    assert_eq!(whole.public_keys.len(), 2);
    assert!(whole.public_keys[0].starts_with("ssh-ed25519 "));
    assert!(whole.public_keys[1].starts_with("ssh-rsa "));
    let names: Vec<&str> = rules.entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries sorted by name");
}

#[test]
fn readable_listing_shows_names_armor_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_rules(
        dir.path(),
        &[
            ("b.age", &["age1one", "age1two"], true),
            ("a b.age", &["age1three"], false),
        ],
    );
    let out = common::run(
        common::agefleet(dir.path())
            .args(["rules", "--nix-eval=builtin", "--rules"])
            .arg(&file),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        "a b.age\n  age1three\nb.age (armor)\n  age1one\n  age1two\n"
    );
}

// ---- failure paths ----------------------------------------------------------------------

struct Failure {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `agefleet rules [extra…] --rules <dir>/secrets.nix` on `src`.
fn run_rules(src: &str, extra: &[&str]) -> (tempfile::TempDir, Failure) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.nix");
    std::fs::write(&file, src).unwrap();
    let out = common::run(
        common::agefleet(dir.path())
            .arg("rules")
            .args(extra)
            .arg("--rules")
            .arg(&file),
    );
    let f = Failure {
        code: out.status.code(),
        stdout: common::stdout(&out),
        stderr: common::stderr(&out),
    };
    (dir, f)
}

/// The file fails as a whole with one line on stderr naming `secrets.nix:<line>:<col>`.
fn assert_file_error(src: &str, mode: &str, pos: &str, what: &str) {
    assert_error(src, mode, pos, what, &[true, false]);
}

/// Like [`assert_file_error`], for `--json` only (without it, an error inside one entry is
/// that entry's error).
fn assert_json_error(src: &str, mode: &str, pos: &str, what: &str) {
    assert_error(src, mode, pos, what, &[true]);
}

fn assert_error(src: &str, mode: &str, pos: &str, what: &str, json_modes: &[bool]) {
    for &json in json_modes {
        let mut extra = vec![mode];
        if json {
            extra.push("--json");
        }
        let (dir, f) = run_rules(src, &extra);
        assert_eq!(f.code, Some(1), "exit code; stderr: {}", f.stderr);
        assert_eq!(
            f.stderr.trim_end().lines().count(),
            1,
            "one line: {:?}",
            f.stderr
        );
        let sep = if pos.ends_with(':') { "" } else { ": " };
        let expected = format!("{}:{pos}{sep}", dir.path().join("secrets.nix").display());
        assert!(
            f.stderr.contains(&expected),
            "{:?} lacks {expected:?}",
            f.stderr
        );
        assert!(f.stderr.contains(what), "{:?} lacks {what:?}", f.stderr);
        assert!(f.stdout.is_empty());
    }
}

#[test]
fn syntax_error_names_file_line_col() {
    assert_file_error(
        "{\n  a = ;\n}\n",
        "--nix-eval=builtin",
        "2:7",
        "syntax error",
    );
    assert_file_error(
        "{ a = \"unterminated; }",
        "--nix-eval=builtin",
        "1:",
        "syntax error",
    );
}

#[test]
fn top_level_must_be_a_set() {
    let (_d, f) = run_rules("  [ 1 2 ]", &["--nix-eval=builtin"]);
    assert_eq!(f.code, Some(1));
    assert!(
        f.stderr
            .contains("secrets.nix:1:3: the rules file evaluates to a list, not an attribute set"),
        "{}",
        f.stderr
    );
}

#[test]
fn infinite_recursion_is_an_error() {
    assert_file_error(
        "let x = x; in x",
        "--nix-eval=builtin",
        "1:",
        "infinite recursion encountered",
    );
    assert_json_error(
        "let a = { b = a.b; }; in a",
        "--nix-eval=builtin",
        "1:",
        "infinite recursion encountered",
    );
}

#[test]
fn very_deep_nesting_is_an_error_not_a_crash() {
    let n = 20_000;
    let cases = [
        format!("{}1{}", "[".repeat(n), "]".repeat(n)),
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1;{}", "{ a = ".repeat(n), " }".repeat(n)),
        format!("{}1{}", "{ a = ".repeat(n), "; }".repeat(n)),
        format!("{}true", "!".repeat(n)),
        format!("[ {} [ ] ]", "[ 1 ] ++ ".repeat(n)),
    ];
    for src in cases {
        let (_d, f) = run_rules(&src, &["--nix-eval=builtin", "--json"]);
        assert_eq!(f.code, Some(1), "stderr: {}", f.stderr);
        assert_eq!(f.stderr.trim_end().lines().count(), 1, "{:?}", f.stderr);
        assert!(f.stderr.contains("secrets.nix:1:"), "{}", f.stderr);
        assert!(
            f.stderr.contains("too deep") || f.stderr.contains("too long"),
            "{}",
            f.stderr
        );
    }
}

#[test]
fn deep_recursion_at_runtime_is_an_error_not_a_crash() {
    let src =
        "let f = n: if n == 0 then [ ] else [ (f (n - 1)) ]; in { x.publicKeys = f 1000000; }";
    let (_d, f) = run_rules(src, &["--nix-eval=builtin", "--json"]);
    assert_eq!(f.code, Some(1), "stderr: {}", f.stderr);
    assert!(f.stderr.contains("nested too deeply"), "{}", f.stderr);
    let src =
        "let f = n: 1 + f (n + 1); in { x.publicKeys = [ (toString (f 0)) ]; y.publicKeys = [ ]; }";
    let (_d, f) = run_rules(src, &["--nix-eval=builtin"]);
    assert_eq!(f.code, Some(1), "stderr: {}", f.stderr);
    assert!(f.stderr.contains("secret \"x\""), "{}", f.stderr);
    assert!(
        f.stdout.contains("y\n"),
        "the other entry still loads: {}",
        f.stdout
    );
}

#[test]
fn undefined_variable_and_type_errors_name_the_construct() {
    assert_json_error(
        "{ a.publicKeys = [ foo ]; }",
        "--nix-eval=builtin",
        "1:20",
        "undefined variable 'foo'",
    );
    assert_file_error(
        "builtins.head 5",
        "--nix-eval=builtin",
        "1:1",
        "value is an integer while a list was expected",
    );
    assert_file_error(
        "{ a = { }.x; }.a",
        "--nix-eval=builtin",
        "1:11",
        "attribute 'x' missing",
    );
    assert_json_error(
        "{ a = [ ] ++ { }; }",
        "--nix-eval=builtin",
        "1:7",
        "value is a set while a list was expected",
    );
    assert_file_error(
        "{ a = 1; a = 2; }",
        "--nix-eval=builtin",
        "1:10",
        "attribute 'a' already defined at",
    );
    assert_file_error(
        "({ a, b }: a) { a = 1; }",
        "--nix-eval=builtin",
        "1:2",
        "called without required argument 'b'",
    );
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn bad_entries_are_reported_and_the_others_load() {
    let src = r#"{
  "good.age".publicKeys = [ "age1good" ];
  "thrown.age".publicKeys = throw "no key for this host yet";
  "string.age".publicKeys = "age1notalist";
  "number.age".publicKeys = [ 42 ];
  "missing.age".armor = true;
  "undefined.age".publicKeys = [ nope ];
}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.nix");
    std::fs::write(&file, src).unwrap();
    // Nix rejects undefined variables for the whole file, so check it without that entry.
    common::require_tool("nix-instantiate");
    for mode in [EvalMode::Builtin, EvalMode::Nix] {
        if mode == EvalMode::Nix {
            std::fs::write(
                &file,
                src.replace("\n  \"undefined.age\".publicKeys = [ nope ];", ""),
            )
            .unwrap();
        }
        let rules = rules::load(&file, mode).unwrap();
        let good = rules.entry("good.age").unwrap().rule.as_ref().unwrap();
        assert_eq!(good.public_keys, ["age1good"]);
        for (name, what) in [
            (
                "thrown.age",
                if mode == EvalMode::Builtin {
                    "no key for this host yet"
                } else {
                    "throw"
                },
            ),
            (
                "string.age",
                "publicKeys is a string while a list of strings was expected",
            ),
            ("number.age", "publicKeys element 1 is an integer"),
            ("missing.age", "no publicKeys"),
        ] {
            let err = rules
                .entry(name)
                .unwrap()
                .rule
                .as_ref()
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("secret \"{name}\"")), "{err}");
            assert!(err.contains(what), "{mode:?} {err}");
            assert!(err.contains("secrets.nix"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
    std::fs::write(&file, src).unwrap();
    let rules = rules::load(&file, EvalMode::Builtin).unwrap();
    let err = rules
        .entry("thrown.age")
        .unwrap()
        .rule
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secrets.nix:3:29: secret \"thrown.age\""),
        "{err}"
    );
    let err = rules
        .entry("string.age")
        .unwrap()
        .rule
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secrets.nix:4:3: secret \"string.age\": publicKeys is a string"),
        "{err}"
    );
    let err = rules
        .entry("undefined.age")
        .unwrap()
        .rule
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("7:34: secret \"undefined.age\": undefined variable 'nope'"),
        "{err}"
    );

    // The command lists every entry, reports each bad one and exits 1.
    let (_d, f) = run_rules(src, &["--nix-eval=builtin"]);
    assert_eq!(f.code, Some(1));
    assert!(f.stdout.contains("good.age\n  age1good\n"), "{}", f.stdout);
    assert_eq!(
        f.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .count(),
        5,
        "{}",
        f.stderr
    );
}

#[test]
fn missing_import_names_the_importing_position() {
    assert_file_error(
        "let k = import ./keys.nix; in k",
        "--nix-eval=builtin",
        "1:9",
        "cannot import",
    );
}

#[test]
fn error_in_an_imported_file_names_that_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.nix"), "{\n  alice = ;\n}\n").unwrap();
    let file = dir.path().join("secrets.nix");
    std::fs::write(
        &file,
        "with import ./keys.nix; { a.publicKeys = [ alice ]; }",
    )
    .unwrap();
    let err = rules::evaluate_json(&file, EvalMode::Builtin).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("keys.nix:2:11: syntax error"), "{msg}");
    assert!(matches!(
        err,
        RulesError::At {
            line: 2,
            col: 11,
            ..
        }
    ));
}

#[test]
fn missing_rules_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = rules::load(&dir.path().join("nope.nix"), EvalMode::Builtin).unwrap_err();
    assert!(matches!(err, RulesError::Io { .. }));
    assert!(err.to_string().contains("nope.nix"));
}

#[test]
fn unsupported_constructs_with_builtin_mode_say_so() {
    for (src, what) in [
        (
            "let pkgs = import <nixpkgs> { }; in { a.publicKeys = [ pkgs.k ]; }",
            "<nixpkgs>",
        ),
        (
            "with import <nixpkgs> { }; { a.publicKeys = [ k ]; }",
            "<nixpkgs>",
        ),
        (
            "{ a.publicKeys = [ builtins.currentSystem ]; }",
            "builtins.currentSystem",
        ),
        (
            "{ a = builtins.fetchGit { url = \"x\"; }; }",
            "builtins.fetchGit",
        ),
    ] {
        let (_d, f) = run_rules(src, &["--nix-eval=builtin", "--json"]);
        assert_eq!(f.code, Some(1), "{}", f.stderr);
        assert!(
            f.stderr.contains("not supported by the builtin evaluator"),
            "{}",
            f.stderr
        );
        assert!(f.stderr.contains(what), "{}", f.stderr);
        assert_eq!(f.stderr.trim_end().lines().count(), 1);
    }
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn auto_mode_falls_back_to_nix_for_unsupported_constructs() {
    common::require_tool("nix-instantiate");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.nix");
    std::fs::write(
        &file,
        "{ \"a.age\" = { publicKeys = [ \"age1x\" ]; armor = builtins.langVersion > 0; }; }",
    )
    .unwrap();
    let rules = rules::load(&file, EvalMode::Auto).unwrap();
    assert_eq!(rules.backend, Backend::Nix);
    let reason = rules.fallback_reason.clone().unwrap();
    assert!(reason.contains("builtins.langVersion"), "{reason}");
    assert!(rules.entry("a.age").unwrap().rule.as_ref().unwrap().armor);

    let (json, backend, reason) = rules::evaluate_json(&file, EvalMode::Auto).unwrap();
    assert_eq!(backend, Backend::Nix);
    assert!(reason.is_some());
    assert_eq!(
        json,
        serde_json::json!({"a.age": {"publicKeys": ["age1x"], "armor": true}})
    );

    // An unimplemented builtin reached any way falls back, with where and which.
    for (src, at) in [
        ("let inherit (builtins) langVersion; in", "secrets.nix:1:"),
        ("with builtins;", "secrets.nix:2:49:"),
        (
            "let langVersion = builtins.langVersion or 0; in",
            "secrets.nix:1:",
        ),
    ] {
        let body = "{ \"a.age\" = { publicKeys = [ \"age1x\" ]; armor = langVersion > 0; }; }";
        std::fs::write(&file, format!("{src}\n{body}")).unwrap();
        let rules = rules::load(&file, EvalMode::Auto).unwrap();
        assert_eq!(rules.backend, Backend::Nix, "{src}");
        let reason = rules.fallback_reason.clone().unwrap();
        assert!(reason.contains("builtins.langVersion"), "{src}: {reason}");
        assert!(reason.contains(at), "{src}: {reason}");
        assert!(
            rules.entry("a.age").unwrap().rule.as_ref().unwrap().armor,
            "{src}"
        );
        match rules::load(&file, EvalMode::Builtin) {
            Err(RulesError::Unsupported { what, .. }) => assert_eq!(what, "builtins.langVersion"),
            other => panic!("{src}: {other:?}"),
        }
    }

    // Supported files stay with the builtin evaluator.
    let plain = fixtures()[0].clone();
    let rules = rules::load(&plain, EvalMode::Auto).unwrap();
    assert_eq!(rules.backend, Backend::Builtin);
    assert!(rules.fallback_reason.is_none());

    // -v says so.
    let out = common::run(
        common::agefleet(dir.path())
            .args(["rules", "-v", "--rules"])
            .arg(&file),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("falling back to nix-instantiate"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn nix_mode_shows_nix_stderr_verbatim() {
    common::require_tool("nix-instantiate");
    let (_d, f) = run_rules("{ a = ; }", &["--nix-eval=nix", "--json"]);
    assert_eq!(f.code, Some(1));
    assert!(f.stderr.contains("nix-instantiate failed:"), "{}", f.stderr);
    assert!(f.stderr.contains("error: syntax error"), "{}", f.stderr);
}

#[test]
fn nix_mode_without_nix_says_how_to_proceed() {
    let empty = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules/01-plain/secrets.nix");
    let out = common::run(
        common::agefleet(empty.path())
            .env("PATH", empty.path())
            .args(["rules", "--nix-eval=nix", "--rules"])
            .arg(&file),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out)
            .contains("nix-instantiate not found: install Nix or use --nix-eval=builtin"),
        "{}",
        common::stderr(&out)
    );
    // Auto mode on a supported file does not need Nix at all.
    let out = common::run(
        common::agefleet(empty.path())
            .env("PATH", empty.path())
            .args(["rules", "--json", "--rules"])
            .arg(&file),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn a_thousand_rules_evaluate_like_nix() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = String::from("let\n  admins = [ \"age1admin\" ];\n  hosts = {\n");
    for i in 0..50 {
        src.push_str(&format!("    host{i} = \"ssh-ed25519 AAAAHOST{i}\";\n"));
    }
    src.push_str("  };\nin\nbuiltins.listToAttrs (builtins.genList (i: {\n  name = \"secrets/s${toString i}.age\";\n  value = { publicKeys = admins ++ [ hosts.\"host${toString (i - (i / 50) * 50)}\" ]; armor = i / 2 * 2 == i; };\n}) 500)\n");
    for i in 0..500 {
        src.push_str(&format!(
            "// {{ \"static/{i}.age\".publicKeys = admins; }}\n"
        ));
    }
    let file = dir.path().join("secrets.nix");
    std::fs::write(&file, &src).unwrap();
    let rules = rules::load(&file, EvalMode::Builtin).unwrap();
    assert_eq!(rules.entries.len(), 1000);
    assert!(rules.entries.iter().all(|e| e.rule.is_ok()));
    common::require_tool("nix-instantiate");
    let (builtin, _, _) = rules::evaluate_json(&file, EvalMode::Builtin).unwrap();
    assert_eq!(builtin, nix_json(&file));
}

/// Random `''` and `"` string literals (escapes, interpolations, indentation, blank lines)
/// evaluate to what Nix makes of them: one `nix-instantiate` call for all of them.
#[test]
#[ignore = "needs `nix-instantiate`"]
fn random_string_literals_match_nix() {
    common::require_tool("nix-instantiate");
    let indented = [
        "  ", " ", "\n", "\n", "a", "b c", "''$", "'''", "''\\n", "''\\t", "${x}", "${y}", "$",
        "x'y", "\t", "$$", "''\\'", "$a", "    ", "\n  ",
    ];
    let quoted = [
        "a", " ", "\\n", "\\\\", "\\\"", "${x}", "$", "$$", "\\$", "\\${", "\n", "\\t", "'",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut src = String::from("let x = \"X\"; y = \"\\n Y\"; in [\n");
    for i in 0..400 {
        let (pieces, open, close): (&[&str], &str, &str) = if i % 2 == 0 {
            (&indented, "''", "''")
        } else {
            (&quoted, "\"", "\"")
        };
        src.push_str(open);
        for _ in 0..next(12) {
            src.push_str(pieces[next(pieces.len())]);
        }
        src.push_str(close);
        src.push('\n');
    }
    src.push_str("]\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strings.nix");
    std::fs::write(&file, &src).unwrap();
    let expected = nix_json(&file);
    let (builtin, _, _) = rules::evaluate_json(&file, EvalMode::Builtin).unwrap();
    let (exp, got) = (expected.as_array().unwrap(), builtin.as_array().unwrap());
    assert_eq!(exp.len(), got.len());
    let literals: Vec<&str> = src.lines().skip(1).collect();
    for (i, (e, g)) in exp.iter().zip(got).enumerate() {
        assert_eq!(g, e, "literal #{i} near {:?}", literals.get(i));
    }
}

/// Tricky corners of the subset, each compared with Nix (one `nix-instantiate` call).
#[test]
#[ignore = "needs `nix-instantiate`"]
fn curated_expressions_match_nix() {
    common::require_tool("nix-instantiate");
    let exprs = [
        r#"toString [ 1 "a" null true false [ ] 2 [ [ ] ] "b" ]"#,
        r#"[ (toString 1.5) (toString (-3)) (toString ./.) ]"#,
        r#"[ 1.5 (1.0 / 3) 2.0 (1 + 0.5) (7 / 2) (-7 / 2) (0.1 * 3) ]"#,
        r#"builtins.split "" "ab""#,
        r#"builtins.split "a*" "baaac""#,
        r#"builtins.split "(x)(y)?" "axbxyc""#,
        r#"builtins.split "[[:space:]]+" " a  b ""#,
        r#"[ (builtins.match "(.*)\\.age" "dir/x.age") (builtins.match "a" "ab") (builtins.match "" "") ]"#,
        r#"builtins.replaceStrings [ "ab" "a" "" ] [ "X" "Y" "_" ] "aabab""#,
        r#"builtins.replaceStrings [ "\n" ] [ "" ] "k1\nk2\n""#,
        r#"builtins.sort (a: b: a.k < b.k) [ { k = 2; v = "x"; } { k = 1; v = "y"; } { k = 2; v = "z"; } { k = 1; v = "w"; } ]"#,
        r#"{ a.b.c = 1; a.b.d = 2; a = { e = 3; }; }"#,
        r#"let n = "k"; in { "${n}.age".publicKeys = [ ]; ${n + "2"}.armor = true; x.${n} = 1; x.y = 2; }"#,
        r#"let x = 1; in rec { inherit x; y = x + 1; z = { inherit y; }; }"#,
        r#"with { a = 1; b = 2; }; with { a = 3; }; [ a b ]"#,
        r#"let a = 0; in with { a = 1; }; a"#,
        r#"[ (builtins.tryEval (throw "x")) (builtins.tryEval (assert false; 1)) (builtins.tryEval 1) ]"#,
        r#"[ ({ }.a or 1) ({ a = { }; }.a.b or 2) ({ a = 3; }.a or 4) ]"#,
        r#"[ (builtins.substring 2 100 "abc") (builtins.substring 5 1 "abc") (builtins.substring 0 0 "abc") ]"#,
        r#"[ (baseNameOf "/a/b.age") (baseNameOf "b") (baseNameOf "a/") (dirOf "a/b/c") (dirOf "/") ]"#,
        r#"builtins.toJSON [ "a\nb\t\"\\ é" 1 null { z = 1; a = [ ]; } ]"#,
        r#"builtins.fromJSON "[1, -2, 3.5, \"\\u00e9\\n\", {\"b\": null, \"a\": true}]""#,
        r#"[ (builtins.attrNames { b = 1; a = 2; "A" = 3; "_" = 4; "1" = 5; }) ]"#,
        r#"builtins.listToAttrs [ { name = "x"; value = 1; } { name = "x"; value = 2; } ]"#,
        r#"builtins.mapAttrs (name: v: "${name}=${toString v}") { a = 1; b = 2; }"#,
        r#"builtins.foldl' (acc: x: acc ++ [ (x * 2) ]) [ ] (builtins.genList (i: i) 5)"#,
        r#"[ (builtins.elem [ 1 ] [ [ 1 ] ]) (builtins.elem 2 [ 1 ]) ([ 1 2 ] < [ 1 3 ]) ("a" < "B") ]"#,
        r#"[ (builtins.typeOf null) (builtins.typeOf (x: x)) (builtins.typeOf map) (builtins.typeOf 1.0) ]"#,
        r#"[ (builtins.catAttrs "a" [ { a = 1; } { b = 2; } { a = 3; } ]) (builtins.intersectAttrs { a = 0; } { a = 1; b = 2; }) ]"#,
        r#"[ (builtins.all (x: x > 0) [ ]) (builtins.any (x: x > 0) [ ]) (builtins.length (builtins.concatLists [ [ 1 ] [ ] [ 2 3 ] ])) ]"#,
        r#"[ (builtins.hasAttr "a" { a = null; }) (builtins.getAttr "a" { a = 5; }) ({ a = 1; } ? "a") ]"#,
        r#"({ a, b ? a * 10, ... }@args: [ a b args ]) { a = 1; c = 2; }"#,
        r#"let f = { x ? y, y ? 5 }: x; in f { }"#,
        r#"let s = { __functor = self: x: x + self.n; n = 10; }; in s 5"#,
        r#"''
          a
            ${"b"}
           c''"#,
        r#"''${"x"}
            y
          z''"#,
        r#""a${"b${"c"}"}d\${e}$$f""#,
        r#"[ (-(1)) (- 2) (!true) (!(1 == 2)) (1 != 1.0) (true -> false) ]"#,
        r#"[ (builtins.isFunction map) (builtins.isFunction (builtins.map (x: x))) (builtins.isPath ./.) ]"#,
        r#"builtins.removeAttrs { a = 1; b = 2; c = 3; } [ "a" "c" "d" ]"#,
        r#"builtins.concatStringsSep "/" [ "a" "b" "" "c" ]"#,
        r#"builtins.stringLength "é€""#,
        r#"builtins.deepSeq { a = [ 1 ]; } (builtins.seq 1 "ok")"#,
    ];
    let src = format!(
        "[\n{}\n]\n",
        exprs
            .iter()
            .map(|e| format!("({e})"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("curated.nix");
    std::fs::write(&file, &src).unwrap();
    let expected = nix_json(&file);
    let (builtin, _, _) = rules::evaluate_json(&file, EvalMode::Builtin).unwrap();
    let (exp, got) = (expected.as_array().unwrap(), builtin.as_array().unwrap());
    for (i, (e, g)) in exp.iter().zip(got).enumerate() {
        assert_eq!(g, e, "{}", exprs[i]);
    }
    assert_eq!(exp.len(), got.len());
}

/// Without root there is no usable store or daemon socket: the Nix backend still evaluates
/// (it passes `--store dummy://`).
#[test]
#[ignore = "needs root, `nix-instantiate`, `setpriv`"]
fn nix_backend_works_without_root() {
    common::require_root();
    common::require_tool("nix-instantiate");
    common::require_tool("setpriv");
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules/02-with-import-keys");
    for f in ["secrets.nix", "keys.nix"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let expected = nix_json(&dir.path().join("secrets.nix"));
    for json in [true, false] {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_agefleet"))
            .args(["rules", "--nix-eval=nix", "--rules"])
            .arg(dir.path().join("secrets.nix"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .current_dir(dir.path());
        if json {
            cmd.arg("--json");
        }
        let out = common::run(&mut cmd);
        assert!(out.status.success(), "{}", common::stderr(&out));
        if json {
            let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(got, expected);
        } else {
            assert!(
                common::stdout(&out).contains("yubikey-only.age\n  age1"),
                "{}",
                common::stdout(&out)
            );
        }
    }
}

/// `builtins.X` reached every way Nix reaches it, for implemented and unimplemented names:
/// the builtin evaluator's answer, each a file of its own.
const BUILTIN_REACH: &[&str] = &[
    "builtins.attrNames (builtins.readDir ./.)",
    "let inherit (builtins) readDir; in builtins.attrNames (readDir ./.)",
    "with builtins; attrNames (readDir ./.)",
    "builtins ? readDir",
    "builtins ? toFile",
    "builtins ? notABuiltin",
    "(builtins.readDir or (_: { })) ./.",
    "(builtins.toFile or (_: _: \"default\")) \"n\" \"s\"",
    "builtins.notABuiltin or \"default\"",
    "let inherit (builtins) currentSystem; in currentSystem",
    "with builtins; [ nixVersion ]",
    "__readDir ./.",
    "builtins.attrNames builtins",
    "builtins.length (builtins.attrValues builtins)",
    "with builtins; fromTOML \"a = 1\"",
    "builtins.functionArgs ({ a, b ? 1 }: a)",
];

/// Every rules fixture, every fuzz seed and regression, and [`BUILTIN_REACH`] through both
/// backends: the same value, or an error from both, or a "not supported" error from the
/// builtin evaluator (which `--nix-eval auto` hands to Nix). Never a different value.
#[test]
#[ignore = "needs `nix-instantiate`"]
fn builtin_evaluator_never_gives_a_value_nix_would_not() {
    common::require_tool("nix-instantiate");
    let scratch = tempfile::tempdir().unwrap();
    let mut files = fixtures();
    let inputs = crate::fuzz_regressions::inputs("rules_eval");
    let sources = inputs.iter().map(|(_, data)| data.as_slice());
    let reach = BUILTIN_REACH.iter().map(|s| s.as_bytes());
    for (i, data) in sources.chain(reach).enumerate() {
        let dir = scratch.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.age"), "").unwrap();
        std::fs::write(dir.join("secrets.nix"), data).unwrap();
        files.push(dir.join("secrets.nix"));
    }
    let (mut same, mut unsupported) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let builtin = rules::evaluate_json(file, EvalMode::Builtin);
        let nix = rules::evaluate_json(file, EvalMode::Nix);
        match (builtin, nix) {
            (Ok((b, ..)), Ok((n, ..))) => {
                assert_eq!(b, n, "{}:\n{text}", file.display());
                same += 1;
            }
            (Err(RulesError::Unsupported { .. }), _) => unsupported += 1,
            (Err(_), Err(_)) => {}
            (b, n) => panic!("{}: builtin {b:?}, nix {n:?}\n{text}", file.display()),
        }
    }
    eprintln!(
        "{} files: {same} equal values, {unsupported} not supported by the builtin evaluator",
        files.len()
    );
    // The cases above: values compared, and unimplemented builtins reached every way.
    assert!(same >= 40, "{same} values compared");
    assert!(unsupported >= 5, "{unsupported} unsupported");
}

/// The builtin evaluator's `builtins` has exactly the names of the `nix-instantiate` on
/// `PATH`, each reachable without `builtins.` exactly when Nix's is (as `X` or `__X`).
#[test]
#[ignore = "needs `nix-instantiate`"]
fn builtins_names_and_global_names_are_those_of_nix() {
    common::require_tool("nix-instantiate");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("names.nix");
    std::fs::write(&file, "builtins.attrNames builtins").unwrap();
    let (ours, ..) = rules::evaluate_json(&file, EvalMode::Builtin).unwrap();
    let version = common::stdout(&common::run(
        Command::new("nix-instantiate").arg("--version"),
    ));
    assert_eq!(
        ours,
        nix_json(&file),
        "the table is Nix {}'s; this is {}",
        rules::NIX_BUILTINS_VERSION,
        version.trim()
    );
    // Nix refuses an undefined variable when parsing; the builtin evaluator when using it.
    let nix_defines = |name: &str| {
        common::run(Command::new("nix-instantiate").args(["--parse", "-E", name]))
            .status
            .success()
    };
    let we_define = |name: &str| {
        std::fs::write(&file, name).unwrap();
        match rules::evaluate_json(&file, EvalMode::Builtin) {
            Err(e) => !e.to_string().contains("undefined variable"),
            Ok(_) => true,
        }
    };
    for name in ours.as_array().unwrap() {
        let name = name.as_str().unwrap();
        let global = nix_defines(name);
        assert_eq!(we_define(name), global, "{name}");
        // Nix has `__X` for the builtins that are not global.
        let prefixed = format!("__{name}");
        let nix_prefixed = !global && nix_defines(&prefixed);
        assert_eq!(we_define(&prefixed), nix_prefixed, "{prefixed}");
    }
}
