//! A secret's `mode` as `chmod` reads it: agenix passes the string to `chmod`, so its users
//! write octal (`"0440"`) and symbolic modes (`"u=r,g=r,o="`) alike.
//!
//! Symbolic clauses are applied, as agenix's `chmod` applies them, to the file as it was
//! created (mode 0400), and a clause without `ugoa` leaves the bits of the activation
//! scripts' umask (022) alone, as `chmod` does. Setuid, setgid and sticky bits (octal
//! `4000`/`2000`/`1000`, symbolic `s`/`t`) are refused: a secret is data, never a program.

/// The mode of a freshly decrypted file, before its `mode` is applied.
const CREATED: u32 = 0o400;
/// The umask `chmod` honours for a clause without `ugoa` (NixOS and nix-darwin activation).
const UMASK: u32 = 0o022;

/// Why a secret's `mode` is refused (one line, quoting the mode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ModeError {
    /// The mode is the empty string.
    #[error("mode is empty")]
    Empty,
    /// All digits, but not an octal number up to 07777.
    #[error("mode `{0}` is not an octal mode like 0440")]
    NotOctal(String),
    /// An octal mode with setuid, setgid or sticky bits.
    #[error("mode `{0}` sets setuid, setgid or sticky bits, which are refused for secrets")]
    SpecialOctal(String),
    /// A symbolic mode with `s` or `t`.
    #[error(
        "mode `{0}` sets setuid, setgid or sticky bits (`s`, `t`), which are refused for secrets"
    )]
    SpecialSymbolic(String),
    /// Not a mode `chmod` accepts.
    #[error("mode `{mode}` is not a chmod mode ({why})")]
    NotChmod {
        /// The mode as written.
        mode: String,
        /// What `chmod` would stumble on.
        why: String,
    },
}

/// The permission bits `mode` gives a secret, or why it is refused.
pub(crate) fn parse(mode: &str) -> Result<u32, ModeError> {
    if mode.is_empty() {
        return Err(ModeError::Empty);
    }
    let bits = if mode.bytes().all(|b| b.is_ascii_digit()) {
        octal(mode)?
    } else {
        symbolic(mode)?
    };
    Ok(bits)
}

fn octal(mode: &str) -> Result<u32, ModeError> {
    let value = mode
        .bytes()
        .try_fold(0u32, |acc, b| {
            let digit = u32::from(b.wrapping_sub(b'0'));
            (digit < 8 && acc <= 0o7777).then_some(acc * 8 + digit)
        })
        .filter(|v| *v <= 0o7777)
        .ok_or_else(|| ModeError::NotOctal(mode.to_string()))?;
    if value & 0o7000 != 0 {
        return Err(ModeError::SpecialOctal(mode.to_string()));
    }
    Ok(value)
}

/// `[ugoa]*([-+=]([rwxX]*|[ugo]))+`, comma-separated, as `chmod` reads it.
fn symbolic(mode: &str) -> Result<u32, ModeError> {
    let bad = |why: &str| ModeError::NotChmod {
        mode: mode.to_string(),
        why: why.to_string(),
    };
    let mut bits = CREATED;
    for clause in mode.split(',') {
        let mut chars = clause.chars().peekable();
        let mut who = 0u32;
        while let Some(&c) = chars.peek() {
            who |= match c {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                'a' => 0o777,
                _ => break,
            };
            chars.next();
        }
        // Without `ugoa`, every class is meant, minus the umask's bits.
        let (cleared, allowed) = if who == 0 {
            (0o777, 0o777 & !UMASK)
        } else {
            (who, who)
        };
        let mut ops = 0;
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return Err(bad(&format!("unexpected `{op}`")));
            }
            ops += 1;
            let mut value = 0u32;
            let (mut copied, mut any) = (false, false);
            while let Some(&c) = chars.peek() {
                if matches!(c, '+' | '-' | '=') {
                    break;
                }
                chars.next();
                let first = !any;
                any = true;
                let class_bits = |shift: u32| ((bits >> shift) & 0o7) * 0o111;
                value |= match c {
                    'r' if !copied => 0o444,
                    'w' if !copied => 0o222,
                    'x' if !copied => 0o111,
                    'X' if !copied => {
                        // A regular file gets x only if some class already has it.
                        if bits & 0o111 != 0 {
                            0o111
                        } else {
                            0
                        }
                    }
                    'u' | 'g' | 'o' if first => {
                        copied = true;
                        class_bits(match c {
                            'u' => 6,
                            'g' => 3,
                            _ => 0,
                        })
                    }
                    's' | 't' => return Err(ModeError::SpecialSymbolic(mode.to_string())),
                    other => return Err(bad(&format!("unexpected `{other}`"))),
                };
            }
            let value = value & allowed;
            bits = match op {
                '+' => bits | value,
                '-' => bits & !value,
                _ => (bits & !cleared) | value,
            };
        }
        if ops == 0 {
            return Err(bad(if clause.is_empty() {
                "empty clause"
            } else {
                "a clause needs `+`, `-` or `=`"
            }));
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes() {
        assert_eq!(parse("0400"), Ok(0o400));
        assert_eq!(parse("440"), Ok(0o440));
        assert_eq!(parse("770"), Ok(0o770));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("000640"), Ok(0o640));
        for bad in ["0800", "9", "", "0o640", "-400", " 400"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn setuid_setgid_sticky_are_refused() {
        for bad in [
            "4755", "2750", "1777", "7777", "u+s", "g=rs", "+t", "o=t", "a=rwxst",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("setuid, setgid or sticky"), "{bad}: {e}");
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        assert_eq!(parse("077777"), Err(ModeError::NotOctal("077777".into())));
        assert!(parse("077777")
            .unwrap_err()
            .to_string()
            .contains("not an octal mode"));
    }

    #[test]
    fn symbolic_modes() {
        assert_eq!(parse("u=r,g=r,o="), Ok(0o440));
        assert_eq!(parse("u=rw"), Ok(0o600));
        assert_eq!(parse("g+r"), Ok(0o440));
        assert_eq!(parse("a+r"), Ok(0o444));
        assert_eq!(parse("+w"), Ok(0o600), "the umask keeps g/o w");
        assert_eq!(parse("=r"), Ok(0o444));
        assert_eq!(parse("u-r"), Ok(0));
        assert_eq!(parse("go=u"), Ok(0o444));
        assert_eq!(parse("u=rw,g=u-w,o="), Ok(0o640));
        assert_eq!(parse("ug=rx"), Ok(0o550));
        assert_eq!(
            parse("a+X"),
            Ok(0o400),
            "X adds nothing to a file without x"
        );
        assert_eq!(parse("u+x,a+X"), Ok(0o511));
        for bad in [
            "u", "u=r,", ",u=r", "u=rz", "q=r", "u=r g=r", "u=ru", "u=Xu", "u=gu",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("mode `{bad}` is not a chmod mode")),
                "{e}"
            );
        }
    }

    /// `chmod` itself is the oracle: the file created 0400 under umask 022, then `chmod MODE`.
    fn chmod_oracle(dir: &std::path::Path, mode: &str) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        let f = dir.join("f");
        let _ = std::fs::remove_file(&f);
        std::fs::write(&f, b"").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 022 && exec chmod -- \"$1\" \"$2\" 2>/dev/null")
            .args(["sh", mode])
            .arg(&f)
            .status()
            .expect("run sh and chmod (the oracle)")
            .success();
        let bits = std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        ok.then_some(bits)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        #[test]
        #[ignore = "needs `sh`, `chmod`"]
        fn symbolic_modes_agree_with_chmod(mode in "([ugoa]{0,2}([-+=]([rwxX]{0,3}|[ugo])){1,2},){0,2}[ugoa]{0,2}[-+=][rwxX]{0,3}") {
            let dir = tempfile::tempdir().unwrap();
            if let Some(expected) = chmod_oracle(dir.path(), &mode) {
                proptest::prop_assert_eq!(parse(&mode), Ok(expected), "{}", mode);
            }
        }

        #[test]
        #[ignore = "needs `sh`, `chmod`"]
        fn octal_modes_agree_with_chmod(bits in 0u32..0o1000) {
            let dir = tempfile::tempdir().unwrap();
            let mode = format!("{bits:04o}");
            proptest::prop_assert_eq!(parse(&mode).ok(), chmod_oracle(dir.path(), &mode));
        }

        #[test]
        fn never_panics(mode in "\\PC{0,12}") {
            let _ = parse(&mode);
        }
    }
}
