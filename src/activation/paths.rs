//! Path rules of activation: variable expansion (home-manager) and which secret names and
//! target paths are acceptable.

use std::path::{Path, PathBuf};

/// A variable a path uses is unset or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("${0} is not set")]
pub(crate) struct UnsetVariable(pub(crate) &'static str);

/// Expands `${XDG_RUNTIME_DIR}`, `$XDG_RUNTIME_DIR`, `${HOME}` and `$HOME` in `text` using
/// `lookup`. Any other `$` is kept as written. An unset or empty variable is an error, so a
/// path never silently collapses to `/agenix`.
pub(crate) fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, UnsetVariable> {
    const VARS: [&str; 2] = ["XDG_RUNTIME_DIR", "HOME"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let found = VARS.iter().find_map(|var| {
            let braced = format!("{{{var}}}");
            if after.starts_with(&braced) {
                Some((*var, braced.len()))
            } else if after.starts_with(var)
                && !after[var.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            {
                Some((*var, var.len()))
            } else {
                None
            }
        });
        match found {
            Some((var, used)) => {
                let value = lookup(var)
                    .filter(|v| !v.is_empty())
                    .ok_or(UnsetVariable(var))?;
                out.push_str(&value);
                rest = &after[used..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a secret name: a relative path of normal components (`a` or `dir/a`), never empty,
/// absolute, with `.`/`..`, empty components or NUL. Returns the reason when refused.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty secret name");
    }
    if name.contains('\0') {
        return Err("secret name contains NUL");
    }
    if name.starts_with('/') {
        return Err("absolute secret name (names are relative to secretsDir)");
    }
    for part in name.split('/') {
        match part {
            "" => return Err("secret name has an empty path component"),
            "." | ".." => return Err("secret name contains `.` or `..`"),
            _ => {}
        }
    }
    Ok(())
}

/// An absolute, normalised path without `.`/`..` components; the reason otherwise.
pub(crate) fn check_absolute(path: &str) -> Result<PathBuf, &'static str> {
    if path.contains('\0') {
        return Err("path contains NUL");
    }
    if !path.starts_with('/') {
        return Err("path is not absolute");
    }
    let mut out = PathBuf::from("/");
    // Split by hand: `Path::components` silently drops inner `.` components.
    for part in path.split('/') {
        match part {
            "" => {}
            "." | ".." => return Err("path contains `.` or `..`"),
            n => out.push(n),
        }
    }
    if out == Path::new("/") {
        return Err("path is the root directory");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "HOME" => Some("/home/u".into()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_both_spellings() {
        assert_eq!(
            expand("${XDG_RUNTIME_DIR}/agenix", &env).unwrap(),
            "/run/user/1000/agenix"
        );
        assert_eq!(
            expand("$HOME/.s/$HOME", &env).unwrap(),
            "/home/u/.s//home/u"
        );
        assert_eq!(expand("${HOME}x", &env).unwrap(), "/home/ux");
        assert_eq!(expand("/a/$HOMEX/$", &env).unwrap(), "/a/$HOMEX/$");
        assert_eq!(expand("/run/agenix", &env).unwrap(), "/run/agenix");
    }

    #[test]
    fn unset_variable_is_an_error() {
        let none = |_: &str| None;
        let e = expand("${XDG_RUNTIME_DIR}/agenix", &none).unwrap_err();
        assert_eq!(e, UnsetVariable("XDG_RUNTIME_DIR"));
        assert_eq!(e.to_string(), "$XDG_RUNTIME_DIR is not set");
        let empty = |_: &str| Some(String::new());
        assert!(expand("$HOME/x", &empty).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("a").is_ok());
        assert!(check_name("dir/a.env").is_ok());
        assert!(check_name("..a").is_ok());
        for bad in [
            "",
            "/etc/shadow",
            "../x",
            "a/../../x",
            "a/.",
            "./a",
            "a//b",
            "a/",
            "a\0b",
            "..",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(check_absolute("/run/x/").unwrap(), PathBuf::from("/run/x"));
        assert_eq!(check_absolute("/run//x").unwrap(), PathBuf::from("/run/x"));
        for bad in ["run/x", "/run/../etc", "/", "", "/a/./b", "/a\0"] {
            assert!(check_absolute(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest::proptest! {
        /// An accepted name, joined to a base and normalised, stays strictly under the base.
        #[test]
        fn accepted_names_stay_under_the_base(name in "[a-z./\u{0}]{0,12}") {
            if check_name(&name).is_ok() {
                let joined = Path::new("/base").join(&name);
                let normal = check_absolute(joined.to_str().unwrap()).unwrap();
                proptest::prop_assert!(normal.starts_with("/base"));
                proptest::prop_assert!(normal != Path::new("/base"));
                proptest::prop_assert_eq!(normal, joined);
            }
        }
    }
}
