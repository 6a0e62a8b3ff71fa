//! The activation manifest: `Manifest::parse`, then the pure planning steps activation runs
//! before touching the system (`Layout::resolve`, `place::plan`). Never panics; errors
//! are one line.
#![no_main]

use std::path::{Path, PathBuf};

use agefleet::activation::{place, Env, Layout, Manifest};
use libfuzzer_sys::fuzz_target;

fn var(name: &str) -> Option<String> {
    match name {
        "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
        "HOME" => Some("/home/u".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("manifest.json");
    let m = match Manifest::parse(data, origin) {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
            return;
        }
    };
    let env = Env {
        var: &var,
        etc: PathBuf::from("/nonexistent-etc"),
        plugin_ui: None,
    };
    let layout = match Layout::resolve(&m, origin, &env) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
            return;
        }
    };
    let (_plans, failures) = place::plan(&m, &layout, &var);
    for f in failures {
        assert!(!f.reason.contains('\n'), "multi-line reason: {}", f.reason);
    }
});
