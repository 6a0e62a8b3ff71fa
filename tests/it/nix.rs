//! The Nix side, checked with the real `nix-instantiate`: every `.nix` file of the repository
//! parses, and `nix/manifest.nix` evaluates to a manifest that `agefleet activate` installs
//! (as root, in a private mount namespace).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::activation::{activate, in_mount_namespace, owner_mode, Layout};
use crate::common::{age_encrypt, age_keygen, nix_string, require_tool, run, stderr, stdout};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            // fuzz/ holds fuzzer inputs (crashers are malformed on purpose), not Nix code.
            if name != "target" && name != ".git" && name != "fuzz" {
                nix_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "nix") && !expected_invalid(&path) {
            out.push(path);
        }
    }
}

/// A fixture that is invalid on purpose says so on its first line.
fn expected_invalid(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.starts_with("# expect-parse-error"))
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn every_nix_file_parses() {
    require_tool("nix-instantiate");
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    for required in [
        "flake.nix",
        "nix/manifest.nix",
        "nix/package.nix",
        "nix/modules/age.nix",
        "nix/modules/age-home.nix",
    ] {
        assert!(files.contains(&repo().join(required)), "{required} missing");
    }
    for file in &files {
        let out = run(Command::new("nix-instantiate").arg("--parse").arg(file));
        assert!(
            out.status.success(),
            "{} does not parse: {}",
            file.display(),
            stderr(&out)
        );
    }
}

/// `nix-instantiate --eval --strict --json -E EXPR` from the repository root.
fn eval_json(expr: &str) -> Result<serde_json::Value, String> {
    let out = run(Command::new("nix-instantiate")
        .current_dir(repo())
        .args(["--eval", "--strict", "--json", "-E", expr]));
    if !out.status.success() {
        return Err(stderr(&out));
    }
    serde_json::from_str(&stdout(&out)).map_err(|e| e.to_string())
}

#[test]
#[ignore = "needs `nix-instantiate`"]
fn manifest_nix_has_agenix_defaults() {
    require_tool("nix-instantiate");
    let m = eval_json(
        r#"import ./nix/manifest.nix {
             secrets.a.file = "/s/a.age";
             secrets.b = { file = "/s/b.age"; name = "bee"; path = "/etc/b"; mode = "0440";
                           owner = "alice"; group = "users"; symlink = false; };
             identityPaths = [ /etc/ssh/ssh_host_ed25519_key ];
           }"#,
    )
    .unwrap();
    assert_eq!(
        m,
        serde_json::json!({
            "version": 1,
            "secretsDir": "/run/agenix",
            "secretsMountPoint": "/run/agenix.d",
            // A path literal stays a path: a private key is never copied into the store.
            "identityPaths": ["/etc/ssh/ssh_host_ed25519_key"],
            // agenix's ramfs (switching back to agenix reuses it).
            "fs": "ramfs",
            "secrets": [
                {"name": "a", "file": "/s/a.age", "path": "/run/agenix/a", "mode": "0400",
                 "owner": "0", "group": "0", "symlink": true},
                {"name": "bee", "file": "/s/b.age", "path": "/etc/b", "mode": "0440",
                 "owner": "alice", "group": "users", "symlink": false},
            ],
        })
    );

    // The default path follows secretsDir and the name.
    let m = eval_json(
        r#"import ./nix/manifest.nix { secretsDir = "/x"; secrets.a = { file = "/f"; name = "n"; }; fs = "tmpfs"; }"#,
    )
    .unwrap();
    assert_eq!(m["secrets"][0]["path"], "/x/n");
    assert_eq!(m["fs"], "tmpfs");

    assert!(eval_json(r#"import ./nix/manifest.nix { secrets = { }; fs = "zfs"; }"#).is_err());
}

#[test]
#[ignore = "needs root, `age-keygen`, `age`, `nix-instantiate`, `unshare`"]
fn manifest_nix_output_activates() {
    let Some(root) = in_mount_namespace("manifest_nix_output_activates") else {
        return;
    };
    require_tool("nix-instantiate");
    require_tool("age");
    let l = Layout::new(&root);
    let (key, recipient) = age_keygen(&root, "host.key");
    let a = root.join("a.age");
    age_encrypt(&[&recipient], false, b"from nix", &a);
    let expr = format!(
        "import ./nix/manifest.nix {{ secretsDir = {}; secretsMountPoint = {}; identityPaths = [ {} ]; secrets.a.file = {}; secrets.b = {{ file = {}; path = {}; symlink = false; mode = \"0440\"; }}; }}",
        nix_string(&l.secrets_dir.display().to_string()),
        nix_string(&l.mount_point.display().to_string()),
        nix_string(&key.display().to_string()),
        nix_string(&a.display().to_string()),
        nix_string(&a.display().to_string()),
        nix_string(&root.join("b-file").display().to_string()),
    );
    let manifest = eval_json(&expr).unwrap();
    let path = root.join("manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();

    let out = activate(&root, &path, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(l.secrets_dir.join("a")).unwrap(),
        "from nix"
    );
    // Defaults: mode 0400, owner and group 0, path secretsDir/name.
    assert_eq!(owner_mode(&l.mount_point.join("1/a")), (0, 0, 0o400));
    assert_eq!(owner_mode(&root.join("b-file")), (0, 0, 0o440));
    assert_eq!(
        std::fs::read_to_string(root.join("b-file")).unwrap(),
        "from nix"
    );
}
