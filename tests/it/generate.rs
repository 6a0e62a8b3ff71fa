//! `generate`: every generator kind checked against an external oracle (`ssh-keygen -y`, an
//! X25519 from Python's `cryptography`, `age -d -i`, typage for the post-quantum identity),
//! idempotence (bytes and mtimes), `--rotate` with a pattern, `--rotate-debt` on a real git
//! history, public companions in `status`, both rules backends, and bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use crate::common::sshd::git;
use crate::common::{
    self, age_decrypt, assert_clean_failure, nix_string, require_tool, run, stderr, stdout, typage,
    Fleet,
};

fn ok(out: &Output) {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
}

/// Writes `secrets.nix`: each secret read by `keys`, with the Nix text `extra` in its rule.
fn rules(fleet: &Fleet, keys: &[&str], entries: &[(&str, &str)]) {
    let keys: Vec<String> = keys.iter().map(|k| nix_string(k)).collect();
    let mut s = String::from("{\n");
    for (name, extra) in entries {
        s.push_str(&format!(
            "  {} = {{ publicKeys = [ {} ]; {extra} }};\n",
            nix_string(name),
            keys.join(" ")
        ));
    }
    s.push_str("}\n");
    std::fs::write(fleet.path("secrets.nix"), s).unwrap();
}

fn plaintext(fleet: &Fleet, name: &str) -> Vec<u8> {
    fleet.age_plaintext(&fleet.admin.private, name)
}

fn read(fleet: &Fleet, name: &str) -> String {
    std::fs::read_to_string(fleet.path(name)).unwrap()
}

/// The first two fields of a public key line (type and key; comments may differ).
fn key_fields(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `bytes` to a new 0600 file in the fleet's temp dir.
fn private_file(fleet: &Fleet, name: &str, bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = fleet.tmp.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Every file under the fleet's directory (outside .git): its bytes and mtime.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(p);
                }
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(p, (bytes, meta.modified().unwrap()));
            }
        }
    }
    out
}

/// The WireGuard public key of a base64 private key, by Python's `cryptography` (X25519
/// with the base point 9, as RFC 7748 defines it).
fn x25519_public_by_python(private_b64: &str) -> String {
    let script = "import base64,sys\n\
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey\n\
        k = X25519PrivateKey.from_private_bytes(base64.b64decode(sys.argv[1]))\n\
        print(base64.b64encode(k.public_key().public_bytes_raw()).decode())\n";
    let out = run(Command::new("python3")
        .args(["-c", script])
        .arg(private_b64.trim()));
    assert!(
        out.status.success(),
        "python3 cryptography: {}",
        stderr(&out)
    );
    stdout(&out).trim().to_string()
}

/// This process's umask (which the agefleet it runs inherits).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

fn status_line(out: &Output, name: &str) -> String {
    stdout(out)
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name}: {}", stdout(out)))
        .to_string()
}

fn require_python_cryptography() {
    require_tool("python3");
    let out = run(Command::new("python3").args(["-c", "import cryptography"]));
    assert!(
        out.status.success(),
        "this test needs Python's cryptography package (pip install cryptography)"
    );
}

const ALL_KINDS: &[(&str, &str)] = &[
    (
        "pw.age",
        "generator = { kind = \"password\"; length = 48; };",
    ),
    ("hex.age", "generator = { kind = \"hex\"; bytes = 16; };"),
    ("b64.age", "generator = \"base64\";"),
    ("wg/web1.age", "generator = \"wireguard\";"),
    ("deploy.age", "generator = \"ssh-ed25519\";"),
    ("id.age", "generator = \"age\";"),
    ("pq.age", "generator = \"age-pq\";"),
    (
        "cmd.age",
        "generator = { kind = \"command\"; argv = [ \"printf\" \"%s\" \"made by a command\" ]; };",
    ),
    ("by-hand.age", ""),
];

#[test]
#[ignore = "needs `age`, `ssh-keygen`, `python3` with cryptography"]
fn every_kind_is_made_and_checks_out_against_an_external_oracle() {
    require_python_cryptography();
    let fleet = Fleet::new();
    rules(&fleet, &[&fleet.admin.public_line], ALL_KINDS);

    // Before: status says which missing secrets `generate` makes.
    let before = fleet.run(&["status"]);
    let table = stdout(&before);
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {table}"))
            .to_string()
    };
    assert!(line("wg/web1.age").contains("missing-file"), "{table}");
    assert!(line("wg/web1.age").contains("generate"), "{table}");
    assert!(!line("by-hand.age").contains("generate"), "{table}");

    let out = fleet.run(&["generate", "--json"]);
    ok(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 8, "{report}");
    assert!(files.iter().all(|f| f["status"] == "created"), "{report}");
    assert!(!fleet.path("by-hand.age").exists());

    // password: length and alphabet.
    let pw = plaintext(&fleet, "pw.age");
    assert_eq!(pw.len(), 48);
    assert!(pw.iter().all(u8::is_ascii_alphanumeric), "{pw:?}");
    // hex: lowercase, two digits per byte.
    let hex = plaintext(&fleet, "hex.age");
    assert_eq!(hex.len(), 32);
    assert!(hex
        .iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)));
    // base64: standard and padded, 32 bytes by default (decoded by Python as well).
    let b64 = String::from_utf8(plaintext(&fleet, "b64.age")).unwrap();
    let decoded = run(Command::new("python3")
        .args([
            "-c",
            "import base64,sys; print(len(base64.b64decode(sys.argv[1], validate=True)))",
        ])
        .arg(&b64));
    assert_eq!(stdout(&decoded).trim(), "32", "{b64}");

    // wireguard: the companion is X25519(private, 9), computed independently.
    let wg = String::from_utf8(plaintext(&fleet, "wg/web1.age")).unwrap();
    assert!(wg.ends_with('\n') && wg.trim().len() == 44, "{wg:?}");
    assert_eq!(
        read(&fleet, "wg/web1.pub"),
        format!("{}\n", x25519_public_by_python(&wg))
    );

    // ssh-ed25519: `ssh-keygen -y` on the private key prints the companion's key.
    let key = private_file(&fleet, "deploy", &plaintext(&fleet, "deploy.age"));
    let y = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key));
    assert!(y.status.success(), "ssh-keygen -y: {}", stderr(&y));
    assert_eq!(
        key_fields(&stdout(&y)),
        key_fields(&read(&fleet, "deploy.pub"))
    );
    assert!(key_fields(&read(&fleet, "deploy.pub")).starts_with("ssh-ed25519 "));

    // age: `age -d -i` with the identity opens a file encrypted to the companion.
    let identity = private_file(&fleet, "id.key", &plaintext(&fleet, "id.age"));
    let recipient = read(&fleet, "id.pub");
    let probe = fleet.tmp.path().join("probe.age");
    common::age_encrypt(&[recipient.trim()], false, b"probe", &probe);
    let opened = age_decrypt(&identity, &probe);
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert_eq!(opened.stdout, b"probe");

    // age-pq: the companion is a post-quantum recipient.
    assert!(read(&fleet, "pq.pub").starts_with("age1pq1"));
    assert!(String::from_utf8(plaintext(&fleet, "pq.age"))
        .unwrap()
        .contains("AGE-SECRET-KEY-PQ-1"));

    // command: stdout verbatim.
    assert_eq!(plaintext(&fleet, "cmd.age"), b"made by a command");

    // Companions are public, one line; secrets are the usual new-file mode.
    let umask = umask();
    for c in ["wg/web1.pub", "deploy.pub", "id.pub", "pq.pub"] {
        assert_eq!(common::mode_of(&fleet.path(c)), 0o644 & !umask, "{c}");
        assert_eq!(read(&fleet, c).lines().count(), 1, "{c}");
    }
    assert_eq!(common::mode_of(&fleet.path("pw.age")), 0o666 & !umask);
    assert!(!fleet.path("hex.pub").exists());

    // After: status is clean for them (companions present), and says they are unchecked
    // without -i; with -i they match.
    let after = fleet.run(&["status"]);
    let table = stdout(&after);
    assert!(
        table
            .lines()
            .filter(|l| !l.starts_with("by-hand.age") && !l.starts_with("FILE"))
            .all(|l| l.contains(" ok")),
        "{table}"
    );
    assert!(
        stderr(&after).contains("only with -i"),
        "{}",
        stderr(&after)
    );
    let admin = fleet.admin.private.to_str().unwrap();
    let checked = fleet.run(&["status", "-i", admin, "--json"]);
    let j: serde_json::Value = serde_json::from_str(&stdout(&checked)).unwrap();
    for f in j["files"].as_array().unwrap() {
        let problems = f["problems"].as_array().unwrap();
        assert!(
            !problems
                .iter()
                .any(|p| p.as_str().unwrap().contains("companion")),
            "{f}"
        );
    }
}

#[test]
#[ignore = "needs `node`, `ssh-keygen`, typage"]
fn a_generated_post_quantum_identity_opens_with_typage() {
    typage::require_typage();
    let fleet = Fleet::new();
    rules(
        &fleet,
        &[&fleet.admin.public_line],
        &[("pq.age", "generator = \"age-pq\";")],
    );
    ok(&fleet.run(&["generate"]));
    let identity = fleet.home.join("pq.key");
    let out = fleet.run(&["decrypt", "pq.age", "-o", identity.to_str().unwrap()]);
    ok(&out);
    // A file encrypted to the companion by typage opens with the identity in typage.
    let recipient = read(&fleet, "pq.pub");
    let plain = fleet.tmp.path().join("plain");
    std::fs::write(&plain, b"post-quantum probe").unwrap();
    let probe = fleet.tmp.path().join("probe.age");
    typage::encrypt(&plain, &probe, &[recipient.trim()]);
    let d = typage::decrypt(&identity, &probe);
    assert!(d.status.success(), "typage: {}", stderr(&d));
    assert_eq!(d.stdout, b"post-quantum probe");
}

#[test]
#[ignore = "needs `ssh-keygen`, `age`"]
fn a_second_run_writes_nothing_and_rotate_changes_only_what_it_names() {
    let fleet = Fleet::new();
    rules(&fleet, &[&fleet.admin.public_line], ALL_KINDS);
    // A dry run names what it would make and writes nothing.
    let empty = snapshot(&fleet.dir);
    let dry = fleet.run(&["generate", "--dry-run"]);
    ok(&dry);
    assert!(
        stdout(&dry).contains("would create wg/web1.age (wireguard)"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(snapshot(&fleet.dir), empty);

    let first = fleet.run(&["generate"]);
    ok(&first);
    assert!(
        stdout(&first).contains("created deploy.age (ssh-ed25519)"),
        "{}",
        stdout(&first)
    );
    let made = snapshot(&fleet.dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = fleet.run(&["generate"]);
    ok(&second);
    assert_eq!(stdout(&second), "");
    assert!(
        stderr(&second).contains("nothing to generate"),
        "{}",
        stderr(&second)
    );
    assert_eq!(snapshot(&fleet.dir), made, "a second run changed a file");
    // Naming an existing secret without --rotate does not touch it either.
    ok(&fleet.run(&["generate", "pw.age"]));
    assert_eq!(snapshot(&fleet.dir), made);

    // --rotate with a pattern: new values (and companion) for what it matches only.
    let old_wg = plaintext(&fleet, "wg/web1.age");
    let rotated = fleet.run(&["generate", "--rotate", "wg/*", "h?x.age"]);
    ok(&rotated);
    assert!(
        stdout(&rotated).contains("rotated wg/web1.age"),
        "{}",
        stdout(&rotated)
    );
    let now = snapshot(&fleet.dir);
    let changed: Vec<String> = now
        .iter()
        .filter(|(p, v)| made.get(*p) != Some(v))
        .map(|(p, _)| p.strip_prefix(&fleet.dir).unwrap().display().to_string())
        .collect();
    assert_eq!(changed, ["hex.age", "wg/web1.age", "wg/web1.pub"]);
    let new_wg = plaintext(&fleet, "wg/web1.age");
    assert_ne!(old_wg, new_wg);
    // The new companion belongs to the new key (status -i checks it).
    let admin = fleet.admin.private.to_str().unwrap();
    let checked = fleet.run(&["status", "-i", admin]);
    assert!(
        status_line(&checked, "wg/web1.age").ends_with(" ok"),
        "{}",
        stdout(&checked)
    );

    // A companion swapped for another key is a mismatch with -i, unseen without.
    std::fs::write(
        fleet.path("wg/web1.pub"),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .unwrap();
    let unchecked = fleet.run(&["status"]);
    assert!(status_line(&unchecked, "wg/web1.age").ends_with(" ok"));
    let checked = fleet.run(&["status", "-i", admin]);
    assert_eq!(checked.status.code(), Some(1));
    let line = status_line(&checked, "wg/web1.age");
    assert!(line.contains("companion-mismatch"), "{line}");
    // A missing companion is reported by status and by generate.
    std::fs::remove_file(fleet.path("deploy.pub")).unwrap();
    let missing = fleet.run(&["status"]);
    assert_eq!(missing.status.code(), Some(1));
    let line = status_line(&missing, "deploy.age");
    assert!(line.contains("missing-companion"), "{line}");
    let again = fleet.run(&["generate"]);
    ok(&again);
    assert!(
        stderr(&again).contains("deploy.pub is missing"),
        "{}",
        stderr(&again)
    );
    // A pattern that matches nothing is a failure naming it.
    assert_clean_failure(&fleet.run(&["generate", "--rotate", "nope*"]), "nope*");
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`"]
fn rotate_debt_rotates_the_generated_secrets_a_removed_host_could_read() {
    let (fleet, web1) = common::fleet_with_web1_in_git();
    let admin = fleet.admin.public_line.clone();
    // api.age (by hand) and wg.age (generated) are readable by web1 too; --git-add stages
    // what generate makes.
    let with_generators = |web1_line: &str| {
        let web1_binding = if web1_line.is_empty() {
            String::new()
        } else {
            format!("  web1 = {};\n", nix_string(web1_line))
        };
        let web1 = if web1_line.is_empty() { "" } else { " web1" };
        format!(
            "let\n  admin = {};\n{web1_binding}in {{\n  \"tls.age\" = {{ publicKeys = [ admin{web1} ]; generator = \"password\"; }};\n  \"db.age\".publicKeys = [ admin ];\n  \"api.age\".publicKeys = [ admin{web1} ];\n  \"wg.age\" = {{ publicKeys = [ admin{web1} ]; generator = \"wireguard\"; }};\n}}\n",
            nix_string(&admin)
        )
    };
    std::fs::write(
        fleet.path("secrets.nix"),
        with_generators(&web1.public_line),
    )
    .unwrap();
    fleet.age_file("api.age", &[&admin, &web1.public_line], b"api v1");
    let out = fleet.run(&["generate", "--git-add"]);
    ok(&out);
    let tracked = git(&fleet.dir, &["ls-files"]);
    assert!(tracked.lines().any(|l| l == "wg.age"), "{tracked}");
    assert!(tracked.lines().any(|l| l == "wg.pub"), "{tracked}");
    git(&fleet.dir, &["add", "-A"]);
    git(&fleet.dir, &["commit", "-q", "-m", "api and wg"]);

    // Remove web1 (rekeyed); its hint says which values generate can rotate.
    let removed = fleet.run(&["host", "remove", "web1"]);
    ok(&removed);
    let hint = stderr(&removed);
    let line = |name: &str| {
        hint.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {hint}"))
            .to_string()
    };
    assert!(line("tls.age").contains("generate --rotate-debt"), "{hint}");
    assert!(line("wg.age").contains("generate --rotate-debt"), "{hint}");
    assert!(!line("api.age").contains("generate"), "{hint}");
    git(&fleet.dir, &["commit", "-q", "-am", "remove web1"]);
    let old_tls = plaintext(&fleet, "tls.age");
    let old_wg_pub = read(&fleet, "wg.pub");

    let out = fleet.run(&["generate", "--rotate-debt", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rotated: Vec<&str> = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "rotated")
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(rotated, ["tls.age", "wg.age"], "{j}");
    assert_eq!(j["debt_without_generator"], serde_json::json!(["api.age"]));
    assert!(stderr(&out).contains("api.age"), "{}", stderr(&out));

    // New values, for the current recipients only; the old values are gone from the tree.
    let new_tls = plaintext(&fleet, "tls.age");
    assert_ne!(new_tls, old_tls);
    assert_ne!(new_tls, b"tls v1");
    assert!(!age_decrypt(&web1.private, &fleet.path("tls.age"))
        .status
        .success());
    assert!(!age_decrypt(&web1.private, &fleet.path("wg.age"))
        .status
        .success());
    assert_ne!(read(&fleet, "wg.pub"), old_wg_pub);
    for name in ["tls.age", "wg.age"] {
        let committed = run(Command::new("git")
            .args(["show", &format!("HEAD:{name}")])
            .current_dir(&fleet.dir));
        assert!(committed.status.success());
        assert_ne!(std::fs::read(fleet.path(name)).unwrap(), committed.stdout);
    }

    // audit -i settles the rotated ones; api.age stays in debt.
    let audit = fleet.run(&[
        "audit",
        "--json",
        "-i",
        fleet.admin.private.to_str().unwrap(),
    ]);
    assert_eq!(audit.status.code(), Some(1));
    let a: serde_json::Value = serde_json::from_str(&stdout(&audit)).unwrap();
    for s in a["secrets"].as_array().unwrap() {
        let unsettled = s["debt"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["settled"] == false);
        assert_eq!(unsettled, s["name"] == "api.age", "{s}");
    }
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn bad_generators_fail_one_by_one_and_write_nothing_for_them() {
    let fleet = Fleet::new();
    let victim = fleet.tmp.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, fleet.path("link.pub")).unwrap();
    let (_, age_recipient) = common::age_keygen(fleet.tmp.path(), "classical.key");
    let bad: &[(&str, &str)] = &[
        ("unknown.age", "generator = \"pasword\";"),
        ("zero.age", "generator = { kind = \"password\"; length = 0; };"),
        ("noargv.age", "generator = { kind = \"command\"; argv = [ ]; };"),
        (
            "fails.age",
            "generator = { kind = \"command\"; argv = [ \"sh\" \"-c\" \"echo no entropy >&2; exit 3\" ]; };",
        ),
        (
            "silent.age",
            "generator = { kind = \"command\"; argv = [ \"true\" ]; };",
        ),
        ("link.age", "generator = \"wireguard\";"),
    ];
    let mut s = String::from("{\n");
    let key = nix_string(&fleet.admin.public_line);
    s.push_str(&format!(
        "  \"good.age\" = {{ publicKeys = [ {key} ]; generator = \"hex\"; }};\n"
    ));
    for (name, extra) in bad {
        s.push_str(&format!(
            "  \"{name}\" = {{ publicKeys = [ {key} ]; {extra} }};\n"
        ));
    }
    // Policy applies: a pq = true rule with a classical recipient is refused.
    s.push_str(&format!(
        "  \"policy.age\" = {{ publicKeys = [ {} ]; pq = true; generator = \"hex\"; }};\n}}\n",
        nix_string(&age_recipient)
    ));
    std::fs::write(fleet.path("secrets.nix"), s).unwrap();

    let out = fleet.run(&["generate"]);
    assert_clean_failure(&out, "secrets.nix");
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 7, "{err}");
    for (needle, name) in [
        ("kind \"pasword\" is unknown", "unknown.age"),
        ("generator.length = 0 is out of range", "zero.age"),
        ("generator.argv is empty", "noargv.age"),
        ("no entropy", "fails.age"),
        ("printed nothing", "silent.age"),
        ("is a symlink", "link.pub"),
        ("pq = true", "policy.age"),
    ] {
        let line = errors
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {err}"));
        assert!(line.contains(name), "{line}");
    }
    assert!(fleet.path("good.age").exists());
    for (name, _) in bad.iter().chain(&[("policy.age", "")]) {
        assert!(!fleet.path(name).exists(), "{name} was written");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(std::fs::symlink_metadata(fleet.path("link.pub"))
        .unwrap()
        .file_type()
        .is_symlink());
    let leftovers: Vec<_> = std::fs::read_dir(&fleet.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A name no rule has, and a rule without a generator, are failures too.
    assert_clean_failure(&fleet.run(&["generate", "other.age"]), "other.age");
}

#[test]
#[ignore = "needs `nix-instantiate`, `ssh-keygen`"]
fn both_rules_backends_read_generators_alike() {
    require_tool("nix-instantiate");
    let fleet = Fleet::new();
    let mut entries: Vec<(&str, &str)> = ALL_KINDS.to_vec();
    entries.push(("bad.age", "generator = { kind = \"hex\"; bytes = 0; };"));
    entries.push(("typo.age", "generator = { kind = \"hex\"; byte = 8; };"));
    rules(&fleet, &[&fleet.admin.public_line], &entries);
    let dry = |backend: &str| {
        let out = fleet.run(&["--nix-eval", backend, "generate", "--dry-run", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        // Error positions differ between backends (line:col only from the builtin one).
        let rows: Vec<(String, String, String)> = j["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let error = f["error"].as_str().unwrap_or("");
                let what = error.rsplit(": ").next().unwrap_or("").to_string();
                (
                    f["file"].as_str().unwrap().to_string(),
                    f["status"].as_str().unwrap().to_string(),
                    format!("{}{what}", f["kind"].as_str().unwrap_or("")),
                )
            })
            .collect();
        rows
    };
    let builtin = dry("builtin");
    assert_eq!(builtin, dry("nix"));
    assert_eq!(builtin.len(), 10, "{builtin:?}");
    assert!(builtin
        .iter()
        .any(|(f, s, w)| f == "bad.age" && s == "failed" && w.contains("out of range")));
}
