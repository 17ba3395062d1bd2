//! The compact reference store: for every frame of a packaged title, the midpoint and half
//! difference of its two variants *as encoded* (decoded back once, at packaging time), at the
//! extraction's analysis width. It is the informed detector's template, so an extraction
//! decodes only the suspect instead of the suspect and both variants.
//!
//! One file per unit (`reference/units/<unit>.lts`): a header (magic `LTRS`, version, width,
//! height, frame count) then a zstd stream of 16-bit fixed point values per frame: the
//! midpoint (1/4 grey level; the first frame of a unit as differences along each row, the
//! others as differences from the frame before) and the half difference (1/16 grey level). Quantisation is far below what the detector resolves (a test compares
//! extractions with and without the store). Titles packaged without a store are still
//! analysed by decoding their variants.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use formats::layout::{Layout, SegmentVariant, Variant};
use formats::package::PackageManifest;

use crate::frame::{analysis_gray, Gray};
use crate::media::decode::{FrameReader, Limits};
use crate::media::MediaError;

/// One reference frame as the detector takes it: the midpoint of the two variants, and half
/// their difference (`(B - A) / 2`), on one grid.
#[derive(Debug, Clone, PartialEq)]
pub struct RefFrame {
    pub mid: Gray,
    pub half_diff: Gray,
}

impl RefFrame {
    /// The frame of two decoded variants of one picture; `None` when they differ in size
    /// (variants that do not belong together).
    pub fn from_variants(a: &Gray, b: &Gray) -> Option<RefFrame> {
        if a.dim() != b.dim() {
            return None;
        }
        Some(RefFrame {
            mid: ndarray::Zip::from(a)
                .and(b)
                .map_collect(|&x, &y| 0.5 * (x + y)),
            half_diff: ndarray::Zip::from(a)
                .and(b)
                .map_collect(|&x, &y| 0.5 * (y - x)),
        })
    }

    /// The frame resampled onto another grid (both planes alike: resampling is linear, so
    /// this is the midpoint and half difference of the resampled variants).
    pub fn map(&self, f: impl Fn(&Gray) -> Gray) -> RefFrame {
        RefFrame {
            mid: f(&self.mid),
            half_diff: f(&self.half_diff),
        }
    }
}

/// Building a reference store failed.
#[derive(Debug, thiserror::Error)]
pub enum RefStoreError {
    /// The packaged variants do not decode.
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The variants disagree with each other or with the manifest.
    #[error("the reference store cannot be built: {0}")]
    Inconsistent(String),
    /// A store file that is not one, or is cut short.
    #[error("reference store file {path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

impl RefStoreError {
    pub fn code(&self) -> &'static str {
        match self {
            RefStoreError::Media(e) => e.code(),
            RefStoreError::Io { .. } => "io_error",
            RefStoreError::Inconsistent(_) => "reference_store_failed",
            RefStoreError::Damaged { .. } => "reference_unreadable",
        }
    }
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RefStoreError + 'a {
    move |source| RefStoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

const MAGIC: &[u8; 4] = b"LTRS";
const VERSION: u8 = 1;
/// Fixed-point scales of the midpoint and of the half difference.
const MID_SCALE: f32 = 4.0;
const DIFF_SCALE: f32 = 16.0;
/// zstd level: fast to write, still most of the gain.
const LEVEL: i32 = 3;
/// Largest frame side a store file may declare.
const MAX_SIDE: usize = 4096;
/// Frames decoded ahead of the writer, per variant.
const QUEUE: usize = 16;

/// Whether the title's store is complete (it is published whole, by a rename; titles whose
/// store is not built yet, or packaged before it existed, have none).
pub fn exists(layout: &Layout) -> bool {
    layout.reference_unit(1).is_file()
}

/// Writes init + the fragments of `segments` of `variant` to `out`: a valid stream, since
/// segments are closed GOPs.
pub fn join_segments(
    layout: &Layout,
    variant: SegmentVariant,
    segments: std::ops::RangeInclusive<u32>,
    out: &Path,
) -> io::Result<()> {
    let mut writer = BufWriter::new(File::create(out)?);
    let parts =
        std::iter::once(layout.video_init()).chain(segments.map(|k| layout.video_unit(variant, k)));
    for part in parts {
        std::io::copy(&mut File::open(&part)?, &mut writer)?;
    }
    writer.flush()
}

/// Builds the store of a packaged title in the background of packaging (a worker job): both
/// variants joined and decoded, the store written beside and published by a rename, so an
/// extraction sees either no store or a whole one. Returns its size in bytes.
pub fn build_for_title(
    layout: &Layout,
    package: &PackageManifest,
    work: &Path,
    limits: &Limits,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<u64, RefStoreError> {
    let units = package.video.unit_count;
    let (segments, per_segment) = (
        package.video.segment_count(),
        package.video.units_per_segment(),
    );
    let (a, b) = (work.join("a.mp4"), work.join("b.mp4"));
    // The all-A and all-B variants of every segment: each unit's A and B, in order.
    for (variant, path) in [(Variant::A, &a), (Variant::B, &b)] {
        let uniform = SegmentVariant::uniform(variant, per_segment);
        join_segments(layout, uniform, 1..=segments, path).map_err(io("write", path))?;
    }
    let staging = Layout::new(work.join("title"));
    let built = build(
        &staging,
        &a,
        &b,
        package.video.unit_frames,
        units,
        limits,
        progress,
    );
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    let bytes = built?;
    let (from, to) = (staging.reference_store(), layout.reference_store());
    if to.exists() {
        std::fs::remove_dir_all(&to).map_err(io("replace", &to))?;
    }
    std::fs::rename(&from, &to).map_err(io("publish", &to))?;
    Ok(bytes)
}

fn bad(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

fn fixed(v: f32, scale: f32) -> i16 {
    (v * scale).round().clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

/// Writes one unit's frames, all of one size.
pub fn write_unit(path: &Path, frames: &[RefFrame]) -> Result<u64, RefStoreError> {
    write_frames(path, frames).map_err(io("write", path))
}

fn write_frames(path: &Path, frames: &[RefFrame]) -> io::Result<u64> {
    let Some(first) = frames.first() else {
        return Err(bad("a unit needs at least one frame"));
    };
    let (h, w) = first.mid.dim();
    if frames
        .iter()
        .any(|f| f.mid.dim() != (h, w) || f.half_diff.dim() != (h, w))
    {
        return Err(bad("frames of one unit differ in size"));
    }
    let size = |n: usize| u16::try_from(n).map_err(|_| bad("dimension too large"));
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(MAGIC)?;
    out.write_all(&[VERSION])?;
    for n in [size(w)?, size(h)?, size(frames.len())?] {
        out.write_all(&n.to_le_bytes())?;
    }
    let mut z = zstd::Encoder::new(out, LEVEL)?;
    let mut buf = Vec::with_capacity(4 * w * h);
    let mut previous: Option<Vec<i16>> = None;
    for frame in frames {
        buf.clear();
        let mids: Vec<i16> = frame.mid.iter().map(|&m| fixed(m, MID_SCALE)).collect();
        match &previous {
            Some(before) => {
                for (&m, &p) in mids.iter().zip(before) {
                    buf.extend_from_slice(&m.wrapping_sub(p).to_le_bytes());
                }
            }
            None => {
                for row in mids.chunks(w) {
                    let mut prev = 0i16;
                    for &m in row {
                        buf.extend_from_slice(&m.wrapping_sub(prev).to_le_bytes());
                        prev = m;
                    }
                }
            }
        }
        previous = Some(mids);
        for &d in frame.half_diff.iter() {
            buf.extend_from_slice(&fixed(d, DIFF_SCALE).to_le_bytes());
        }
        z.write_all(&buf)?;
    }
    let out = z.finish()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Reads one unit back, frame by frame.
pub fn read_unit(path: &Path) -> Result<Vec<RefFrame>, RefStoreError> {
    read_frames(path).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => RefStoreError::Damaged {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        _ => io("read", path)(e),
    })
}

fn read_frames(path: &Path) -> io::Result<Vec<RefFrame>> {
    let mut input = BufReader::new(File::open(path)?);
    let mut head = [0u8; 11];
    input.read_exact(&mut head)?;
    if &head[..4] != MAGIC || head[4] != VERSION {
        return Err(bad("not a reference store unit of this version"));
    }
    let n = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]) as usize;
    let (w, h, count) = (n(5), n(7), n(9));
    // Stored frames are analysis-width grays: a larger size means a damaged file, which must
    // not make the reader allocate gigabytes.
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(bad(format!("implausible frame size {w}x{h}")));
    }
    let mut z = zstd::Decoder::with_buffer(input)?;
    let mut raw = vec![0u8; 4 * w * h];
    let mut frames = Vec::with_capacity(count);
    let values = |bytes: &[u8]| -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    let mut mid = vec![0i16; w * h];
    for index in 0..count {
        z.read_exact(&mut raw)?;
        let (deltas, diffs) = raw.split_at(2 * w * h);
        let deltas = values(deltas);
        if index == 0 {
            // Differences along each row.
            for (out, row) in mid.chunks_mut(w).zip(deltas.chunks(w)) {
                let mut m = 0i16;
                for (v, &d) in out.iter_mut().zip(row) {
                    m = m.wrapping_add(d);
                    *v = m;
                }
            }
        } else {
            // Differences from the frame before.
            for (v, &d) in mid.iter_mut().zip(&deltas) {
                *v = v.wrapping_add(d);
            }
        }
        let centre: Vec<f32> = mid.iter().map(|&m| m as f32 / MID_SCALE).collect();
        let half: Vec<f32> = values(diffs)
            .into_iter()
            .map(|d| d as f32 / DIFF_SCALE)
            .collect();
        let shape = |data| Gray::from_shape_vec((h, w), data).map_err(|e| bad(e.to_string()));
        frames.push(RefFrame {
            mid: shape(centre)?,
            half_diff: shape(half)?,
        });
    }
    Ok(frames)
}

/// Builds a store under `layout` from a title's two encoded variant files (each the whole title as
/// one stream): both decoded on their own threads, frames paired and written unit by unit.
/// `progress(done, total)` counts units. Returns the store's size in bytes.
pub fn build(
    layout: &Layout,
    variant_a: &Path,
    variant_b: &Path,
    unit_frames: u32,
    unit_count: u32,
    limits: &Limits,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<u64, RefStoreError> {
    let dir = layout.reference_store();
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let unit_frames = unit_frames.max(1) as usize;
    std::thread::scope(|scope| {
        let decode = |path: &Path| {
            let (to, from) = sync_channel::<Result<Gray, MediaError>>(QUEUE);
            let path = path.to_path_buf();
            scope.spawn(move || {
                let run = || -> Result<(), MediaError> {
                    let mut reader =
                        FrameReader::open_with_threads(&path, limits, 1)?.without_length_check();
                    while let Some(f) = reader.next_frame()? {
                        if to.send(Ok(analysis_gray(&f))).is_err() {
                            break;
                        }
                    }
                    Ok(())
                };
                if let Err(e) = run() {
                    let _ = to.send(Err(e));
                }
            });
            from
        };
        let (from_a, from_b) = (decode(variant_a), decode(variant_b));
        let mut total = 0u64;
        let mut unit = 1u32;
        let mut frames = Vec::with_capacity(unit_frames);
        let mut flush = |unit: &mut u32, frames: &mut Vec<RefFrame>| {
            total += write_unit(&layout.reference_unit(*unit), frames)?;
            progress(*unit, unit_count);
            frames.clear();
            *unit += 1;
            Ok::<(), RefStoreError>(())
        };
        loop {
            match (from_a.recv(), from_b.recv()) {
                (Ok(ga), Ok(gb)) => {
                    let frame = RefFrame::from_variants(&ga?, &gb?).ok_or_else(|| {
                        RefStoreError::Inconsistent(
                            "variants A and B decode to frames of different sizes".into(),
                        )
                    })?;
                    frames.push(frame);
                    if frames.len() == unit_frames {
                        flush(&mut unit, &mut frames)?;
                    }
                }
                (Err(_), Err(_)) => break,
                (Ok(Err(e)), _) | (_, Ok(Err(e))) => return Err(e.into()),
                _ => {
                    return Err(RefStoreError::Inconsistent(
                        "variants A and B decode to different frame counts".into(),
                    ))
                }
            }
        }
        if !frames.is_empty() {
            flush(&mut unit, &mut frames)?;
        }
        if unit - 1 != unit_count {
            return Err(RefStoreError::Inconsistent(format!(
                "reference store: {} units decoded, {unit_count} packaged",
                unit - 1
            )));
        }
        Ok(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: usize) -> RefFrame {
        let a = Gray::from_shape_fn((21, 37), |(y, x)| {
            16.0 + ((x * 7 + y * 3 + t) % 220) as f32 + 0.37
        });
        let b = Gray::from_shape_fn((21, 37), |(y, x)| {
            a[[y, x]] + (((y * 37 + x) % 5) as f32 - 2.0) * 0.731
        });
        RefFrame::from_variants(&a, &b).unwrap()
    }

    #[test]
    fn a_unit_round_trips_within_the_fixed_point_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.lts");
        let frames: Vec<RefFrame> = (0..3).map(frame).collect();
        let bytes = write_unit(&path, &frames).unwrap();
        assert!(bytes > 11);
        let back = read_unit(&path).unwrap();
        assert_eq!(back.len(), 3);
        for (orig, back) in frames.iter().zip(&back) {
            assert_eq!(back.mid.dim(), (21, 37));
            for (x, y) in orig.mid.iter().zip(back.mid.iter()) {
                assert!((x - y).abs() <= 0.5 / MID_SCALE + 1e-4, "{x} {y}");
            }
            for (x, y) in orig.half_diff.iter().zip(back.half_diff.iter()) {
                assert!((x - y).abs() <= 0.5 / DIFF_SCALE + 1e-4, "{x} {y}");
            }
        }
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lts");
        std::fs::write(&path, b"not a store").unwrap();
        assert!(matches!(
            read_unit(&path),
            Err(RefStoreError::Damaged { .. })
        ));
        write_unit(&path, &[frame(0)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            read_unit(&path),
            Err(RefStoreError::Damaged { .. })
        ));
        assert!(write_unit(&path, &[]).is_err());
        // A header claiming a huge frame is refused before any allocation.
        let mut huge = bytes[..11].to_vec();
        huge[5..9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        std::fs::write(&path, &huge).unwrap();
        assert!(matches!(
            read_unit(&path),
            Err(RefStoreError::Damaged { .. })
        ));
        assert!(matches!(
            read_unit(&dir.path().join("missing.lts")),
            Err(RefStoreError::Io { .. })
        ));
    }
}
