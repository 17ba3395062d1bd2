//! Glyph widths of the two built-in fonts the report uses (Helvetica and Helvetica-Bold, from
//! their Adobe font metrics, in thousandths of the font size, printable ASCII 32..=126), so
//! that lines are wrapped and cells fitted by the width the text really takes on the page.

const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p..~
];

const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0..?
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // P.._
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // `..o
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, // p..~
];

/// Millimetres per point.
const MM_PER_PT: f32 = 25.4 / 72.0;

/// The width in millimetres of `text` set in Helvetica (bold or not) at `size` points; a
/// character outside printable ASCII counts as the widest there is (it is shown as `?`
/// anyway, but is never underestimated).
pub fn width_mm(text: &str, size: f32, bold: bool) -> f32 {
    let table = if bold { &HELVETICA_BOLD } else { &HELVETICA };
    let units: u32 = text
        .chars()
        .map(|c| {
            (c as u32)
                .checked_sub(32)
                .and_then(|i| table.get(i as usize))
                .map_or(1015, |&w| u32::from(w))
        })
        .sum();
    units as f32 / 1000.0 * size * MM_PER_PT
}

/// The longest prefix of `text` (ending on a character boundary) that fits in `width` mm.
pub fn fitting_prefix(text: &str, size: f32, bold: bool, width: f32) -> usize {
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let next = i + c.len_utf8();
        if width_mm(&text[..next], size, bold) > width {
            break;
        }
        end = next;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_fonts() {
        // 10 pt: an em is 3.53 mm; "i" is 0.222 em, "W" 0.944 em.
        assert!((width_mm("i", 10.0, false) - 0.783).abs() < 0.01);
        assert!((width_mm("W", 10.0, false) - 3.330).abs() < 0.01);
        assert!(width_mm("bold", 10.0, true) > width_mm("bold", 10.0, false));
        assert!(width_mm("é", 10.0, false) >= width_mm("W", 10.0, false));
        let text = "MMMM iiii";
        let end = fitting_prefix(text, 10.0, false, width_mm("MMMM", 10.0, false) + 0.01);
        assert_eq!(&text[..end], "MMMM");
        assert_eq!(fitting_prefix("ééé", 10.0, false, 4.0), "é".len());
    }
}
