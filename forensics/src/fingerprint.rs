//! Reference fingerprints for alignment: a small luma thumbnail of every output frame of the
//! unmarked source, stored at packaging time in `reference/thumbs.bin`:
//! magic `LTTHUMB1`, then width, height and frame count (u32 little-endian), then the frames.

use std::io::{self, Seek, SeekFrom, Write};

use crate::watermark::mask::Plane;

pub const THUMB_WIDTH: usize = 32;
pub const THUMB_HEIGHT: usize = 18;
pub const MAGIC: &[u8; 8] = b"LTTHUMB1";

/// Area average of the plane over a `tw` x `th` grid of cells.
pub fn thumbnail(plane: &Plane, tw: usize, th: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(tw * th);
    for cy in 0..th {
        let y0 = cy * plane.height / th;
        let y1 = ((cy + 1) * plane.height / th).max(y0 + 1);
        for cx in 0..tw {
            let x0 = cx * plane.width / tw;
            let x1 = ((cx + 1) * plane.width / tw).max(x0 + 1);
            let mut sum = 0u64;
            for y in y0..y1 {
                let row = &plane.data[y * plane.stride + x0..y * plane.stride + x1];
                sum += row.iter().map(|&v| v as u64).sum::<u64>();
            }
            let n = ((x1 - x0) * (y1 - y0)) as u64;
            out.push(((sum + n / 2) / n) as u8);
        }
    }
    out
}

/// Writes the file header; when the count is not known yet, write 0 and [`patch_count`] later.
pub fn write_header(w: &mut impl Write, frames: u32) -> io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&(THUMB_WIDTH as u32).to_le_bytes())?;
    w.write_all(&(THUMB_HEIGHT as u32).to_le_bytes())?;
    w.write_all(&frames.to_le_bytes())
}

/// Sets the frame count of a file written with [`write_header`].
pub fn patch_count(w: &mut (impl Write + Seek), frames: u32) -> io::Result<()> {
    w.seek(SeekFrom::Start(16))?;
    w.write_all(&frames.to_le_bytes())?;
    w.seek(SeekFrom::End(0))?;
    Ok(())
}

/// Thumbnails read back: `frames[i]` is frame `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnails {
    pub width: usize,
    pub height: usize,
    pub frames: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid thumbnail file: {0}")]
pub struct ThumbnailFileError(String);

pub fn parse(data: &[u8]) -> Result<Thumbnails, ThumbnailFileError> {
    let bad = |m: &str| ThumbnailFileError(m.to_string());
    if data.len() < 20 || &data[..8] != MAGIC {
        return Err(bad("missing header"));
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
    let (width, height, count) = (u32_at(8), u32_at(12), u32_at(16));
    let size = width * height;
    if size == 0 || data.len() != 20 + size * count {
        return Err(bad("size does not match the header"));
    }
    Ok(Thumbnails {
        width,
        height,
        frames: data[20..].chunks(size).map(<[u8]>::to_vec).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnail_averages_cells_and_file_round_trips() {
        let (w, h, stride) = (64, 36, 70);
        let mut data = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                data[y * stride + x] = if x < w / 2 { 10 } else { 200 };
            }
        }
        let t = thumbnail(
            &Plane {
                data: &data,
                stride,
                width: w,
                height: h,
            },
            4,
            2,
        );
        assert_eq!(t, vec![10, 10, 200, 200, 10, 10, 200, 200]);

        let mut cursor = io::Cursor::new(Vec::new());
        write_header(&mut cursor, 0).unwrap();
        cursor
            .write_all(&[1u8; THUMB_WIDTH * THUMB_HEIGHT])
            .unwrap();
        cursor
            .write_all(&[2u8; THUMB_WIDTH * THUMB_HEIGHT])
            .unwrap();
        patch_count(&mut cursor, 2).unwrap();
        let file = cursor.into_inner();
        let parsed = parse(&file).unwrap();
        assert_eq!(parsed.frames.len(), 2);
        assert_eq!(parsed.frames[1][0], 2);
        assert!(parse(&file[..file.len() - 1]).is_err());
        assert!(parse(b"nonsense").is_err());
    }
}
