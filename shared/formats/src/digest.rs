//! The one streaming SHA-256 helper: a writer that hashes what passes through it, so a file is
//! hashed while it is copied or received, never read twice and never held in memory.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Buffer of the copies below.
const BLOCK: usize = 1 << 20;

/// Passes writes on to `inner`, hashing them and counting their bytes.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The inner writer, flushed, with the size and the lowercase hex SHA-256 of what went
    /// through.
    pub fn finish(mut self) -> io::Result<(W, u64, String)> {
        self.inner.flush()?;
        Ok((self.inner, self.size, hex::encode(self.hasher.finalize())))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `input` into `output` in 1 MiB blocks, calling `progress` with the bytes copied so
/// far after each block.
pub fn copy_with_progress(
    input: &mut impl Read,
    output: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; BLOCK];
    let mut done = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        done += n as u64;
        progress(done);
    }
}

/// The size and lowercase hex SHA-256 of a file, read once in blocks.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut sink = HashingWriter::new(io::sink());
    copy_with_progress(&mut file, &mut sink, &mut |_| {})?;
    let (_, size, hash) = sink.finish()?;
    Ok((size, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_passes_through_whatever_the_block_sizes() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let want = hex::encode(Sha256::digest(&data));
        let mut w = HashingWriter::new(Vec::new());
        for chunk in data.chunks(777_777) {
            w.write_all(chunk).unwrap();
        }
        let (copy, size, hash) = w.finish().unwrap();
        assert_eq!((size, hash.as_str()), (data.len() as u64, want.as_str()));
        assert_eq!(copy, data);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(sha256_file(&path).unwrap(), (data.len() as u64, want));
        let mut seen = Vec::new();
        let mut out = Vec::new();
        copy_with_progress(&mut &data[..], &mut out, &mut |n| seen.push(n)).unwrap();
        assert_eq!(seen, vec![1 << 20, 2 << 20, data.len() as u64]);
        assert!(sha256_file(&dir.path().join("missing")).is_err());
    }
}
