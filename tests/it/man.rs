//! The checked-in man pages (`man/agefleet.1`, `man/agefleet-<sub>.1`) are generated from the
//! clap definitions with clap_mangen. This test regenerates them in memory and fails when a
//! checked-in page is stale, missing or left over; `AGEFLEET_UPDATE_MAN=1 cargo test --test
//! man` rewrites the directory instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

// The clap definitions belong to the binary (not the library API): the test compiles the
// same file.
#[allow(dead_code)]
#[path = "../../src/cli.rs"]
mod cli;

const UPDATE_ENV: &str = "AGEFLEET_UPDATE_MAN";

/// Every page, file name -> roff, for the command and each (nested) subcommand.
fn generated_pages() -> BTreeMap<String, Vec<u8>> {
    fn walk(cmd: clap::Command, out: &mut BTreeMap<String, Vec<u8>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out);
        }
        let man = clap_mangen::Man::new(cmd);
        let mut roff = Vec::new();
        man.render(&mut roff).expect("render a man page");
        out.insert(man.get_filename(), roff);
    }
    // Built first so that subcommands carry their `agefleet-<sub>` display names.
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = BTreeMap::new();
    walk(cmd, &mut pages);
    pages
}

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

/// Checked-in pages, file name -> bytes (only `*.1` files are pages).
fn checked_in_pages(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    rd.map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn checked_in_man_pages_match_the_clap_definitions() {
    let want = generated_pages();
    assert!(want.contains_key("agefleet.1"));
    assert!(want.contains_key("agefleet-rekey.1"));
    assert!(want.contains_key("agefleet-check-keys.1"));
    let dir = man_dir();
    let have = checked_in_pages(&dir);

    if std::env::var_os(UPDATE_ENV).is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for stale in have.keys().filter(|n| !want.contains_key(*n)) {
            std::fs::remove_file(dir.join(stale)).unwrap();
        }
        for (name, roff) in &want {
            std::fs::write(dir.join(name), roff).unwrap();
        }
        return;
    }

    let mut problems = Vec::new();
    for (name, roff) in &want {
        match have.get(name) {
            None => problems.push(format!("missing: man/{name}")),
            Some(bytes) if bytes != roff => problems.push(format!("stale: man/{name}")),
            Some(_) => {}
        }
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!("left over (no such command): man/{name}"));
    }
    assert!(
        problems.is_empty(),
        "the man pages do not match the clap definitions:\n  {}\nrefresh them with: \
         {UPDATE_ENV}=1 cargo test --test man",
        problems.join("\n  ")
    );
}
