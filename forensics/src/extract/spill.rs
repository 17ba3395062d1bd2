//! The suspect's analysis frames kept between the two passes of an extraction, so that the
//! suspect is decoded once: written to the work folder as 16-bit fixed point (1/256 of a grey
//! level, far below what the detector resolves), read back in order. Memory stays at one
//! frame whatever the suspect's length; past a size limit the spill gives up and the caller
//! decodes the suspect a second time instead.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::frame::Gray;

/// Fixed-point scale of a stored grey level.
const SCALE: f32 = 256.0;

pub struct SpillWriter {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    bytes: u64,
    limit: u64,
}

impl SpillWriter {
    pub fn create(path: &Path, limit: u64) -> io::Result<SpillWriter> {
        Ok(SpillWriter {
            out: Some(BufWriter::with_capacity(1 << 20, File::create(path)?)),
            path: path.to_path_buf(),
            bytes: 0,
            limit,
        })
    }

    /// Appends a frame; once the limit is passed, frames are dropped and the spill is void.
    pub fn push(&mut self, g: &Gray) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let size = 8 + 2 * g.len() as u64;
        if self.bytes + size > self.limit {
            self.out = None;
            let _ = std::fs::remove_file(&self.path);
            return Ok(());
        }
        self.bytes += size;
        let (height, width) = g.dim();
        out.write_all(&(width as u32).to_le_bytes())?;
        out.write_all(&(height as u32).to_le_bytes())?;
        let mut buf = Vec::with_capacity(2 * g.len());
        for &v in g.iter() {
            let q = (v * SCALE).round().clamp(0.0, u16::MAX as f32) as u16;
            buf.extend_from_slice(&q.to_le_bytes());
        }
        out.write_all(&buf)
    }

    /// The frames written, for reading back; `None` when the limit voided the spill.
    pub fn finish(mut self) -> io::Result<Option<SpillReader>> {
        let Some(mut out) = self.out.take() else {
            return Ok(None);
        };
        out.flush()?;
        drop(out);
        let input = BufReader::with_capacity(1 << 20, File::open(&self.path)?);
        Ok(Some(SpillReader {
            input,
            path: std::mem::take(&mut self.path),
        }))
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub struct SpillReader {
    input: BufReader<File>,
    path: PathBuf,
}

impl SpillReader {
    /// The next frame, `None` after the last.
    pub fn next_frame(&mut self) -> io::Result<Option<Gray>> {
        let mut header = [0u8; 8];
        match self.input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let height = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut raw = vec![0u8; 2 * width * height];
        self.input.read_exact(&mut raw)?;
        let data = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as f32 / SCALE)
            .collect();
        Gray::from_shape_vec((height, width), data)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(seed: f32) -> Gray {
        Gray::from_shape_fn((3, 5), |(y, x)| (seed + (y * 5 + x) as f32 * 16.37) % 255.9)
    }

    #[test]
    fn frames_come_back_in_order_within_the_fixed_point_step_and_the_file_goes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("frames");
        let mut w = SpillWriter::create(&path, 1 << 20).expect("create");
        for i in 0..4 {
            w.push(&gray(i as f32 * 3.3)).expect("push");
        }
        let mut r = w.finish().expect("finish").expect("within the limit");
        for i in 0..4 {
            let g = r.next_frame().expect("read").expect("a frame");
            let want = gray(i as f32 * 3.3);
            assert_eq!(g.dim(), (3, 5));
            for (a, b) in g.iter().zip(want.iter()) {
                assert!((a - b).abs() <= 0.5 / SCALE, "{a} {b}");
            }
        }
        assert!(r.next_frame().expect("read").is_none());
        drop(r);
        assert!(!path.exists());
    }

    #[test]
    fn past_the_limit_the_spill_is_void_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("frames");
        let mut w = SpillWriter::create(&path, 60).expect("create");
        w.push(&gray(1.0)).expect("push"); // 38 bytes
        w.push(&gray(2.0)).expect("push"); // would be 76
        assert!(!path.exists());
        assert!(w.finish().expect("finish").is_none());
    }
}
