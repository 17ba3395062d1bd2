//! The per-unit chart of an evidence report, drawn as an RGB raster: one bar per unit of the
//! title, its height the extracted soft value (up: the copy looks like variant B, down: A),
//! green where it agrees with the matched session's bit, red where it disagrees, and below
//! the axis a strip with the matched code itself (dark: B, light: A). Unobserved units leave
//! a gap.

pub struct Chart {
    pub width: usize,
    pub height: usize,
    /// RGB, row by row from the top.
    pub pixels: Vec<u8>,
}

const BACKGROUND: [u8; 3] = [255, 255, 255];
const AXIS: [u8; 3] = [60, 60, 60];
const GRID: [u8; 3] = [225, 225, 225];
const AGREE: [u8; 3] = [40, 140, 60];
const DISAGREE: [u8; 3] = [200, 50, 40];
const NO_CODE: [u8; 3] = [90, 90, 160];
const CODE_B: [u8; 3] = [40, 40, 40];
const CODE_A: [u8; 3] = [200, 200, 200];

impl Chart {
    fn fill(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, rgb: [u8; 3]) {
        for y in y0.min(self.height)..y1.min(self.height) {
            for x in x0.min(self.width)..x1.min(self.width) {
                let i = (y * self.width + x) * 3;
                self.pixels[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }
}

/// Draws `soft` (one value per unit, `None` when unobserved) against `code` (the matched
/// session's bits, when there is a match) on a `width` x `height` raster.
pub fn draw(soft: &[Option<f64>], code: Option<&[bool]>, width: usize, height: usize) -> Chart {
    let mut c = Chart {
        width,
        height,
        pixels: BACKGROUND.repeat(width * height),
    };
    let units = soft.len().max(1);
    let strip = (height / 12).max(4);
    let plot_bottom = height.saturating_sub(strip + 6);
    let mid = plot_bottom / 2;
    let peak = soft
        .iter()
        .flatten()
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(1e-9);
    for quarter in 1..4 {
        let y = plot_bottom * quarter / 4;
        c.fill(0, y, width, y + 1, GRID);
    }
    for (k, value) in soft.iter().enumerate() {
        let x0 = k * width / units;
        let x1 = ((k + 1) * width / units).max(x0 + 1);
        let gap = usize::from(x1 - x0 > 3);
        if let Some(bit) = code.and_then(|c| c.get(k)) {
            let rgb = if *bit { CODE_B } else { CODE_A };
            c.fill(x0, height - strip, x1 - gap, height, rgb);
        }
        let Some(v) = value else { continue };
        let h = ((v.abs() / peak) * (mid as f64 - 2.0)).round() as usize;
        let rgb = match code.and_then(|c| c.get(k)) {
            Some(&bit) if bit == (*v > 0.0) => AGREE,
            Some(_) => DISAGREE,
            None => NO_CODE,
        };
        if *v > 0.0 {
            c.fill(x0, mid - h.min(mid), x1 - gap, mid, rgb);
        } else {
            c.fill(x0, mid, x1 - gap, mid + h + 1, rgb);
        }
    }
    c.fill(0, mid, width, mid + 1, AXIS);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(c: &Chart, x: usize, y: usize) -> [u8; 3] {
        let i = (y * c.width + x) * 3;
        [c.pixels[i], c.pixels[i + 1], c.pixels[i + 2]]
    }

    #[test]
    fn bars_follow_values_and_colours_follow_agreement() {
        let soft = [Some(2.0), Some(-2.0), None, Some(1.0)];
        let code = [true, true, false, false];
        let c = draw(&soft, Some(&code), 400, 240);
        assert_eq!(c.pixels.len(), 400 * 240 * 3);
        let mid = (240 - (240 / 12 + 6)) / 2;
        // Unit 1: up and agreeing (B); unit 2: down and disagreeing; unit 3: nothing;
        // unit 4: up but the code says A.
        assert_eq!(at(&c, 50, mid - 10), AGREE);
        assert_eq!(at(&c, 150, mid + 10), DISAGREE);
        assert_eq!(at(&c, 250, mid - 10), BACKGROUND);
        assert_eq!(at(&c, 350, mid - 10), DISAGREE);
        // The code strip: B dark, A light.
        assert_eq!(at(&c, 50, 239), CODE_B);
        assert_eq!(at(&c, 250, 239), CODE_A);
        // No match: bars in the neutral colour.
        let plain = draw(&soft, None, 400, 240);
        assert_eq!(at(&plain, 50, mid - 10), NO_CODE);
    }
}
