//! Per-frame cost of the watermark kernels at 1280x720, fast against reference.
//! Run: cargo bench -p forensics --bench watermark

use criterion::{criterion_group, criterion_main, Criterion};
use forensics::frame::plane_view;
use forensics::watermark::embed::{embed_pair, embed_pair_reference, DEFAULT_STRENGTH};
use forensics::watermark::mask::{gain_map, gain_map_reference};
use forensics::watermark::pattern::{render, render_reference, unit_grids};
use ndarray::ArrayViewMut2;
use rand::{Rng, SeedableRng};

const W: usize = 1280;
const H: usize = 720;

fn picture() -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    (0..W * H)
        .map(|i| {
            let x = i % W;
            if x < W / 3 {
                128
            } else {
                rng.gen_range(40..220)
            }
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    let data = picture();
    let plane = plane_view(&data, W, H, W);
    let grids = unit_grids(&[7u8; 32], 1, W, H);
    let pattern = render(&grids, W, H);
    let gains = gain_map(&plane);
    let mut a = vec![0u8; W * H];
    let mut b = vec![0u8; W * H];

    let mut g = c.benchmark_group("720p");
    g.sample_size(20);
    g.bench_function("pattern render (once per unit)", |bench| {
        bench.iter(|| render(&grids, W, H))
    });
    g.bench_function("pattern render reference", |bench| {
        bench.iter(|| render_reference(&grids, W, H))
    });
    g.bench_function("gain map", |bench| bench.iter(|| gain_map(&plane)));
    g.bench_function("gain map reference", |bench| {
        bench.iter(|| gain_map_reference(&plane))
    });
    g.bench_function("embed A+B", |bench| {
        bench.iter(|| {
            embed_pair(
                &plane,
                &pattern,
                &gains,
                DEFAULT_STRENGTH,
                &mut ArrayViewMut2::from_shape((H, W), &mut a[..]).unwrap(),
                &mut ArrayViewMut2::from_shape((H, W), &mut b[..]).unwrap(),
            )
        })
    });
    g.bench_function("embed A+B reference", |bench| {
        bench.iter(|| {
            embed_pair_reference(
                &plane,
                &pattern,
                &gains,
                DEFAULT_STRENGTH,
                &mut ArrayViewMut2::from_shape((H, W), &mut a[..]).unwrap(),
                &mut ArrayViewMut2::from_shape((H, W), &mut b[..]).unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
