//! Server side of one key exchange: X25519 key generation, agreement, HKDF, CEK wrap.
//! Run: cargo bench -p streaming --bench key_exchange

use criterion::{criterion_group, criterion_main, Criterion};
use streaming::crypto;

fn server_key_exchange(c: &mut Criterion) {
    let (_, client_public) = crypto::generate_keypair();
    let wire = crypto::encode_public_key(&client_public);
    c.bench_function(
        "server key exchange (keygen + X25519 + HKDF + CEK wrap)",
        |b| {
            b.iter(|| {
                let (secret, _public) = crypto::generate_keypair();
                let peer = crypto::decode_public_key(&wire).expect("valid key");
                let key = crypto::derive_session_key(&secret, &peer, "bench-session").expect("ok");
                crypto::wrap_cek(&key, "bench-session", &crypto::generate_cek()).expect("ok")
            })
        },
    );
    let cek = crypto::generate_cek();
    let segment = vec![0x5au8; 256 * 1024];
    let mut group = c.benchmark_group("segment");
    group.throughput(criterion::Throughput::Bytes(segment.len() as u64));
    group.bench_function("AES-256-GCM seal 256 KiB", |b| {
        b.iter(|| crypto::seal(&cek, b"leaktrace/v1/segment/s/1", &segment).expect("ok"))
    });
    group.finish();
}

criterion_group!(benches, server_key_exchange);
criterion_main!(benches);
