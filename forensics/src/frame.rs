//! The frame model: every 2-D picture in `forensics` is an `ndarray` array indexed
//! `[[row, column]]`. This leaf module owns the views over FFmpeg's planes (no copies: the
//! plane's row stride becomes the view's row stride), the one area-averaging downscale (full
//! frames to analysis grays, analysis grays to thumbnails, the packaging thumbnails), and the
//! bilinear resampling of a sub-rectangle, which is how a suspect (rescaled, cropped,
//! letterboxed) is brought onto the reference's geometry.
//!
//! The kernels here work row by row on contiguous row slices (`ArrayView1::as_slice`), which
//! the compiler vectorises; nothing else in the crate indexes pixels by hand.

use ffmpeg_next::frame;
use formats::case::Flip;
use ndarray::{Array2, ArrayView, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, ShapeBuilder};

/// A luma image in `f32` grey levels: analysis frames, grids, thumbnails before rounding.
pub type Gray = Array2<f32>;

/// Width of the full-frame grays kept for analysis (suspect and reference).
pub const ANALYSIS_WIDTH: usize = 384;

/// The luma plane of a decoded frame, borrowed.
pub fn luma(f: &frame::Video) -> ArrayView2<'_, u8> {
    let (width, height, stride) = (f.width() as usize, f.height() as usize, f.stride(0));
    plane_view(f.data(0), width, height, stride)
}

/// The luma plane of a frame, writable.
pub fn luma_mut(f: &mut frame::Video) -> ArrayViewMut2<'_, u8> {
    let (width, height, stride) = (f.width() as usize, f.height() as usize, f.stride(0));
    // FFmpeg's planes hold `stride * height` bytes with `stride >= width`; one that does not
    // (never seen) is an empty picture rather than a panic.
    ArrayViewMut2::from_shape((height, width).strides((stride, 1)), f.data_mut(0))
        .unwrap_or_else(|_| empty_mut())
}

fn empty_mut<'a>() -> ArrayViewMut2<'a, u8> {
    let empty: &'a mut [u8] = &mut [];
    ArrayViewMut1::from(empty).insert_axis(Axis(0))
}

/// A `width` x `height` plane stored row by row `stride` bytes apart; an empty picture when
/// `data` is too short for that.
pub fn plane_view(data: &[u8], width: usize, height: usize, stride: usize) -> ArrayView2<'_, u8> {
    ArrayView2::from_shape((height, width).strides((stride.max(width), 1)), data)
        .unwrap_or_else(|_| ArrayView::from(&data[..0]).insert_axis(Axis(0)))
}

/// A pixel type whose area average is taken: its sum type (exact for 8-bit planes).
pub trait AreaPixel: Copy {
    type Sum: Copy + Default + std::ops::AddAssign + std::iter::Sum<Self::Sum>;
    fn widen(self) -> Self::Sum;
}

impl AreaPixel for u8 {
    type Sum = u32;
    #[inline]
    fn widen(self) -> u32 {
        self as u32
    }
}

impl AreaPixel for f32 {
    type Sum = f32;
    #[inline]
    fn widen(self) -> f32 {
        self
    }
}

/// The cells of an axis of `len` pixels split into `cells`: cell `c` covers
/// `c * len / cells .. (c + 1) * len / cells` (at least one pixel).
fn cells(len: usize, cells: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..cells).map(move |c| {
        let start = c * len / cells;
        (
            start,
            ((c + 1) * len / cells).max(start + 1).min(len.max(1)),
        )
    })
}

/// The one area-averaging downscale: `src` onto a `rows` x `cols` grid of cells, each cell's
/// sum and pixel count turned into the output by `finish` (a mean in `f32`, or a mean rounded
/// to 8 bits). Rows of a cell are summed per column first (a loop the compiler vectorises),
/// then the columns of each cell.
pub fn area_reduce<T: AreaPixel, O: Clone + Default>(
    src: ArrayView2<T>,
    rows: usize,
    cols: usize,
    finish: impl Fn(T::Sum, usize) -> O,
) -> Array2<O> {
    let (height, width) = src.dim();
    let mut out = Array2::default((rows, cols));
    if width == 0 || height == 0 {
        return out;
    }
    let col_cells: Vec<(usize, usize)> = cells(width, cols).collect();
    let mut column_sums = vec![T::Sum::default(); width];
    for ((y0, y1), mut out_row) in cells(height, rows).zip(out.rows_mut()) {
        column_sums.fill(T::Sum::default());
        for row in src.slice(ndarray::s![y0..y1, ..]).rows() {
            match row.as_slice() {
                Some(pixels) => {
                    for (sum, &v) in column_sums.iter_mut().zip(pixels) {
                        *sum += v.widen();
                    }
                }
                None => {
                    for (sum, &v) in column_sums.iter_mut().zip(row.iter()) {
                        *sum += v.widen();
                    }
                }
            }
        }
        for (o, &(x0, x1)) in out_row.iter_mut().zip(&col_cells) {
            let sum: T::Sum = column_sums[x0..x1].iter().copied().sum();
            *o = finish(sum, (x1 - x0) * (y1 - y0));
        }
    }
    out
}

/// Reference implementation of [`area_reduce`]: each cell summed on its own, in any order
/// (exact for 8-bit planes, whose sums are integers).
pub fn area_reduce_reference<T: AreaPixel, O: Clone + Default>(
    src: ArrayView2<T>,
    rows: usize,
    cols: usize,
    finish: impl Fn(T::Sum, usize) -> O,
) -> Array2<O> {
    let (height, width) = src.dim();
    if width == 0 || height == 0 {
        return Array2::default((rows, cols));
    }
    let row_cells: Vec<(usize, usize)> = cells(height, rows).collect();
    let col_cells: Vec<(usize, usize)> = cells(width, cols).collect();
    Array2::from_shape_fn((rows, cols), |(cy, cx)| {
        let ((y0, y1), (x0, x1)) = (row_cells[cy], col_cells[cx]);
        let cell = src.slice(ndarray::s![y0..y1, x0..x1]);
        finish(cell.iter().map(|v| v.widen()).sum(), cell.len())
    })
}

/// The area average of an 8-bit plane on a `rows` x `cols` grid, in grey levels.
pub fn downscale(src: ArrayView2<u8>, rows: usize, cols: usize) -> Gray {
    area_reduce(src, rows, cols, |sum, n| sum as f32 / n as f32)
}

/// A decoded frame as the analysis sees it: luma, area-downscaled to [`ANALYSIS_WIDTH`]
/// columns (rows keep the frame's proportions, at least 8).
pub fn analysis_gray(f: &frame::Video) -> Gray {
    let view = luma(f);
    let (h, w) = view.dim();
    let rows = (ANALYSIS_WIDTH as f64 * h as f64 / w.max(1) as f64).round() as usize;
    downscale(view, rows.max(8), ANALYSIS_WIDTH)
}

/// The area average of a gray on a smaller `rows` x `cols` grid.
pub fn shrink(src: &Gray, rows: usize, cols: usize) -> Gray {
    area_reduce(src.view(), rows, cols, |sum, n| sum / n as f32)
}

/// The area average of an 8-bit plane on a `rows` x `cols` grid, rounded to 8 bits
/// (halves up): the packaging thumbnails.
pub fn thumbnail(src: ArrayView2<u8>, rows: usize, cols: usize) -> Array2<u8> {
    area_reduce(src, rows, cols, |sum, n| {
        let n = n as u32;
        ((sum + n / 2) / n) as u8
    })
}

/// A rectangle in normalised coordinates of an image (0..1 on both axes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub const FULL: Rect = Rect {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    };

    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }

    /// The same area sampled mirrored: its edges swapped on the flipped axes, so that a
    /// resample of it undoes the flip.
    pub fn flipped(self, flip: Flip) -> Rect {
        let (h, v) = match flip {
            Flip::None => (false, false),
            Flip::Horizontal => (true, false),
            Flip::Vertical => (false, true),
            Flip::Both => (true, true),
        };
        Rect {
            x0: if h { self.x1 } else { self.x0 },
            x1: if h { self.x0 } else { self.x1 },
            y0: if v { self.y1 } else { self.y0 },
            y1: if v { self.y0 } else { self.y1 },
        }
    }

    /// `[x0, y0, x1, y1]`, as the extract JSON writes rectangles.
    pub fn to_array(self) -> [f64; 4] {
        [self.x0, self.y0, self.x1, self.y1]
    }
}

/// Reference implementation of bilinear sampling: the value at a continuous position in pixel
/// units (clamped to the image).
pub fn sample(src: &Gray, x: f64, y: f64) -> f32 {
    let (height, width) = src.dim();
    let x = x.clamp(0.0, (width - 1) as f64);
    let y = y.clamp(0.0, (height - 1) as f64);
    let (xi, yi) = (x.floor() as usize, y.floor() as usize);
    let (fx, fy) = ((x - xi as f64) as f32, (y - yi as f64) as f32);
    let x1 = (xi + 1).min(width - 1);
    let y1 = (yi + 1).min(height - 1);
    let top = src[[yi, xi]] * (1.0 - fx) + src[[yi, x1]] * fx;
    let bottom = src[[y1, xi]] * (1.0 - fx) + src[[y1, x1]] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The two neighbours and the weight of the second for a bilinear sample at `p` on an axis of
/// `len` pixels (clamped to the axis).
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

impl Tap {
    fn new(p: f64, len: usize) -> Tap {
        let p = p.clamp(0.0, (len - 1) as f64);
        let i0 = p.floor() as usize;
        Tap {
            i0,
            i1: (i0 + 1).min(len - 1),
            f: (p - i0 as f64) as f32,
        }
    }
}

/// The part `rect` of `src` resampled onto a `rows` x `cols` grid (pixel centres): the same
/// values as [`sample`] at every grid point, with the taps of each column and row computed
/// once and whole rows read as slices.
pub fn resample(src: &Gray, rect: Rect, rows: usize, cols: usize) -> Gray {
    let (height, width) = src.dim();
    let mut out = Gray::zeros((rows, cols));
    if width == 0 || height == 0 {
        return out;
    }
    let sx = rect.width() * width as f64 / cols as f64;
    let sy = rect.height() * height as f64 / rows as f64;
    let ox = rect.x0 * width as f64 - 0.5;
    let oy = rect.y0 * height as f64 - 0.5;
    let xs: Vec<Tap> = (0..cols)
        .map(|x| Tap::new(ox + (x as f64 + 0.5) * sx, width))
        .collect();
    for (y, mut out_row) in out.rows_mut().into_iter().enumerate() {
        let ty = Tap::new(oy + (y as f64 + 0.5) * sy, height);
        let (r0, r1) = (src.row(ty.i0), src.row(ty.i1));
        for (o, tx) in out_row.iter_mut().zip(&xs) {
            let top = r0[tx.i0] * (1.0 - tx.f) + r0[tx.i1] * tx.f;
            let bottom = r1[tx.i0] * (1.0 - tx.f) + r1[tx.i1] * tx.f;
            *o = top * (1.0 - ty.f) + bottom * ty.f;
        }
    }
    out
}

/// Where the corners of a picture fall in another frame, as fractions of that frame:
/// top-left, top-right, bottom-left, bottom-right. An axis-aligned crop is the special case
/// [`Quad::from_rect`]; a rotated, sheared or perspective view of the frame (a camera pointed
/// at a screen) is any other. Points inside are placed by the projective map the four corners
/// define ([`QuadMap`]): a flat picture seen from any angle, rotation, scaling and shear
/// included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quad {
    pub corners: [[f64; 2]; 4],
}

impl Quad {
    pub fn from_rect(r: Rect) -> Quad {
        Quad {
            corners: [[r.x0, r.y0], [r.x1, r.y0], [r.x0, r.y1], [r.x1, r.y1]],
        }
    }

    /// The rectangle, when the quad is one (axis-aligned).
    pub fn as_rect(&self) -> Option<Rect> {
        let [tl, tr, bl, br] = self.corners;
        (tl[1] == tr[1] && bl[1] == br[1] && tl[0] == bl[0] && tr[0] == br[0]).then_some(Rect {
            x0: tl[0],
            y0: tl[1],
            x1: br[0],
            y1: br[1],
        })
    }

    /// The smallest rectangle holding the quad.
    pub fn bounds(&self) -> Rect {
        let xs = self.corners.map(|c| c[0]);
        let ys = self.corners.map(|c| c[1]);
        let min = |v: [f64; 4]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = |v: [f64; 4]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Rect {
            x0: min(xs),
            y0: min(ys),
            x1: max(xs),
            y1: max(ys),
        }
    }

    /// Width over height of the picture the quad shows, in pixels of a `width` x `height`
    /// frame (for a rectangle, exactly its own proportions).
    pub fn aspect(&self, width: u32, height: u32) -> f64 {
        let (w, h) = (width.max(1) as f64, height.max(1) as f64);
        if let Some(r) = self.as_rect() {
            return r.width() * w / (r.height() * h);
        }
        let [tl, tr, bl, br] = self.corners;
        let length = |a: [f64; 2], b: [f64; 2]| ((b[0] - a[0]) * w).hypot((b[1] - a[1]) * h);
        let across = (length(tl, tr) + length(bl, br)) / 2.0;
        let down = (length(tl, bl) + length(tr, br)) / 2.0;
        across / down.max(1e-9)
    }

    /// The point at `(u, v)` of the picture (0..1 each way), by [`QuadMap`].
    pub fn point(&self, u: f64, v: f64) -> [f64; 2] {
        QuadMap::of(self).point(u, v)
    }

    /// [`Quad::point`] by bilinear interpolation of the corners (the map of a quad that is not
    /// convex, and the plain version the projective one is tested against).
    fn bilinear_point(&self, u: f64, v: f64) -> [f64; 2] {
        let [tl, tr, bl, br] = self.corners;
        let left = [tl[0] + (bl[0] - tl[0]) * v, tl[1] + (bl[1] - tl[1]) * v];
        let right = [tr[0] + (br[0] - tr[0]) * v, tr[1] + (br[1] - tr[1]) * v];
        [
            left[0] + (right[0] - left[0]) * u,
            left[1] + (right[1] - left[1]) * u,
        ]
    }

    /// The quad turned by `degrees` (clockwise on screen, y down) about its centre, the
    /// picture's proportions in `aspect` (width / height of the frame it lies in) kept.
    pub fn rotated(&self, degrees: f64, aspect: f64) -> Quad {
        let c = self.point(0.5, 0.5);
        let (sin, cos) = degrees.to_radians().sin_cos();
        let turn = |p: [f64; 2]| {
            // In units where x and y measure alike.
            let (dx, dy) = ((p[0] - c[0]) * aspect, p[1] - c[1]);
            [
                c[0] + (dx * cos - dy * sin) / aspect,
                c[1] + dx * sin + dy * cos,
            ]
        };
        Quad {
            corners: self.corners.map(turn),
        }
    }
}

/// The part `quad` of `src` resampled onto a `rows` x `cols` grid (pixel centres), with
/// bilinear sampling. For an axis-aligned quad this is [`resample`] (used then, so results
/// stay exactly what they were).
pub fn warp(src: &Gray, quad: &Quad, rows: usize, cols: usize) -> Gray {
    if let Some(rect) = quad.as_rect() {
        return resample(src, rect, rows, cols);
    }
    let (height, width) = src.dim();
    let mut out = Gray::zeros((rows, cols));
    if width == 0 || height == 0 {
        return out;
    }
    let map = QuadMap::of(quad);
    for (y, mut out_row) in out.rows_mut().into_iter().enumerate() {
        let v = (y as f64 + 0.5) / rows as f64;
        for (x, o) in out_row.iter_mut().enumerate() {
            let u = (x as f64 + 0.5) / cols as f64;
            let [px, py] = map.point(u, v);
            *o = sample(src, px * width as f64 - 0.5, py * height as f64 - 0.5);
        }
    }
    out
}

/// How a [`Quad`] places the points of its picture: the projective map (homography) that takes
/// the unit square's corners to the quad's, when the quad is convex (any view of a flat
/// picture is), else bilinear interpolation of the corners. For a parallelogram (rotation,
/// scaling, shear) the two are the same affine map.
#[derive(Debug, Clone, Copy)]
pub enum QuadMap {
    /// `x = (a u + b v + c) / w`, `y = (d u + e v + f) / w`, `w = g u + h v + 1`, as
    /// `[a, b, c, d, e, f, g, h]`.
    Projective([f64; 8]),
    Bilinear(Quad),
}

impl QuadMap {
    pub fn of(quad: &Quad) -> QuadMap {
        let [[x0, y0], [x1, y1], [x3, y3], [x2, y2]] = quad.corners;
        // The square's corners (0,0), (1,0), (1,1), (0,1) go to tl, tr, br, bl.
        let (sx, sy) = (x0 - x1 + x2 - x3, y0 - y1 + y2 - y3);
        let (dx1, dx2, dy1, dy2) = (x1 - x2, x3 - x2, y1 - y2, y3 - y2);
        let den = dx1 * dy2 - dx2 * dy1;
        let scale = quad
            .corners
            .iter()
            .flatten()
            .fold(1.0f64, |m, v| m.max(v.abs()));
        if den.abs() <= 1e-12 * scale * scale {
            return QuadMap::Bilinear(*quad);
        }
        let g = (sx * dy2 - dx2 * sy) / den;
        let h = (dx1 * sy - sx * dy1) / den;
        // The divisor must stay positive over the whole square (a convex quad): it is linear,
        // so checking the corners is enough.
        if [1.0, 1.0 + g, 1.0 + h, 1.0 + g + h]
            .iter()
            .any(|w| !w.is_finite() || *w <= 1e-6)
        {
            return QuadMap::Bilinear(*quad);
        }
        QuadMap::Projective([
            x1 - x0 + g * x1,
            x3 - x0 + h * x3,
            x0,
            y1 - y0 + g * y1,
            y3 - y0 + h * y3,
            y0,
            g,
            h,
        ])
    }

    /// The point at `(u, v)` of the picture, as fractions of the frame the quad lies in.
    pub fn point(&self, u: f64, v: f64) -> [f64; 2] {
        match self {
            QuadMap::Projective([a, b, c, d, e, f, g, h]) => {
                let w = g * u + h * v + 1.0;
                [(a * u + b * v + c) / w, (d * u + e * v + f) / w]
            }
            QuadMap::Bilinear(q) => q.bilinear_point(u, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Gray {
        Gray::from_shape_fn((h, w), |(y, x)| (x * 2 + y) as f32)
    }

    #[test]
    fn a_view_follows_the_plane_stride_without_copying() {
        let data: Vec<u8> = (0..40).map(|i| i as u8).collect();
        let v = plane_view(&data, 3, 4, 10);
        assert_eq!(v.dim(), (4, 3));
        assert_eq!(v[[2, 1]], 21);
        assert_eq!(v.as_ptr(), data.as_ptr());
        // A plane shorter than it claims is an empty picture, not a panic.
        assert_eq!(plane_view(&data, 3, 9, 10).len(), 0);
    }

    #[test]
    fn area_averages_of_planes_and_grays() {
        let data: Vec<u8> = (0..16).collect();
        let plane = plane_view(&data, 4, 4, 4);
        let flat = |g: &Gray| g.iter().copied().collect::<Vec<f32>>();
        assert_eq!(flat(&downscale(plane, 2, 2)), vec![2.5, 4.5, 10.5, 12.5]);
        assert_eq!(shrink(&downscale(plane, 2, 2), 1, 1)[[0, 0]], 7.5);
        assert_eq!(flat(&shrink(&ramp(6, 3), 1, 3)), vec![2.0, 6.0, 10.0]);
        // Thumbnails round halves up, like the integer mean (sum + n/2) / n.
        let thumb = thumbnail(plane, 2, 2);
        assert_eq!(
            thumb.iter().copied().collect::<Vec<u8>>(),
            vec![3, 5, 11, 13]
        );
        // A padded plane (stride beyond the width) averages only its pixels.
        let mut padded = vec![255u8; 8 * 2];
        for y in 0..2 {
            for x in 0..4 {
                padded[y * 8 + x] = 10;
            }
        }
        assert_eq!(thumbnail(plane_view(&padded, 4, 2, 8), 1, 2)[[0, 1]], 10);
        // More cells than pixels: every cell still covers one.
        assert_eq!(downscale(plane_view(&data, 2, 2, 2), 3, 3).dim(), (3, 3));
    }

    #[test]
    fn the_fast_area_average_equals_the_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (w, h, stride) = (203, 117, 224);
        let data: Vec<u8> = (0..stride * h).map(|_| rng.gen()).collect();
        let plane = plane_view(&data, w, h, stride);
        for (rows, cols) in [(18, 32), (61, 97), (117, 203), (5, 300)] {
            let mean = |sum: u32, n: usize| sum as f32 / n as f32;
            assert_eq!(
                area_reduce(plane, rows, cols, mean),
                area_reduce_reference(plane, rows, cols, mean),
                "{rows}x{cols}"
            );
        }
    }

    #[test]
    fn resample_of_the_full_rect_is_the_identity_and_follows_a_ramp() {
        let r = ramp(8, 6);
        let same = resample(&r, Rect::FULL, 6, 8);
        for (a, b) in same.iter().zip(r.iter()) {
            assert!((a - b).abs() < 1e-4);
        }
        let big = ramp(40, 40);
        let half = resample(
            &big,
            Rect {
                x0: 0.25,
                y0: 0.25,
                x1: 0.75,
                y1: 0.75,
            },
            20,
            20,
        );
        // Pixel (0,0) of the half-size crop is centred at (10.5, 10.5) - 0.5 = (10, 10).
        assert!((half[[0, 0]] - (10.0 * 2.0 + 10.0)).abs() < 1e-3);
        assert!((half[[19, 19]] - (29.0 * 2.0 + 29.0)).abs() < 1e-3);
    }

    #[test]
    fn a_warp_of_a_rect_is_the_resample_and_a_turned_quad_turns_the_picture() {
        let r = ramp(40, 30);
        let rect = Rect {
            x0: 0.1,
            y0: 0.2,
            x1: 0.9,
            y1: 0.8,
        };
        assert_eq!(
            warp(&r, &Quad::from_rect(rect), 12, 16),
            resample(&r, rect, 12, 16)
        );
        // A quad that is a rect except for rounding is warped point by point: same values.
        let mut nearly = Quad::from_rect(rect);
        nearly.corners[0][0] += 1e-12;
        let a = warp(&r, &nearly, 12, 16);
        let b = resample(&r, rect, 12, 16);
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() < 1e-3, "{x} {y}");
        }
        // A quarter turn of a square maps its corners onto each other.
        let square = Quad::from_rect(Rect {
            x0: 0.25,
            y0: 0.25,
            x1: 0.75,
            y1: 0.75,
        });
        let turned = square.rotated(90.0, 1.0);
        let [tl, _, _, br] = turned.corners;
        assert!(
            (tl[0] - 0.75).abs() < 1e-9 && (tl[1] - 0.25).abs() < 1e-9,
            "{tl:?}"
        );
        assert!(
            (br[0] - 0.25).abs() < 1e-9 && (br[1] - 0.75).abs() < 1e-9,
            "{br:?}"
        );
        let b = turned.bounds();
        for (got, want) in [(b.x0, 0.25), (b.y0, 0.25), (b.x1, 0.75), (b.y1, 0.75)] {
            assert!((got - want).abs() < 1e-9, "{b:?}");
        }
    }

    #[test]
    fn a_quad_places_points_by_the_projective_map_of_its_corners() {
        let close =
            |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9;
        // A camera off-axis: the far side shorter.
        let seen = Quad {
            corners: [[0.08, 0.06], [0.95, 0.02], [0.02, 0.94], [0.92, 1.0]],
        };
        assert!(matches!(QuadMap::of(&seen), QuadMap::Projective(_)));
        for (corner, (u, v)) in
            seen.corners
                .iter()
                .zip([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
        {
            assert!(close(seen.point(u, v), *corner), "{u} {v}");
        }
        // Straight lines stay straight: the picture's diagonal lies on the quad's, and its
        // centre is where the quad's diagonals cross (bilinear interpolation bends both).
        let [tl, tr, bl, br] = seen.corners;
        let off_line = |p: [f64; 2], a: [f64; 2], b: [f64; 2]| {
            ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])).abs()
        };
        for t in [0.1, 0.3, 0.5, 0.8] {
            assert!(off_line(seen.point(t, t), tl, br) < 1e-12, "{t}");
            assert!(off_line(seen.point(t, 1.0 - t), bl, tr) < 1e-12, "{t}");
        }
        assert!(off_line(seen.bilinear_point(0.3, 0.3), tl, br) > 1e-4);
        // A parallelogram (turned, sheared): the same affine map both ways.
        let turned = Quad::from_rect(Rect {
            x0: 0.1,
            y0: 0.2,
            x1: 0.9,
            y1: 0.7,
        })
        .rotated(5.0, 16.0 / 9.0);
        for (u, v) in [(0.2, 0.9), (0.5, 0.5), (0.77, 0.13)] {
            assert!(close(turned.point(u, v), turned.bilinear_point(u, v)));
        }
        // A quad folded over itself has no projective map: bilinear, still defined.
        let folded = Quad {
            corners: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        };
        assert!(matches!(QuadMap::of(&folded), QuadMap::Bilinear(_)));
        assert!(close(
            folded.point(0.5, 0.5),
            folded.bilinear_point(0.5, 0.5)
        ));
    }

    #[test]
    fn a_flipped_rect_resamples_mirrored() {
        let r = ramp(8, 6);
        let h = resample(&r, Rect::FULL.flipped(Flip::Horizontal), 6, 8);
        let v = resample(&r, Rect::FULL.flipped(Flip::Vertical), 6, 8);
        let both = resample(&r, Rect::FULL.flipped(Flip::Both), 6, 8);
        for y in 0..6 {
            for x in 0..8 {
                assert!((h[[y, x]] - r[[y, 7 - x]]).abs() < 1e-4);
                assert!((v[[y, x]] - r[[5 - y, x]]).abs() < 1e-4);
                assert!((both[[y, x]] - r[[5 - y, 7 - x]]).abs() < 1e-4);
            }
        }
        assert_eq!(Rect::FULL.flipped(Flip::None), Rect::FULL);
    }

    #[test]
    fn resample_equals_bilinear_sampling_at_every_grid_point() {
        let r = ramp(37, 23);
        let rect = Rect {
            x0: -0.05,
            y0: 0.1,
            x1: 0.93,
            y1: 1.02,
        };
        let (w, h) = (29, 17);
        let g = resample(&r, rect, h, w);
        let sx = rect.width() * 37.0 / w as f64;
        let sy = rect.height() * 23.0 / h as f64;
        for y in 0..h {
            for x in 0..w {
                let px = rect.x0 * 37.0 - 0.5 + (x as f64 + 0.5) * sx;
                let py = rect.y0 * 23.0 - 0.5 + (y as f64 + 0.5) * sy;
                assert_eq!(g[[y, x]], sample(&r, px, py), "({x}, {y})");
            }
        }
    }
}
