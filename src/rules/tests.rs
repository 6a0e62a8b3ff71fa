//! Unit tests of the builtin evaluator: laziness, recursion, patterns, scoping, attribute
//! set construction, operators, and a property test against expected JSON.

use std::path::Path;

use proptest::prelude::*;
use serde_json::json;

use super::eval::{ErrorKind, Evaluator};

/// Evaluates `src` as a file in `/nonexistent` (so nothing is read from disk) on the
/// evaluator's own stack, returning its JSON or the error message (and whether it is an
/// "unsupported" error).
fn eval_src(src: &str) -> Result<serde_json::Value, (ErrorKind, String)> {
    let src = src.to_string();
    super::on_eval_stack(Path::new("t.nix"), &mut || (), move |max_depth| {
        let mut ev = Evaluator::with_max_depth(max_depth);
        Ok(ev
            .eval_root(Path::new("/nonexistent/t.nix"), src)
            .and_then(|v| ev.json_value(&v))
            .map_err(|e| (e.kind, e.message)))
    })
    .expect("evaluator thread")
}

fn ok(src: &str) -> serde_json::Value {
    match eval_src(src) {
        Ok(v) => v,
        Err(e) => panic!("{src}: {e:?}"),
    }
}

fn err(src: &str) -> String {
    match eval_src(src) {
        Ok(v) => panic!("{src} evaluated to {v}"),
        Err((_, m)) => m,
    }
}

#[test]
fn evaluation_is_lazy() {
    assert_eq!(ok("let x = throw \"boom\"; in 1"), json!(1));
    assert_eq!(ok("{ a = throw \"x\"; b = 2; }.b"), json!(2));
    assert_eq!(
        ok("builtins.length [ (throw \"x\") (abort \"y\") ]"),
        json!(2)
    );
    assert_eq!(ok("(x: 3) (throw \"unused\")"), json!(3));
    assert_eq!(ok("false && throw \"no\""), json!(false));
    assert_eq!(
        ok("builtins.head (map (x: x * 2) [ 1 (throw \"later\") ])"),
        json!(2)
    );
}

#[test]
fn self_reference_is_infinite_recursion_not_a_hang() {
    assert!(err("let x = x; in x").contains("infinite recursion encountered"));
    assert!(err("rec { a = b; b = a; }.a").contains("infinite recursion encountered"));
    // Still fine when the cycle is never forced.
    assert_eq!(ok("rec { a = b; b = a; c = 1; }.c"), json!(1));
    // A failed thunk fails again rather than looking like recursion.
    assert_eq!(
        ok("let x = throw \"t\"; in [ (builtins.tryEval x).success (builtins.tryEval x).success ]"),
        json!([false, false])
    );
}

#[test]
fn deep_recursion_hits_the_depth_limit() {
    assert!(err("let f = n: f (n + 1); in f 0").contains("nested too deeply"));
    assert!(err("let f = n: [ (f n) ]; in f 0").contains("nested too deeply"));
    // Moderate recursion is fine.
    assert_eq!(
        ok("let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 500"),
        json!(500)
    );
}

#[test]
fn lambda_patterns() {
    assert_eq!(
        ok("({ a, b ? a + 1, ... }@args: [ a b (builtins.attrNames args) ]) { a = 1; c = 3; }"),
        json!([1, 2, ["a", "c"]])
    );
    assert_eq!(ok("(args@{ a }: args.a) { a = 5; }"), json!(5));
    assert_eq!(ok("({ a ? 1 }: a) { }"), json!(1));
    assert!(err("({ a }: a) { }").contains("called without required argument 'a'"));
    assert!(err("({ a }: a) { a = 1; b = 2; }").contains("called with unexpected argument 'b'"));
    assert!(err("({ a }: a) 1").contains("value is an integer while a set was expected"));
    assert!(err("1 2").contains("attempt to call something which is not a function but an integer"));
}

#[test]
fn scoping_with_and_builtins() {
    assert_eq!(
        ok("let a = 1; in with { a = 2; b = 3; }; [ a b ]"),
        json!([1, 3])
    );
    assert_eq!(ok("with { a = 1; }; with { a = 2; }; a"), json!(2));
    // Lexical builtins win over `with`, as in Nix.
    assert_eq!(ok("with { true = false; }; true"), json!(true));
    assert_eq!(ok("let map = 1; in map"), json!(1));
    assert!(err("with { }; nope").contains("undefined variable 'nope'"));
}

#[test]
fn attribute_sets_merge_and_inherit_like_nix() {
    assert_eq!(
        ok("{ a.b = 1; a.c = 2; a = { d = 3; }; }"),
        json!({"a": {"b": 1, "c": 2, "d": 3}})
    );
    assert_eq!(
        ok("{ \"x.age\".publicKeys = [ \"k\" ]; \"x.age\".armor = true; }"),
        json!({"x.age": {"publicKeys": ["k"], "armor": true}})
    );
    assert!(err("{ a.b = 1; a.b = 2; }").contains("attribute 'b' already defined at"));
    assert!(err("{ a = 1; a.b = 2; }").contains("attribute 'a' already defined at"));
    // Nix never merges dynamic attributes.
    assert!(
        err("let n = \"k\"; in { \"${n}.age\".publicKeys = [ ]; \"${n}.age\".armor = true; }")
            .contains("dynamic attribute 'k.age' already defined at")
    );
    assert!(err("{ a = 1; ${\"a\"} = 2; }").contains("attribute 'a' already defined at"));
    assert_eq!(
        ok("let x = 1; in rec { inherit x; y = x; }"),
        json!({"x": 1, "y": 1})
    );
    assert_eq!(ok("rec { x = 2; y = { inherit x; }; }.y"), json!({"x": 2}));
    assert_eq!(
        ok("let s = { a = 1; b = 2; }; in { inherit (s) a b; }"),
        json!({"a": 1, "b": 2})
    );
    assert_eq!(ok("{ ${null} = 1; b = 2; }"), json!({"b": 2}));
    assert_eq!(
        ok("let n = \"k\"; in { ${n} = 1; \"${n}2\" = 2; }"),
        json!({"k": 1, "k2": 2})
    );
    assert_eq!(ok("{ b = 1; a = 2; }"), json!({"a": 2, "b": 1}));
    assert_eq!(ok("{ a = 1; } ? a"), json!(true));
    assert_eq!(ok("{ a = 1; } ? a.b"), json!(false));
    assert_eq!(ok("{ a = 1; }.b or 7"), json!(7));
}

#[test]
fn strings_and_interpolation() {
    assert_eq!(ok("let n = \"x\"; in \"a${n}b${\"c\"}\""), json!("axbc"));
    assert_eq!(ok("\"a\\nb\\t\\\"\\\\\""), json!("a\nb\t\"\\"));
    assert_eq!(
        ok("let k = \"K\"; in ''\n  one ${k}\n    two\n''"),
        json!("one K\n  two\n")
    );
    assert!(err("\"${1}\"").contains("cannot coerce an integer to a string"));
    assert_eq!(
        ok("toString [ 1 \"a\" null true false [ ] 2 ]"),
        json!("1 a  1  2") // as nix-instantiate 2.8 prints it
    );
    assert_eq!(
        ok("builtins.toJSON { b = [ 1 \"x\" ]; a = null; }"),
        json!("{\"a\":null,\"b\":[1,\"x\"]}")
    );
    assert_eq!(
        ok("builtins.fromJSON ''{\"a\": [1, 2.5, \"s\", null, true]}''"),
        json!({"a": [1, 2.5, "s", null, true]})
    );
}

#[test]
fn operators() {
    assert_eq!(
        ok("[ (1 + 2 * 3) (\"a\" + \"b\") ([ 1 ] ++ [ 2 ]) ({ a = 1; } // { a = 2; b = 3; }) (7 / 2) (0 - 5) ]"),
        json!([7, "ab", [1, 2], {"a": 2, "b": 3}, 3, -5])
    );
    assert_eq!(
        ok("[ (1 == 1.0) ([ 1 2 ] == [ 1 2 ]) ({ a = [ 1 ]; } == { a = [ 1 ]; }) (!true) (true -> false) (false -> throw \"x\") (2 <= 2) (\"a\" < \"b\") (3 > 4) (2 >= 2) ((x: x) == (x: x)) ]"),
        json!([true, true, true, false, false, true, true, true, false, true, false])
    );
    assert!(err("1 / 0").contains("division by zero"));
    assert!(err("9223372036854775807 + 1").contains("integer overflow"));
    assert!(err("[ ] ++ { }").contains("value is a set while a list was expected"));
    assert!(err("if 1 then 2 else 3").contains("value is an integer while a Boolean was expected"));
    assert!(err("assert 1 == 2; 3").contains("assertion '1 == 2' failed"));
    assert_eq!(ok("[ 1.5 (1.0 / 3) 2.0 ]"), json!([1.5, 0.333333, 2]));
}

#[test]
fn list_and_set_builtins() {
    assert_eq!(
        ok("builtins.listToAttrs [ { name = \"a\"; value = 1; } { name = \"a\"; value = 2; } { name = \"b\"; value = 3; } ]"),
        json!({"a": 1, "b": 3})
    );
    assert_eq!(
        ok("builtins.mapAttrs (n: v: n + v) { a = \"1\"; b = \"2\"; }"),
        json!({"a": "a1", "b": "b2"})
    );
    assert_eq!(
        ok("builtins.foldl' (a: b: a * 10 + b) 0 [ 1 2 3 ]"),
        json!(123)
    );
    assert_eq!(ok("builtins.genList (i: i * i) 4"), json!([0, 1, 4, 9]));
    assert_eq!(
        ok("builtins.sort (a: b: a < b) [ 3 1 2 1 ]"),
        json!([1, 1, 2, 3])
    );
    assert_eq!(
        ok("builtins.removeAttrs { a = 1; b = 2; } [ \"a\" \"z\" ]"),
        json!({"b": 2})
    );
    assert_eq!(
        ok("builtins.concatMap (x: [ x x ]) [ 1 2 ]"),
        json!([1, 1, 2, 2])
    );
    assert_eq!(
        ok("builtins.split \"(a)|b\" \"xaybz\""),
        json!(["x", ["a"], "y", [null], "z"])
    );
    assert_eq!(ok("builtins.match \"a(b)?c\" \"ac\""), json!([null]));
    assert_eq!(
        ok("builtins.replaceStrings [ \"\" ] [ \"-\" ] \"ab\""),
        json!("-a-b-")
    );
    assert_eq!(
        ok("[ (baseNameOf \"a/b/\") (dirOf \"a/b\") (dirOf \"a\") (dirOf \"/a\") ]"),
        json!(["b", "a", ".", "/"])
    );
    assert_eq!(ok("toString ./a/../b.nix"), json!("/nonexistent/b.nix"));
    // An absolute path that starts with an interpolation (rnix < 0.14 failed to parse it).
    assert_eq!(ok("let d = \"etc\"; in toString /${d}/x"), json!("/etc/x"));
    assert!(err("builtins.head [ ]").contains("out of bounds"));
    assert!(err("builtins.tail [ ]").contains("empty list"));
}

#[test]
fn outside_the_subset_is_unsupported() {
    for src in [
        "import <nixpkgs>",
        "builtins.currentSystem",
        "builtins.fetchGit { url = \"x\"; }",
        "derivation { }",
        "let legacy = let { body = 1; }; in legacy",
        "\"${./x}\"",
        "[ ./x ]",
        "__curPos",
        "<nixpkgs>",
        "~/x",
    ] {
        match eval_src(src) {
            Err((ErrorKind::Unsupported, _)) => {}
            other => panic!("{src}: {other:?}"),
        }
    }
    // A name Nix's builtins do not have is missing, as in Nix: the default is taken.
    assert_eq!(ok("builtins.notABuiltin or \"none\""), json!("none"));
    assert_eq!(ok("builtins ? notABuiltin"), json!(false));
}

/// Evaluates `src` as the file `dir/t.nix`.
fn eval_in(dir: &Path, src: &str) -> Result<serde_json::Value, (ErrorKind, String)> {
    let (file, src) = (dir.join("t.nix"), src.to_string());
    super::on_eval_stack(Path::new("t.nix"), &mut || (), move |max_depth| {
        let mut ev = Evaluator::with_max_depth(max_depth);
        Ok(ev
            .eval_root(&file, src)
            .and_then(|v| ev.json_value(&v))
            .map_err(|e| (e.kind, e.message)))
    })
    .expect("evaluator thread")
}

#[test]
fn builtins_holds_every_name_nix_has_and_the_unimplemented_ones_are_unsupported_however_reached() {
    let names: Vec<&str> = super::nix_builtins::NAMES.iter().map(|(n, _)| *n).collect();
    assert_eq!(ok("builtins.attrNames builtins"), json!(names));
    // Every implemented builtin is one of Nix's names.
    for (name, _, _) in super::builtins::TABLE {
        assert!(names.contains(name), "{name} is not a Nix builtin");
    }
    let unsupported = |src: &str, what: &str| match eval_src(src) {
        Err((ErrorKind::Unsupported, m)) => assert_eq!(m, what, "{src}"),
        other => panic!("{src}: {other:?}"),
    };
    for src in [
        "builtins.toFile \"n\" \"s\"",
        "let inherit (builtins) toFile; in toFile \"n\" \"s\"",
        "with builtins; toFile \"n\" \"s\"",
        "builtins.toFile or (_: _: \"default\") \"n\" \"s\"",
        "__toFile \"n\" \"s\"",
        "builtins.isFunction builtins.toFile",
    ] {
        unsupported(src, "builtins.toFile");
    }
    unsupported("fetchGit { url = \"x\"; }", "builtins.fetchGit");
    unsupported("builtins.nixVersion or \"none\"", "builtins.nixVersion");
    unsupported("with builtins; currentSystem", "builtins.currentSystem");
    // The first unimplemented name in order.
    unsupported(
        "builtins.deepSeq (builtins.attrValues builtins) 1",
        "builtins.addErrorContext",
    );
    // Present, as in Nix, without being used (`?` does not force what it finds).
    assert_eq!(ok("{ a = throw \"x\"; } ? a"), json!(true));
    assert_eq!(
        ok("[ (builtins ? toFile) (builtins ? readDir) (builtins.builtins ? map) ]"),
        json!([true, true, true])
    );
    assert_eq!(
        ok("builtins.length (builtins.attrValues builtins)"),
        json!(names.len())
    );
    // Lexical globals win over `with`, whether implemented or not (as in Nix).
    unsupported("with { fetchGit = 1; }; fetchGit", "builtins.fetchGit");
    assert_eq!(
        ok("[ (__add 1 2) builtins.true (__isAttrs builtins) ]"),
        json!([3, true, true])
    );
    // Only the global ones are reachable without a prefix.
    assert!(err("readDir ./.").contains("undefined variable 'readDir'"));
    assert!(err("__map").contains("undefined variable '__map'"));
}

#[test]
fn read_dir_lists_entries_by_type_like_nix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("a.age"), "").unwrap();
    std::os::unix::fs::symlink("a.age", d.join("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", d.join("dangling")).unwrap();
    std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    std::os::unix::fs::symlink("sub", d.join("to-sub")).unwrap();
    let listing = json!({
        "a.age": "regular", "dangling": "symlink", "link": "symlink", "sub": "directory",
        "sock": "unknown", "t.nix": "regular", "to-sub": "symlink"
    });
    std::fs::write(d.join("t.nix"), "").unwrap();
    let abs = d.display().to_string();
    for src in [
        "builtins.readDir ./.".to_string(),
        "let inherit (builtins) readDir; in readDir ./sub/..".to_string(),
        format!("with builtins; readDir \"{abs}\""),
        format!("__readDir {abs}/."),
    ] {
        assert_eq!(eval_in(d, &src), Ok(listing.clone()), "{src}");
    }
    // The directory itself is reached through a symlink, as Nix does.
    assert_eq!(eval_in(d, "builtins.readDir ./to-sub"), Ok(json!({})));
    // Refused as Nix refuses: not a directory, missing, a relative string.
    let refused = |src: &str, what: &str| match eval_in(d, src) {
        Err((ErrorKind::Eval, m)) => assert!(m.contains(what), "{src}: {m}"),
        other => panic!("{src}: {other:?}"),
    };
    refused("builtins.readDir ./a.age", "Not a directory");
    refused("builtins.readDir ./link", "Not a directory");
    refused("builtins.readDir ./dangling", "No such file or directory");
    refused("builtins.readDir ./nope", "opening directory");
    refused(
        "builtins.readDir \"sub\"",
        "doesn't represent an absolute path",
    );
}

/// A random expression printed as Nix source, with the JSON it must evaluate to.
fn expr() -> impl Strategy<Value = (String, serde_json::Value)> {
    let leaf = prop_oneof![
        (-1000i64..1000).prop_map(|i| (format!("({i})"), json!(i))),
        "[a-zA-Z0-9 \"$\\\\{}\n]{0,8}".prop_map(|s| {
            let mut lit = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => lit.push_str("\\\""),
                    '\\' => lit.push_str("\\\\"),
                    '$' => lit.push_str("\\$"),
                    '\n' => lit.push_str("\\n"),
                    c => lit.push(c),
                }
            }
            lit.push('"');
            (lit, json!(s))
        }),
        any::<bool>().prop_map(|b| (b.to_string(), json!(b))),
        Just(("null".to_string(), json!(null))),
        ((-1000i64..1000), (-1000i64..1000))
            .prop_map(|(a, b)| (format!("({a} + {b} * 2)"), json!(a + b * 2))),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|items| {
                let src = items
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let json = items.into_iter().map(|(_, j)| j).collect::<Vec<_>>();
                (format!("[ {src} ]"), serde_json::Value::Array(json))
            }),
            prop::collection::btree_map("[a-z]{1,3}", inner.clone(), 0..4).prop_map(|m| {
                let src: String = m
                    .iter()
                    .map(|(k, (s, _))| format!("\"{k}\" = {s}; "))
                    .collect();
                let json: serde_json::Map<_, _> = m.into_iter().map(|(k, (_, j))| (k, j)).collect();
                (format!("{{ {src}}}"), serde_json::Value::Object(json))
            }),
            (inner.clone(), inner.clone(), any::<bool>()).prop_map(|((a, ja), (b, jb), c)| {
                (
                    format!("(if {c} then {a} else {b})"),
                    if c { ja } else { jb },
                )
            }),
            (inner.clone(), inner.clone())
                .prop_map(|((a, ja), (b, _))| { (format!("(let x = {a}; y = {b}; in x)"), ja) }),
            inner.prop_map(|(a, ja)| (format!("((v: v) {a})"), ja)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_expressions_evaluate_to_their_json((src, expected) in expr()) {
        prop_assert_eq!(eval_src(&src).map_err(|e| e.1), Ok(expected));
    }
}

/// Token soup: any arrangement of Nix tokens must give a value or an error, never a panic.
fn token_soup() -> impl Strategy<Value = String> {
    let tokens = [
        "{", "}", "[", "]", "(", ")", "let", "in", "rec", "inherit", "with", "x", "y", "=", ";",
        ":", "\"a\"", "''b''", "\"${", "${", "1", "2.5", "++", "//", "+", "-", "*", "/", "!", ".",
        "?", "or", "@", "...", ",", "./p", "<n>", "if", "then", "else", "assert", "==", "&&", "||",
        "->", "<", "builtins", "map", "throw", "import", "null", "true", " ", "\n", "#c\n", "''",
        "\"", "}:", "a.b", "__x",
    ];
    prop::collection::vec(prop::sample::select(tokens.to_vec()), 0..40).prop_map(|ts| ts.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn token_soup_never_panics(src in token_soup()) {
        if let Err((_, m)) = eval_src(&src) {
            prop_assert!(!m.contains("internal error"), "{}: {}", src, m);
        }
    }
}
