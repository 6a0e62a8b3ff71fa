//! The builtin rules evaluator over arbitrary text (`rules::evaluate_str`): never panics,
//! never overflows the stack, bounded work; errors are one line.
//!
//! The text is evaluated as `<tempdir>/secrets.nix` in an empty directory, so relative
//! `import`/`readFile` find nothing. Run with `-rss_limit_mb=2048 -timeout=10` (deep
//! nesting uses the evaluator's large stack).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use agefleet::rules;
use libfuzzer_sys::fuzz_target;

fn rules_path() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("agefleet-fuzz-rules-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir.join("secrets.nix")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match rules::evaluate_str(rules_path(), text.to_owned()) {
        Ok(entries) => {
            for e in entries {
                if let Err(bad) = e.rule {
                    assert!(!bad.message.contains('\n'), "multi-line: {}", bad.message);
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
        }
    }
});
