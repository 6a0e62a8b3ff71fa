//! Library benchmarks: rules evaluation (1,000 rules), header inspection, and the per-secret
//! rekey work (decrypt + encrypt to 5 SSH recipients). Run: `cargo bench --bench core`.

use std::fmt::Write as _;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use agefleet::envelope::{self, Header};
use agefleet::identity::IdentitySet;
use agefleet::recipient::Recipient;
use agefleet::rules::{self, EvalMode};

/// Five ed25519 recipients generated with ssh-key, and the identity of the first.
fn keys(dir: &std::path::Path) -> (Vec<Recipient>, IdentitySet) {
    let mut recipients = Vec::new();
    let mut first = None;
    for i in 0..5 {
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let public = key.public_key().to_openssh().unwrap();
        recipients.push(Recipient::parse(&public).unwrap());
        if i == 0 {
            let path = dir.join("id");
            std::fs::write(
                &path,
                key.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes(),
            )
            .unwrap();
            first = Some(path);
        }
    }
    let (ids, _) = IdentitySet::load(&[first.unwrap()], None).unwrap();
    (recipients, ids)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (recipients, ids) = keys(dir.path());
    let refs: Vec<&Recipient> = recipients.iter().collect();

    // Rules: 1,000 rules sharing 5 keys, written as fleets write them.
    let mut src = String::from("let\n");
    for (i, r) in recipients.iter().enumerate() {
        writeln!(src, "  k{i} = \"{}\";", r.text).unwrap();
    }
    src.push_str("  all = [ k0 k1 k2 k3 k4 ];\nin {\n");
    for i in 0..1000 {
        writeln!(src, "  \"hosts/h{i}/secret.age\".publicKeys = all;").unwrap();
    }
    src.push_str("}\n");
    let rules_path = dir.path().join("secrets.nix");
    std::fs::write(&rules_path, src).unwrap();
    c.bench_function("rules: builtin eval, 1000 rules", |b| {
        b.iter(|| rules::load(&rules_path, EvalMode::Builtin).unwrap())
    });

    let plaintext = vec![0x42u8; 256];
    let ciphertext = envelope::encrypt(&plaintext, &refs, false).unwrap();
    let armored = envelope::encrypt(&plaintext, &refs, true).unwrap();
    c.bench_function("header: parse binary, 5 ssh stanzas", |b| {
        b.iter(|| Header::parse(&ciphertext).unwrap())
    });
    c.bench_function("header: parse armored, 5 ssh stanzas", |b| {
        b.iter(|| Header::parse(&armored).unwrap())
    });

    let mut g = c.benchmark_group("rekey");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decrypt + encrypt to 5 recipients, 256 B", |b| {
        b.iter(|| {
            let p = envelope::decrypt(&ciphertext, &ids).unwrap();
            envelope::encrypt(&p, &refs, false).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
