//! The activation manifest: the JSON interface between the Nix modules (`nix/manifest.nix`)
//! and `agefleet activate`.
//!
//! Unknown fields are refused: the module and the binary come from the same package, so an
//! unknown field is a typo or a mismatch, never forward compatibility. Format changes bump
//! `version`, which is checked first so a newer manifest gets "unsupported version" rather
//! than a confusing field error.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ActivationError;

/// The manifest format this binary understands.
pub const MANIFEST_VERSION: u64 = 1;

/// Which RAM filesystem to mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsChoice {
    /// tmpfs with `noswap`, falling back to ramfs on kernels without it.
    Tmpfs,
    /// ramfs (never swapped, but unbounded in size).
    Ramfs,
}

/// What `nix/manifest.nix` writes for `agefleet activate`: agenix's `age.*` options, in
/// camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// The format version; must equal [`MANIFEST_VERSION`].
    pub version: u64,
    /// `age.secretsDir`: the link to the current generation (`$HOME` and `$XDG_RUNTIME_DIR`
    /// are expanded at activation).
    pub secrets_dir: String,
    /// `age.secretsMountPoint`: the RAM-backed mount that holds the numbered generations.
    pub secrets_mount_point: String,
    /// `age.identityPaths`: the private keys tried for decryption.
    pub identity_paths: Vec<String>,
    /// Which RAM filesystem to mount.
    pub fs: FsChoice,
    /// Every secret to install.
    pub secrets: Vec<SecretSpec>,
    /// Files rendered from a text with placeholders of the secrets (`age.templates`).
    #[serde(default)]
    pub templates: Vec<TemplateSpec>,
    /// Where the units to restart are appended (NixOS: `/run/nixos/activation-restart-list`);
    /// present when some secret or template has units.
    #[serde(default)]
    pub activation_restart_list: Option<String>,
    /// Where the units to reload are appended (NixOS: `/run/nixos/activation-reload-list`).
    #[serde(default)]
    pub activation_reload_list: Option<String>,
}

/// One secret as the module declared it. Values are validated per secret at activation so
/// that one bad entry fails alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// The secret's attribute name (its file name in the generation).
    pub name: String,
    /// The encrypted `.age` file (usually a store path).
    pub file: String,
    /// Where the secret appears: a symlink into the generation, or the file itself when
    /// `symlink` is false.
    pub path: String,
    /// Permission bits, octal as written in Nix (`"0400"`).
    pub mode: String,
    /// Owner: a user name or a numeric uid.
    pub owner: String,
    /// Group: a group name or a numeric gid.
    pub group: String,
    /// `path` is a symlink into the generation (`true`) or a file written there directly.
    pub symlink: bool,
    /// Units to restart when the secret's content changes.
    #[serde(default, rename = "restartUnits")]
    pub restart_units: Vec<String>,
    /// Units to reload when the secret's content changes.
    #[serde(default, rename = "reloadUnits")]
    pub reload_units: Vec<String>,
}

/// One template (`age.templates.<name>`): a public text whose placeholders are replaced by
/// secrets' plaintext at activation; installed like a secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSpec {
    /// The template's name (its file name in the generation).
    pub name: String,
    /// The text, with `<AGEFLEET:PLACEHOLDER:…>` tokens (see [`crate::activation::render`]).
    pub content: String,
    /// Where the rendered file appears (as for a secret).
    pub path: String,
    /// Permission bits.
    pub mode: String,
    /// Owner: a user name or a numeric uid.
    pub owner: String,
    /// Group: a group name or a numeric gid.
    pub group: String,
    /// `path` is a symlink into the generation (`true`) or the file itself.
    pub symlink: bool,
    /// Units to restart when the rendered content changes.
    #[serde(default)]
    pub restart_units: Vec<String>,
    /// Units to reload when the rendered content changes.
    #[serde(default)]
    pub reload_units: Vec<String>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u64,
}

impl Manifest {
    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ActivationError> {
        let bytes = crate::fsutil::read_regular(path).map_err(|e| ActivationError::io(path, e))?;
        Self::parse(&bytes, path)
    }

    /// Parses manifest bytes; `origin` names the file in errors.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Self, ActivationError> {
        let version: VersionOnly = serde_json::from_slice(bytes).map_err(|e| syntax(origin, &e))?;
        if version.version != MANIFEST_VERSION {
            return Err(ActivationError::Manifest {
                path: origin.to_path_buf(),
                reason: format!(
                    "unsupported manifest version {} (this agefleet reads version {MANIFEST_VERSION})",
                    version.version
                ),
            });
        }
        serde_json::from_slice(bytes).map_err(|e| syntax(origin, &e))
    }
}

/// serde_json renders "msg at line L column C"; we print "file:L:C: msg".
fn syntax(origin: &Path, e: &serde_json::Error) -> ActivationError {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    // serde quotes unknown field names as given: escape what would break the line.
    let reason =
        crate::text::escape_controls(text.strip_suffix(&suffix).unwrap_or(&text)).into_owned();
    ActivationError::ManifestSyntax {
        path: PathBuf::from(origin),
        line: e.line(),
        column: e.column(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version":1,"secretsDir":"/run/agenix","secretsMountPoint":"/run/agenix.d",
        "identityPaths":["/etc/ssh/ssh_host_ed25519_key"],"fs":"tmpfs",
        "secrets":[{"name":"a","file":"/nix/store/x-a.age","path":"/run/agenix/a","mode":"0400",
        "owner":"0","group":"0","symlink":true}]}"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD.as_bytes(), Path::new("m.json")).unwrap();
        assert_eq!(m.secrets_dir, "/run/agenix");
        assert_eq!(m.fs, FsChoice::Tmpfs);
        assert_eq!(m.secrets[0].mode, "0400");
    }

    #[test]
    fn refuses_other_versions_before_looking_at_fields() {
        let text = GOOD.replace("\"version\":1", "\"version\":2,\"newField\":3");
        let e = Manifest::parse(text.as_bytes(), Path::new("m.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.json: unsupported manifest version 2 (this agefleet reads version 1)"
        );
    }

    #[test]
    fn refuses_unknown_fields_with_position() {
        let text = GOOD.replace("\"symlink\":true", "\"symlnk\":true");
        let e = Manifest::parse(text.as_bytes(), Path::new("m.json")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("m.json:4:"), "{msg}");
        assert!(msg.contains("unknown field `symlnk`"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn bad_json_names_file_line_and_column() {
        let e =
            Manifest::parse(b"{\n  \"version\": 1,\n  oops", Path::new("/x/m.json")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/x/m.json:3:3: "), "{msg}");
        assert!(!msg.contains(" at line "), "{msg}");
    }

    #[test]
    fn missing_version_is_an_error() {
        let e = Manifest::parse(b"{}", Path::new("m.json")).unwrap_err();
        assert!(e.to_string().contains("missing field `version`"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_errors_are_one_line(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Err(e) = Manifest::parse(&bytes, Path::new("m.json")) {
                let msg = e.to_string();
                proptest::prop_assert!(msg.starts_with("m.json:"));
                proptest::prop_assert!(!msg.contains('\n'));
            }
        }

        #[test]
        fn mutated_manifests_never_panic(cut in 0usize..400, insert in "[\\[\\]{}:,\"0-9a-z]{0,4}") {
            let mut text = GOOD.to_string();
            let at = cut.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &insert);
            }
            let _ = Manifest::parse(text.as_bytes(), Path::new("m.json"));
        }
    }
}
