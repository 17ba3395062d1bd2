//! The per-unit chart of an evidence report, as vector shapes: one bar per unit of the title,
//! its height the extracted soft value (up: the copy looks like variant B, down: A), green
//! where it agrees with the matched session's bit, red where it disagrees, and below the axis
//! a strip with the matched code itself (dark: B, light: A). Unobserved units leave a gap.
//!
//! Vectors rather than a raster: a court reader may zoom or print the chart at any size and
//! every bar stays exact (no resampling blur or aliasing between neighbouring units, whatever
//! the title's length), the file stays small, and the chart is drawn by the same PDF
//! operators as the text around it. [`draw`] gives the shapes in a unit box (0..1, y up);
//! the document places them.

/// An RGB colour, 0..1 per channel.
pub type Colour = [f32; 3];

pub const AXIS: Colour = [0.235, 0.235, 0.235];
pub const GRID: Colour = [0.88, 0.88, 0.88];
pub const AGREE: Colour = [0.157, 0.549, 0.235];
pub const DISAGREE: Colour = [0.784, 0.196, 0.157];
pub const NO_CODE: Colour = [0.353, 0.353, 0.627];
pub const CODE_B: Colour = [0.157, 0.157, 0.157];
pub const CODE_A: Colour = [0.784, 0.784, 0.784];

/// Height of the code strip, and the gap above it, as shares of the chart's height.
const STRIP: f32 = 1.0 / 12.0;
const STRIP_GAP: f32 = 0.025;
/// Share of a unit's width left blank between bars, for titles of at most
/// [`GAPS_UP_TO`] units (longer ones have bars too thin to show a gap).
const BAR_GAP: f32 = 0.2;
const GAPS_UP_TO: usize = 350;

/// A filled axis-aligned rectangle in the chart's unit box: `x0 < x1`, `y0 < y1`, y up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
    pub colour: Colour,
}

/// The chart of `soft` (one value per unit, `None` when unobserved) against `code` (the
/// matched session's bits, when there is a match).
pub fn draw(soft: &[Option<f64>], code: Option<&[bool]>) -> Vec<Shape> {
    let units = soft.len().max(1);
    let plot_bottom = STRIP + STRIP_GAP;
    let axis = plot_bottom + (1.0 - plot_bottom) / 2.0;
    let half = (1.0 - plot_bottom) / 2.0;
    let peak = soft
        .iter()
        .flatten()
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(1e-9);
    let mut shapes: Vec<Shape> = (1..4)
        .map(|quarter| {
            let y = plot_bottom + (1.0 - plot_bottom) * quarter as f32 / 4.0;
            line(y, 0.002, GRID)
        })
        .collect();
    let width = 1.0 / units as f32;
    let gap = if units <= GAPS_UP_TO {
        width * BAR_GAP
    } else {
        0.0
    };
    for (k, value) in soft.iter().enumerate() {
        let x0 = k as f32 * width;
        let x1 = x0 + width - gap;
        let bit = code.and_then(|c| c.get(k)).copied();
        if let Some(bit) = bit {
            let colour = if bit { CODE_B } else { CODE_A };
            shapes.push(Shape {
                x0,
                y0: 0.0,
                x1,
                y1: STRIP,
                colour,
            });
        }
        let Some(v) = value else { continue };
        let h = (v.abs() / peak) as f32 * half * 0.98;
        let colour = match bit {
            Some(b) if b == (*v > 0.0) => AGREE,
            Some(_) => DISAGREE,
            None => NO_CODE,
        };
        let (y0, y1) = if *v > 0.0 {
            (axis, axis + h)
        } else {
            (axis - h, axis)
        };
        shapes.push(Shape {
            x0,
            y0,
            x1,
            y1,
            colour,
        });
    }
    shapes.push(line(axis, 0.004, AXIS));
    shapes
}

/// A horizontal line across the chart as a thin rectangle.
fn line(y: f32, thickness: f32, colour: Colour) -> Shape {
    Shape {
        x0: 0.0,
        y0: y - thickness / 2.0,
        x1: 1.0,
        y1: y + thickness / 2.0,
        colour,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The colour of the topmost shape covering (x, y), as the PDF paints them in order.
    fn at(shapes: &[Shape], x: f32, y: f32) -> Option<Colour> {
        shapes
            .iter()
            .rev()
            .find(|s| s.x0 <= x && x < s.x1 && s.y0 <= y && y < s.y1)
            .map(|s| s.colour)
    }

    #[test]
    fn bars_follow_values_and_colours_follow_agreement() {
        let soft = [Some(2.0), Some(-2.0), None, Some(1.0)];
        let code = [true, true, false, false];
        let shapes = draw(&soft, Some(&code));
        let axis = STRIP + STRIP_GAP + (1.0 - STRIP - STRIP_GAP) / 2.0;
        // Unit 1: up and agreeing (B); unit 2: down and disagreeing; unit 3: nothing;
        // unit 4: up but the code says A.
        assert_eq!(at(&shapes, 0.1, axis + 0.1), Some(AGREE));
        assert_eq!(at(&shapes, 0.35, axis - 0.1), Some(DISAGREE));
        assert_eq!(at(&shapes, 0.6, axis + 0.1), None);
        assert_eq!(at(&shapes, 0.85, axis + 0.05), Some(DISAGREE));
        // Heights follow the values: unit 4 is half of unit 1.
        assert_eq!(at(&shapes, 0.85, axis + 0.3), None);
        assert_eq!(at(&shapes, 0.1, axis + 0.3), Some(AGREE));
        // The code strip: B dark, A light.
        assert_eq!(at(&shapes, 0.1, 0.01), Some(CODE_B));
        assert_eq!(at(&shapes, 0.6, 0.01), Some(CODE_A));
        // No match: bars in the neutral colour, no strip.
        let plain = draw(&soft, None);
        assert_eq!(at(&plain, 0.1, axis + 0.1), Some(NO_CODE));
        assert_eq!(at(&plain, 0.1, 0.01), None);
        // Every shape lies in the unit box.
        for s in shapes.iter().chain(&plain) {
            assert!(0.0 <= s.x0 && s.x0 < s.x1 && s.x1 <= 1.0, "{s:?}");
            assert!(0.0 <= s.y0 && s.y0 < s.y1 && s.y1 <= 1.0, "{s:?}");
        }
    }
}
