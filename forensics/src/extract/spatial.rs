//! Alignment in space. First the suspect's own black bars (letterbox, pillarbox) are found and
//! cut away; then the part of the reference frame that the remaining picture shows (a crop of
//! up to about 12% per side around the centre, or from where identification found the picture,
//! e.g. a corner; any rescale) is searched for, comparing resampled reference
//! frames with suspect frames after a per-frame brightness/contrast fit.

use super::fit::fitted_error;
use crate::frame::{warp, Gray, Quad, Rect};

/// Rows or columns darker than this (8-bit luma) on average, and nearly constant, are bars.
const BAR_LEVEL: f32 = 28.0;
const BAR_SPREAD: f32 = 6.0;

/// The suspect's picture area without black bars, from frames sampled over the whole file.
pub fn active_area(frames: &[&Gray]) -> Rect {
    let Some(first) = frames.first() else {
        return Rect::FULL;
    };
    let (h, w) = first.dim();
    // A line (row or column) of dark, nearly constant pixels in every frame.
    let is_bar = |line: ndarray::ArrayView1<f32>| {
        let mean = line.iter().sum::<f32>() / line.len() as f32;
        let spread = line.iter().map(|v| (v - mean).abs()).fold(0.0, f32::max);
        mean < BAR_LEVEL && spread < BAR_SPREAD * 3.0
    };
    let row_is_bar = |y: usize| frames.iter().all(|f| is_bar(f.row(y)));
    let col_is_bar = |x: usize| frames.iter().all(|f| is_bar(f.column(x)));
    let top = (0..h / 3).take_while(|&y| row_is_bar(y)).count();
    let bottom = (0..h / 3).take_while(|&y| row_is_bar(h - 1 - y)).count();
    let left = (0..w / 3).take_while(|&x| col_is_bar(x)).count();
    let right = (0..w / 3).take_while(|&x| col_is_bar(w - 1 - x)).count();
    // Keep one pixel of margin inside the picture: bar edges are blurred by scaling.
    let edge = |n: usize| if n == 0 { 0.0 } else { (n + 1) as f64 };
    Rect {
        x0: edge(left) / w as f64,
        y0: edge(top) / h as f64,
        x1: 1.0 - edge(right) / w as f64,
        y1: 1.0 - edge(bottom) / h as f64,
    }
}

/// One suspect frame (its active area, resampled to the search grid) and the reference
/// frames it may show: the one aligned in time and its neighbours (time alignment from
/// thumbnails can be a frame off, and a wrong frame would bend the crop to fit it).
pub struct Pair<'a> {
    pub suspect: &'a Gray,
    pub references: Vec<&'a Gray>,
}

fn error_of(pairs: &[Pair], rect: Rect) -> f64 {
    error_of_quad(pairs, &Quad::from_rect(rect))
}

fn error_of_quad(pairs: &[Pair], quad: &Quad) -> f64 {
    pairs
        .iter()
        .map(|p| {
            p.references
                .iter()
                .map(|reference| {
                    let (rows, cols) = p.suspect.dim();
                    fitted_error(p.suspect, &warp(reference, quad, rows, cols))
                })
                .fold(f64::INFINITY, f64::min)
        })
        .sum::<f64>()
        / pairs.len().max(1) as f64
}

/// The region of the reference frame that the suspect's active area shows; `hint`, the part
/// of the frame the suspect was found to show (the whole frame, or for a copy cropped
/// off-centre the part its time was read against), is where the search may start.
pub fn find_crop(pairs: &[Pair], hint: Rect) -> Rect {
    if pairs.is_empty() {
        return hint;
    }
    // Coarse: the hint, and symmetric crops in 1% steps, horizontally and vertically
    // independent.
    let mut best = (error_of(pairs, Rect::FULL), Rect::FULL);
    if hint != Rect::FULL {
        let e = error_of(pairs, hint);
        if e < best.0 {
            best = (e, hint);
        }
    }
    for cy in 0..=12 {
        for cx in 0..=12 {
            let (x, y) = (cx as f64 * 0.01, cy as f64 * 0.01);
            let rect = Rect {
                x0: x,
                y0: y,
                x1: 1.0 - x,
                y1: 1.0 - y,
            };
            let e = error_of(pairs, rect);
            if e < best.0 {
                best = (e, rect);
            }
        }
    }
    // Fine: each edge on its own, in shrinking steps.
    for step in [0.01, 0.004, 0.0015, 0.0005] {
        let mut improved = true;
        while improved {
            improved = false;
            for edge in 0..4 {
                for sign in [-1.0, 1.0] {
                    let mut r = best.1;
                    let v = match edge {
                        0 => &mut r.x0,
                        1 => &mut r.y0,
                        2 => &mut r.x1,
                        _ => &mut r.y1,
                    };
                    *v += sign * step;
                    if r.x0 < -0.02 || r.y0 < -0.02 || r.x1 > 1.02 || r.y1 > 1.02 {
                        continue;
                    }
                    if r.width() < 0.6 || r.height() < 0.6 {
                        continue;
                    }
                    let e = error_of(pairs, r);
                    if e < best.0 - 1e-9 {
                        best = (e, r);
                        improved = true;
                    }
                }
            }
        }
    }
    best.1
}

/// Angles (degrees) a turned copy is looked for at, and the sizes of the turned crop relative
/// to the upright one (a copy turned and then cropped to hide the corners shows less).
const ANGLES: [f64; 12] = [
    -6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
];
const TURNED_SCALES: [f64; 3] = [1.0, 0.94, 0.88];
/// Where a corner of the placement may lie, as a fraction of the reference frame: outside it
/// when the copy shows more than the frame (a copy turned 6 degrees without a crop has its
/// corners about 9 % beyond the frame, filled with black).
const CORNER_RANGE: std::ops::RangeInclusive<f64> = -0.15..=1.15;
/// Every corner of `q` within [`CORNER_RANGE`].
fn within_range(q: &Quad) -> bool {
    q.corners.iter().flatten().all(|v| CORNER_RANGE.contains(v))
}

/// A placement other than the upright crop is taken only when it fits this much better.
const MIN_GAIN: f64 = 0.02;

/// One way the placement search changes a quad by a step. Moving one corner at a time cannot
/// follow a valley that asks two corners to move together (a picture placed slightly too tall
/// fits about as badly with either top corner moved back alone), so the search also moves an
/// edge, the whole quad, its size and its turn.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// One corner (index into [`Quad::corners`]) along x (0) or y (1).
    Corner(usize, usize),
    /// Two corners together along one axis: an edge.
    Edge([usize; 2], usize),
    /// Every corner along one axis.
    Shift(usize),
    /// Every corner away from the centre along one axis, by the step times its distance.
    Stretch(usize),
    /// The whole quad turned about its centre, by the step in radians.
    Turn,
}

impl Move {
    const ALL: [Move; 17] = [
        Move::Corner(0, 0),
        Move::Corner(0, 1),
        Move::Corner(1, 0),
        Move::Corner(1, 1),
        Move::Corner(2, 0),
        Move::Corner(2, 1),
        Move::Corner(3, 0),
        Move::Corner(3, 1),
        Move::Edge([0, 1], 1),
        Move::Edge([2, 3], 1),
        Move::Edge([0, 2], 0),
        Move::Edge([1, 3], 0),
        Move::Shift(0),
        Move::Shift(1),
        Move::Stretch(0),
        Move::Stretch(1),
        Move::Turn,
    ];

    /// `q` changed by `step` (negative the other way): for a corner, an edge or a shift, a
    /// fraction of the frame; for a stretch, a fraction of each corner's distance from the
    /// centre; for a turn, radians.
    fn apply(self, q: &Quad, step: f64, aspect: f64) -> Quad {
        let mut out = *q;
        match self {
            Move::Corner(corner, axis) => out.corners[corner][axis] += step,
            Move::Edge(corners, axis) => {
                for corner in corners {
                    out.corners[corner][axis] += step;
                }
            }
            Move::Shift(axis) => {
                for corner in &mut out.corners {
                    corner[axis] += step;
                }
            }
            Move::Stretch(axis) => {
                let centre = q.point(0.5, 0.5)[axis];
                for corner in &mut out.corners {
                    corner[axis] += (corner[axis] - centre) * step;
                }
            }
            Move::Turn => out = q.rotated(step.to_degrees(), aspect),
        }
        out
    }
}

/// From `start` (its error and quad), the corners moved alone and together by `moves`, in
/// shrinking steps, while the error falls; the error and quad reached.
fn descend(pairs: &[Pair], start: (f64, Quad), aspect: f64, moves: &[Move]) -> (f64, Quad) {
    let mut best = start;
    for step in [0.01, 0.004, 0.0015, 0.0005] {
        let mut improved = true;
        while improved {
            improved = false;
            for change in moves {
                for sign in [-1.0, 1.0] {
                    let q = change.apply(&best.1, sign * step, aspect);
                    if !within_range(&q) {
                        continue;
                    }
                    let e = error_of_quad(pairs, &q);
                    if e < best.0 - 1e-9 {
                        best = (e, q);
                        improved = true;
                    }
                }
            }
        }
    }
    best
}

/// Where the suspect's active area lies in the reference frame: the upright crop
/// ([`find_crop`]), or, when the copy was turned (a few degrees), sheared or filmed slightly
/// off-axis and that fits clearly better, a general quad: a turned crop searched over
/// [`ANGLES`], then its corners moved alone and together ([`Move`]) in shrinking steps.
/// `aspect` is the reference frame's width over height; `hint` as for [`find_crop`].
pub fn find_placement(pairs: &[Pair], aspect: f64, hint: Rect) -> Quad {
    place(pairs, aspect, hint, &Move::ALL)
}

/// [`find_placement`] with the corner search's `moves`.
fn place(pairs: &[Pair], aspect: f64, hint: Rect, moves: &[Move]) -> Quad {
    let upright = Quad::from_rect(find_crop(pairs, hint));
    if pairs.is_empty() {
        return upright;
    }
    let upright_error = error_of_quad(pairs, &upright);
    let centre = upright.point(0.5, 0.5);
    let scaled = |q: &Quad, s: f64| Quad {
        corners: q.corners.map(|c| {
            [
                centre[0] + (c[0] - centre[0]) * s,
                centre[1] + (c[1] - centre[1]) * s,
            ]
        }),
    };
    let mut best = (upright_error, upright);
    for angle in ANGLES {
        for scale in TURNED_SCALES {
            let q = scaled(&upright, scale).rotated(angle, aspect);
            // (The search moves corners only within the range: a start beyond it could not
            // be refined.)
            if !within_range(&q) {
                continue;
            }
            let e = error_of_quad(pairs, &q);
            if e < best.0 {
                best = (e, q);
            }
        }
    }
    let best = descend(pairs, best, aspect, moves);
    if best.0 < upright_error * (1.0 - MIN_GAIN) {
        best.1
    } else {
        upright
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::resample;

    /// A textured frame: sums of a few sinusoids, different per seed.
    fn scene(w: usize, h: usize, seed: f32) -> Gray {
        Gray::from_shape_fn((h, w), |(y, x)| {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            128.0
                + 50.0 * (u * 9.0 + seed).sin() * (v * 7.0 - seed).cos()
                + 30.0 * (u * 23.0 * (1.0 + seed * 0.1) + v * 5.0).sin()
                + 20.0 * (v * 31.0 + seed * 2.0).cos()
        })
    }

    #[test]
    fn finds_an_asymmetric_crop_despite_contrast_changes() {
        let refs: Vec<Gray> = (0..4).map(|i| scene(384, 216, i as f32)).collect();
        let crop = Rect {
            x0: 0.07,
            y0: 0.03,
            x1: 0.95,
            y1: 0.9,
        };
        let sus: Vec<Gray> = refs
            .iter()
            .map(|r| resample(r, crop, 72, 128).mapv(|v| v * 0.8 + 20.0))
            .collect();
        assert_near(find_crop(&pairs_of(&refs, &sus), Rect::FULL), crop);
    }

    /// Each edge of `found` within 0.004 of `truth`'s.
    #[track_caller]
    fn assert_near(found: Rect, truth: Rect) {
        for (a, b) in [
            (found.x0, truth.x0),
            (found.y0, truth.y0),
            (found.x1, truth.x1),
            (found.y1, truth.y1),
        ] {
            assert!((a - b).abs() < 0.004, "{found:?} vs {truth:?}");
        }
    }

    /// A copy cut from the bottom-right corner to 78 % of the frame, rescaled: found from the
    /// part of the frame the time was read against (the corner at 85 %), however far that is
    /// from the centred crops of the coarse search.
    #[test]
    fn a_crop_from_a_corner_is_found_from_its_hint() {
        let refs: Vec<Gray> = (0..4).map(|i| scene(384, 216, i as f32)).collect();
        let crop = Rect {
            x0: 0.22,
            y0: 0.2,
            x1: 1.0,
            y1: 0.98,
        };
        let sus: Vec<Gray> = refs.iter().map(|r| resample(r, crop, 72, 128)).collect();
        let hint = Rect {
            x0: 0.15,
            y0: 0.15,
            x1: 1.0,
            y1: 1.0,
        };
        let found = find_placement(&pairs_of(&refs, &sus), 384.0 / 216.0, hint);
        assert_near(found.as_rect().expect("an upright crop"), crop);
        // Without it, the search from the centred crops settles far from the corner.
        let unhinted = find_crop(&pairs_of(&refs, &sus), Rect::FULL);
        assert!((unhinted.x0 - crop.x0).abs() > 0.05, "{unhinted:?}");
    }

    #[test]
    fn a_turned_copy_is_placed_by_its_corners() {
        let refs: Vec<Gray> = (0..4).map(|i| scene(384, 216, i as f32)).collect();
        let aspect = 384.0 / 216.0;
        let truth = turned_crop(0.1, 4.0, aspect);
        let sus: Vec<Gray> = refs
            .iter()
            .map(|r| warp(r, &truth, 72, 128).mapv(|v| v * 0.9 + 10.0))
            .collect();
        let pairs: Vec<Pair> = sus
            .iter()
            .zip(&refs)
            .map(|(s, r)| Pair {
                suspect: s,
                references: vec![r],
            })
            .collect();
        let found = find_placement(&pairs, aspect, Rect::FULL);
        for (f, t) in found.corners.iter().zip(&truth.corners) {
            assert!(
                (f[0] - t[0]).abs() < 0.01 && (f[1] - t[1]).abs() < 0.01,
                "{found:?} vs {truth:?}"
            );
        }
        // An upright crop stays exactly the upright crop.
        let crop = Rect {
            x0: 0.05,
            y0: 0.05,
            x1: 0.95,
            y1: 0.95,
        };
        let upright: Vec<Gray> = refs.iter().map(|r| resample(r, crop, 72, 128)).collect();
        let pairs: Vec<Pair> = upright
            .iter()
            .zip(&refs)
            .map(|(s, r)| Pair {
                suspect: s,
                references: vec![r],
            })
            .collect();
        assert!(find_placement(&pairs, aspect, Rect::FULL)
            .as_rect()
            .is_some());
    }

    /// A picture of flat blocks with sharp edges (like a test card, unlike [`scene`]): where
    /// a placement is off by a pixel, only the edges say so.
    fn blocks(w: usize, h: usize, seed: u32) -> Gray {
        let level = |i: usize, j: usize| {
            let k = (i as u32 * 7919 + j as u32 * 104_729 + seed * 31).wrapping_mul(2_654_435_761);
            40.0 + (k >> 24) as f32 * 0.7
        };
        Gray::from_shape_fn((h, w), |(y, x)| {
            level(x * 9 / w, y * 5 / h) + if (x / 3 + y / 3) % 17 == 0 { 25.0 } else { 0.0 }
        })
    }

    /// The moves of corners together reach the placement on their own: from a quad shifted,
    /// stretched and turned off the truth, the search without single-corner moves comes back
    /// to it (a turn is only reachable by [`Move::Turn`], a stretch by [`Move::Stretch`] or
    /// two edges). The case they exist for, a copy placed too tall where single corners stop
    /// short, is in the integration tests (`turned_copies_are_placed_at_their_corners`): it
    /// needs a real encoder's frames.
    #[test]
    fn corners_moved_together_reach_the_placement() {
        let (w, h) = (384, 216);
        let aspect = w as f64 / h as f64;
        let refs: Vec<Gray> = (0..4).map(|i| blocks(w, h, i)).collect();
        let truth = turned_crop(0.06, 3.0, aspect);
        let suspects: Vec<Gray> = refs.iter().map(|r| warp(r, &truth, 54, 96)).collect();
        let pairs = pairs_of(&refs, &suspects);
        let mut start = truth.rotated(0.6, aspect);
        start = Move::Stretch(1).apply(&start, 0.02, aspect);
        start = Move::Shift(0).apply(&start, 0.012, aspect);
        start = Move::Shift(1).apply(&start, -0.008, aspect);
        let together: Vec<Move> = Move::ALL
            .into_iter()
            .filter(|m| !matches!(m, Move::Corner(..)))
            .collect();
        let found = descend(
            &pairs,
            (error_of_quad(&pairs, &start), start),
            aspect,
            &together,
        )
        .1;
        for (f, t) in found.corners.iter().zip(&truth.corners) {
            assert!(
                (f[0] - t[0]).abs() < 0.002 && (f[1] - t[1]).abs() < 0.002,
                "{found:?} vs {truth:?}"
            );
        }
        // Each move changes what it names and nothing else.
        let edge = Move::Edge([0, 1], 1).apply(&truth, 0.01, aspect);
        assert_eq!(edge.corners[2], truth.corners[2]);
        assert!((edge.corners[0][1] - truth.corners[0][1] - 0.01).abs() < 1e-12);
        let stretched = Move::Stretch(0).apply(&truth, 0.1, aspect);
        let centre = |q: &Quad| q.point(0.5, 0.5);
        assert!((centre(&stretched)[0] - centre(&truth)[0]).abs() < 1e-9);
        assert!(stretched.bounds().width() > truth.bounds().width() * 1.09);
    }

    /// A crop of `margin` at every side, turned by `degrees`.
    fn turned_crop(margin: f64, degrees: f64, aspect: f64) -> Quad {
        Quad::from_rect(Rect {
            x0: margin,
            y0: margin,
            x1: 1.0 - margin,
            y1: 1.0 - margin,
        })
        .rotated(degrees, aspect)
    }

    /// Each suspect frame paired with the reference frame it was made from.
    fn pairs_of<'a>(refs: &'a [Gray], suspects: &'a [Gray]) -> Vec<Pair<'a>> {
        suspects
            .iter()
            .zip(refs)
            .map(|(s, r)| Pair {
                suspect: s,
                references: vec![r],
            })
            .collect()
    }

    #[test]
    fn a_copy_filmed_off_axis_is_placed_by_its_perspective() {
        // A camera turned 20 degrees about the vertical axis, 2 frame widths from the screen,
        // built here from the pinhole model (not from `Quad`): the reference point a suspect
        // pixel shows, as fractions of the reference frame.
        let (sin, cos) = 20f64.to_radians().sin_cos();
        let (distance, focal) = (2.0, 2.0);
        let seen = |su: f64, sv: f64| {
            let (x, y) = (-0.4 + 0.8 * su, -0.4 + 0.8 * sv);
            let big_x = x * distance / (focal * cos - x * sin);
            let big_y = y * (big_x * sin + distance) / focal;
            [big_x + 0.5, big_y + 0.5]
        };
        let refs: Vec<Gray> = (0..4).map(|i| scene(384, 216, i as f32)).collect();
        let (rows, cols) = (72, 128);
        let suspects: Vec<Gray> = refs
            .iter()
            .map(|r| {
                Gray::from_shape_fn((rows, cols), |(y, x)| {
                    let p = seen(
                        (x as f64 + 0.5) / cols as f64,
                        (y as f64 + 0.5) / rows as f64,
                    );
                    crate::frame::sample(r, p[0] * 384.0 - 0.5, p[1] * 216.0 - 0.5) * 0.9 + 10.0
                })
            })
            .collect();
        let found = find_placement(&pairs_of(&refs, &suspects), 384.0 / 216.0, Rect::FULL);
        for (corner, (u, v)) in
            found
                .corners
                .iter()
                .zip([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
        {
            let t = seen(u, v);
            assert!(
                (corner[0] - t[0]).abs() < 0.01 && (corner[1] - t[1]).abs() < 0.01,
                "{found:?}: corner {u},{v} should be {t:?}"
            );
        }
        // Inside, the picture follows the perspective (the centre of the screen is not the
        // mean of the corners: that is 0.03 of the width off).
        for (u, v) in [(0.5, 0.5), (0.25, 0.75), (0.8, 0.2)] {
            let (f, t) = (found.point(u, v), seen(u, v));
            assert!(
                (f[0] - t[0]).abs() < 0.004 && (f[1] - t[1]).abs() < 0.004,
                "{u},{v}: {f:?} vs {t:?}"
            );
        }
    }

    #[test]
    fn a_copy_turned_without_a_crop_is_placed_beyond_the_frame() {
        // Turned 5 degrees, the frame's size kept: the corners show black outside the picture.
        let refs: Vec<Gray> = (0..4).map(|i| scene(384, 216, i as f32)).collect();
        let aspect = 384.0 / 216.0;
        let truth = Quad::from_rect(Rect::FULL).rotated(5.0, aspect);
        assert!(truth.bounds().y1 > 1.05, "{truth:?}");
        let suspects: Vec<Gray> = refs
            .iter()
            .map(|r| {
                let mut s = warp(r, &truth, 72, 128);
                for ((y, x), v) in s.indexed_iter_mut() {
                    let p = truth.point((x as f64 + 0.5) / 128.0, (y as f64 + 0.5) / 72.0);
                    if !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1]) {
                        *v = 16.0;
                    }
                }
                s
            })
            .collect();
        let found = find_placement(&pairs_of(&refs, &suspects), aspect, Rect::FULL);
        for (f, t) in found.corners.iter().zip(&truth.corners) {
            assert!(
                (f[0] - t[0]).abs() < 0.01 && (f[1] - t[1]).abs() < 0.01,
                "{found:?} vs {truth:?}"
            );
        }
    }

    #[test]
    fn letterbox_bars_are_found() {
        let mut g = scene(160, 90, 1.0);
        for ((y, x), v) in g.indexed_iter_mut() {
            if !(12..78).contains(&y) || x < 5 {
                *v = 16.0;
            }
        }
        let a = active_area(&[&g]);
        assert!((a.y0 - 13.0 / 90.0).abs() < 1e-9, "{a:?}");
        assert!((a.y1 - (1.0 - 13.0 / 90.0)).abs() < 1e-9, "{a:?}");
        assert!((a.x0 - 6.0 / 160.0).abs() < 1e-9, "{a:?}");
        assert_eq!(a.x1, 1.0);
        assert_eq!(active_area(&[&scene(160, 90, 2.0)]), Rect::FULL);
    }
}
