//! The evidence report as a PDF (A4, built-in Helvetica): what was submitted, what was found,
//! how sure the finding is and what that means, who the session belongs to, how the analysis
//! works, and the case's audit trail. Signing is [`super::signing`]'s job.

use printpdf::{
    BuiltinFont, Color, Mm, Op, PaintMode, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions,
    Point, Pt, Rect as PdfRect, Rgb, TextItem,
};

use super::chart;
use super::metrics::{fitting_prefix, width_mm};

/// One candidate session of the ranking.
pub struct CandidateRow {
    pub session_id: String,
    pub user: String,
    pub score: f64,
    pub false_positive_probability: f64,
    pub unit_agreement: f64,
}

/// Everything a report states. Text fields are shown as given (non-ASCII characters are
/// replaced: the built-in fonts cover Latin-1 only).
pub struct Report {
    pub case_id: String,
    pub submitted_by: String,
    pub submitted_at: String,
    pub generated_at: String,
    /// Whose word the times are: a timestamp authority's or the server's own.
    pub time_source: String,
    /// Page 1 for a reader without technical background: who, what, how sure, in one
    /// paragraph.
    pub summary: String,
    /// (label, value) facts of the suspect file: name, size, SHA-256, container, codec...
    pub file: Vec<(String, String)>,
    pub title: String,
    pub verdict: String,
    pub threshold: f64,
    /// The verdict in plain language, and what the probability means and does not mean.
    pub explanation: Vec<String>,
    pub alignment: Vec<(String, String)>,
    /// Per unit of the title: the soft value, `None` when not observed.
    pub units: Vec<Option<f64>>,
    /// The best match's code, for the chart.
    pub matched_code: Option<Vec<bool>>,
    pub candidates: Vec<CandidateRow>,
    pub metadata_layer: Vec<String>,
    /// (label, value) facts of the matched session: user, device, fingerprint hash, times...
    pub session: Vec<(String, String)>,
    pub method: Vec<String>,
    pub software: String,
    /// The deployment that issued the report (its configured name).
    pub organisation: String,
    /// Audit entries, oldest first: (time, actor, action, hash prefix).
    pub audit: Vec<[String; 4]>,
    /// The audit trail's head hash when the report was made.
    pub audit_head: String,
}

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 18.0;
/// The chart's height over its width.
const CHART_ASPECT: f32 = 0.3;

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The width text may take between the margins.
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;

/// `text` cut into lines no wider than `width` mm: at spaces, and inside a word only when
/// the word alone is wider.
fn wrap(text: &str, size: f32, bold: bool, width: f32) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let fits = fitting_prefix(rest, size, bold, width);
        if fits == rest.len() {
            lines.push(rest);
            break;
        }
        // The last space within what fits, else the word is cut where the width ends (at
        // least one character, so that the loop always advances).
        let cut = if rest[fits..].starts_with(' ') {
            fits
        } else {
            rest[..fits]
                .rfind(' ')
                .filter(|&i| i > 0)
                .unwrap_or_else(|| fits.max(rest.chars().next().map_or(1, char::len_utf8)))
        };
        lines.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    lines
}

/// `text` cut to `width` mm, ending in "..." when it was cut.
fn clipped(text: &str, size: f32, bold: bool, width: f32) -> String {
    let text = ascii(text);
    if width_mm(&text, size, bold) <= width {
        return text;
    }
    let room = width - width_mm("...", size, bold);
    format!(
        "{}...",
        &text[..fitting_prefix(&text, size, bold, room.max(0.0))]
    )
}

/// Lays text out top to bottom, starting new pages as needed.
struct Layout {
    pages: Vec<Vec<Op>>,
    ops: Vec<Op>,
    y: f32,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            pages: Vec::new(),
            ops: Vec::new(),
            y: PAGE_H - MARGIN,
        }
    }

    fn room(&mut self, mm: f32) {
        if self.y - mm < MARGIN {
            self.pages.push(std::mem::take(&mut self.ops));
            self.y = PAGE_H - MARGIN;
        }
    }

    fn text_at(&mut self, x: f32, text: &str, size: f32, bold: bool) {
        let font = if bold {
            BuiltinFont::HelveticaBold
        } else {
            BuiltinFont::Helvetica
        };
        self.ops.extend([
            Op::StartTextSection,
            Op::SetTextCursor {
                pos: Point::new(Mm(x), Mm(self.y)),
            },
            Op::SetFont {
                font: PdfFontHandle::Builtin(font),
                size: Pt(size),
            },
            Op::SetFillColor {
                col: Color::Rgb(Rgb::new(0.1, 0.1, 0.1, None)),
            },
            Op::ShowText {
                items: vec![TextItem::Text(ascii(text))],
            },
            Op::EndTextSection,
        ]);
    }

    /// A paragraph at `size` points, wrapped to the text width.
    fn line(&mut self, text: &str, size: f32) {
        self.paragraph(text, size, false);
    }

    fn paragraph(&mut self, text: &str, size: f32, bold: bool) {
        for piece in wrap(&ascii(text), size, bold, TEXT_W) {
            self.room(size * 0.5);
            self.y -= size * 0.45;
            self.text_at(MARGIN, piece, size, bold);
        }
    }

    fn heading(&mut self, text: &str) {
        self.room(16.0);
        self.y -= 7.0;
        self.text_at(MARGIN, text, 12.5, true);
        self.y -= 1.5;
    }

    /// Label and value rows; a long label or value wraps in its column.
    fn facts(&mut self, rows: &[(String, String)]) {
        const VALUE_X: f32 = 48.0;
        for (label, value) in rows {
            let (label, value) = (ascii(label), ascii(value));
            let labels = wrap(&label, 9.0, true, VALUE_X - 2.0);
            let values = wrap(&value, 9.0, false, TEXT_W - VALUE_X);
            for i in 0..labels.len().max(values.len()).max(1) {
                self.room(5.0);
                self.y -= if i == 0 { 4.6 } else { 4.2 };
                if let Some(l) = labels.get(i) {
                    self.text_at(MARGIN, l, 9.0, true);
                }
                if let Some(v) = values.get(i) {
                    self.text_at(MARGIN + VALUE_X, v, 9.0, false);
                }
            }
        }
    }

    fn table(&mut self, columns: &[(f32, &str)], rows: &[Vec<String>], size: f32) {
        self.room(6.0);
        self.y -= 5.0;
        // A column ends where the next begins (the last at the text width).
        let ends: Vec<f32> = columns
            .iter()
            .skip(1)
            .map(|(x, _)| x - 2.0)
            .chain([TEXT_W])
            .collect();
        for ((x, head), end) in columns.iter().zip(&ends) {
            self.text_at(MARGIN + x, &clipped(head, size, true, end - x), size, true);
        }
        for row in rows {
            self.room(5.0);
            self.y -= size * 0.5;
            for (((x, _), end), cell) in columns.iter().zip(&ends).zip(row) {
                self.text_at(
                    MARGIN + x,
                    &clipped(cell, size, false, end - x),
                    size,
                    false,
                );
            }
        }
    }

    fn finish(mut self) -> Vec<Vec<Op>> {
        if !self.ops.is_empty() {
            self.pages.push(self.ops);
        }
        self.pages
    }
}

/// Renders the report; the result is an unsigned PDF.
pub fn render(r: &Report) -> Vec<u8> {
    let mut doc = PdfDocument::new(&format!("leaktrace evidence report {}", r.case_id));
    let mut l = Layout::new();
    l.y -= 4.0;
    l.text_at(MARGIN, "leaktrace forensic evidence report", 17.0, true);
    l.y -= 7.0;
    l.text_at(MARGIN, &format!("Case {}", r.case_id), 10.0, false);
    l.y -= 5.0;
    l.text_at(
        MARGIN,
        &format!("Generated {}", r.generated_at),
        10.0,
        false,
    );
    l.line(&r.time_source, 8.5);

    l.heading("In short");
    l.paragraph(&r.summary, 11.5, false);

    l.heading("Verdict");
    l.line(&format!("Verdict: {}", r.verdict.to_uppercase()), 11.0);
    for p in &r.explanation {
        l.line(p, 9.5);
    }

    l.heading("Submission");
    let mut submission = vec![
        ("Submitted by".to_string(), r.submitted_by.clone()),
        ("Submitted at".to_string(), r.submitted_at.clone()),
    ];
    submission.extend(r.file.iter().cloned());
    l.facts(&submission);

    l.heading("Title and alignment");
    let mut alignment = vec![("Matched title".to_string(), r.title.clone())];
    alignment.extend(r.alignment.iter().cloned());
    l.facts(&alignment);

    l.heading("Per-unit evidence");
    l.line(
        "Each bar is one watermark unit of the title: up when the copy looks like variant B, \
         down for A; green where it agrees with the best-matching session's code, red where \
         it does not, blue when there is no match. The strip below is that session's code \
         (dark: B, light: A). Gaps are units the copy does not show.",
        9.0,
    );
    // The chart as vector shapes: exact at any zoom or print size.
    let shown_w = PAGE_W - 2.0 * MARGIN;
    let shown_h = shown_w * CHART_ASPECT;
    l.room(shown_h + 4.0);
    l.y -= shown_h + 3.0;
    let bottom = l.y;
    for shape in chart::draw(&r.units, r.matched_code.as_deref()) {
        let [red, green, blue] = shape.colour;
        l.ops.extend([
            Op::SetFillColor {
                col: Color::Rgb(Rgb::new(red, green, blue, None)),
            },
            Op::DrawRectangle {
                rectangle: PdfRect {
                    x: Mm(MARGIN + shape.x0 * shown_w).into(),
                    y: Mm(bottom + shape.y0 * shown_h).into(),
                    width: Mm((shape.x1 - shape.x0) * shown_w).into(),
                    height: Mm((shape.y1 - shape.y0) * shown_h).into(),
                    mode: Some(PaintMode::Fill),
                    winding_order: None,
                },
            },
        ]);
    }

    l.heading("Candidate sessions (best first)");
    let rows: Vec<Vec<String>> = r
        .candidates
        .iter()
        .map(|c| {
            vec![
                c.session_id.clone(),
                c.user.clone(),
                format!("{:.2}", c.score),
                format!("{:.2e}", c.false_positive_probability),
                format!("{:.3}", c.unit_agreement),
            ]
        })
        .collect();
    l.table(
        &[
            (0.0, "session"),
            (70.0, "user"),
            (105.0, "z score"),
            (125.0, "false-positive p."),
            (155.0, "agreement"),
        ],
        &rows,
        8.5,
    );
    if r.candidates.is_empty() {
        l.line("No session of a matching title was compared.", 9.0);
    }

    l.heading("Matched session");
    if r.session.is_empty() {
        l.line("No session is named by this analysis.", 9.5);
    } else {
        l.facts(&r.session);
    }

    l.heading("Metadata layer (independent finding)");
    for p in &r.metadata_layer {
        l.line(p, 9.5);
    }

    l.heading("Method");
    for p in &r.method {
        l.line(p, 9.0);
    }
    l.line(&format!("Issued by: {}", r.organisation), 9.0);
    l.line(&format!("Software: {}", r.software), 9.0);

    l.heading("Audit trail of the case");
    let rows: Vec<Vec<String>> = r.audit.iter().map(|e| e.to_vec()).collect();
    l.table(
        &[
            (0.0, "time (UTC)"),
            (45.0, "actor"),
            (100.0, "action"),
            (140.0, "entry hash"),
        ],
        &rows,
        8.0,
    );
    l.line(
        &format!("Audit trail head when issued: {}", r.audit_head),
        8.5,
    );
    l.line(
        "This report is signed (PAdES, ETSI.CAdES.detached) by the deployment's report signing \
         certificate; the issuing CA certificate is published at /api/reports/ca.pem.",
        8.5,
    );

    let pages: Vec<PdfPage> = l
        .finish()
        .into_iter()
        .map(|ops| PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), ops))
        .collect();
    doc.with_pages(pages)
        .save(&PdfSaveOptions::default(), &mut Vec::new())
}

/// A small complete report for tests, with the given per-unit values and matched code.
#[cfg(test)]
pub(crate) fn sample(units: Vec<Option<f64>>, matched_code: Vec<bool>) -> Report {
    Report {
        case_id: "case-1".into(),
        submitted_by: "user ann".into(),
        submitted_at: "2026-11-28 10:00:00 UTC".into(),
        generated_at: "2026-11-28 11:00:00 UTC".into(),
        time_source: "No timestamp authority countersigned this report.".into(),
        summary: "The video file \"leak.mp4\" is a copy of the protected title \"Title\".".into(),
        file: vec![("File name".into(), "leak.mp4".into())],
        title: "Title".into(),
        verdict: "identified".into(),
        threshold: 1e-6,
        explanation: vec!["Because.".into()],
        alignment: Vec::new(),
        units,
        matched_code: Some(matched_code),
        candidates: Vec::new(),
        metadata_layer: vec!["None.".into()],
        session: Vec::new(),
        method: vec!["Method.".into()],
        software: "leaktrace test".into(),
        organisation: "Test Studio".into(),
        audit: vec![["t".into(), "a".into(), "x".into(), "h".into()]],
        audit_head: "0".repeat(64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{AGREE, DISAGREE};

    /// A report whose chart shows 20 units up and agreeing, then 20 down and disagreeing.
    fn report() -> Report {
        let units: Vec<Option<f64>> = (0..40)
            .map(|k| Some(if k < 20 { 1.0 } else { -1.0 }))
            .collect();
        sample(units, vec![true; 40])
    }

    /// The bounding box (x0, y0, x1, y1, image rows downward) of the pixels near `colour`.
    fn bounds(page: &image::RgbImage, colour: [f32; 3]) -> Option<(u32, u32, u32, u32)> {
        let target = colour.map(|c| (c * 255.0).round() as i32);
        let mut found: Option<(u32, u32, u32, u32)> = None;
        for (x, y, p) in page.enumerate_pixels() {
            let near =
                p.0.iter()
                    .zip(target)
                    .all(|(&v, t)| (v as i32 - t).abs() <= 12);
            if near {
                let b = found.get_or_insert((x, y, x, y));
                *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
            }
        }
        found
    }

    /// The pages of `pdf` rendered by poppler at `dpi`, first to last.
    fn rendered(pdf: &[u8], dpi: u32) -> Vec<image::RgbImage> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.pdf");
        std::fs::write(&file, pdf).unwrap();
        let prefix = dir.path().join("page");
        let status = std::process::Command::new("pdftoppm")
            .args(["-png", "-r", &dpi.to_string()])
            .arg(&file)
            .arg(&prefix)
            .status()
            .expect("pdftoppm (poppler-utils, installed by scripts/test.sh) must be on PATH");
        assert!(status.success());
        let mut pngs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        pngs.sort();
        pngs.iter()
            .map(|p| image::open(p).unwrap().to_rgb8())
            .collect()
    }

    /// The chart is drawn as vectors where the layout puts it: rendered by poppler, the
    /// agreeing bars stand left of and above the disagreeing ones, which hang below the axis.
    #[test]
    fn the_vector_chart_renders_with_its_bars_in_place() {
        let page = rendered(&render(&report()), 60).remove(0);
        let agree = bounds(&page, AGREE).expect("green bars");
        let disagree = bounds(&page, DISAGREE).expect("red bars");
        assert!(
            agree.2 < disagree.0,
            "agreeing units first: {agree:?} {disagree:?}"
        );
        assert!(
            agree.3 <= disagree.1 + 1,
            "up above down: {agree:?} {disagree:?}"
        );
        // Both halves are about as wide (20 units each) and as tall (values of equal size).
        let (wa, wd) = (agree.2 - agree.0, disagree.2 - disagree.0);
        assert!(wa.abs_diff(wd) <= 3, "{wa} {wd}");
        let (ha, hd) = (agree.3 - agree.1, disagree.3 - disagree.1);
        assert!(ha.abs_diff(hd) <= 2 && ha > 10, "{ha} {hd}");
    }

    /// Text set outside the margins: (page, x mm, y mm from the top) of the first dark pixel
    /// beyond `MARGIN - slack` from any edge.
    fn ink_in_margins(pages: &[image::RgbImage], slack: f32) -> Option<(usize, f32, f32)> {
        for (n, page) in pages.iter().enumerate() {
            let per_mm = page.width() as f32 / PAGE_W;
            let band = ((MARGIN - slack) * per_mm) as u32;
            for (x, y, p) in page.enumerate_pixels() {
                let inside =
                    x >= band && x < page.width() - band && y >= band && y < page.height() - band;
                if !inside && p.0.iter().map(|&v| u32::from(v)).sum::<u32>() < 3 * 160 {
                    return Some((n + 1, x as f32 / per_mm, y as f32 / per_mm));
                }
            }
        }
        None
    }

    /// Page 1 says who, what and how sure before anything technical, and no text runs off
    /// any page, even with the longest unbroken names and the widest letters.
    #[test]
    fn page_one_is_plain_and_nothing_is_cut_at_the_edges() {
        let wide = "W".repeat(150);
        let mut r = report();
        r.summary = format!(
            "The video file \"{wide}.mp4\" is a copy of the protected title \"MMMMMMMM \
             WWWWWWWW\", and it was made from the stream watched by the viewer account \
             \"{wide}\". The chance that the match is a coincidence is less than one in a \
             trillion."
        );
        r.file = vec![
            ("File name".into(), format!("{wide}.mp4")),
            ("SHA-256".into(), "f".repeat(64)),
            (
                "A label far too long for its column".into(),
                "W ".repeat(120),
            ),
        ];
        r.candidates = vec![CandidateRow {
            session_id: wide.clone(),
            user: wide.clone(),
            score: 12.5,
            false_positive_probability: 1e-13,
            unit_agreement: 0.98,
        }];
        r.session = vec![("User".into(), wide.clone())];
        r.explanation = vec![format!("Because {wide} said so.")];
        r.audit = vec![[wide.clone(), wide.clone(), wide.clone(), wide.clone()]];
        let pdf = render(&r);
        let pages = rendered(&pdf, 50);
        assert!(
            ink_in_margins(&pages, 2.0).is_none(),
            "text outside the margins: {:?}",
            ink_in_margins(&pages, 2.0)
        );
        // Page 1 opens with the plain summary, whole.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.pdf");
        std::fs::write(&file, &pdf).unwrap();
        let out = std::process::Command::new("pdftotext")
            .args(["-f", "1", "-l", "1", "-layout"])
            .arg(&file)
            .arg("-")
            .output()
            .unwrap();
        let text: String = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let short = text
            .find("In short")
            .expect("the summary heading on page 1");
        let verdict = text.find("Verdict").expect("the verdict on page 1");
        assert!(short < verdict, "{text}");
        assert!(
            text.contains(
                "The chance that the match is a coincidence is less than one in a trillion."
            ),
            "{text}"
        );
    }
}
