//! Reference fingerprints for alignment: a small luma thumbnail of every output frame of the
//! unmarked source, stored at packaging time in `reference/thumbs.bin`:
//! magic `LTTHUMB1`, then width, height and frame count (u32 little-endian), then the frames.

use std::io::{self, Seek, SeekFrom, Write};

use ndarray::{Array3, ArrayView2};

use crate::frame;

pub const THUMB_WIDTH: usize = 32;
pub const THUMB_HEIGHT: usize = 18;
pub const MAGIC: &[u8; 8] = b"LTTHUMB1";

/// The stored thumbnail of one frame's luma plane, row by row as the file holds it.
pub fn thumbnail(plane: ArrayView2<u8>) -> Vec<u8> {
    frame::thumbnail(plane, THUMB_HEIGHT, THUMB_WIDTH)
        .iter()
        .copied()
        .collect()
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

/// Thumbnails read back, `[[frame, row, column]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnails {
    pub frames: Array3<u8>,
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
    let frames = Array3::from_shape_vec((count, height, width), data[20..].to_vec())
        .map_err(|e| bad(&e.to_string()))?;
    Ok(Thumbnails { frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnail_averages_cells_and_file_round_trips() {
        let (w, h, stride) = (64, 36, 70);
        let mut data = vec![0u8; stride * h];
        for row in data.chunks_mut(stride) {
            for (x, v) in row[..w].iter_mut().enumerate() {
                *v = if x < w / 2 { 10 } else { 200 };
            }
        }
        let t = thumbnail(frame::plane_view(&data, w, h, stride));
        assert_eq!(t.len(), THUMB_WIDTH * THUMB_HEIGHT);
        assert_eq!((t[0], t[THUMB_WIDTH - 1], t[THUMB_WIDTH]), (10, 200, 10));

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
        assert_eq!(parsed.frames.dim(), (2, THUMB_HEIGHT, THUMB_WIDTH));
        assert_eq!(parsed.frames[[1, 0, 0]], 2);
        assert!(parse(&file[..file.len() - 1]).is_err());
        assert!(parse(b"nonsense").is_err());
    }
}
