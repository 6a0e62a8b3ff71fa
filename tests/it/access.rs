//! `access`: recipients × secrets from the rules and the files' headers; the HTML page
//! rendered by a real headless Chromium (DOM and screenshot checked).

use crate::common;

use std::path::Path;
use std::process::Command;

use crate::common::{require_tool, ssh_keygen, stderr, stdout, Fleet};

/// admin reads everything; web1 is pending on tls.age (rule lists it, file not rekeyed);
/// old is stale on db.age (file still has it, rule dropped it); new.age has no file.
fn fleet() -> (Fleet, String) {
    let f = Fleet::new();
    let web1 = ssh_keygen(f.tmp.path(), "web1", "ed25519", "").public_line;
    let old = ssh_keygen(f.tmp.path(), "old", "ed25519", "").public_line;
    let admin = f.admin.public_line.clone();
    let rules = format!(
        "let\n  admin = \"{admin}\";\n  web1 = \"{web1}\";\nin {{\n  \"tls.age\".publicKeys = [ admin web1 ];\n  \"db.age\".publicKeys = [ admin ];\n  \"new.age\".publicKeys = [ admin ];\n  \"<b>&.age\".publicKeys = [ admin ];\n}}\n"
    );
    std::fs::write(f.path("secrets.nix"), rules).unwrap();
    f.age_file("tls.age", &[&admin], b"tls");
    f.age_file("db.age", &[&admin, &old], b"db");
    f.age_file("<b>&.age", &[&admin], b"x");
    (f, old)
}

fn cell<'a>(j: &'a serde_json::Value, secret: &str, recipient: &str) -> &'a str {
    let r = j["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["name"] == recipient)
        .unwrap_or_else(|| panic!("no recipient {recipient}: {j}"));
    let s = j["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["name"] == secret)
        .unwrap_or_else(|| panic!("no secret {secret}: {j}"));
    j["cells"][s][r].as_str().unwrap()
}

#[test]
#[ignore = "needs `age`, `ssh-keygen`"]
fn json_names_recipients_by_binding_and_shows_drift() {
    require_tool("age");
    let (f, old) = fleet();
    let out = f.run(&["access", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "drift exits 1: {}",
        stderr(&out)
    );
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(cell(&j, "tls.age", "admin"), "ok");
    assert_eq!(cell(&j, "tls.age", "web1"), "pending");
    assert_eq!(cell(&j, "db.age", "web1"), "none");
    assert_eq!(cell(&j, "new.age", "admin"), "declared");
    // The dropped key is known by its header tag only.
    let old_tag = agefleet::recipient::tag_of(&old).unwrap().unwrap();
    assert_eq!(cell(&j, "db.age", &format!("tag:{old_tag}")), "stale");
    assert_eq!(cell(&j, "tls.age", &format!("tag:{old_tag}")), "none");
    // Not in a git work tree: no rotation debt, and no trace of it in the output.
    assert!(j.get("debt").is_none(), "{j}");
    let text = stdout(&f.run(&["access"]));
    assert!(!text.contains("rotation debt"), "{text}");

    // After a rekey nothing drifts and the stale row is gone.
    let r = f.run(&["rekey"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let out = f.run(&["access", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(cell(&j, "tls.age", "web1"), "ok");
    assert!(!stdout(&out).contains("tag:"), "{}", stdout(&out));
}

fn chromium(args: &[&str], page: &Path, profile: &Path) -> std::process::Output {
    let out = common::run(
        Command::new("timeout")
            .arg("120")
            .arg("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1200,800",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(format!("file://{}", page.display())),
    );
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    out
}

#[test]
#[ignore = "needs `age`, `chromium`, `ssh-keygen`"]
fn html_page_renders_in_headless_chromium() {
    require_tool("age");
    require_tool("chromium");
    let (f, _) = fleet();
    let page = f.tmp.path().join("access.html");
    let out = f.run(&["access", "--html", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<b>&"), "names are escaped");
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));

    // The DOM as Chromium parsed it: header cells, the row names and the cell classes.
    let profile = tempfile::tempdir().unwrap();
    let dom = stdout(&chromium(&["--dump-dom"], &page, profile.path()));
    for th in [
        "<th scope=\"col\" title=\"ok\">tls.age</th>",
        "<th scope=\"col\" title=\"missing\">new.age</th>",
        "&lt;b&gt;&amp;.age</th>",
    ] {
        assert!(dom.contains(th), "{th} not in DOM:\n{dom}");
    }
    let row = |name: &str| -> Vec<String> {
        let start = dom.find(&format!("\">{name}</th>")).expect("row") + name.len() + 7;
        let end = start + dom[start..].find("</tr>").unwrap();
        dom[start..end]
            .split("<td class=\"")
            .skip(1)
            .map(|c| c.split('"').next().unwrap().to_string())
            .collect()
    };
    // Columns are in rule order: <b>&.age, db.age, new.age, tls.age.
    assert_eq!(row("admin"), ["ok", "ok", "declared", "ok"]);
    assert_eq!(row("web1"), ["none", "none", "none", "pending"]);

    // The screenshot is a real rendering: not blank, and the table's colours are there.
    let png_path = f.tmp.path().join("shot.png");
    let profile = tempfile::tempdir().unwrap();
    chromium(
        &[&format!("--screenshot={}", png_path.display())],
        &page,
        profile.path(),
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 800));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let has = |rgb: [u8; 3]| pixels.iter().any(|p| p[..3] == rgb);
    assert!(
        has([0x8f, 0xd6, 0x94]),
        "no 'ok' green cell in the screenshot"
    );
    assert!(
        has([0xf7, 0xd7, 0x74]),
        "no 'pending' amber cell in the screenshot"
    );
    assert!(
        has([0xf0, 0x8a, 0x8a]),
        "no 'stale' red cell in the screenshot"
    );
    let distinct: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(distinct.len() > 20, "screenshot looks blank");
}

/// The screenshot's pixels (RGB or RGBA samples per pixel).
fn screenshot(page: &Path, png_path: &Path) -> Vec<Vec<u8>> {
    let profile = tempfile::tempdir().unwrap();
    chromium(
        &[&format!("--screenshot={}", png_path.display())],
        page,
        profile.path(),
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| p.to_vec())
        .collect()
}

#[test]
#[ignore = "needs `git`, `age`, `ssh-keygen`, `chromium`"]
fn rotation_debt_from_git_history_is_marked_in_text_json_and_html() {
    use crate::common::sshd::git;
    let (f, _web1) = crate::common::fleet_with_web1_in_git();
    // In git, before any removal: no debt, the output as without git.
    let out = f.run(&["access", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("debt"), "{}", stdout(&out));

    let out = f.run(&["host", "remove", "web1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    git(&f.dir, &["commit", "-q", "-a", "-m", "remove web1"]);

    // Debt does not change the exit code (nothing drifts); it is marked and listed.
    let out = f.run(&["access", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rekeying is not revocation"),
        "{}",
        stderr(&out)
    );
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(cell(&j, "tls.age", "web1"), "debt");
    assert_eq!(cell(&j, "db.age", "web1"), "none");
    assert_eq!(cell(&j, "tls.age", "admin"), "ok");
    let debt = j["debt"].as_array().unwrap();
    assert_eq!(debt.len(), 1, "{j}");
    assert_eq!(debt[0]["secret"], "tls.age");
    assert_eq!(debt[0]["recipient"], "web1");
    assert_eq!(debt[0]["last_commit"]["summary"], "initial");

    let text = stdout(&f.run(&["access"]));
    let row = text
        .lines()
        .find(|l| l.starts_with("web1 "))
        .unwrap_or_else(|| panic!("no web1 row: {text}"));
    // Columns: db.age, tls.age.
    assert!(row.ends_with(" . r"), "{text}");
    assert!(text.contains(", r rotation debt"), "{text}");

    let page = f.tmp.path().join("access.html");
    let out = f.run(&["access", "--html", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<td class=\"debt\" title=\"readable until "),
        "{html}"
    );
    assert!(
        html.contains("debt: could read a committed version"),
        "{html}"
    );
    require_tool("chromium");
    let pixels = screenshot(&page, &f.tmp.path().join("shot.png"));
    assert!(
        pixels.iter().any(|p| p[..3] == [0xb4, 0x8e, 0xe0]),
        "no 'debt' purple cell in the screenshot"
    );
}

/// `secrets.nix` binding `admin` and each `(name, key)`, with `(file, [names])` rules.
fn kinds_rules(admin: &str, keys: &[(&str, String)], rules: &[(String, Vec<&str>)]) -> String {
    let mut s = format!("let\n  admin = \"{admin}\";\n");
    for (name, key) in keys {
        s.push_str(&format!("  {name} = \"{key}\";\n"));
    }
    s.push_str("in {\n");
    for (file, names) in rules {
        s.push_str(&format!(
            "  \"{file}\".publicKeys = [ admin {} ];\n",
            names.join(" ")
        ));
    }
    s.push_str("}\n");
    s
}

/// Every recipient kind a header can show, judged alike by `access`, `status` and `audit`
/// (one model of who can open a file). For each kind K: `K-pending.age`'s rule lists every
/// kind, its file lacks K (access: K pending, status: drift); `K-dropped.age`'s rule
/// dropped K in the last commit and its file was rekeyed (audit: K is rotation debt, named
/// by its binding; access: a debt cell; status: no drift). A plugin recipient can never be confirmed
/// from a header: unknown, not drift, not debt.
#[test]
#[ignore = "needs `git`, `ssh-keygen`"]
fn every_recipient_kind_is_judged_alike_by_access_status_and_audit() {
    require_tool("git");
    require_tool("ssh-keygen");
    let f = Fleet::new();
    let admin = f.admin.public_line.clone();
    let keys: Vec<(&str, String)> = vec![
        (
            "ed",
            ssh_keygen(f.tmp.path(), "ed", "ed25519", "").public_line,
        ),
        (
            "rsa",
            ssh_keygen(f.tmp.path(), "rsa", "rsa", "").public_line,
        ),
        (
            "x",
            age::x25519::Identity::generate().to_public().to_string(),
        ),
        (
            "pq",
            agefleet::identity::MlKem768X25519Identity::generate().recipient(),
        ),
    ];
    let plugin = "age1agefleettest1pykvdp8dpxml7tuf4gxhz05w3vktjkz5x2kkqvzfa4fxgq5klgkqvy0xxr";
    let names: Vec<&str> = keys.iter().map(|(n, _)| *n).collect();
    let but = |k: &str| -> Vec<&str> { names.iter().copied().filter(|n| *n != k).collect() };
    let encrypt = |file: &str, to: &[&str]| {
        let lines: Vec<&str> = std::iter::once(admin.as_str())
            .chain(
                keys.iter()
                    .filter(|(n, _)| to.contains(n))
                    .map(|(_, k)| k.as_str()),
            )
            .collect();
        let parsed: Vec<agefleet::recipient::Recipient> = lines
            .iter()
            .map(|k| agefleet::recipient::Recipient::parse(k).unwrap())
            .collect();
        let refs: Vec<&agefleet::recipient::Recipient> = parsed.iter().collect();
        let bytes = agefleet::envelope::encrypt(file.as_bytes(), &refs, false).unwrap();
        std::fs::write(f.path(file), bytes).unwrap();
    };
    let mut keys_and_plugin = keys.clone();
    keys_and_plugin.push(("plug", plugin.to_string()));
    let write_rules = |dropped: bool| {
        let mut rules = vec![("plugin.age".to_string(), vec!["plug"])];
        for k in &names {
            rules.push((format!("{k}-pending.age"), names.clone()));
            let now = if dropped { but(k) } else { names.clone() };
            rules.push((format!("{k}-dropped.age"), now));
        }
        std::fs::write(
            f.path("secrets.nix"),
            kinds_rules(&admin, &keys_and_plugin, &rules),
        )
        .unwrap();
    };
    write_rules(false);
    encrypt("plugin.age", &[]);
    for k in &names {
        encrypt(&format!("{k}-pending.age"), &but(k));
        encrypt(&format!("{k}-dropped.age"), &names);
    }
    common::sshd::git(&f.dir, &["init", "-q"]);
    common::sshd::git(&f.dir, &["add", "-A"]);
    common::sshd::git(&f.dir, &["commit", "-q", "-m", "every kind"]);
    write_rules(true);
    for k in &names {
        encrypt(&format!("{k}-dropped.age"), &but(k));
    }
    common::sshd::git(&f.dir, &["commit", "-q", "-a", "-m", "drop one kind each"]);

    let out = f.run(&["access", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let access: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let out = f.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = f.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let audit: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let status_drift = |file: &str| {
        crate::status::problems_of(&status, file).contains(&"recipients-drift".to_string())
    };
    let access_drift = |file: &str| {
        let mut columns = access["secrets"].as_array().unwrap().iter();
        columns.find(|s| s["name"] == file).unwrap()["drift"] == true
    };
    let debt = |file: &str| -> Vec<String> {
        let debt = crate::audit::secret(&audit, file)["debt"]
            .as_array()
            .unwrap();
        debt.iter()
            .map(|d| d["recipient"].as_str().unwrap().to_string())
            .collect()
    };
    for k in &names {
        let pending = format!("{k}-pending.age");
        assert_eq!(cell(&access, &pending, k), "pending", "{pending}: {access}");
        for other in but(k) {
            assert_eq!(cell(&access, &pending, other), "ok", "{pending} {other}");
        }
        assert!(status_drift(&pending), "{pending}: {status}");
        assert!(access_drift(&pending), "{pending}: {access}");
        assert_eq!(debt(&pending), Vec::<String>::new(), "{pending}");

        let dropped = format!("{k}-dropped.age");
        // In a git work tree access marks audit's debt too.
        assert_eq!(cell(&access, &dropped, k), "debt", "{dropped}: {access}");
        assert!(!status_drift(&dropped), "{dropped}: {status}");
        assert!(!access_drift(&dropped), "{dropped}: {access}");
        assert_eq!(debt(&dropped), [k.to_string()], "{dropped}: {audit}");
    }
    assert_eq!(cell(&access, "plugin.age", "plug"), "unknown", "{access}");
    assert!(!status_drift("plugin.age"), "{status}");
    assert!(!access_drift("plugin.age"), "{access}");
    assert_eq!(debt("plugin.age"), Vec::<String>::new());
}
