//! The Nix modules evaluated for real (nixpkgs' lib, nix-darwin's and home-manager's own
//! modules, agenix's module as the reference), through the harness in `nix/tests/eval`.
//! The sources come from AGEFLEET_NIXPKGS_LIB, AGEFLEET_NIX_DARWIN, AGEFLEET_HOME_MANAGER
//! and AGEFLEET_AGENIX_SRC (see tests/common/nix.rs).
//!
//! - every configuration of agenix's README, doc/ and test/ (and a few edge cases) evaluates
//!   with agefleet's module exactly when it evaluates with agenix's, with the same option
//!   types, values, assertions and warnings;
//! - agefleet's outputs (manifest, activation order, units, agents, package) are checked;
//! - the evaluated NixOS activation script is run for real (tests/nix_activation.rs).

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::nix::{eval, repo, sources, Sources, Store};
use crate::common::nix_string;
use serde_json::{json, Value};

/// Warnings only agefleet's module gives, each for an agenix option it accepts and ignores.
const OUR_WARNINGS: [&str; 2] = [
    "age.ageBin is ignored: agefleet decrypts secrets itself, without an age binary.",
    "age.package (agenix's age implementation) is ignored: agefleet decrypts secrets itself. agefleet's own package is age.agefleetPackage.",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A NixOS / nix-darwin module (evaluated on both).
    System,
    /// A home-manager module (evaluated on Linux and macOS).
    Home,
}

impl Kind {
    fn platforms(self) -> [&'static str; 2] {
        match self {
            Kind::System => ["nixos", "darwin"],
            Kind::Home => ["home-linux", "home-darwin"],
        }
    }
}

/// A ```nix block of agenix's documentation: how it is evaluated, or why it is not.
fn classify(block: &str) -> Result<Kind, &'static str> {
    if block.contains("fetchTarball") {
        return Err("downloads agenix itself (no network here); the niv and channel forms of the same import are evaluated");
    }
    if block.contains("inputs.agenix") {
        return Err(
            "a flake.nix, not a module; the outputs it uses are checked by flake_outputs_evaluate",
        );
    }
    if block.contains("publicKeys") {
        return Err("a secrets.nix rules file, not a module (tests/rules.rs)");
    }
    if block.contains("pkgs/agenix.nix") {
        return Err("builds agenix's own CLI from agenix's tree (not a module option); agefleet's CLI is its package and overlay");
    }
    // The home-manager section of the README: its module and its two examples.
    if block.contains("age-home.nix")
        || block.contains("programs.some-program")
        || block.contains("\"~/.ssh/")
    {
        return Ok(Kind::Home);
    }
    Ok(Kind::System)
}

fn nix_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("```nix\n") {
        let body = &rest[start + 7..];
        let end = body.find("```").expect("unterminated block");
        blocks.push(body[..end].to_string());
        rest = &body[end..][3..];
    }
    blocks
}

/// One configuration to evaluate with both modules.
struct Case {
    name: String,
    kind: Kind,
    /// Only these of the kind's platforms (agenix's tests target one).
    only: Option<&'static str>,
    /// Nix expressions of modules.
    modules: Vec<String>,
}

/// A temp tree the cases' relative paths resolve in: `cfg/` (the blocks), `secrets/` (the
/// `.age` files they name), and for each implementation a directory that plays agenix's
/// source tree for `<agenix/…>` and niv's `sources.nix`.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cfg/nix", "secrets"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("cfg/nix/sources.nix"),
            "{ agenix = toString (builtins.findFile builtins.nixPath \"agenix\"); }\n",
        )
        .unwrap();
        Tree { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<agenix>` for `impl`: modules/age*.nix importing the module under test (imported by
    /// path, so the module system sees the same module the harness already has).
    fn agenix_shim(&self, impl_: &str, src: &Sources) -> std::path::PathBuf {
        let shim = self.path().join(format!("shim-{impl_}"));
        std::fs::create_dir_all(shim.join("modules")).unwrap();
        for (file, ours) in [
            ("age.nix", "nix/modules/age.nix"),
            ("age-home.nix", "nix/modules/age-home.nix"),
        ] {
            let target = if impl_ == "agenix" {
                src.agenix.join("modules").join(file)
            } else {
                repo().join(ours)
            };
            std::fs::write(
                shim.join("modules").join(file),
                format!(
                    "{{ imports = [ {} ]; }}\n",
                    nix_string(&target.display().to_string())
                ),
            )
            .unwrap();
        }
        shim
    }

    /// Writes a documentation block as a module: a function of the module arguments (the
    /// blocks use `config` and `pkgs` freely), applied when the block is itself a function.
    fn block_module(&self, n: usize, block: &str) -> String {
        for name in secret_files(block) {
            std::fs::write(self.path().join("secrets").join(name), b"age").unwrap();
        }
        let file = self.path().join(format!("cfg/block{n}.nix"));
        std::fs::write(
            &file,
            format!(
                "{{ config, lib, pkgs, options, agenix, ... }}@args:\nlet block = (\n{block}\n); in if builtins.isFunction block then block args else block\n"
            ),
        )
        .unwrap();
        format!("(import {})", nix_string(&file.display().to_string()))
    }
}

/// `../secrets/NAME` in a block.
fn secret_files(block: &str) -> Vec<String> {
    block
        .split("../secrets/")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .collect()
        })
        .collect()
}

/// `config.age.secrets.NAME.path` in a block: the base module declares those secrets.
fn referenced_secrets(block: &str) -> BTreeSet<String> {
    block
        .split("config.age.secrets.")
        .skip(1)
        .map(|rest| rest.split('.').next().unwrap().to_string())
        .collect()
}

fn documentation_cases(src: &Sources, tree: &Tree) -> (Vec<Case>, Vec<String>) {
    let mut docs = vec![src.agenix.join("README.md")];
    let mut others: Vec<_> = std::fs::read_dir(src.agenix.join("doc"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    others.sort();
    docs.extend(others);
    let mut seen = BTreeSet::new();
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for block in nix_blocks(&text) {
            if !seen.insert(block.clone()) {
                continue;
            }
            let n = seen.len();
            let label = format!(
                "{} block {n}: {}",
                doc.file_name().unwrap().to_string_lossy(),
                block
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(70)
                    .collect::<String>()
            );
            match classify(&block) {
                Err(reason) => skipped.push(format!("{label} — {reason}")),
                Ok(kind) => {
                    let module = tree.block_module(n, &block);
                    cases.push(Case {
                        name: format!("{label} (alone)"),
                        kind,
                        only: None,
                        modules: vec![module.clone()],
                    });
                    // With what a real configuration has around it: the secrets it refers
                    // to and (NixOS) an SSH host key to decrypt with.
                    let mut base =
                        String::from("({ lib, options, ... }: { config = lib.mkMerge [ ");
                    base.push_str("(lib.optionalAttrs (options ? services) { services.openssh.enable = true; }) ");
                    for name in referenced_secrets(&block) {
                        base.push_str(&format!(
                            "{{ age.secrets.{name}.file = {}; }} ",
                            nix_string(&tree.path().join("secrets/base.age").display().to_string())
                        ));
                    }
                    base.push_str("]; })");
                    cases.push(Case {
                        name: format!("{label} (in a configuration)"),
                        kind,
                        only: None,
                        modules: vec![module, base],
                    });
                }
            }
        }
    }
    std::fs::write(tree.path().join("secrets/base.age"), b"age").unwrap();
    (cases, skipped)
}

/// agenix's test/ configurations, with agenix's `../modules/age*.nix` imports pointing at
/// the module under test (through the `<agenix>` shim) and its `../example` files.
fn test_directory_cases(src: &Sources, tree: &Tree) -> Vec<Case> {
    let test = src.agenix.join("test");
    let rewrite = |file: &str| -> String {
        let text = std::fs::read_to_string(test.join(file)).unwrap();
        let text = text
            .replace("../modules/age.nix", "<agenix/modules/age.nix>")
            .replace("../modules/age-home.nix", "<agenix/modules/age-home.nix>")
            .replace(
                "../example/",
                &format!("{}/", src.agenix.join("example").display()),
            )
            .replace(
                "./install_ssh_host_keys",
                &format!("{}/install_ssh_host_keys", test.display()),
            )
            .replace(
                "../pkgs/agenix.nix",
                &src.agenix.join("pkgs/agenix.nix").display().to_string(),
            );
        let out = tree.path().join("cfg").join(file);
        std::fs::write(&out, text).unwrap();
        format!("(import {})", nix_string(&out.display().to_string()))
    };
    // integration.nix is a NixOS VM test: its node, and its home-manager user.
    std::fs::create_dir_all(tree.path().join("hm/nixos")).unwrap();
    std::fs::write(tree.path().join("hm/nixos/default.nix"), "{ }\n").unwrap();
    let integration = format!(
        "({} {{ pkgs = {{ nixosTest = t: t; lib = (import {}); }}; nixpkgs = null; system = \"x86_64-linux\"; home-manager = {}; }}).nodes.system1",
        rewrite("integration.nix"),
        nix_string(&src.nixpkgs_lib.join("lib").display().to_string()),
        nix_string(&tree.path().join("hm").display().to_string()),
    );
    // Its home-manager user, as the NixOS evaluation hands it to home-manager.
    let hm_user = format!(
        "(HARNESS.eval {{ platform = \"nixos\"; impl = \"IMPL\"; modules = [ {integration} ]; }}).config.home-manager.users.user1"
    );
    vec![
        Case {
            name: "test/integration.nix (home-manager user1)".into(),
            kind: Kind::Home,
            only: Some("home-linux"),
            modules: vec![hm_user],
        },
        Case {
            name: "test/integration.nix (NixOS node)".into(),
            kind: Kind::System,
            only: Some("nixos"),
            modules: vec![integration.clone()],
        },
        Case {
            name: "test/integration_darwin.nix".into(),
            kind: Kind::System,
            only: Some("darwin"),
            modules: vec![rewrite("integration_darwin.nix")],
        },
        Case {
            name: "test/integration_hm_darwin.nix".into(),
            kind: Kind::Home,
            only: Some("home-darwin"),
            modules: vec![rewrite("integration_hm_darwin.nix")],
        },
    ]
}

/// Edge cases of the option types and checks, each meant to fail or pass in both.
fn edge_cases(tree: &Tree) -> Vec<Case> {
    let f = nix_string(&tree.path().join("secrets/base.age").display().to_string());
    // An identity unless the case is about identities.
    let sys = |name: &str, body: String| Case {
        name: name.into(),
        kind: Kind::System,
        only: None,
        modules: vec![if body.contains("identityPaths") {
            format!("({{ pkgs, lib, ... }}: {{ {body} }})")
        } else {
            format!("({{ pkgs, lib, ... }}: {{ age.identityPaths = [ \"/etc/ssh/k\" ]; {body} }})")
        }],
    };
    let home = |name: &str, body: String| Case {
        name: name.into(),
        kind: Kind::Home,
        only: None,
        modules: vec![format!("({{ pkgs, lib, ... }}: {{ {body} }})")],
    };
    vec![
        sys("symbolic mode", format!("age.secrets.a = {{ file = {f}; mode = \"u=r,g=r,o=\"; }};")),
        sys("integer mode", format!("age.secrets.a = {{ file = {f}; mode = 400; }};")),
        sys("no file", "age.secrets.a.mode = \"0400\";".into()),
        sys("unknown secret option", format!("age.secrets.a = {{ file = {f}; color = 1; }};")),
        sys("relative file", "age.secrets.a.file = \"secrets/a.age\";".into()),
        sys("mount point with a trailing slash", format!("age.secrets.a.file = {f}; age.secretsMountPoint = \"/run/x/\";")),
        sys("empty mount point", format!("age.secrets.a.file = {f}; age.secretsMountPoint = \" \";")),
        sys("relative secretsDir", format!("age.secrets.a.file = {f}; age.secretsDir = \"run/keys\";")),
        sys("no identities", format!("age.secrets.a.file = {f}; age.identityPaths = [ ];")),
        sys("sshKeyPaths (renamed)", format!("age.secrets.a.file = {f}; age.sshKeyPaths = [ \"/etc/ssh/old\" ];")),
        sys("ageBin of rage", format!("age.secrets.a.file = {f}; age.ageBin = lib.getExe pkgs.rage;")),
        sys("owner's group", format!("age.secrets.a = {{ file = {f}; owner = \"nginx\"; }}; users.users = lib.optionalAttrs (pkgs.stdenv.hostPlatform.isLinux) {{ nginx.group = \"www\"; }};")),
        sys("symlink not a bool", format!("age.secrets.a = {{ file = {f}; symlink = \"no\"; }};")),
        sys("no secrets, no identities", "age.identityPaths = [ ];".into()),
        home("home: package of rage", format!("age.secrets.a.file = {f}; age.package = pkgs.rage;")),
        home("home: ageBin (not an option there)", format!("age.secrets.a.file = {f}; age.ageBin = \"/bin/age\";")),
        home("home: symbolic mode and custom paths", format!("age.secrets.a = {{ file = {f}; mode = \"u=rw\"; path = \"/home/user1/a\"; symlink = false; }}; age.secretsDir = \"/home/user1/agenix\";")),
        home("home: no identities", format!("age.secrets.a.file = {f}; age.identityPaths = [ ];")),
        home("home: mount point untyped", format!("age.secrets.a.file = {f}; age.secretsMountPoint = \"/tmp/m\";")),
    ]
}

/// The summary of `case` on `platform` with `impl_`'s module, or the evaluation error.
fn summary(
    src: &Sources,
    tree: &Tree,
    case: &Case,
    platform: &str,
    impl_: &str,
) -> Result<Value, String> {
    let shim = tree.agenix_shim(impl_, src);
    let harness = src.harness(None);
    let expr = format!(
        "{harness}.compare {{ platform = \"{platform}\"; impl = \"{impl_}\"; modules = [ {} ]; }}",
        case.modules
            .join(" ")
            .replace("HARNESS", &harness)
            .replace("IMPL", impl_)
    );
    let include = format!("agenix={}", shim.display());
    eval(&expr, Store::Dummy, &["-I", &include])
}

fn first_line(e: &str) -> &str {
    e.lines().find(|l| l.starts_with("error")).unwrap_or(e)
}

/// Where agefleet's summary differs from agenix's, beyond options agenix lacks and the
/// warnings agefleet gives for what it ignores.
fn differences(label: &str, ours: &Value, theirs: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    for section in ["options", "secretOptions"] {
        let (o, t) = (&ours[section], &theirs[section]);
        for (name, ty) in t.as_object().unwrap() {
            if o.get(name) != Some(ty) {
                diffs.push(format!(
                    "{label}: option {section}.{name}: agenix has type {ty}, agefleet {:?}",
                    o.get(name)
                ));
            }
        }
    }
    // The options agenix lacks (restartUnits, reloadUnits) are left out of our secrets.
    let mut ours = ours.clone();
    if let (Some(o), Some(t)) = (
        ours["age"]["secrets"].as_object_mut(),
        theirs["age"]["secrets"].as_object(),
    ) {
        for (name, secret) in o.iter_mut() {
            let (Some(secret), Some(theirs)) = (secret.as_object_mut(), t.get(name)) else {
                continue;
            };
            secret.retain(|k, _| {
                theirs.get(k).is_some() || !["restartUnits", "reloadUnits"].contains(&k.as_str())
            });
        }
    }
    for key in ["age", "failedAssertions"] {
        if ours[key] != theirs[key] {
            diffs.push(format!(
                "{label}: {key}: agenix {}, agefleet {}",
                theirs[key], ours[key]
            ));
        }
    }
    let ours_w: Vec<&Value> = ours["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !OUR_WARNINGS.contains(&w.as_str().unwrap()))
        .collect();
    let theirs_w: Vec<&Value> = theirs["warnings"].as_array().unwrap().iter().collect();
    if ours_w != theirs_w {
        diffs.push(format!(
            "{label}: warnings: agenix {theirs_w:?}, agefleet {ours_w:?}"
        ));
    }
    diffs
}

#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn agenix_configurations_evaluate_alike() {
    let src = sources();
    let tree = Tree::new();
    let (mut cases, skipped) = documentation_cases(&src, &tree);
    assert!(
        cases.len() >= 40,
        "only {} documentation cases found",
        cases.len()
    );
    cases.extend(test_directory_cases(&src, &tree));
    cases.extend(edge_cases(&tree));
    for s in &skipped {
        eprintln!("not evaluated: {s}");
    }

    let mut report = Vec::new();
    let mut failures = Vec::new();
    let (mut both_ok, mut both_fail) = (0, 0);
    for case in &cases {
        for platform in case.kind.platforms() {
            if case.only.is_some_and(|only| only != platform) {
                continue;
            }
            let label = format!("{} on {platform}", case.name);
            let theirs = summary(&src, &tree, case, platform, "agenix");
            let ours = summary(&src, &tree, case, platform, "agefleet");
            match (&ours, &theirs) {
                (Ok(o), Ok(t)) => {
                    both_ok += 1;
                    failures.extend(differences(&label, o, t));
                    report.push(format!("ok    {label}"));
                }
                (Err(o), Err(t)) => {
                    both_fail += 1;
                    report.push(format!(
                        "fails {label}: agenix: {} | agefleet: {}",
                        first_line(t),
                        first_line(o)
                    ));
                }
                (Ok(_), Err(t)) => {
                    failures.push(format!("{label}: only agenix fails: {}", first_line(t)))
                }
                (Err(o), Ok(_)) => failures.push(format!("{label}: only agefleet fails: {o}")),
            }
        }
    }
    for r in &report {
        eprintln!("{r}");
    }
    eprintln!(
        "{both_ok} evaluate with both modules, {both_fail} fail with both, {} differ",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Both outcomes are exercised (a harness that always fails would agree with itself).
    assert!(
        both_ok >= 40 && both_fail >= 10,
        "{both_ok} ok, {both_fail} failing"
    );
}

/// What `config` of agefleet's module is on `platform` with `modules`, as JSON of `pick`.
fn ours(src: &Sources, platform: &str, modules: &str, pick: &str) -> Value {
    let expr = format!(
        "let c = {}.config {{ platform = \"{platform}\"; modules = [ {modules} ]; }}; in {pick}",
        src.harness(None)
    );
    eval(&expr, Store::Dummy, &[]).unwrap_or_else(|e| panic!("{pick}: {e}"))
}

/// The JSON manifest whose store path (in the chroot store `store`) `script` names.
fn manifest_named_in(store: &Path, script: &str, suffix: &str) -> Value {
    let path = script
        .split_whitespace()
        .find(|w| w.ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {script}"));
    serde_json::from_str(&std::fs::read_to_string(common::nix::in_chroot(store, path)).unwrap())
        .unwrap()
}

fn position(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{haystack}"))
}

#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn agenix_options_agefleet_ignores_are_accepted_with_a_warning() {
    let src = sources();
    // agenix's documented `age.ageBin` (NixOS and nix-darwin).
    for platform in ["nixos", "darwin"] {
        let w = ours(
            &src,
            platform,
            "({ pkgs, lib, ... }: { age.identityPaths = [ \"/k\" ]; age.secrets.a.file = \"/s/a.age\"; age.ageBin = \"${pkgs.age}/bin/age\"; })",
            "c.warnings",
        );
        assert_eq!(w, json!([OUR_WARNINGS[0]]), "{platform}");
        let w = ours(
            &src,
            platform,
            "{ age.identityPaths = [ \"/k\" ]; age.secrets.a.file = \"/s/a.age\"; }",
            "c.warnings",
        );
        assert_eq!(w, json!([]), "{platform}: no warning when not set");
    }
    // home-manager's `age.package` is agenix's age implementation.
    for platform in ["home-linux", "home-darwin"] {
        let v = ours(
            &src,
            platform,
            "({ pkgs, ... }: { age.secrets.a.file = \"/s/a.age\"; age.package = pkgs.rage; })",
            "{ w = c.warnings; p = c.age.package.pname; }",
        );
        assert_eq!(v["w"], json!([OUR_WARNINGS[1]]), "{platform}");
        assert_eq!(v["p"], "rage");
    }
    let start = ours(
        &src,
        "home-linux",
        "({ pkgs, ... }: { age.secrets.a.file = \"/s/a.age\"; age.package = pkgs.rage; })",
        "{ s = c.systemd.user.services.agenix.Service.ExecStart; w = c.age.agefleetPackage.pname; }",
    );
    let exec = start["s"][0].as_str().unwrap();
    assert!(
        exec.contains("-agefleet-0.1.0/bin/agefleet activate "),
        "{exec}"
    );
    assert!(!exec.contains("rage"), "{exec}");
    // An agefleet package given as `age.package` (this module's old meaning) is agefleet.
    let v = ours(
        &src,
        "home-linux",
        "({ pkgs, ... }: { age.secrets.a.file = \"/s/a.age\"; age.package = pkgs.callPackage ./nix/package.nix { }; })",
        "{ w = c.warnings; s = c.systemd.user.services.agenix.Service.ExecStart; }",
    );
    assert_eq!(v["w"], json!([]));
}

#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn nixos_manifest_order_and_units() {
    let src = sources();
    let cfg = "{ services.openssh.enable = true; users.users.alice.isNormalUser = true;
                age.secrets.pw.file = \"/s/pw.age\";
                age.secrets.cert = { file = \"/s/cert.age\"; owner = \"alice\"; mode = \"u=r,g=r,o=\"; path = \"/etc/cert\"; };
                users.users.alice.hashedPasswordFile = \"/run/agenix/pw\"; }";
    let store = tempfile::tempdir().unwrap();
    let expr = format!(
        "let c = {}.config {{ platform = \"nixos\"; modules = [ {cfg} ]; }}; in
         {{ script = c.system.activationScript; dry = c.system.dryActivationScript; units = builtins.attrNames c.systemd.services; }}",
        src.harness(None)
    );
    let v = eval(&expr, Store::Chroot(store.path()), &[]).unwrap();
    let script = v["script"].as_str().unwrap();
    // Install before users (password files), chown after users and groups.
    let install = position(script, "--phase install");
    let users = position(script, "snippet users:");
    let groups = position(script, "snippet groups:");
    let chown = position(script, "--phase chown");
    let specialfs = position(script, "snippet specialfs:");
    assert!(
        specialfs < install && install < users && users < groups && groups < chown,
        "{script}"
    );
    assert!(position(script, "snippet agenix:") > chown);
    assert_eq!(v["units"], json!([]), "no unit without sysusers");
    // The install phase is not part of a dry activation (it writes).
    assert!(!v["dry"].as_str().unwrap().contains("agefleet activate"));
    let m = manifest_named_in(store.path(), script, "-agefleet-manifest.json");
    assert_eq!(m["fs"], "ramfs", "agenix's filesystem by default");
    assert_eq!(
        m["identityPaths"],
        json!(["/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"])
    );
    let cert = m["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cert")
        .unwrap();
    assert_eq!(
        cert,
        &json!({"name": "cert", "file": "/s/cert.age", "path": "/etc/cert", "mode": "u=r,g=r,o=",
                "owner": "alice", "group": "users", "symlink": true})
    );

    // With systemd-sysusers (or userborn), a unit after them runs every phase.
    for enable in [
        "systemd.sysusers.enable = true;",
        "services.userborn.enable = true;",
    ] {
        let v = ours(
            &src,
            "nixos",
            &format!("{{ services.openssh.enable = true; age.secrets.a.file = \"/s/a.age\"; {enable} }}"),
            "{ unit = c.systemd.services.agenix-install-secrets; snippets = builtins.attrNames c.system.activationScripts; }",
        );
        let unit = &v["unit"];
        assert_eq!(unit["wantedBy"], json!(["sysinit.target"]));
        assert_eq!(
            unit["after"],
            json!(["systemd-sysusers.service", "userborn.service"])
        );
        assert_eq!(unit["unitConfig"]["DefaultDependencies"], "no");
        assert!(unit["serviceConfig"]["ExecStart"]
            .as_str()
            .unwrap()
            .ends_with("--phase all"));
        assert!(!v["snippets"]
            .as_array()
            .unwrap()
            .contains(&json!("agenixInstall")));
    }
}

#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn darwin_installs_after_run_exists_and_never_aborts() {
    let src = sources();
    let v = ours(
        &src,
        "darwin",
        "{ age.secrets.a.file = \"/s/a.age\"; users.knownUsers = [ \"alice\" ]; users.users.alice = { uid = 501; gid = 20; }; }",
        "{ script = c.system.activationScripts.script.text; daemon = c.launchd.daemons.activate-agenix.script;
           extra = c.system.activationScripts.extraActivation.text; }",
    );
    let script = v["script"].as_str().unwrap();
    // Installing runs after nix-darwin's createRun (/run made), before users are made.
    let create_run = position(script, "setting up /run via /etc/synthetic.conf");
    let install = position(script, "--phase install");
    let users = position(script, "setting up users...");
    let chown = position(script, "--phase chown");
    assert!(
        create_run < install && install < users && users < chown,
        "{script}"
    );
    assert!(position(script, "set -e") < create_run);

    // Run the snippet as nix-darwin does (set -e) with a RAM disk already attached and an
    // agefleet that fails one secret: activation goes on.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    fake("diskutil", "exit 0");
    fake(
        "agefleet",
        "echo \"agefleet: 1 secret failed: a\" >&2; exit 1",
    );
    let extra = v["extra"].as_str().unwrap();
    let store_agefleet = extra
        .split_whitespace()
        .find(|w| w.ends_with("/bin/agefleet"))
        .expect("agefleet call");
    let body = extra.replace(store_agefleet, &bin.join("agefleet").display().to_string());
    // As nix-darwin's activate runs it: `set -e`, then the rest of the activation.
    let activate = |prelude: &str| {
        let out = common::run(std::process::Command::new("bash").arg("-c").arg(format!(
            "set -e\nset -o pipefail\nPATH={}:$PATH\n{prelude}\n{body}\necho activation-went-on",
            bin.display()
        )));
        let (so, se) = (common::stdout(&out), common::stderr(&out));
        assert!(
            out.status.success() && so.contains("activation-went-on"),
            "{so}{se}"
        );
        (so, se)
    };
    let (_, se) = activate("");
    assert!(
        se.contains("agefleet: 1 secret failed: a") && se.contains("reported failures"),
        "{se}"
    );
    // A RAM disk that cannot be attached: nothing is installed onto the disk, and activation goes on.
    fake("diskutil", "exit 1");
    fake("hdiutil", "exit 1");
    fake("agefleet", "echo agefleet-ran; exit 0");
    // (`mkdir` of the mount point is a no-op here: this is not a Mac.)
    let (so, se) = activate("mkdir() { :; }");
    assert!(
        !so.contains("agefleet-ran") && se.contains("cannot mount a RAM disk"),
        "{so}{se}"
    );

    // The boot daemon: a failed mount exits 1 (launchd retries); failed secrets exit 0.
    let daemon = v["daemon"].as_str().unwrap();
    assert!(
        daemon.contains("_agefleet_mount || exit 1") && daemon.contains("--phase all ||"),
        "{daemon}"
    );
}

#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn home_manager_paths_on_darwin_and_linux() {
    let src = sources();
    // agenix's per-user directory on macOS, not an unset XDG_RUNTIME_DIR.
    let cfg = "{ age.secrets.a.file = \"/s/a.age\"; }";
    let pick =
        "{ dir = c.age.secretsDir; mp = c.age.secretsMountPoint; path = c.age.secrets.a.path;
                  agent = c.launchd.agents.activate-agenix.config.ProgramArguments or null;
                  units = builtins.attrNames c.xdg.configFile; }";
    let d = ours(&src, "home-darwin", cfg, pick);
    let getconf = "$(/nix/store/";
    let dir = d["dir"].as_str().unwrap();
    assert!(
        dir.starts_with(getconf)
            && dir.ends_with("-getconf/bin/getconf DARWIN_USER_TEMP_DIR)/agenix"),
        "{dir}"
    );
    assert!(d["path"]
        .as_str()
        .unwrap()
        .ends_with("DARWIN_USER_TEMP_DIR)/agenix/a"));
    assert_eq!(d["units"], json!([]));
    let l = ours(&src, "home-linux", cfg, pick);
    assert_eq!(l["dir"], "${XDG_RUNTIME_DIR}/agenix");
    assert_eq!(l["mp"], "${XDG_RUNTIME_DIR}/agenix.d");
    assert_eq!(
        l["units"],
        json!([
            "systemd/user/agenix.service",
            "systemd/user/default.target.wants/agenix.service"
        ])
    );
    // The agefleet manifest spells the macOS prefix `${XDG_RUNTIME_DIR}`, and the agent's
    // script sets that variable from getconf (a chroot store, to read the files).
    let store = tempfile::tempdir().unwrap();
    let expr = format!(
        "let c = {}.config {{ platform = \"home-darwin\"; modules = [ {cfg} ]; }}; in c.launchd.agents.activate-agenix.config.ProgramArguments",
        src.harness(None)
    );
    let args = eval(&expr, Store::Chroot(store.path()), &[]).unwrap();
    let script = std::fs::read_to_string(common::nix::in_chroot(
        store.path(),
        args[0].as_str().unwrap(),
    ))
    .unwrap();
    assert!(
        script.contains("XDG_RUNTIME_DIR=\"$(/nix/store/")
            && script.contains("DARWIN_USER_TEMP_DIR)\""),
        "{script}"
    );
    let manifest = manifest_named_in(store.path(), &script, "-agefleet-home-manifest.json");
    assert_eq!(manifest["secretsDir"], "${XDG_RUNTIME_DIR}/agenix");
    assert_eq!(
        manifest["secrets"][0]["path"],
        "${XDG_RUNTIME_DIR}/agenix/a"
    );
}

#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn package_and_flake_outputs_evaluate() {
    let src = sources();
    let h = src.harness(None);
    let v = eval(
        &format!(
            "let h = {h}; f = import ./nix/tests/eval/flake-outputs.nix {{ inherit (h) lib; }};
                 p = f.packages.x86_64-linux.default;
                 pkgs = h.lib.fix (final: pkgs0 // f.overlays.default final pkgs0); pkgs0 = import ./nix/tests/eval/pkgs.nix {{ inherit (h) lib; }};
             in {{
               apps = builtins.mapAttrs (_: a: a.program) f.apps.x86_64-linux;
               checkInputs = map (x: x.name) p.stubArgs.nativeCheckInputs;
               testFlags = p.stubArgs.cargoTestFlags;
               postInstall = p.stubArgs.postInstall;
               overridden = (p.override {{ ageBin = \"/x/bin/age\"; }}).name;
               agenixName = pkgs.agenix.pname;
               modules = [ (builtins.attrNames f.nixosModules) (builtins.attrNames f.darwinModules) (builtins.attrNames f.homeManagerModules) ];
               systems = builtins.attrNames f.packages;
               checks = builtins.attrNames f.checks.x86_64-linux;
             }}"
        ),
        Store::Dummy,
        &[],
    )
    .unwrap();
    let apps = v["apps"].as_object().unwrap();
    for app in [
        "default",
        "agenix",
        "check-keys",
        "create-keys",
        "copy-keys",
        "install-with-secrets",
    ] {
        let program = apps[app].as_str().unwrap();
        let name = if app == "default" { "agefleet" } else { app };
        assert!(
            program.ends_with(&format!("-agefleet-0.1.0/bin/{name}")),
            "{app}: {program}"
        );
    }
    // The package: git for the unit tests that make repositories, completions installed,
    // agenix's `override { ageBin }` accepted, `pkgs.agenix` from the overlay.
    assert_eq!(v["checkInputs"], json!(["git"]));
    let post = v["postInstall"].as_str().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            post.contains(&format!(
                "--{shell} <(\"$out/bin/agefleet\" completions {shell})"
            )),
            "{post}"
        );
    }
    assert_eq!(v["overridden"], "agefleet");
    assert_eq!(v["agenixName"], "agefleet");
    assert_eq!(
        v["modules"],
        json!([["age", "default"], ["age", "default"], ["age", "default"]])
    );
    assert_eq!(v["checks"], json!(["activation", "package"]));
    assert_eq!(v["systems"].as_array().unwrap().len(), 4);

    // The postInstall script itself, run against the built binary with nixpkgs'
    // installShellFiles functions replaced by recorders.
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path();
    std::fs::create_dir(out.join("bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_agefleet"), out.join("bin/agefleet")).unwrap();
    let script = format!(
        "set -euo pipefail
         installManPage() {{ mkdir -p \"$out/share/man/man1\"; cp \"$@\" \"$out/share/man/man1/\"; }}
         installShellCompletion() {{
           shift 2
           while [ $# -gt 0 ]; do mkdir -p \"$out/completions\"; cat \"$2\" > \"$out/completions/${{1#--}}\"; shift 2; done
         }}
         {post}"
    );
    let run = common::run(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(repo())
            .env("out", out),
    );
    assert!(run.status.success(), "{}", common::stderr(&run));
    for shell in ["bash", "zsh", "fish"] {
        let text = std::fs::read_to_string(out.join("completions").join(shell)).unwrap();
        assert!(text.contains("agefleet"), "{shell} completion: {text}");
    }
    for alias in [
        "agenix",
        "check-keys",
        "create-keys",
        "copy-keys",
        "install-with-secrets",
    ] {
        assert_eq!(
            std::fs::read_link(out.join("bin").join(alias)).unwrap(),
            Path::new("agefleet")
        );
    }
    assert!(out.join("share/man/man1/agefleet.1").is_file());
}

/// `nix flake show` and `nix flake check --no-build` on a copy of the flake, its nixpkgs
/// input overridden by a stand-in flake (nixpkgs' real lib, the stub packages of
/// nix/tests/eval/pkgs.nix), in a private chroot store: offline, nothing built.
#[test]
#[ignore = "needs `nix-instantiate`, `nix`, the Nix sources"]
fn nix_flake_show_and_check_with_a_stand_in_nixpkgs() {
    let src = sources();
    common::require_tool("nix");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cp = |from: &Path, to: &Path| {
        let out = common::run(std::process::Command::new("cp").arg("-r").arg(from).arg(to));
        assert!(
            out.status.success(),
            "cp {}: {}",
            from.display(),
            common::stderr(&out)
        );
    };
    for dir in ["flake", "nixpkgs", "store", "home"] {
        std::fs::create_dir(t.join(dir)).unwrap();
    }
    for file in ["flake.nix", "nix", "Cargo.toml", "Cargo.lock"] {
        cp(&repo().join(file), &t.join("flake"));
    }
    cp(&src.nixpkgs_lib.join("lib"), &t.join("nixpkgs"));
    cp(&repo().join("nix/tests/eval/pkgs.nix"), &t.join("nixpkgs"));
    std::fs::write(
        t.join("nixpkgs/flake.nix"),
        r#"{
  description = "A stand-in nixpkgs: the real lib, stub packages";
  outputs = { self }: let lib = import ./lib; in {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ]
      (system: import ./pkgs.nix { inherit lib system; });
  };
}
"#,
    )
    .unwrap();
    let nix = |args: &[&str]| {
        let nixpkgs = format!("path:{}", t.join("nixpkgs").display());
        let flake = format!("path:{}", t.join("flake").display());
        common::run(
            std::process::Command::new("nix")
                .args([
                    "--extra-experimental-features",
                    "nix-command flakes",
                    "--store",
                ])
                .arg(t.join("store"))
                .args(args)
                .args([
                    "--no-write-lock-file",
                    "--override-input",
                    "nixpkgs",
                    &nixpkgs,
                    &flake,
                ])
                .env("HOME", t.join("home"))
                .env("XDG_CACHE_HOME", t.join("home/.cache"))
                .env("NIX_PATH", "")
                .current_dir(t),
        )
    };
    let show = nix(&["flake", "show", "--json"]);
    assert!(show.status.success(), "{}", common::stderr(&show));
    let outputs: Value = serde_json::from_str(&common::stdout(&show)).unwrap();
    for system in [
        "x86_64-linux",
        "aarch64-linux",
        "x86_64-darwin",
        "aarch64-darwin",
    ] {
        let apps: BTreeSet<&str> = outputs["apps"][system]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            apps,
            BTreeSet::from([
                "default",
                "agenix",
                "check-keys",
                "copy-keys",
                "create-keys",
                "install-with-secrets"
            ]),
            "{system}"
        );
        assert_eq!(outputs["packages"][system]["default"]["name"], "agefleet");
    }
    assert_eq!(outputs["nixosModules"]["default"]["type"], "nixos-module");
    assert_eq!(outputs["nixosModules"]["age"]["type"], "nixos-module");
    // Nix 2.8 does not know these output kinds; package_and_flake_outputs_evaluate looks inside.
    for modules in ["darwinModules", "homeManagerModules"] {
        assert_eq!(outputs[modules]["type"], "unknown", "{modules}");
    }
    assert!(outputs["overlays"]["default"].is_object());

    let check = nix(&["flake", "check", "--no-build"]);
    let err = common::stderr(&check);
    assert!(check.status.success(), "{err}");
    assert!(!err.contains("error"), "{err}");
}

/// `age.plugins` (NixOS/nix-darwin and home-manager modules): activation runs with just the
/// plugins on PATH, as age finds them; without plugins the command is unchanged.
#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn modules_put_age_plugins_on_the_activation_path() {
    let src = sources();
    let with_plugins = |cfg: &str| {
        format!("{cfg} ({{ pkgs, ... }}: {{ age.plugins = [ pkgs.age-plugin-tpm pkgs.age-plugin-yubikey ]; }})")
    };
    let cases = [
        (
            "nixos",
            "{ age.secrets.a.file = \"/s/a.age\"; }",
            "[ c.system.activationScripts.agenixInstall.text c.system.activationScripts.agenixChown.text ]",
        ),
        (
            "home-linux",
            "{ age.secrets.a.file = \"/s/a.age\"; }",
            "c.systemd.user.services.agenix.Service.ExecStart",
        ),
    ];
    for (platform, cfg, pick) in cases {
        let plain = ours(&src, platform, cfg, pick);
        let with = ours(&src, platform, &with_plugins(cfg), pick);
        let (plain, with) = (plain.as_array().unwrap(), with.as_array().unwrap());
        assert_eq!(plain.len(), with.len());
        for (plain, with) in plain.iter().zip(with) {
            let (plain, with) = (plain.as_str().unwrap(), with.as_str().unwrap());
            assert!(
                plain.contains("/bin/agefleet activate --manifest ") && !plain.contains("PATH="),
                "{platform}: {plain}"
            );
            // `<coreutils>/bin/env PATH=<tpm>/bin:<yubikey>/bin ` before the plain command.
            let prefix = with
                .strip_suffix(plain)
                .unwrap_or_else(|| panic!("{platform}: {with} does not end with {plain}"));
            let (env, path) = prefix
                .trim_end()
                .split_once(" PATH=")
                .unwrap_or_else(|| panic!("{platform}: no PATH= in {with}"));
            assert!(env.ends_with("-coreutils/bin/env"), "{platform}: {with}");
            let dirs: Vec<&str> = path.split(':').collect();
            assert_eq!(dirs.len(), 2, "{path}");
            assert!(dirs[0].ends_with("-age-plugin-tpm/bin"), "{path}");
            assert!(dirs[1].ends_with("-age-plugin-yubikey/bin"), "{path}");
        }
    }
}

/// A configuration that uses none of `restartUnits`, `reloadUnits` or `age.templates` gets
/// exactly the activation scripts, units, agents and manifests it got before they existed
/// (`nix/tests/eval/compat-expected.json`, captured then; see `compat.nix`).
#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn configurations_without_units_or_templates_activate_byte_for_byte_as_before() {
    let src = sources();
    let store = tempfile::tempdir().unwrap();
    let outputs = eval(
        &format!(
            "import ./nix/tests/eval/compat.nix {{ harness = {}; }}",
            src.harness(None)
        ),
        Store::Chroot(store.path()),
        &[],
    )
    .unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("nix/tests/eval/compat-expected.json")).unwrap(),
    )
    .unwrap();
    for (case, want) in expected["outputs"].as_object().unwrap() {
        assert_eq!(&outputs[case], want, "{case}: the outputs changed");
    }
    assert_eq!(outputs, expected["outputs"]);
    // The manifests and scripts they name, byte for byte.
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 4, "{files:?}");
    for (path, text) in files {
        let got = std::fs::read_to_string(common::nix::in_chroot(store.path(), path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(got, text.as_str().unwrap(), "{path}");
    }
}

/// The first line of an evaluation error.
fn error_line(e: &str) -> String {
    e.lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or(e)
        .to_string()
}

/// `restartUnits`, `reloadUnits`, `age.templates` and `age.placeholder` on the real module
/// systems: the options exist, the manifest holds the units and templates, and no file the
/// evaluation wrote to the store holds a secret's value (only placeholders).
#[test]
#[ignore = "needs `age`, `nix-instantiate`, the Nix sources"]
fn templates_and_units_reach_the_manifest_with_only_placeholders_in_the_store() {
    let src = sources();
    common::require_tool("age");
    let tmp = tempfile::tempdir().unwrap();
    let (_, recipient) = common::age_keygen(tmp.path(), "host.key");
    let db = tmp.path().join("db.age");
    common::age_encrypt(&[&recipient], false, b"plaintext-db-hunter2", &db);
    let conf = tmp.path().join("app.conf");
    std::fs::write(
        &conf,
        "[app]\nkey = @KEY@\n".replace("@KEY@", &crate::units::placeholder("db")),
    )
    .unwrap();
    let s = |p: &Path| nix_string(&p.display().to_string());
    // `file` as a path literal: the ciphertext goes to the store, as with agenix.
    let secrets = format!(
        "age.secrets.db = {{ file = {db}; restartUnits = [ \"db.service\" \"app.service\" ]; reloadUnits = [ \"nginx.service\" ]; }};
         age.secrets.other.file = {db};",
        db = format!("/. + {}", s(&db)),
    );
    let system = format!(
        "({{ config, ... }}: {{ age.identityPaths = [ \"/k\" ]; {secrets}
            users.users = {{ }};
            age.templates.\"app.env\" = {{ content = \"PASSWORD=${{config.age.placeholder.db}}\\n\"; owner = \"1000\"; mode = \"0440\"; restartUnits = [ \"app.service\" ]; }};
            age.templates.fromfile = {{ file = /. + {conf}; path = \"/etc/app.conf\"; }}; }})",
        conf = s(&conf),
    );
    let store = tempfile::tempdir().unwrap();
    let expr = format!(
        "let c = {}.config {{ platform = \"nixos\"; modules = [ {system} ]; }}; in {{
           install = c.system.activationScripts.agenixInstall;
           placeholder = c.age.placeholder;
           failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
           built = builtins.seq c.system.dryActivationScript c.system.activationScript;
         }}",
        src.harness(None)
    );
    let v = eval(&expr, Store::Chroot(store.path()), &[]).unwrap();
    assert_eq!(v["failed"], json!([]));
    assert_eq!(v["install"]["supportsDryActivation"], true);
    assert_eq!(
        v["placeholder"]["db"],
        crate::units::placeholder("db").as_str()
    );
    let m = manifest_named_in(
        store.path(),
        v["install"]["text"].as_str().unwrap(),
        "-agefleet-manifest.json",
    );
    assert_eq!(
        m["activationRestartList"],
        "/run/nixos/activation-restart-list"
    );
    assert_eq!(
        m["activationReloadList"],
        "/run/nixos/activation-reload-list"
    );
    let db_entry = m["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "db")
        .unwrap();
    assert_eq!(
        db_entry["restartUnits"],
        json!(["db.service", "app.service"])
    );
    assert_eq!(db_entry["reloadUnits"], json!(["nginx.service"]));
    let other = m["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "other")
        .unwrap();
    assert!(other.get("restartUnits").is_none(), "{other}");
    assert_eq!(
        m["templates"],
        json!([
            {"name": "app.env", "content": format!("PASSWORD={}\n", crate::units::placeholder("db")),
             "path": "/run/agenix/app.env", "mode": "0440", "owner": "1000", "group": "0",
             "symlink": true, "restartUnits": ["app.service"], "reloadUnits": []},
            {"name": "fromfile", "content": format!("[app]\nkey = {}\n", crate::units::placeholder("db")),
             "path": "/etc/app.conf", "mode": "0400", "owner": "0", "group": "0",
             "symlink": true, "restartUnits": [], "reloadUnits": []},
        ])
    );
    // Every file the evaluation wrote: the ciphertext and the manifest are there, the
    // plaintext is nowhere.
    let mut files = Vec::new();
    let mut stack = vec![store.path().join("nix/store")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                files.push(e.path());
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with("-db.age")),
        "{files:?}"
    );
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(b"hunter2".len()).any(|w| w == b"hunter2"),
            "{} holds a secret's value",
            f.display()
        );
    }

    // nix-darwin and home-manager: templates on their real module systems.
    for (platform, pick) in [
        ("darwin", "c.system.activationScripts.extraActivation.text"),
        (
            "home-linux",
            "builtins.head c.systemd.user.services.agenix.Service.ExecStart",
        ),
        (
            "home-darwin",
            "builtins.head c.launchd.agents.activate-agenix.config.ProgramArguments",
        ),
    ] {
        let store = tempfile::tempdir().unwrap();
        let expr = format!(
            "let c = {}.config {{ platform = \"{platform}\"; modules = [ ({{ config, ... }}: {{ age.identityPaths = [ \"/k\" ]; age.secrets.db.file = \"/s/db.age\"; age.templates.t.content = \"x=${{config.age.placeholder.db}}\"; }}) ]; }}; in {{
               script = {pick};
               failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
               options = builtins.attrNames (c.age.templates.t);
             }}",
            src.harness(None)
        );
        let v = eval(&expr, Store::Chroot(store.path()), &[]).unwrap();
        assert_eq!(v["failed"], json!([]), "{platform}");
        let mut script = v["script"].as_str().unwrap().to_string();
        if platform == "home-darwin" {
            script =
                std::fs::read_to_string(common::nix::in_chroot(store.path(), &script)).unwrap();
        }
        let suffix = if platform == "darwin" {
            "-agefleet-manifest.json"
        } else {
            "-agefleet-home-manifest.json"
        };
        let m = manifest_named_in(store.path(), &script, suffix);
        assert_eq!(
            m["templates"][0]["content"],
            format!("x={}", crate::units::placeholder("db")).as_str(),
            "{platform}"
        );
        assert!(m.get("activationRestartList").is_none(), "{platform}: {m}");
        for option in [
            "content",
            "file",
            "mode",
            "path",
            "restartUnits",
            "reloadUnits",
        ] {
            assert!(
                v["options"].as_array().unwrap().iter().any(|o| o == option),
                "{platform}: no age.templates.<n>.{option}"
            );
        }
    }
}

/// Bad input on the Nix side: one-line evaluation errors (or assertions) naming the option.
#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn bad_units_modes_and_placeholders_are_errors_naming_the_option() {
    let src = sources();
    let eval_nixos = |platform: &str, body: &str| {
        let expr = format!(
            "let c = {}.config {{ platform = \"{platform}\"; modules = [ ({{ config, ... }}: {{ age.identityPaths = [ \"/k\" ]; age.secrets.db.file = \"/s/db.age\"; {body} }}) ]; }}; in {{
               failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
               built = builtins.seq (if c ? system.activationScript then c.system.activationScript else c.system.activationScripts.script.text) null;
             }}",
            src.harness(None)
        );
        eval(&expr, Store::Dummy, &[])
    };
    for (body, want) in [
        (
            "age.secrets.db.restartUnits = [ \"a/b.service\" ];",
            "error: age.secrets.db.restartUnits: \"a/b.service\" is not a valid systemd unit name",
        ),
        (
            "age.secrets.db.reloadUnits = [ \"a\\nb.service\" ];",
            "error: age.secrets.db.reloadUnits: \"a\\nb.service\" is not a valid systemd unit name",
        ),
        (
            "age.templates.t = { content = \"x\"; restartUnits = [ \"nginx\" ]; };",
            "error: age.templates.t.restartUnits: \"nginx\" is not a valid systemd unit name",
        ),
        (
            "age.templates.t = { content = \"x\"; mode = \"4755\"; };",
            "error: age.templates.t.mode: \"4755\" is not an octal mode without setuid",
        ),
        (
            "age.templates.t = { content = \"x\"; mode = \"u+s\"; };",
            "error: age.templates.t.mode: \"u+s\" is not an octal mode without setuid",
        ),
    ] {
        let e = eval_nixos("nixos", body).expect_err(body);
        let line = error_line(&e);
        assert!(line.starts_with(want), "{body}: {line}");
    }
    // A placeholder of a secret that is not declared: an assertion naming the template.
    let v = eval_nixos(
        "nixos",
        "age.templates.t.content = import ./nix/placeholder.nix \"nope\";",
    )
    .unwrap();
    assert_eq!(
        v["failed"],
        json!(["age.templates.t: uses the placeholder of a secret that is not declared in age.secrets."])
    );
    // Through `config.age.placeholder`, an undeclared name is Nix's own error naming it.
    let e = eval_nixos(
        "nixos",
        "age.templates.t.content = config.age.placeholder.nope;",
    )
    .unwrap_err();
    assert!(error_line(&e).contains("attribute 'nope' missing"), "{e}");
    // A template named like a secret; units where there is no restart list.
    let v = eval_nixos("nixos", "age.templates.db.content = \"x\";").unwrap();
    assert_eq!(
        v["failed"],
        json!(["age.templates.db: the secret age.secrets.db has the same name (both would be secretsDir/db)."])
    );
    // With systemd-sysusers the secrets are installed after the lists are read: a warning.
    let expr = format!(
        "({}.config {{ platform = \"nixos\"; modules = [ {{ age.identityPaths = [ \"/k\" ]; systemd.sysusers.enable = true; age.secrets.db = {{ file = \"/s/db.age\"; restartUnits = [ \"a.service\" ]; }}; }} ]; }}).warnings",
        src.harness(None)
    );
    let w = eval(&expr, Store::Dummy, &[]).unwrap();
    assert_eq!(w.as_array().unwrap().len(), 1, "{w}");
    assert!(
        w[0].as_str().unwrap().starts_with(
            "age.secrets.db: restartUnits/reloadUnits are not applied with systemd-sysusers"
        ),
        "{w}"
    );
    let v = eval_nixos("darwin", "age.secrets.db.restartUnits = [ \"a.service\" ];").unwrap();
    assert_eq!(
        v["failed"],
        json!(["age.secrets.db: restartUnits and reloadUnits need systemd (NixOS); nix-darwin has no restart list."])
    );
}

/// The README's examples of `restartUnits`/`reloadUnits` and templates (NixOS, and the
/// agefleet half of "Coming from sops-nix") evaluate on the NixOS harness, with the module's
/// checks passing and the activation script built.
#[test]
#[ignore = "needs `nix-instantiate`, the Nix sources"]
fn readme_examples_of_units_and_templates_evaluate() {
    let src = sources();
    let tree = Tree::new();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("## Restarting services and templates").unwrap();
    let end = start + readme[start..].find("\n## ").unwrap();
    let blocks: Vec<String> = nix_blocks(&readme[start..end])
        .into_iter()
        .filter(|b| !b.contains("sops."))
        .collect();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    for (n, block) in blocks.iter().enumerate() {
        let module = tree.block_module(100 + n, block);
        // Options of services the examples configure, which the NixOS stand-in lacks.
        let stubs = "({ lib, ... }: { options.services.nginx = lib.mkOption { type = lib.types.anything; default = { }; }; })";
        let expr = format!(
            "let c = {}.config {{ platform = \"nixos\"; modules = [ {module} {stubs} {{ age.identityPaths = [ \"/k\" ]; }} ]; }}; in {{
               failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
               templates = builtins.attrNames c.age.templates;
               units = builtins.concatMap (s: s.restartUnits ++ s.reloadUnits) (builtins.attrValues c.age.secrets);
               built = builtins.seq c.system.activationScript null;
             }}",
            src.harness(None)
        );
        let v = eval(&expr, Store::Dummy, &[]).unwrap_or_else(|e| panic!("block {n}: {e}"));
        assert_eq!(v["failed"], json!([]), "block {n}");
        assert_eq!(v["templates"].as_array().unwrap().len(), 1, "block {n}");
        assert!(!v["units"].as_array().unwrap().is_empty(), "block {n}");
    }
}
