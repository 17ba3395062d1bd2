//! Fragmented MP4 (ISOBMFF) at the level CMAF packaging needs: the init segment (every
//! top-level box before the first fragment) and one media segment per fragment (`styp`?,
//! `moof`, `mdat`), split from a file without holding it in memory. Also reads the AVC
//! codec string from `avcC`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Fmp4Error {
    #[error("box at offset {offset} is truncated or has an invalid size")]
    BadBox { offset: u64 },
    #[error("no init segment (ftyp + moov) before the first fragment")]
    NoInit,
    #[error("'{kind}' box at offset {offset} is outside any fragment")]
    Stray { kind: String, offset: u64 },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What [`split_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitSummary {
    /// The init segment (small: kept in memory so that variants can be compared).
    pub init: Vec<u8>,
    pub fragments: u32,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> Fmp4Error + 'a {
    move |source| Fmp4Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Splits a fragmented MP4 file: returns the init segment and writes media segment `k`
/// (1-based) to `fragment_path(k)`. Index boxes (`mfra`, `sidx`, `free`, `skip`) are dropped.
pub fn split_file(
    path: &Path,
    fragment_path: &dyn Fn(u32) -> PathBuf,
) -> Result<SplitSummary, Fmp4Error> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    let mut init = Vec::new();
    let mut in_init = true;
    let mut fragments = 0u32;
    let mut current: Option<(PathBuf, BufWriter<File>)> = None;
    let mut previous = [0u8; 4];
    while offset < len {
        let mut head = vec![0u8; 8];
        reader
            .read_exact(&mut head)
            .map_err(|_| Fmp4Error::BadBox { offset })?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let kind = [head[4], head[5], head[6], head[7]];
        let size = match size32 {
            0 => len - offset,
            1 => {
                let mut large = [0u8; 8];
                reader
                    .read_exact(&mut large)
                    .map_err(|_| Fmp4Error::BadBox { offset })?;
                head.extend_from_slice(&large);
                u64::from_be_bytes(large)
            }
            s => s,
        };
        if size < head.len() as u64 || offset + size > len {
            return Err(Fmp4Error::BadBox { offset });
        }
        let body = size - head.len() as u64;
        let starts_fragment = &kind == b"styp" || (&kind == b"moof" && &previous != b"styp");
        if starts_fragment && in_init {
            if !has_box(&init, b"moov") {
                return Err(Fmp4Error::NoInit);
            }
            in_init = false;
        }
        match &kind {
            b"mfra" | b"sidx" | b"free" | b"skip" => {
                std::io::copy(&mut (&mut reader).take(body), &mut std::io::sink())
                    .map_err(io_err("read", path))?;
            }
            b"mdat" if in_init => {
                return Err(Fmp4Error::Stray {
                    kind: "mdat".into(),
                    offset,
                })
            }
            _ if in_init => {
                init.extend_from_slice(&head);
                let got = (&mut reader)
                    .take(body)
                    .read_to_end(&mut init)
                    .map_err(io_err("read", path))?;
                if got as u64 != body {
                    return Err(Fmp4Error::BadBox { offset });
                }
            }
            b"styp" | b"moof" | b"mdat" => {
                if starts_fragment {
                    if let Some((p, mut w)) = current.take() {
                        w.flush().map_err(io_err("write", &p))?;
                    }
                    fragments += 1;
                    let out = fragment_path(fragments);
                    let f = File::create(&out).map_err(io_err("create", &out))?;
                    current = Some((out, BufWriter::new(f)));
                }
                let (p, w) = current.as_mut().ok_or_else(|| Fmp4Error::Stray {
                    kind: String::from_utf8_lossy(&kind).into_owned(),
                    offset,
                })?;
                w.write_all(&head).map_err(io_err("write", p))?;
                let copied = std::io::copy(&mut (&mut reader).take(body), w)
                    .map_err(io_err("copy into", p))?;
                if copied != body {
                    return Err(Fmp4Error::BadBox { offset });
                }
            }
            other => {
                return Err(Fmp4Error::Stray {
                    kind: String::from_utf8_lossy(other).into_owned(),
                    offset,
                })
            }
        }
        previous = kind;
        offset += size;
    }
    if !has_box(&init, b"moov") {
        return Err(Fmp4Error::NoInit);
    }
    if let Some((p, mut w)) = current.take() {
        w.flush().map_err(io_err("write", &p))?;
    }
    Ok(SplitSummary { init, fragments })
}

/// True when `data` (a sequence of top-level boxes) holds a box of this kind.
fn has_box(data: &[u8], kind: &[u8; 4]) -> bool {
    let mut at = 0usize;
    while let Some(h) = data.get(at..at + 8) {
        if &h[4..8] == kind {
            return true;
        }
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if size < 8 {
            return false;
        }
        at += size;
    }
    false
}

/// The RFC 6381 codec string (`avc1.PPCCLL`) from the `avcC` box of an init segment.
pub fn avc_codec_string(init: &[u8]) -> Option<String> {
    let at = init.windows(4).position(|w| w == b"avcC")?;
    let cfg = init.get(at + 4..at + 8)?;
    // configurationVersion, AVCProfileIndication, profile_compatibility, AVCLevelIndication
    (cfg[0] == 1).then(|| format!("avc1.{:02x}{:02x}{:02x}", cfg[1], cfg[2], cfg[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    fn run(file: &[u8]) -> (Result<SplitSummary, Fmp4Error>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mp4");
        std::fs::write(&input, file).unwrap();
        let out = dir.path().to_path_buf();
        let r = split_file(&input, &move |k| out.join(format!("{k}.m4s")));
        (r, dir)
    }

    #[test]
    fn splits_init_and_fragments() {
        let mut avcc = vec![1, 0x64, 0x00, 0x1f, 0xff];
        avcc.extend_from_slice(&[0; 4]);
        let mut file = boxed(b"ftyp", b"iso6cmfc");
        file.extend(boxed(b"moov", &boxed(b"avcC", &avcc)));
        let init = file.clone();
        let f1 = [boxed(b"moof", b"1111"), boxed(b"mdat", b"aaaaaa")].concat();
        let f2 = [
            boxed(b"styp", b"cmfs"),
            boxed(b"moof", b"2222"),
            boxed(b"mdat", b"bb"),
        ]
        .concat();
        file.extend(&f1);
        file.extend(&f2);
        file.extend(boxed(b"mfra", b"index"));
        let (r, dir) = run(&file);
        let s = r.unwrap();
        assert_eq!(s.init, init);
        assert_eq!(s.fragments, 2);
        assert_eq!(std::fs::read(dir.path().join("1.m4s")).unwrap(), f1);
        assert_eq!(std::fs::read(dir.path().join("2.m4s")).unwrap(), f2);
        assert_eq!(avc_codec_string(&s.init).unwrap(), "avc1.64001f");
    }

    #[test]
    fn rejects_malformed_input() {
        let (r, _d) = run(&[0, 0, 0, 20, b'm', b'o', b'o', b'v']);
        assert!(matches!(r, Err(Fmp4Error::BadBox { offset: 0 })), "{r:?}");
        let (r, _d) = run(&boxed(b"ftyp", b"x"));
        assert!(matches!(r, Err(Fmp4Error::NoInit)), "{r:?}");
        let progressive = [
            boxed(b"ftyp", b""),
            boxed(b"moov", b""),
            boxed(b"mdat", b"x"),
        ]
        .concat();
        let (r, _d) = run(&progressive);
        assert!(matches!(r, Err(Fmp4Error::Stray { .. })), "{r:?}");
        let odd = [
            boxed(b"ftyp", b""),
            boxed(b"moov", b""),
            boxed(b"moof", b""),
            boxed(b"wxyz", b""),
        ]
        .concat();
        let (r, _d) = run(&odd);
        assert!(matches!(r, Err(Fmp4Error::Stray { .. })), "{r:?}");
        let (r, _d) = run(&[1, 2, 3]);
        assert!(matches!(r, Err(Fmp4Error::BadBox { offset: 0 })), "{r:?}");
    }
}
