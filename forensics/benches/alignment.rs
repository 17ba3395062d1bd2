//! The alignment kernel, fast against reference: the correlation of two normalised 32x18
//! thumbnails, which whole-title and local time searches compute millions of times per
//! suspect (one suspect frame against every reference frame of a 106 s title here).
//! Run: cargo bench -p forensics --bench alignment

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use forensics::extract::timing::{dot, dot_reference, normalise};
use forensics::fingerprint::{THUMB_HEIGHT, THUMB_WIDTH};
use rand::{Rng, SeedableRng};

/// Reference frames of a 106 s title at 25 fps.
const FRAMES: usize = 2650;

fn kernels(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut thumb = || {
        let raw: Vec<f32> = (0..THUMB_WIDTH * THUMB_HEIGHT)
            .map(|_| rng.gen_range(0.0..255.0))
            .collect();
        normalise(&raw)
    };
    let suspect = thumb();
    let reference: Vec<Vec<f32>> = (0..FRAMES).map(|_| thumb()).collect();

    let mut g = c.benchmark_group("alignment");
    g.sample_size(30);
    // One suspect thumbnail against every reference thumbnail, with `kernel`.
    let mut run = |name: &str, kernel: fn(&[f32], &[f32]) -> f32| {
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(&reference)
                    .iter()
                    .map(|r| kernel(black_box(&suspect), r))
                    .sum::<f32>()
            })
        });
    };
    run("one frame against 2650 reference thumbnails", dot);
    run("reference (one running sum)", dot_reference);
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
