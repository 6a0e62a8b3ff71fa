//! Rule names <-> files on disk.
//!
//! A rule key names a file relative to the rules file's directory. For agenix compatibility a
//! command-line argument is also read relative to the current directory (agenix runs in the
//! secrets directory, so `./x.age` and `x.age` both match the rule `x.age`). When the two
//! readings designate two different rules whose files both exist, that is ambiguous and an
//! error naming both.

use std::path::{Component, Path, PathBuf};

use crate::rules::{RuleEntry, Rules};

#[derive(Debug, thiserror::Error)]
/// Why a command-line argument does not designate exactly one rule.
#[non_exhaustive]
pub enum NameError {
    /// No rule names the file under either reading.
    #[error("{arg}: there is no rule for this file in {rules}")]
    NoRule {
        /// The argument as given.
        arg: String,
        /// The rules file searched.
        rules: PathBuf,
    },
    /// Both readings name a rule and both files exist.
    #[error(
        "{arg}: ambiguous: it names {a} (relative to the rules directory) and {b} (relative to the current directory); run from the rules directory or give a path"
    )]
    Ambiguous {
        /// The argument as given.
        arg: String,
        /// The file it names relative to the rules directory.
        a: PathBuf,
        /// The file it names relative to the current directory.
        b: PathBuf,
    },
}

/// Lexically normalises a relative name: drops `.` components and empty parts
/// (`./a//b.age` -> `a/b.age`). `..` is kept.
pub fn normalize_name(name: &str) -> String {
    let p = Path::new(name);
    let mut parts: Vec<String> = Vec::new();
    let absolute = p.has_root();
    for c in p.components() {
        match c {
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Lexically normalises an absolute path (resolving `.` and `..` without touching the disk).
pub fn normalize_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    normalize_path(&if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    })
}

/// Which directory a run reads rule names against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameBase {
    /// The rules file's directory (it is the current directory, or it holds the files).
    RulesDir,
    /// The current directory, as agenix reads names: the rules file is elsewhere and the
    /// current directory holds the rules' files while the rules directory holds none.
    CurrentDir,
}

impl Rules {
    /// Chooses where rule names are read for this run (see [`NameBase`]) and points
    /// [`Rules::dir`] there. agenix hands rule names straight to `age`, so they are read from
    /// the current directory; agefleet reads them from the rules file's directory, which
    /// agrees whenever the rules file is in the current directory. With the rules file
    /// elsewhere (`RULES=/elsewhere/secrets.nix`), the directory that holds the files wins,
    /// the rules directory when both or neither do.
    pub fn choose_name_base(&mut self, cwd: &Path) -> NameBase {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| absolute(p, cwd));
        let rules_dir = canonical(&self.dir);
        let here = canonical(cwd);
        if rules_dir == here {
            return NameBase::RulesDir;
        }
        let holds_any = |base: &Path| {
            self.entries
                .iter()
                .any(|e| base.join(&e.name).symlink_metadata().is_ok())
        };
        if holds_any(&rules_dir) || !holds_any(&here) {
            return NameBase::RulesDir;
        }
        self.dir = PathBuf::from(".");
        NameBase::CurrentDir
    }

    /// The file a rule name designates: the rules directory joined with the name.
    pub fn file_of(&self, name: &str) -> PathBuf {
        if self.dir == Path::new(".") {
            // Shown as the rules name it (`x.age`, not `./x.age`), as agenix does.
            return PathBuf::from(name);
        }
        self.dir.join(name)
    }

    /// Finds the entry a command-line argument designates (see the module docs).
    pub fn resolve(&self, arg: &Path, cwd: &Path) -> Result<&RuleEntry, NameError> {
        let arg_str = arg.to_string_lossy();
        // Reading 1: the argument is a rule name (rules-directory relative).
        let by_name = if arg.is_absolute() {
            None
        } else {
            let wanted = normalize_name(&arg_str);
            self.entries
                .iter()
                .find(|e| normalize_name(&e.name) == wanted)
        };
        // Reading 2: the argument is a path from the current directory.
        let wanted_abs = absolute(arg, cwd);
        let rules_dir_abs = absolute(&self.dir, cwd);
        let by_path = self
            .entries
            .iter()
            .find(|e| absolute(Path::new(&e.name), &rules_dir_abs) == wanted_abs);
        match (by_name, by_path) {
            (Some(a), Some(b)) if !std::ptr::eq(a, b) => {
                let fa = absolute(&self.file_of(&a.name), cwd);
                let fb = absolute(&self.file_of(&b.name), cwd);
                match (fa.exists(), fb.exists()) {
                    (true, true) => Err(NameError::Ambiguous {
                        arg: arg_str.into_owned(),
                        a: self.file_of(&a.name),
                        b: self.file_of(&b.name),
                    }),
                    // Only one reading names an existing file: that one is meant.
                    (false, true) => Ok(b),
                    _ => Ok(a),
                }
            }
            (Some(e), _) | (None, Some(e)) => Ok(e),
            (None, None) => Err(NameError::NoRule {
                arg: arg_str.into_owned(),
                rules: self.path.clone(),
            }),
        }
    }
}

/// `*` (any run) and `?` (one character) wildcard match, iterative with backtracking.
pub(crate) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Backend, Rule};

    fn rules(dir: &Path, names: &[&str]) -> Rules {
        Rules {
            path: dir.join("secrets.nix"),
            dir: dir.to_path_buf(),
            entries: names
                .iter()
                .map(|n| RuleEntry {
                    name: n.to_string(),
                    rule: Ok(Rule {
                        public_keys: vec![],
                        armor: false,
                        pq: false,
                        generator: None,
                    }),
                })
                .collect(),
            backend: Backend::Builtin,
            fallback_reason: None,
        }
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize_name("./a.age"), "a.age");
        assert_eq!(normalize_name("a//b/./c.age"), "a/b/c.age");
        assert_eq!(normalize_name("-x.age"), "-x.age");
        assert_eq!(normalize_name("with space.age"), "with space.age");
    }

    #[test]
    fn both_readings_match() {
        let d = tempfile::tempdir().unwrap();
        let r = rules(d.path(), &["x.age", "dir/y.age"]);
        for arg in ["x.age", "./x.age"] {
            assert_eq!(r.resolve(Path::new(arg), d.path()).unwrap().name, "x.age");
        }
        // From the parent directory, with the rules file in a subdirectory.
        let parent = d.path().parent().unwrap();
        let sub = d.path().file_name().unwrap();
        let arg = Path::new(sub).join("dir/y.age");
        assert_eq!(r.resolve(&arg, parent).unwrap().name, "dir/y.age");
        // Rules-dir relative name from elsewhere.
        assert_eq!(
            r.resolve(Path::new("dir/y.age"), Path::new("/"))
                .unwrap()
                .name,
            "dir/y.age"
        );
        assert!(matches!(
            r.resolve(Path::new("nope.age"), d.path()),
            Err(NameError::NoRule { .. })
        ));
    }

    #[test]
    fn names_are_read_where_the_files_are() {
        let d = tempfile::tempdir().unwrap();
        let (elsewhere, here) = (d.path().join("elsewhere"), d.path().join("here"));
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::create_dir_all(here.join("sub")).unwrap();
        let fresh = || rules(&elsewhere, &["a.age", "sub/b.age"]);
        // Neither directory holds a file: the rules directory.
        let mut r = fresh();
        assert_eq!(r.choose_name_base(&here), NameBase::RulesDir);
        assert_eq!(r.file_of("a.age"), elsewhere.join("a.age"));
        // Only the current directory does: agenix's reading.
        std::fs::write(here.join("sub/b.age"), b"").unwrap();
        let mut r = fresh();
        assert_eq!(r.choose_name_base(&here), NameBase::CurrentDir);
        assert_eq!(r.file_of("a.age"), PathBuf::from("a.age"));
        assert_eq!(
            r.resolve(Path::new("./sub/b.age"), &here).unwrap().name,
            "sub/b.age"
        );
        // Both do: the rules directory, as before.
        std::fs::write(elsewhere.join("a.age"), b"").unwrap();
        let mut r = fresh();
        assert_eq!(r.choose_name_base(&here), NameBase::RulesDir);
        // The rules file in the current directory: nothing to choose.
        let mut r = fresh();
        assert_eq!(r.choose_name_base(&elsewhere), NameBase::RulesDir);
    }

    #[test]
    fn ambiguity_only_when_both_files_exist() {
        let d = tempfile::tempdir().unwrap();
        // rules dir = d/s ; cwd = d ; rules "a.age" and "s/a.age"? Use: cwd d, rules in d/s
        // with rules "x.age" (-> d/s/x.age) and "../x.age" (-> d/x.age). Arg "x.age" reads as
        // rule "x.age" by name and as d/x.age (rule "../x.age") by path.
        let s = d.path().join("s");
        std::fs::create_dir(&s).unwrap();
        let r = rules(&s, &["x.age", "../x.age"]);
        std::fs::write(s.join("x.age"), b"").unwrap();
        assert_eq!(
            r.resolve(Path::new("x.age"), d.path()).unwrap().name,
            "x.age"
        );
        std::fs::write(d.path().join("x.age"), b"").unwrap();
        let err = r.resolve(Path::new("x.age"), d.path()).unwrap_err();
        assert!(matches!(err, NameError::Ambiguous { .. }), "{err}");
        assert!(err.to_string().contains("ambiguous"));
    }

    #[test]
    fn glob_matches() {
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"a*c", b"abbbc"));
        assert!(glob(b"[127.0.0.1]:*", b"[127.0.0.1]:2222"));
        assert!(!glob(b"a*c", b"abbbd"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
    }
}
