//! The NixOS activation script as the module system evaluates it (nix/tests/eval, NixOS's
//! activation-script semantics), run for real as root in a private mount namespace: the
//! evaluated store files are in a private chroot store bind-mounted over /nix/store, and
//! the script calls the agefleet binary under test. Also the switch from agefleet to
//! agenix's own evaluated activation and back, both ways on the same `/run/agenix.d`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::activation::{fs_type, in_mount_namespace, owner_mode, TestGroup, TestUser};
use crate::common::nix::{eval, sources, Sources, Store};
use crate::common::{age_encrypt, age_keygen, nix_string, require_tool, run, stderr, stdout};

/// A package directory whose bin/agefleet is the binary under test.
fn agefleet_package(root: &Path) -> PathBuf {
    let pkg = root.join("pkg");
    if !pkg.exists() {
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_agefleet"), pkg.join("bin/agefleet"))
            .unwrap();
    }
    pkg
}

/// The evaluated `system.activationScript` of `impl_`'s module with `config`, its store
/// files written to the chroot store at `root/store`.
fn activation_script(
    src: &Sources,
    root: &Path,
    impl_: &str,
    config: &str,
    users_text: &str,
) -> String {
    evaluated_script(src, root, impl_, config, users_text, "activationScript")
}

/// `system.<attr>` (`activationScript`, `dryActivationScript`), as [`activation_script`].
fn evaluated_script(
    src: &Sources,
    root: &Path,
    impl_: &str,
    config: &str,
    users_text: &str,
    attr: &str,
) -> String {
    let pkg = agefleet_package(root);
    let expr = format!(
        "({}.eval {{ platform = \"nixos\"; impl = \"{impl_}\"; modules = [ {config} ]; nixos.usersText = {}; }}).config.system.{attr}",
        src.harness(Some(&pkg)),
        nix_string(users_text),
    );
    let store = root.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let script = eval(&expr, Store::Chroot(&store), &[]).unwrap_or_else(|e| panic!("{e}"));
    script.as_str().unwrap().to_string()
}

/// Makes the chroot store's files visible at /nix/store (this namespace only).
fn mount_store(root: &Path) {
    let out = run(Command::new("mount")
        .arg("--bind")
        .arg(root.join("store/nix/store"))
        .arg("/nix/store"));
    assert!(out.status.success(), "mount --bind: {}", stderr(&out));
}

/// Runs an activation script with bash, as NixOS's `activate` does.
fn run_script(root: &Path, name: &str, script: &str) -> (bool, String) {
    let file = root.join(name);
    std::fs::write(&file, script).unwrap();
    let out = run(Command::new("bash").arg(&file).env("LANG", "C"));
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `mount`, `nix-instantiate`, `unshare`, the Nix sources"]
fn evaluated_nixos_activation_installs_for_real() {
    let src = sources();
    let Some(root) = in_mount_namespace("evaluated_nixos_activation_installs_for_real") else {
        return;
    };
    require_tool("age");
    require_tool("mount");
    let group = TestGroup::new("nxg");
    let user = TestUser::new("nxu", &group);
    let (key, recipient) = age_keygen(&root, "host.key");
    let enc = |name: &str, text: &str| {
        let p = root.join(format!("{name}.age"));
        age_encrypt(&[&recipient], false, text.as_bytes(), &p);
        nix_string(&p.display().to_string())
    };
    let dir = root.join("agenix");
    let mp = root.join("agenix.d");
    let s = |p: &Path| nix_string(&p.display().to_string());
    let config = format!(
        "{{ age.identityPaths = [ {key} ]; age.secretsDir = {dir}; age.secretsMountPoint = {mp};
            users.users.{u}.group = \"{g}\";
            age.secrets.pw.file = {pw};
            age.secrets.owned = {{ file = {owned}; owner = \"{u}\"; mode = \"u=r,g=r,o=\"; }};
            age.secrets.linked = {{ file = {pw}; path = {linked}; }};
            age.secrets.copied = {{ file = {owned}; path = {copied}; symlink = false; owner = \"{u}\"; mode = \"0440\"; }};
            age.secrets.setuid = {{ file = {pw}; mode = \"4755\"; }}; }}",
        key = s(&key),
        dir = s(&dir),
        mp = s(&mp),
        u = user.name,
        g = group.name,
        pw = enc("pw", "hashed password"),
        owned = enc("owned", "owned secret"),
        linked = s(&root.join("etc/linked")),
        copied = s(&root.join("var/copied")),
    );
    // NixOS makes users here: the password file must already be installed, and owned by
    // root (ownership comes after users and groups).
    let users_text = format!(
        "if [ \"$(cat {d}/pw)\" = 'hashed password' ] && [ \"$(stat -c %u {d}/owned)\" = 0 ]; then touch {m}; fi",
        d = dir.display(),
        m = root.join("users-ran-after-install").display(),
    );
    let script = activation_script(&src, &root, "agefleet", &config, &users_text);
    mount_store(&root);
    let (ok, log) = run_script(&root, "activate", &script);

    // The setuid secret fails alone, by name, with a reason; the snippet reports it and
    // the others are installed.
    assert!(!ok, "{log}");
    assert!(log.contains("setuid") && log.contains("4755"), "{log}");
    assert!(
        log.contains("Activation script snippet 'agenixInstall' failed"),
        "{log}"
    );
    // The chown phase (after users and groups) plans the same secrets and says so again.
    assert!(log.contains("chowned 4 secret(s) in generation 1"), "{log}");
    assert!(root.join("users-ran-after-install").exists(), "{log}");
    assert!(!dir.join("setuid").exists());

    assert_eq!(fs_type(&mp), "ramfs");
    assert_eq!(std::fs::read_link(&dir).unwrap(), mp.join("1"));
    assert_eq!(read(&dir.join("pw")), "hashed password");
    assert_eq!(owner_mode(&mp.join("1/pw")), (0, 0, 0o400));
    assert_eq!(read(&dir.join("owned")), "owned secret");
    assert_eq!(
        owner_mode(&mp.join("1/owned")),
        (user.uid, group.gid, 0o440)
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/linked")).unwrap(),
        dir.join("linked")
    );
    assert_eq!(read(&root.join("etc/linked")), "hashed password");
    let copied = root.join("var/copied");
    assert!(!std::fs::symlink_metadata(&copied)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(owner_mode(&copied), (user.uid, group.gid, 0o440));
    assert_eq!(read(&copied), "owned secret");
}

/// The mounts at `path` in this namespace (stacked mounts count separately).
fn mounts_at(path: &Path) -> Vec<String> {
    let want = path.display().to_string();
    read(Path::new("/proc/self/mounts"))
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some(want.as_str()))
        .map(|l| l.split(' ').nth(2).unwrap_or("").to_string())
        .collect()
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `mount`, `nix-instantiate`, `unshare`, the Nix sources"]
fn switching_to_agenix_and_back() {
    let src = sources();
    let Some(root) = in_mount_namespace("switching_to_agenix_and_back") else {
        return;
    };
    require_tool("age");
    require_tool("mount");
    let (key, recipient) = age_keygen(&root, "host.key");
    let file = root.join("a.age");
    age_encrypt(&[&recipient], false, b"same secret", &file);
    let dir = root.join("agenix");
    let mp = root.join("agenix.d");
    let s = |p: &Path| nix_string(&p.display().to_string());
    let config = |extra: &str| {
        format!(
            "{{ age.identityPaths = [ {} ]; age.secretsDir = {}; age.secretsMountPoint = {}; age.secrets.a.file = {}; {extra} }}",
            s(&key),
            s(&dir),
            s(&mp),
            s(&file)
        )
    };
    let ours = activation_script(&src, &root, "agefleet", &config(""), "");
    let ours_tmpfs = activation_script(&src, &root, "agefleet", &config("age.fs = \"tmpfs\";"), "");
    let theirs = activation_script(
        &src,
        &root,
        "agenix",
        &config("age.ageBin = \"/usr/bin/age\";"),
        "",
    );
    mount_store(&root);
    let generation = || std::fs::read_link(&dir).unwrap();
    let content = || read(&dir.join("a"));

    let (ok, log) = run_script(&root, "ours", &ours);
    assert!(ok, "{log}");
    assert_eq!(
        (generation(), content()),
        (mp.join("1"), "same secret".into())
    );
    assert_eq!(mounts_at(&mp), ["ramfs"]);

    // agenix finds its ramfs, makes generation 2 in it and removes ours.
    let (_, log) = run_script(&root, "theirs", &theirs);
    assert_eq!(
        (generation(), content()),
        (mp.join("2"), "same secret".into()),
        "{log}"
    );
    assert_eq!(mounts_at(&mp), ["ramfs"], "agenix reused the mount: {log}");
    assert!(!mp.join("1").exists(), "{log}");

    // And back: agefleet reuses agenix's ramfs, generation 3, agenix's removed.
    let (ok, log) = run_script(&root, "ours-again", &ours);
    assert!(ok, "{log}");
    assert_eq!(
        (generation(), content()),
        (mp.join("3"), "same secret".into())
    );
    assert_eq!(mounts_at(&mp), ["ramfs"]);
    assert!(!mp.join("2").exists());
    assert_eq!(
        std::fs::metadata(mp.join("3/a")).unwrap().mode() & 0o7777,
        0o400
    );

    // The documented caveat of `age.fs = "tmpfs"`: on a fresh mount point agefleet mounts
    // tmpfs, which agenix does not recognise; it stacks a ramfs over it (reboot to clean).
    let (ok, log) = run_script(&root, "umount", &format!("umount {}", mp.display()));
    assert!(ok, "{log}");
    std::fs::remove_file(&dir).unwrap();
    let (ok, log) = run_script(&root, "ours-tmpfs", &ours_tmpfs);
    assert!(ok, "{log}");
    if fs_type(&mp) == "tmpfs" {
        let (_, log) = run_script(&root, "theirs-over-tmpfs", &theirs);
        assert_eq!(mounts_at(&mp), ["tmpfs", "ramfs"], "{log}");
    }
}

/// `restartUnits`/`reloadUnits` and a template on NixOS, for real: module → manifest →
/// the evaluated activation script → `/run/nixos/activation-{restart,reload}-list` (a
/// private tmpfs at /run in this namespace), and `dry-activate` through the evaluated dry
/// activation script.
#[test]
#[ignore = "needs root, `age-keygen`, `age`, `mount`, `nix-instantiate`, `unshare`, the Nix sources"]
fn evaluated_nixos_activation_lists_units_and_renders_templates() {
    let src = sources();
    let Some(root) =
        in_mount_namespace("evaluated_nixos_activation_lists_units_and_renders_templates")
    else {
        return;
    };
    require_tool("age");
    require_tool("mount");
    let group = TestGroup::new("nug");
    let user = TestUser::new("nuu", &group);
    let (key, recipient) = age_keygen(&root, "host.key");
    let a = root.join("a.age");
    let set_a = |text: &str| age_encrypt(&[&recipient], false, text.as_bytes(), &a);
    set_a("first");
    let b = root.join("b.age");
    age_encrypt(&[&recipient], false, b"bee", &b);
    let dir = root.join("agenix");
    let mp = root.join("agenix.d");
    let s = |p: &Path| nix_string(&p.display().to_string());
    let config = format!(
        "({{ config, ... }}: {{ age.identityPaths = [ {key} ]; age.secretsDir = {dir}; age.secretsMountPoint = {mp};
            users.users.{u}.group = \"{g}\";
            age.secrets.a = {{ file = {a}; restartUnits = [ \"a.service\" \"shared.service\" ]; reloadUnits = [ \"a-reload.service\" ]; }};
            age.secrets.b = {{ file = {b}; restartUnits = [ \"b.service\" \"shared.service\" ]; }};
            age.templates.\"app.conf\" = {{ content = \"secret=${{config.age.placeholder.a}}\\n\"; owner = \"{u}\"; mode = \"0440\"; restartUnits = [ \"app.service\" ]; }}; }})",
        key = s(&key),
        dir = s(&dir),
        mp = s(&mp),
        a = s(&a),
        b = s(&b),
        u = user.name,
        g = group.name,
    );
    let script = activation_script(&src, &root, "agefleet", &config, "");
    let dry = evaluated_script(&src, &root, "agefleet", &config, "", "dryActivationScript");
    mount_store(&root);
    let out = run(Command::new("mount").args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"]));
    assert!(out.status.success(), "mount /run: {}", stderr(&out));
    std::fs::create_dir("/run/nixos").unwrap();
    let list = |name: &str| std::fs::read_to_string(Path::new("/run/nixos").join(name)).ok();

    // Boot: nothing listed; the template is rendered, owned by the user.
    let (ok, log) = run_script(&root, "activate", &script);
    assert!(ok, "{log}");
    assert_eq!(list("activation-restart-list"), None, "{log}");
    assert_eq!(read(&dir.join("app.conf")), "secret=first\n");
    assert_eq!(
        owner_mode(&mp.join("1/app.conf")),
        (user.uid, group.gid, 0o440)
    );

    // a changes (same file, same manifest): its units and the template's, once each.
    set_a("second");
    let (ok, log) = run_script(&root, "activate", &script);
    assert!(ok, "{log}");
    assert_eq!(
        list("activation-restart-list").as_deref(),
        Some("a.service\nshared.service\napp.service\n"),
        "{log}"
    );
    assert_eq!(
        list("activation-reload-list").as_deref(),
        Some("a-reload.service\n")
    );
    assert_eq!(read(&dir.join("app.conf")), "secret=second\n");

    // switch-to-configuration dry-activate: the dry lists, nothing installed.
    set_a("third");
    let generation = std::fs::read_link(&dir).unwrap();
    let file = root.join("dry-activate");
    std::fs::write(&file, &dry).unwrap();
    let out = run(Command::new("bash")
        .arg(&file)
        .env("LANG", "C")
        .env("NIXOS_ACTION", "dry-activate"));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        list("dry-activation-restart-list").as_deref(),
        Some("a.service\nshared.service\napp.service\n")
    );
    assert_eq!(std::fs::read_link(&dir).unwrap(), generation);
    assert_eq!(read(&dir.join("a")), "second");
    assert_eq!(
        list("activation-restart-list").as_deref(),
        Some("a.service\nshared.service\napp.service\n")
    );
}
