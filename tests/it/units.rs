//! `restartUnits` / `reloadUnits` and templates at activation, for real: as root, each test
//! in its own mount namespace (see `common::activation`), `.age` files made by the reference
//! `age` CLI, list files and paths in temp directories instead of /run/nixos.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use crate::common;
use crate::common::activation::{
    activate, in_mount_namespace, owner_mode, Fixture, Secret, TestGroup, TestUser,
};
use crate::common::{stderr, stdout};

/// The placeholder of secret `name`, from `nix/placeholder.nix` (the one definition).
pub(crate) fn placeholder(name: &str) -> String {
    let out = common::run(
        std::process::Command::new("nix-instantiate")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--eval", "--json", "-E"])
            .arg(format!(
                "import ./nix/placeholder.nix {}",
                common::nix_string(name)
            )),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn units(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The list files of a test: `root/nixos/activation-{restart,reload}-list`.
struct Lists {
    restart: PathBuf,
    reload: PathBuf,
}

impl Lists {
    fn new(root: &Path) -> Self {
        let dir = root.join("nixos");
        std::fs::create_dir_all(&dir).unwrap();
        Lists {
            restart: dir.join("activation-restart-list"),
            reload: dir.join("activation-reload-list"),
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn dry(p: &Path) -> PathBuf {
        p.with_file_name(format!("dry-{}", p.file_name().unwrap().to_string_lossy()))
    }
}

/// A manifest of `secrets` and `templates` (JSON, as `nix/manifest.nix` writes them) whose
/// list files are `lists`.
fn manifest(
    fx: &Fixture,
    name: &str,
    secrets: &[Secret],
    templates: Value,
    lists: &Lists,
) -> PathBuf {
    let path = fx.layout.manifest(name, &[&fx.key], "tmpfs", secrets);
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["templates"] = templates;
    m["activationRestartList"] = json!(lists.restart);
    m["activationReloadList"] = json!(lists.reload);
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    path
}

fn template(name: &str, content: &str, restart: &[&str]) -> Value {
    json!({
        "name": name, "content": content, "path": Value::Null, "mode": "0400",
        "owner": "0", "group": "0", "symlink": true,
        "restartUnits": restart, "reloadUnits": [],
    })
}

/// Fills in the default path (`secretsDir/name`) of templates without one.
fn with_paths(fx: &Fixture, mut templates: Value) -> Value {
    for t in templates.as_array_mut().unwrap() {
        if t["path"].is_null() {
            t["path"] = json!(fx.layout.secrets_dir.join(t["name"].as_str().unwrap()));
        }
    }
    templates
}

fn report(out: &Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `nix-instantiate`, `unshare`"]
fn only_the_units_of_changed_secrets_are_listed_once() {
    let Some(root) = in_mount_namespace("only_the_units_of_changed_secrets_are_listed_once") else {
        return;
    };
    let fx = Fixture::new(&root);
    let lists = Lists::new(&root);
    // Other activation scripts write these files too: they are appended to, never truncated.
    std::fs::write(&lists.restart, "other.service\n").unwrap();

    let mut a = Secret::new("a", &fx.age("a1.age", b"A one"));
    a.restart_units = units(&["a1.service", "a2.service"]);
    a.reload_units = units(&["a-reload.service"]);
    let mut b = Secret::new("b", &fx.age("b.age", b"B"));
    b.restart_units = units(&["b.service"]);
    let mut c = Secret::new("c", &fx.age("c.age", b"C"));
    c.restart_units = units(&["c.service"]);
    c.reload_units = units(&["c-reload.service"]);
    // A template using `a` restarts one of a's units: still listed once.
    let templates = with_paths(
        &fx,
        json!([template(
            "conf",
            &format!("a = {}\n", placeholder("a")),
            &["a1.service"]
        )]),
    );
    let m =
        |name: &str, secrets: &[Secret]| manifest(&fx, name, secrets, templates.clone(), &lists);
    let run = |manifest: &Path| {
        let out = activate(fx.home(), manifest, &["--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        report(&out)
    };

    // The first activation after boot (no previous generation) lists nothing.
    let first = m("1.json", &[a.clone(), b.clone(), c.clone()]);
    let r = run(&first);
    assert_eq!(
        r["changed"],
        json!({"a": false, "b": false, "c": false, "conf": false})
    );
    assert_eq!(Lists::read(&lists.restart), "other.service\n");
    assert!(!lists.reload.exists());

    // Same contents (b re-encrypted: other ciphertext, same plaintext): nothing appended.
    let mut b2 = b.clone();
    b2.file = fx.age("b2.age", b"B");
    let same = m("2.json", &[a.clone(), b2, c.clone()]);
    let r = run(&same);
    assert_eq!(
        r["changed"],
        json!({"a": false, "b": false, "c": false, "conf": false})
    );
    assert_eq!(Lists::read(&lists.restart), "other.service\n");
    assert!(!lists.reload.exists());

    // A dry activation (switch-to-configuration dry-activate) of a change: the dry lists
    // get the units, nothing is installed, the real lists are untouched.
    let mut a2 = a.clone();
    a2.file = fx.age("a2.age", b"A two");
    let changed = m("3.json", &[a2.clone(), b.clone(), c.clone()]);
    let generation = std::fs::read_link(&fx.layout.secrets_dir).unwrap();
    let out = common::run(
        common::agefleet(fx.home())
            .env("NIXOS_ACTION", "dry-activate")
            .args(["activate", "--json", "--manifest"])
            .arg(&changed),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["dryRun"], true);
    assert_eq!(r["restartUnits"], json!(["a1.service", "a2.service"]));
    assert_eq!(
        Lists::read(&Lists::dry(&lists.restart)),
        "a1.service\na2.service\n"
    );
    assert_eq!(
        Lists::read(&Lists::dry(&lists.reload)),
        "a-reload.service\n"
    );
    assert_eq!(
        std::fs::read_link(&fx.layout.secrets_dir).unwrap(),
        generation
    );
    assert_eq!(
        std::fs::read_to_string(fx.layout.secrets_dir.join("a")).unwrap(),
        "A one"
    );
    assert_eq!(Lists::read(&lists.restart), "other.service\n");

    // The change for real: a's two units once each (the template's too), its reload unit;
    // nothing of b's or c's.
    let r = run(&changed);
    assert_eq!(
        r["changed"],
        json!({"a": true, "b": false, "c": false, "conf": true})
    );
    assert_eq!(
        Lists::read(&lists.restart),
        "other.service\na1.service\na2.service\n"
    );
    assert_eq!(Lists::read(&lists.reload), "a-reload.service\n");
    assert_eq!(
        std::fs::read_to_string(fx.layout.secrets_dir.join("conf")).unwrap(),
        "a = A two\n"
    );

    // c leaves the configuration: its units are listed (it was removed).
    std::fs::remove_file(&lists.restart).unwrap();
    std::fs::remove_file(&lists.reload).unwrap();
    let removed = m("4.json", &[a2, b]);
    let r = run(&removed);
    assert_eq!(r["restartUnits"], json!(["c.service"]));
    assert_eq!(Lists::read(&lists.restart), "c.service\n");
    assert_eq!(Lists::read(&lists.reload), "c-reload.service\n");
    assert!(!fx.layout.secrets_dir.join("c").exists());
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `nix-instantiate`, `unshare`"]
fn templates_are_rendered_with_owner_and_mode_and_fail_by_name() {
    let Some(root) =
        in_mount_namespace("templates_are_rendered_with_owner_and_mode_and_fail_by_name")
    else {
        return;
    };
    let fx = Fixture::new(&root);
    let lists = Lists::new(&root);
    let group = TestGroup::new("tpg");
    let user = TestUser::new("tpu", &group);
    let db = Secret::new("db", &fx.age("db.age", b"hunter2"));
    let api = Secret::new("api", &fx.age("api.age", b"K\0EY"));
    let broken = Secret::new("broken", &fx.store.join("missing.age"));
    let linked = root.join("etc/app.conf");
    let mut app = template(
        "app.conf",
        &format!(
            "[db]\npassword = {}\napi = {}\nagain = {}\n",
            placeholder("db"),
            placeholder("api"),
            placeholder("db")
        ),
        &[],
    );
    app["owner"] = json!(user.name);
    app["group"] = json!(group.name);
    app["mode"] = json!("0440");
    app["path"] = json!(linked);
    let templates = with_paths(
        &fx,
        json!([
            app,
            template("uses-broken", &format!("x={}", placeholder("broken")), &[])
        ]),
    );
    let m = manifest(&fx, "m.json", &[db, api, broken], templates, &lists);

    // Install then chown (as NixOS runs them), then the report of a failure.
    let out = activate(fx.home(), &m, &["--phase", "install"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "template \"uses-broken\": uses secret \"broken\", which could not be installed"
        ),
        "{err}"
    );
    assert!(err.contains("secret \"broken\": "), "{err}");
    assert!(
        err.contains("installed 2 secret(s) and 1 template(s)"),
        "{err}"
    );
    let out = activate(fx.home(), &m, &["--phase", "chown", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let gen = fx.layout.mount_point.join("1");
    let rendered = std::fs::read(fx.layout.secrets_dir.join("app.conf")).unwrap();
    assert_eq!(
        rendered,
        b"[db]\npassword = hunter2\napi = K\0EY\nagain = hunter2\n"
    );
    assert_eq!(
        owner_mode(&gen.join("app.conf")),
        (user.uid, group.gid, 0o440)
    );
    // `path` is a symlink to secretsDir/name, like a secret's.
    assert_eq!(
        std::fs::read_link(&linked).unwrap(),
        fx.layout.secrets_dir.join("app.conf")
    );
    assert_eq!(std::fs::read(&linked).unwrap(), rendered);
    // The failed ones are absent; the generation holds everything else.
    assert!(!gen.join("uses-broken").exists() && !gen.join("broken").exists());
    assert_eq!(std::fs::read(gen.join("db")).unwrap(), b"hunter2");

    // Phase all, second generation: still complete, secretsDir on it, the old one gone.
    let out = activate(fx.home(), &m, &["--phase", "all", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    assert_eq!(r["rendered"], json!(["app.conf"]));
    let failed: Vec<&str> = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["broken", "uses-broken"]);
    assert_eq!(fx.layout.current_generation().as_deref(), Some("2"));
    assert_eq!(fx.layout.generations(), ["2"]);
    assert_eq!(
        std::fs::read(fx.layout.secrets_dir.join("app.conf")).unwrap(),
        rendered
    );
    assert_eq!(
        owner_mode(&fx.layout.mount_point.join("2/app.conf")),
        (user.uid, group.gid, 0o440)
    );
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `unshare`"]
fn a_list_file_symlinked_by_a_user_is_refused() {
    let Some(root) = in_mount_namespace("a_list_file_symlinked_by_a_user_is_refused") else {
        return;
    };
    let fx = Fixture::new(&root);
    let group = TestGroup::new("lsg");
    let user = TestUser::new("lsu", &group);
    let chown = |p: &Path| {
        rustix::fs::chownat(
            rustix::fs::CWD,
            p,
            Some(rustix::fs::Uid::from_raw(user.uid)),
            Some(rustix::fs::Gid::from_raw(group.gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap()
    };
    let victim = root.join("victim");
    std::fs::write(&victim, "root's file\n").unwrap();
    let mut a = Secret::new("a", &fx.age("a0.age", b"zero"));
    a.restart_units = units(&["a.service"]);

    // Where the user plants a symlink named like the restart list, pointing at root's file:
    // a directory anyone can write (sticky, like /tmp: the kernel's protected_symlinks
    // refuses first), and a directory of the user's own (O_NOFOLLOW refuses).
    for (n, (dir, mode, refusal)) in [
        ("sticky", 0o1777, "Permission denied".to_string()),
        (
            "users",
            0o755,
            "is a symbolic link; refusing to follow it".to_string(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = root.join(dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        if mode == 0o755 {
            chown(&dir);
        }
        let lists = Lists {
            restart: dir.join("activation-restart-list"),
            reload: dir.join("activation-reload-list"),
        };
        std::os::unix::fs::symlink(&victim, &lists.restart).unwrap();
        chown(&lists.restart);

        let m = |name: &str, s: &Secret| {
            manifest(&fx, name, std::slice::from_ref(s), json!([]), &lists)
        };
        // Unchanged (or the first activation): nothing to list, nothing refused.
        let out = activate(fx.home(), &m("same.json", &a), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let value = format!("value {n}");
        a.file = fx.age(&format!("a{n}.age"), value.as_bytes());
        let out = activate(fx.home(), &m("changed.json", &a), &["--json"]);
        // The secret is installed; listing its units is refused, naming the file; exit 1.
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        let line = err
            .lines()
            .find(|l| l.contains("units not listed"))
            .unwrap_or_else(|| panic!("{err}"));
        assert!(line.contains(&dir.display().to_string()), "{line}");
        assert!(line.contains(&refusal), "{line}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file\n");
        assert_eq!(
            std::fs::read_to_string(fx.layout.secrets_dir.join("a")).unwrap(),
            value
        );
        let r = report(&out);
        assert_eq!(r["changed"], json!({"a": true}));
        assert!(r["unitError"].as_str().unwrap().contains(&refusal));
    }
}
