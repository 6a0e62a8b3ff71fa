//! Library benchmarks: rules evaluation (1,000 rules), header inspection, the per-secret
//! rekey work (decrypt + encrypt to 5 SSH recipients), and agefleet's hand-written
//! ssh-ed25519 wrap and unwrap against the age crate's on the same work (the figure that
//! justifies keeping the fast path). Run: `cargo bench --bench core`.

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

    // The fast path against the age crate, one file key wrapped (or unwrapped) per iteration.
    let file_key = age_core::format::FileKey::init_with_mut(|k| k.copy_from_slice(&[7u8; 16]));
    let ed25519 =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let public = ed25519.public_key().to_openssh().unwrap();
    let ours = Recipient::parse(&public).unwrap();
    let theirs: age::ssh::Recipient = public.parse().unwrap();
    let mut g = c.benchmark_group("wrap one file key");
    g.bench_function("ssh-ed25519: agefleet", |b| {
        b.iter(|| ours.as_age().wrap_file_key(&file_key).unwrap())
    });
    g.bench_function("ssh-ed25519: age crate", |b| {
        b.iter(|| age::Recipient::wrap_file_key(&theirs, &file_key).unwrap())
    });
    g.finish();

    let pem = ed25519.to_openssh(ssh_key::LineEnding::LF).unwrap();
    let id_path = dir.path().join("bench-ed25519");
    std::fs::write(&id_path, pem.as_bytes()).unwrap();
    let (our_ids, _) = IdentitySet::load(&[id_path], None).unwrap();
    let our_identity = our_ids.age_identities()[0];
    let their_identity = age::ssh::Identity::from_buffer(pem.as_bytes(), None).unwrap();
    let (stanzas, _) = ours.as_age().wrap_file_key(&file_key).unwrap();
    let stanza = &stanzas[0];
    let mut g = c.benchmark_group("unwrap one stanza");
    g.bench_function("ssh-ed25519: agefleet", |b| {
        b.iter(|| our_identity.unwrap_stanza(stanza).unwrap().unwrap())
    });
    g.bench_function("ssh-ed25519: age crate", |b| {
        b.iter(|| {
            age::Identity::unwrap_stanza(&their_identity, stanza)
                .unwrap()
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
