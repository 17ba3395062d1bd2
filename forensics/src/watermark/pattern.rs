//! The keyed watermark pattern of one unit: smooth pseudo-random noise whose energy sits in
//! low and middle spatial frequencies, defined on a grid tied to the picture (not to pixels),
//! so that it scales with the picture when a copy is resized.
//!
//! Two octaves of Gaussian grid noise (`COARSE_ROWS` and `FINE_ROWS` cells down the picture)
//! are interpolated with Catmull-Rom splines to full resolution, mixed, and normalised to unit
//! RMS. The grid values come from ChaCha20 keyed by SHA-256(secret, unit index), so only the
//! holder of the per-video secret can regenerate a pattern.

use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Grid rows of the coarse and fine octaves (columns follow the aspect ratio).
pub const COARSE_ROWS: usize = 18;
pub const FINE_ROWS: usize = 36;
/// Weight of the fine octave relative to the coarse one.
const FINE_WEIGHT: f32 = 0.6;
/// Normalised values are clipped here, so that rare peaks do not show as blotches.
pub const PEAK: f32 = 2.5;

/// A grid of Gaussian values, `[[row, column]]`.
pub type Grid = Array2<f32>;

/// The grid value at (`col`, `row`), clamped to the grid (the pattern's edges extend).
fn at(grid: &Grid, col: isize, row: isize) -> f32 {
    let (rows, cols) = grid.dim();
    let c = col.clamp(0, cols as isize - 1) as usize;
    let r = row.clamp(0, rows as isize - 1) as usize;
    grid[[r, c]]
}

/// Columns for `rows` grid rows on a `width` x `height` picture (at least 2).
pub fn grid_cols(rows: usize, width: usize, height: usize) -> usize {
    ((rows as f64 * width as f64 / height.max(1) as f64).round() as usize).max(2)
}

/// The two octave grids of unit `unit` of the video with this secret.
pub fn unit_grids(secret: &[u8; 32], unit: u32, width: usize, height: usize) -> [Grid; 2] {
    let mut seed_hash = Sha256::new();
    seed_hash.update(b"leaktrace/v1/pattern");
    seed_hash.update(secret);
    seed_hash.update(unit.to_le_bytes());
    let seed: [u8; 32] = seed_hash.finalize().into();
    let mut rng = ChaCha20Rng::from_seed(seed);
    // Filled row by row: the order the keyed stream's values have always taken.
    let mut grid = |rows: usize| {
        let cols = grid_cols(rows, width, height);
        Grid::from_shape_simple_fn((rows, cols), || gaussian(&mut rng))
    };
    let coarse = grid(COARSE_ROWS);
    let fine = grid(FINE_ROWS);
    [coarse, fine]
}

/// Standard normal sample (Box-Muller; one of the pair).
fn gaussian(rng: &mut ChaCha20Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Catmull-Rom weights for fractional offset `t` in [0, 1).
fn cubic_weights(t: f32) -> [f32; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// Grid coordinate of pixel centre `i` of `n` pixels over `cells` cells: (base index, fraction).
fn grid_coord(i: usize, n: usize, cells: usize) -> (isize, f32) {
    let x = (i as f32 + 0.5) * cells as f32 / n as f32 - 0.5;
    let base = x.floor();
    (base as isize, x - base)
}

/// A full-resolution pattern, `[[row, column]]`, zero mean and unit variance before
/// clipping at `PEAK`.
pub type Pattern = Array2<f32>;

/// Reference implementation: direct 4x4 bicubic evaluation per pixel and octave.
pub fn render_reference(grids: &[Grid; 2], width: usize, height: usize) -> Pattern {
    let mut values = Pattern::zeros((height, width));
    for (octave, grid) in grids.iter().enumerate() {
        let weight = if octave == 0 { 1.0 } else { FINE_WEIGHT };
        let (rows, cols) = grid.dim();
        for ((y, x), out) in values.indexed_iter_mut() {
            let (gy, fy) = grid_coord(y, height, rows);
            let wy = cubic_weights(fy);
            let (gx, fx) = grid_coord(x, width, cols);
            let wx = cubic_weights(fx);
            let mut v = 0f32;
            for (j, wyj) in wy.iter().enumerate() {
                for (i, wxi) in wx.iter().enumerate() {
                    v += wyj * wxi * at(grid, gx - 1 + i as isize, gy - 1 + j as isize);
                }
            }
            *out += weight * v;
        }
    }
    normalise(&mut values);
    values
}

/// Fast implementation: separable interpolation (grid rows along x first, then down y),
/// rows in parallel.
pub fn render(grids: &[Grid; 2], width: usize, height: usize) -> Pattern {
    // Per octave: horizontally interpolated grid rows, `[[grid row, x]]`; each pixel column's
    // four grid columns (clamped at the edges) and weights computed once.
    let horizontal: Vec<Array2<f32>> = grids
        .iter()
        .map(|grid| {
            let (rows, cols) = grid.dim();
            let taps: Vec<([usize; 4], [f32; 4])> = (0..width)
                .map(|x| {
                    let (gx, fx) = grid_coord(x, width, cols);
                    let col = |i: isize| (gx - 1 + i).clamp(0, cols as isize - 1) as usize;
                    ([col(0), col(1), col(2), col(3)], cubic_weights(fx))
                })
                .collect();
            let mut out = Array2::zeros((rows, width));
            for (src, mut dst) in grid.outer_iter().zip(out.outer_iter_mut()) {
                for (d, (cols, w)) in dst.iter_mut().zip(&taps) {
                    let mut v = 0f32;
                    for (&c, wi) in cols.iter().zip(w) {
                        v += wi * src[c];
                    }
                    *d = v;
                }
            }
            out
        })
        .collect();
    let mut values = Pattern::zeros((height, width));
    values
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(y, mut row)| {
            for (octave, grid) in grids.iter().enumerate() {
                let weight = if octave == 0 { 1.0 } else { FINE_WEIGHT };
                let rows = grid.nrows();
                let (gy, fy) = grid_coord(y, height, rows);
                let wy = cubic_weights(fy);
                for (j, wj) in wy.iter().enumerate() {
                    let r = (gy - 1 + j as isize).clamp(0, rows as isize - 1) as usize;
                    let k = weight * wj;
                    let src = horizontal[octave].row(r);
                    // Both rows are contiguous (fresh standard-layout arrays): plain slices,
                    // which the compiler vectorises.
                    match (row.as_slice_mut(), src.as_slice()) {
                        (Some(dst), Some(src)) => {
                            for (d, s) in dst.iter_mut().zip(src) {
                                *d += k * s;
                            }
                        }
                        _ => row.zip_mut_with(&src, |d, s| *d += k * s),
                    }
                }
            }
        });
    normalise(&mut values);
    values
}

/// Zero mean, unit variance, clipped at `PEAK`, over the values in memory order (a pattern is
/// built in standard layout, so that is row order).
fn normalise(values: &mut Pattern) {
    match values.as_slice_memory_order_mut() {
        Some(flat) => normalise_flat(flat),
        None => {
            let mut flat: Vec<f32> = values.iter().copied().collect();
            normalise_flat(&mut flat);
            values.iter_mut().zip(flat).for_each(|(v, f)| *v = f);
        }
    }
}

fn normalise_flat(values: &mut [f32]) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let scale = if var > 0.0 { 1.0 / var.sqrt() } else { 0.0 };
    for v in values.iter_mut() {
        *v = (((*v as f64 - mean) * scale) as f32).clamp(-PEAK, PEAK);
    }
}

/// The pattern of one unit at one resolution.
pub fn unit_pattern(secret: &[u8; 32], unit: u32, width: usize, height: usize) -> Pattern {
    render(&unit_grids(secret, unit, width, height), width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_and_reference_renderings_agree() {
        for (w, h) in [(160, 90), (97, 61), (64, 64)] {
            let grids = unit_grids(&[3u8; 32], 7, w, h);
            let a = render_reference(&grids, w, h);
            let b = render(&grids, w, h);
            let max = a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(max < 1e-4, "{w}x{h}: max difference {max}");
        }
    }

    #[test]
    fn keyed_per_unit_and_unit_rms() {
        let (w, h) = (128, 72);
        let p0 = unit_pattern(&[1u8; 32], 0, w, h);
        let p0b = unit_pattern(&[1u8; 32], 0, w, h);
        let p1 = unit_pattern(&[1u8; 32], 1, w, h);
        let q0 = unit_pattern(&[2u8; 32], 0, w, h);
        assert_eq!(p0, p0b, "deterministic");
        let rms = (p0.iter().map(|v| v * v).sum::<f32>() / p0.len() as f32).sqrt();
        assert!((0.97..=1.0).contains(&rms), "{rms}");
        assert!(p0.iter().all(|v| v.abs() <= PEAK));
        let corr = |a: &Pattern, b: &Pattern| {
            a.iter().zip(b.iter()).map(|(x, y)| x * y).sum::<f32>() / a.len() as f32
        };
        assert!(corr(&p0, &p1).abs() < 0.2, "units differ");
        assert!(corr(&p0, &q0).abs() < 0.2, "secrets differ");
    }

    #[test]
    fn energy_is_in_low_frequencies() {
        // Neighbouring pixels are strongly correlated (a smooth field), unlike white noise.
        let (w, h) = (640, 360);
        let p = unit_pattern(&[5u8; 32], 3, w, h);
        let (left, right) = (
            p.slice(ndarray::s![.., ..w - 1]),
            p.slice(ndarray::s![.., 1..]),
        );
        let num: f64 = left
            .iter()
            .zip(right.iter())
            .map(|(a, b)| (a * b) as f64)
            .sum();
        let den: f64 = left.iter().map(|&a| (a as f64).powi(2)).sum();
        assert!(num / den > 0.95, "lag-1 autocorrelation {}", num / den);
    }

    #[test]
    fn pattern_scales_with_the_picture() {
        // The same unit rendered at half size equals the full-size pattern downsampled.
        let full = unit_pattern(&[9u8; 32], 2, 320, 180);
        let half = unit_pattern(&[9u8; 32], 2, 160, 90);
        let mut corr = 0f64;
        for ((y, x), &v) in half.indexed_iter() {
            let avg = full
                .slice(ndarray::s![2 * y..2 * y + 2, 2 * x..2 * x + 2])
                .sum()
                / 4.0;
            corr += (avg * v) as f64;
        }
        assert!(corr / (160.0 * 90.0) > 0.9, "{}", corr / (160.0 * 90.0));
    }
}
