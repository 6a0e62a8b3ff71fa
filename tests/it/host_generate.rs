//! `host add NAME --generate-key DIR`: a first install's host key generated into a
//! nixos-anywhere `--extra-files` tree (modes checked), bound in secrets.nix, and the
//! secrets rekeyed so that the reference `age -d -i` opens them with that key; an existing
//! key is never overwritten, and a DIR that is a symlink another user planted is refused.

use std::path::Path;

use crate::common::{self, assert_clean_failure, mode_of, require_tool, stderr, stdout, Fleet};

fn fleet() -> Fleet {
    let f = Fleet::new();
    std::fs::write(
        f.path("secrets.nix"),
        format!(
            "let\n  admin = {};\nin\n{{\n  \"x.age\".publicKeys = [ admin ];\n  \"y.age\".publicKeys = [ admin ];\n}}\n",
            common::nix_string(&f.admin.public_line)
        ),
    )
    .unwrap();
    f.age_file("x.age", &[&f.admin.public_line], b"x\n");
    f.age_file("y.age", &[&f.admin.public_line], b"y\n");
    f
}

fn rules(f: &Fleet) -> String {
    std::fs::read_to_string(f.path("secrets.nix")).unwrap()
}

fn key_in(dir: &Path) -> std::path::PathBuf {
    dir.join("etc/ssh/ssh_host_ed25519_key")
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn the_generated_key_is_bound_and_decrypts_its_rekeyed_secrets() {
    require_tool("age");
    let f = fleet();
    let extra = f.tmp.path().join("web3-extra");
    let dir = extra.to_str().unwrap();
    let out = f.run(&[
        "host",
        "add",
        "web3",
        "--generate-key",
        dir,
        "--to",
        "x.age",
        "--pq",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = key_in(&extra);
    assert_eq!(mode_of(&extra.join("etc")), 0o755);
    assert_eq!(mode_of(&extra.join("etc/ssh")), 0o755);
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(mode_of(&key.with_extension("pub")), 0o644);
    let pq = extra.join("etc/ssh/id_mlkem768x25519_agenix");
    assert_eq!(mode_of(&pq), 0o600);
    let pq_text = std::fs::read_to_string(&pq).unwrap();
    assert!(pq_text.starts_with("# public key: age1pq1"), "{pq_text}");
    assert!(pq_text.contains("\nAGE-SECRET-KEY-PQ-1"), "{pq_text}");
    // ssh-keygen reads the key and derives the .pub that was bound.
    let derived = common::run(
        std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&key),
    );
    assert!(derived.status.success(), "{}", stderr(&derived));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let fields = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(fields(&stdout(&derived)), fields(&public));
    assert!(public.trim_end().ends_with(" root@web3"), "{public}");
    let text = rules(&f);
    assert!(
        text.contains(&format!("  web3 = \"{}\";\n", public.trim())),
        "{text}"
    );
    assert!(
        text.contains("\"x.age\".publicKeys = [ admin web3 ];"),
        "{text}"
    );
    assert!(text.contains("\"y.age\".publicKeys = [ admin ];"), "{text}");
    assert_eq!(f.age_plaintext(&key, "x.age"), b"x\n");
    assert!(!common::age_decrypt(&key, &f.path("y.age")).status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "nixos-anywhere --extra-files {dir} --flake '.#web3' root@HOST"
        )),
        "{err}"
    );
    assert!(
        err.contains("post-quantum recipient of web3: age1pq1"),
        "{err}"
    );

    // Again into the same DIR (another name): refused before anything is written.
    let before_key = std::fs::read(&key).unwrap();
    let before = rules(&f);
    let out = f.run(&[
        "host",
        "add",
        "web4",
        "--generate-key",
        dir,
        "--to",
        "x.age",
    ]);
    assert_clean_failure(
        &out,
        &format!(
            "{}: already exists; refusing to overwrite it",
            key.display()
        ),
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(std::fs::read(&key).unwrap(), before_key);
    assert_eq!(rules(&f), before);
}

#[test]
#[ignore = "needs `ssh-keygen`"]
fn a_dry_run_writes_no_key_and_no_rules() {
    require_tool("ssh-keygen");
    let f = fleet();
    let extra = f.tmp.path().join("extra");
    let before = rules(&f);
    let out = f.run(&[
        "host",
        "add",
        "web3",
        "--generate-key",
        extra.to_str().unwrap(),
        "--like",
        "admin",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("+  web3 = \"ssh-ed25519 "),
        "{}",
        stdout(&out)
    );
    assert!(!extra.exists());
    assert!(!stderr(&out).contains("nixos-anywhere"), "{}", stderr(&out));
    assert_eq!(rules(&f), before);
}

#[test]
#[ignore = "needs root"]
fn a_dir_symlink_planted_by_another_user_is_refused() {
    common::require_root();
    let f = fleet();
    let real = f.tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = f.tmp.path().join("extra");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
    let before = rules(&f);
    let out = f.run(&[
        "host",
        "add",
        "web3",
        "--generate-key",
        link.to_str().unwrap(),
        "--to",
        "x.age",
    ]);
    assert_clean_failure(
        &out,
        &format!(
            "{}: is a symbolic link that is owned by uid 4242; refusing to follow it",
            link.display()
        ),
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    assert_eq!(rules(&f), before);
    // A directory owned by another user is refused too (they could swap the key later).
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::chown(&real, Some(4242), Some(4242)).unwrap();
    let out = f.run(&[
        "host",
        "add",
        "web3",
        "--generate-key",
        real.to_str().unwrap(),
        "--to",
        "x.age",
    ]);
    assert_clean_failure(
        &out,
        "is owned by uid 4242; refusing to put a host key there",
    );
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    assert_eq!(rules(&f), before);
}
