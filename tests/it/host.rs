//! `host add` / `host remove`: in-place edits of hand-written secrets.nix files (agenix's
//! README layout, a grouped layout with comments and odd spacing), verified by evaluation,
//! checked against nix-instantiate, rekeyed so the reference `age` CLI decrypts with the new
//! host's key, in real git repositories.

use crate::common;

use std::process::{Command, Output};

use crate::common::sshd::git;
use crate::common::{
    assert_clean_failure, require_tool, ssh_keygen, stderr, stdout, Fleet, SshKey,
};

/// agenix's README layout with the fleet's admin key as `user1`.
fn readme_layout(admin: &str, system1: &str) -> String {
    format!(
        r#"let
  user1 = "{admin}";
  user2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe";
  users = [ user1 user2 ];

  system1 = "{system1}";
  system2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFPG3Kmr84FWS1gUFTWoLTBd+ZJL7l0EdU5zPuc9khI";
  systems = [ system1 system2 ];
in
{{
  "secret1.age".publicKeys = [ user1 system1 ];
  "secret2.age".publicKeys = users ++ systems;
  "armored-secret.age" = {{
    publicKeys = [ user1 ];
    armor = true;
  }};
}}
"#
    )
}

/// A grouped layout: multi-line lists, comments on and between elements, tabs, odd spacing.
fn grouped_layout(admin: &str) -> String {
    format!(
        "# fleet secrets\nlet\n  # people\n  alice = \"{admin}\";   # laptop\n\tbob=\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe\";\n\n  users = [\n    alice # admin\n    bob\n  ];\n  # machines\n  web1 = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINTTvpsEQ7aLBiauO5MAgR4sBvvOEWIEswnbv4DMjJiV\";\n  systems = [ web1 ];\nin {{\n  \"web/tls.age\".publicKeys = users ++ systems;\n  \"db.age\".publicKeys =   [ alice ];\n  \"all.age\" = {{ publicKeys = users ++ systems ++ [ ]; }};\n}}\n"
    )
}

struct Repo {
    fleet: Fleet,
    host: SshKey,
}

/// A fleet whose secrets dir is a git repository with `rules` and the given secrets
/// (encrypted by the reference age CLI to the admin key), committed.
fn repo(rules: &str, secrets: &[&str]) -> Repo {
    let fleet = Fleet::new();
    let host = ssh_keygen(fleet.tmp.path(), "newhost", "ed25519", "");
    std::fs::write(fleet.path("secrets.nix"), rules).unwrap();
    for s in secrets {
        fleet.age_file(s, &[&fleet.admin.public_line], s.as_bytes());
    }
    git(&fleet.dir, &["init", "-q"]);
    git(&fleet.dir, &["add", "-A"]);
    git(&fleet.dir, &["commit", "-q", "-m", "initial"]);
    Repo { fleet, host }
}

fn run(r: &Repo, args: &[&str]) -> Output {
    r.fleet.run(args)
}

fn rules_text(r: &Repo) -> String {
    std::fs::read_to_string(r.fleet.path("secrets.nix")).unwrap()
}

/// `new` is `old` with exactly the `inserted` pieces inserted (in this order) and nothing
/// else changed.
fn assert_only_inserted(old: &str, new: &str, inserted: &[&str]) {
    let common = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let (mut new, mut old) = (new, old);
    for piece in inserted {
        let p = common(new, old);
        // The piece may start before the first difference when it begins like the old text.
        let at = (0..=p)
            .rev()
            .find(|&i| {
                new.is_char_boundary(i)
                    && new[i..].starts_with(piece)
                    && common(&new[i + piece.len()..], &old[i..]) > p - i
            })
            .unwrap_or_else(|| panic!("{piece:?} is not the next insertion in:\n{new}"));
        new = &new[at + piece.len()..];
        old = &old[at..];
    }
    assert_eq!(new, old, "more than the inserted text changed");
}

fn nix_json(file: &std::path::Path) -> serde_json::Value {
    let out = common::run(
        Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json", "--store", "dummy://"])
            .arg(file),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn builtin_json(r: &Repo) -> serde_json::Value {
    let out = run(r, &["rules", "--json", "--nix-eval=builtin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn keys_of(r: &Repo, secret: &str) -> Vec<String> {
    let j = builtin_json(r);
    let mut keys: Vec<String> = j[secret]["publicKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

#[test]
#[ignore = "needs `age`, `git`, `nix-instantiate`, `ssh-keygen`"]
fn add_like_on_the_readme_layout_inserts_only_the_new_text_and_rekeys() {
    require_tool("age");
    require_tool("git");
    let fleet = Fleet::new();
    let system1 = ssh_keygen(fleet.tmp.path(), "system1", "ed25519", "");
    let host = ssh_keygen(fleet.tmp.path(), "newhost", "ed25519", "");
    let rules = readme_layout(&fleet.admin.public_line, &system1.public_line);
    std::fs::write(fleet.path("secrets.nix"), &rules).unwrap();
    for s in ["secret1.age", "secret2.age"] {
        fleet.age_file(s, &[&fleet.admin.public_line], s.as_bytes());
    }
    git(&fleet.dir, &["init", "-q"]);
    git(&fleet.dir, &["add", "-A"]);
    git(&fleet.dir, &["commit", "-q", "-m", "initial"]);
    let r = Repo { fleet, host };

    let out = run(
        &r,
        &[
            "host",
            "add",
            "system3",
            "--key",
            &r.host.public_line,
            "--like",
            "system1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let new = rules_text(&r);
    let binding = format!("\n  system3 = \"{}\";", r.host.public_line);
    assert_only_inserted(&rules, &new, &[&binding, " system3", " system3"]);
    assert!(
        new.contains("systems = [ system1 system3 system2 ];"),
        "{new}"
    );
    assert!(new.contains("[ user1 system1 system3 ]"), "{new}");
    // The diff is printed on stdout.
    let diff = stdout(&out);
    assert!(
        diff.starts_with("--- a/secrets.nix\n+++ b/secrets.nix\n"),
        "{diff}"
    );
    assert!(diff.contains(&format!("+{}", &binding[1..])), "{diff}");

    // system3 reads what system1 reads; the other rule is unchanged.
    assert!(keys_of(&r, "secret1.age").contains(&r.host.public_line));
    assert!(keys_of(&r, "secret2.age").contains(&r.host.public_line));
    assert!(!keys_of(&r, "armored-secret.age").contains(&r.host.public_line));
    // Rekeyed: the reference age CLI decrypts with the new host's key.
    for s in ["secret1.age", "secret2.age"] {
        assert_eq!(r.fleet.age_plaintext(&r.host.private, s), s.as_bytes());
    }
    assert!(stderr(&out).contains("rekeyed 2 of 2"), "{}", stderr(&out));
    require_tool("nix-instantiate");
    assert_eq!(nix_json(&r.fleet.path("secrets.nix")), builtin_json(&r));
}

#[test]
#[ignore = "needs `age`, `git`, `nix-instantiate`, `ssh-keygen`"]
fn add_to_on_the_grouped_layout_keeps_comments_and_spacing() {
    require_tool("age");
    require_tool("git");
    let r = {
        let fleet = Fleet::new();
        let host = ssh_keygen(fleet.tmp.path(), "newhost", "ed25519", "");
        let rules = grouped_layout(&fleet.admin.public_line);
        std::fs::write(fleet.path("secrets.nix"), &rules).unwrap();
        fleet.age_file("db.age", &[&fleet.admin.public_line], b"db");
        git(&fleet.dir, &["init", "-q"]);
        git(&fleet.dir, &["add", "-A"]);
        git(&fleet.dir, &["commit", "-q", "-m", "initial"]);
        Repo { fleet, host }
    };
    let rules_before = rules_text(&r);
    let out = run(
        &r,
        &[
            "host",
            "add",
            "db1",
            "--key",
            &r.host.public_line,
            "--to",
            "db*",
            "./all.age",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let new = rules_text(&r);
    let binding = format!("\n  db1 = \"{}\";", r.host.public_line);
    assert_only_inserted(&rules_before, &new, &[&binding, " db1", " db1"]);
    assert!(
        new.contains("\"db.age\".publicKeys =   [ alice db1 ];"),
        "{new}"
    );
    assert!(new.contains("users ++ systems ++ [ db1 ]"), "{new}");
    assert_eq!(r.fleet.age_plaintext(&r.host.private, "db.age"), b"db");
    assert!(!keys_of(&r, "web/tls.age").contains(&r.host.public_line));
    require_tool("nix-instantiate");
    assert_eq!(nix_json(&r.fleet.path("secrets.nix")), builtin_json(&r));

    // --like alice: the multi-line group list gets db2 on its own line after alice's comment.
    let second = ssh_keygen(r.fleet.tmp.path(), "second", "ed25519", "");
    let out = run(
        &r,
        &[
            "host",
            "add",
            "carol",
            "--key",
            &second.public_line,
            "--like",
            "alice",
            "--no-rekey",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let new = rules_text(&r);
    assert!(
        new.contains("    alice # admin\n    carol\n    bob\n"),
        "{new}"
    );
    assert!(
        new.contains(&format!(
            "alice = \"{}\";   # laptop\n  carol = \"{}\";\n",
            r.fleet.admin.public_line, second.public_line
        )),
        "{new}"
    );
    assert!(new.contains("[ alice carol db1 ]"), "{new}");
    assert!(new.contains("# fleet secrets\nlet\n  # people\n"), "{new}");
    require_tool("nix-instantiate");
    assert_eq!(nix_json(&r.fleet.path("secrets.nix")), builtin_json(&r));
}

#[test]
#[ignore = "needs `age`, `git`, `nix-instantiate`, `ssh-keygen`"]
fn remove_drops_binding_and_references_rekeys_and_says_to_rotate() {
    require_tool("age");
    require_tool("git");
    let fleet = Fleet::new();
    let host = ssh_keygen(fleet.tmp.path(), "web1", "ed25519", "");
    let rules = format!(
        "let\n  admin = \"{}\";\n  web1 = \"{}\"; # the web server\n  webs = [\n    web1 # only one\n  ];\nin {{\n  \"tls.age\".publicKeys = [ admin ] ++ webs;\n  \"db.age\".publicKeys = [ web1 admin ];\n  \"other.age\".publicKeys = [ admin ];\n}}\n",
        fleet.admin.public_line, host.public_line
    );
    std::fs::write(fleet.path("secrets.nix"), &rules).unwrap();
    for s in ["tls.age", "db.age", "other.age"] {
        fleet.age_file(
            s,
            &[&fleet.admin.public_line, &host.public_line],
            s.as_bytes(),
        );
    }
    git(&fleet.dir, &["init", "-q"]);
    git(&fleet.dir, &["add", "-A"]);
    git(&fleet.dir, &["commit", "-q", "-m", "initial"]);
    let r = Repo { fleet, host };
    let out = run(&r, &["host", "remove", "web1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new = rules_text(&r);
    assert_eq!(
        new,
        format!(
            "let\n  admin = \"{}\";\n  webs = [\n  ];\nin {{\n  \"tls.age\".publicKeys = [ admin ] ++ webs;\n  \"db.age\".publicKeys = [ admin ];\n  \"other.age\".publicKeys = [ admin ];\n}}\n",
            r.fleet.admin.public_line
        )
    );
    let err = stderr(&out);
    assert!(
        err.contains("rekeying is not revocation — rotate these values"),
        "{err}"
    );
    assert!(
        err.contains("  db.age\n") && err.contains("  tls.age\n"),
        "{err}"
    );
    assert!(!err.contains("  other.age\n"), "{err}");
    // Rekeyed: web1 can no longer open the new ciphertexts (that is all rekeying does).
    for s in ["tls.age", "db.age"] {
        let o = common::age_decrypt(&r.host.private, &r.fleet.path(s));
        assert!(!o.status.success(), "{s} still opens with web1's key");
        assert_eq!(
            r.fleet
                .age_plaintext(&r.fleet.home.join(".ssh/id_ed25519"), s),
            s.as_bytes()
        );
    }
    require_tool("nix-instantiate");
    assert_eq!(nix_json(&r.fleet.path("secrets.nix")), builtin_json(&r));
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let r = repo(
        "let\n  a = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe\";\nin { \"x.age\".publicKeys = [ a ]; }\n",
        &[],
    );
    let before = rules_text(&r);
    let out = run(
        &r,
        &[
            "host",
            "add",
            "b",
            "--key",
            &r.host.public_line,
            "--like",
            "a",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("+in { \"x.age\".publicKeys = [ a b ]; }"),
        "{}",
        stdout(&out)
    );
    assert_eq!(rules_text(&r), before);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn untracked_rules_file_is_warned_about() {
    let fleet = Fleet::new();
    let host = ssh_keygen(fleet.tmp.path(), "h", "ed25519", "");
    git(&fleet.dir, &["init", "-q"]);
    std::fs::write(
        fleet.path("secrets.nix"),
        format!(
            "let\n  admin = \"{}\";\nin {{ \"x.age\".publicKeys = [ admin ]; }}\n",
            fleet.admin.public_line
        ),
    )
    .unwrap();
    let out = fleet.run(&[
        "host",
        "add",
        "h",
        "--key",
        &host.public_line,
        "--to",
        "x.age",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not tracked by git"),
        "{}",
        stderr(&out)
    );
}

/// Each bad input: a one-line error, exit 1 or 2, the rules file unchanged.
#[test]
#[ignore = "needs `ssh-keygen`"]
fn bad_input_is_refused_and_nothing_is_written() {
    let good = "let\n  a = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe\";\n  b = builtins.readFile ./b.pub;\n  c = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINTTvpsEQ7aLBiauO5MAgR4sBvvOEWIEswnbv4DMjJiV\";\n  alias = c;\nin {\n  \"x.age\".publicKeys = [ a b ];\n  \"y.age\".publicKeys = [ alias ];\n}\n";
    let r = repo(good, &[]);
    std::fs::write(
        r.fleet.path("b.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFPG3Kmr84FWS1gUFTWoLTBd+ZJL7l0EdU5zPuc9khI\n",
    )
    .unwrap();
    let key = r.host.public_line.clone();
    let weak = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["host", "add", "a", "--key", &key, "--like", "c"],
            "\"a\" is already bound at line 2",
        ),
        (
            vec!["host", "add", "n", "--key", &key, "--like", "nobody"],
            "no let binding named \"nobody\"",
        ),
        (
            vec![
                "host",
                "add",
                "n",
                "--key",
                "ssh-ed25519 notakey",
                "--like",
                "a",
            ],
            "invalid public key",
        ),
        (
            vec!["host", "add", "n", "--key", weak, "--like", "a"],
            "weak key",
        ),
        (
            vec!["host", "add", "n", "--key", &key, "--like", "b"],
            "cannot edit safely: the key of \"b\" is computed",
        ),
        (
            vec!["host", "add", "let", "--key", &key, "--like", "a"],
            "not a plain Nix identifier",
        ),
        (
            vec!["host", "add", "n", "--key", &key, "--to", "nothing*"],
            "no secret matches \"nothing*\"",
        ),
        // c reaches y.age through `alias`, not a list element: the edit cannot give n
        // exactly c's secrets, and verification says so.
        (
            vec!["host", "add", "n", "--key", &key, "--like", "c"],
            "would not do exactly what was asked",
        ),
        (vec!["host", "remove", "b"], "cannot edit safely"),
        (
            vec!["host", "remove", "c"],
            "is used at 5:11 outside a list",
        ),
        (vec!["host", "remove", "zz"], "no let binding named \"zz\""),
        (
            vec![
                "host",
                "add",
                "n",
                "--key",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe",
                "--to",
                "y.age",
            ],
            "this key is already bound as \"a\"",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&r, &args);
        assert_clean_failure(&out, needle);
        let code = out.status.code().unwrap();
        assert!(code == 1 || code == 2, "{args:?}: exit {code}");
        assert_eq!(rules_text(&r), good, "{args:?} changed the file");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    // The verification failure offers a snippet for a manual edit.
    let out = run(&r, &["host", "add", "n", "--key", &key, "--like", "c"]);
    assert!(
        stderr(&out).contains("edit by hand instead:"),
        "{}",
        stderr(&out)
    );

    // A syntax error: the evaluator's file:line:col, nothing written.
    let broken = "let a = \"x\"; in { \"x.age\".publicKeys = [ a ; }\n";
    std::fs::write(r.fleet.path("secrets.nix"), broken).unwrap();
    let out = run(&r, &["host", "add", "n", "--key", &key, "--like", "a"]);
    assert_clean_failure(&out, "secrets.nix:1:");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(rules_text(&r), broken);

    // Rules built by a function: --to cannot find a literal list.
    let built = format!(
        "let\n  a = \"{}\";\nin builtins.listToAttrs (map (n: {{ name = n; value.publicKeys = [ a ]; }}) [ \"x.age\" ])\n",
        r.fleet.admin.public_line
    );
    std::fs::write(r.fleet.path("secrets.nix"), &built).unwrap();
    let out = run(&r, &["host", "add", "n", "--key", &key, "--to", "x.age"]);
    assert_clean_failure(
        &out,
        "cannot edit safely: the rules are not one literal attribute set",
    );
    assert_eq!(rules_text(&r), built);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn key_file_gives_the_key_and_a_file_without_exactly_one_key_is_refused() {
    let r = repo(
        "let\n  a = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe\";\nin { \"x.age\".publicKeys = [ a ]; }\n",
        &[],
    );
    let pub_file = r.host.private.with_extension("pub");
    let out = run(
        &r,
        &[
            "host",
            "add",
            "h",
            "--key-file",
            pub_file.to_str().unwrap(),
            "--like",
            "a",
            "--no-rekey",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(rules_text(&r).contains(&format!("  h = \"{}\";\n", r.host.public_line)));
    let two = r.fleet.tmp.path().join("two.pub");
    std::fs::write(&two, format!("{0}\n{0}\n", r.host.public_line)).unwrap();
    let before = rules_text(&r);
    let out = run(
        &r,
        &[
            "host",
            "add",
            "i",
            "--key-file",
            two.to_str().unwrap(),
            "--like",
            "a",
        ],
    );
    assert_clean_failure(&out, "expected one public key line, found 2");
    assert_eq!(rules_text(&r), before);
}

/// A key comment holding ESC, CR or another control character is refused where the key is
/// read (`--key`, `--key-file`), naming its position, and nothing is written; a rules file
/// that already holds control characters (here a CR that would hide a line, and an ESC
/// sequence, in comments) has its diff printed with each line escaped.
#[test]
#[ignore = "needs `ssh-keygen`"]
fn control_characters_in_keys_are_refused_and_diffs_are_escaped() {
    let rules = "let\n  a = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe\";\nin { \"x.age\".publicKeys = [ a ]; }\n";
    let r = repo(rules, &[]);
    let before = rules_text(&r);
    let line = r.host.public_line.clone();
    for (comment, code) in [
        ("\u{1b}[2K\u{1b}[1Aok", "U+001B"),
        ("x\rinnocent", "U+000D"),
        ("bell\u{7}", "U+0007"),
    ] {
        let key = format!("{line}{comment}");
        let col = line.chars().count() + comment.find(|c: char| c.is_control()).unwrap() + 1;
        let out = run(&r, &["host", "add", "h", "--key", &key, "--like", "a"]);
        assert_clean_failure(&out, &format!("control character {code} at column {col}"));
        assert!(
            !stderr(&out).contains(['\u{1b}', '\r', '\u{7}']),
            "{:?}",
            stderr(&out)
        );
        assert_eq!(rules_text(&r), before);

        let file = r.fleet.tmp.path().join("evil.pub");
        std::fs::write(&file, format!("# a comment\n{key}\n")).unwrap();
        let out = run(
            &r,
            &[
                "host",
                "add",
                "h",
                "--key-file",
                file.to_str().unwrap(),
                "--like",
                "a",
            ],
        );
        assert_clean_failure(
            &out,
            &format!("{}:2:{col}: control character {code}", file.display()),
        );
        assert_eq!(rules_text(&r), before);
    }

    // A hostile rules file: its own control characters reach the diff's context lines.
    let hostile = "let\n  a = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/AwT8UIJmv/Qh+zKJgcbqafNm2/6qjIf24rk3lMzoe\"; # \u{1b}[31mred\r  b = 1;\nin { \"x.age\".publicKeys = [ a ]; }\n";
    std::fs::write(r.fleet.path("secrets.nix"), hostile).unwrap();
    let out = run(
        &r,
        &[
            "host",
            "add",
            "h",
            "--key",
            &line,
            "--like",
            "a",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let diff = stdout(&out);
    assert!(
        !diff.contains(['\u{1b}', '\r']),
        "raw control characters: {diff:?}"
    );
    // (The diff takes a lone CR for a line end: its next "line" follows the escaped CR.)
    assert!(diff.contains(" # \\u{1b}[31mred\\r "), "{diff}");
    assert!(diff.contains("  b = 1;"), "{diff}");
    assert!(
        diff.contains("+in { \"x.age\".publicKeys = [ a h ]; }"),
        "{diff}"
    );
    assert_eq!(rules_text(&r), hostile);
}
