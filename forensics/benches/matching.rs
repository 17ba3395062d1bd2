//! Matching a suspect against 1,000,000 stored sessions of one title (synthetic sessions):
//! deriving every session's code from the title's key, and scoring + ranking them all.
//! Run: cargo bench -p forensics --bench matching

use criterion::{criterion_group, criterion_main, Criterion};
use forensics::matching::{rank, Candidate, CodeBook};
use formats::codes::CodeKey;
use rand::{Rng, SeedableRng};

const SESSIONS: usize = 1_000_000;

fn matching(c: &mut Criterion) {
    let key = CodeKey::new(&[9u8; 32], formats::codes::CodeScheme::Uniform);
    let ids: Vec<String> = (0..SESSIONS)
        .map(|i| uuid::Uuid::from_u128(0x5eed_0000_0000_0000 + i as u128).to_string())
        .collect();
    let candidates: Vec<Candidate> = ids
        .iter()
        .map(|id| Candidate {
            session_id: id.clone(),
            user: "viewer".into(),
            device_id: "device".into(),
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut g = c.benchmark_group("1,000,000 sessions");
    g.sample_size(10);
    // Units of 1 s (the packaging default): the 106 s test title (whole copy), and a
    // two-hour title as a 60 s excerpt and as a whole copy.
    for (name, units, observed) in [
        ("106 s title, whole copy", 106usize, 0..106usize),
        ("2 h title, 60 s excerpt", 7200, 2400..2460),
        ("2 h title, whole copy", 7200, 0..7200),
    ] {
        g.bench_function(format!("derive codes: {name}"), |b| {
            b.iter(|| CodeBook::derive(&key, &ids, observed.clone()))
        });
        let book = CodeBook::derive(&key, &ids, observed.clone());
        // The leaker's code, observed through noise.
        let soft: Vec<f64> = (0..units)
            .map(|k| {
                if observed.contains(&k) {
                    let s = if book.bit(123_456, k) { 1.0 } else { -1.0 };
                    s + rng.gen_range(-0.5..0.5)
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(
            rank(&soft, &candidates, &book, 5)[0].session_id,
            ids[123_456]
        );
        g.bench_function(format!("score and rank: {name}"), |b| {
            b.iter(|| rank(&soft, &candidates, &book, 5))
        });
    }
    // The collusion-resistant code derives each session's bits from a ChaCha20 keystream
    // (one HMAC per session, one 32-bit word per unit) instead of one HMAC per 256 units.
    let tardos = CodeKey::new(&[9u8; 32], formats::codes::CodeScheme::Tardos);
    for (name, observed) in [
        ("106 s title, whole copy", 0..106usize),
        ("2 h title, 60 s excerpt", 2400..2460),
        ("2 h title, whole copy", 0..7200),
    ] {
        g.bench_function(format!("derive tardos-v2 codes: {name}"), |b| {
            b.iter(|| CodeBook::derive(&tardos, &ids, observed.clone()))
        });
    }
    g.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
