//! The frame kernels at 1280x720, fast against reference: the area-averaging downscale of a
//! decoded frame to the analysis width, and the bilinear resampling of an analysis gray onto
//! the comparison grid.
//! Run: cargo bench -p forensics --bench frame

use criterion::{criterion_group, criterion_main, Criterion};
use forensics::frame::{
    area_reduce, area_reduce_reference, plane_view, resample, sample, Gray, Rect,
};
use rand::{Rng, SeedableRng};

const W: usize = 1280;
const H: usize = 720;

fn kernels(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let data: Vec<u8> = (0..W * H).map(|_| rng.gen()).collect();
    let plane = plane_view(&data, W, H, W);
    let mean = |sum: u32, n: usize| sum as f32 / n as f32;
    let gray: Gray = area_reduce(plane, 216, 384, mean);
    let crop = Rect {
        x0: 0.05,
        y0: 0.04,
        x1: 0.96,
        y1: 0.95,
    };

    let mut g = c.benchmark_group("frame");
    g.sample_size(30);
    g.bench_function("analysis gray 720p -> 384x216", |b| {
        b.iter(|| area_reduce(plane, 216, 384, mean))
    });
    g.bench_function("analysis gray reference", |b| {
        b.iter(|| area_reduce_reference(plane, 216, 384, mean))
    });
    g.bench_function("resample onto the 192x108 grid", |b| {
        b.iter(|| resample(&gray, crop, 108, 192))
    });
    g.bench_function("resample reference (bilinear per point)", |b| {
        b.iter(|| {
            let sx = crop.width() * 384.0 / 192.0;
            let sy = crop.height() * 216.0 / 108.0;
            Gray::from_shape_fn((108, 192), |(y, x)| {
                let px = crop.x0 * 384.0 - 0.5 + (x as f64 + 0.5) * sx;
                let py = crop.y0 * 216.0 - 0.5 + (y as f64 + 0.5) * sy;
                sample(&gray, px, py)
            })
        })
    });
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
