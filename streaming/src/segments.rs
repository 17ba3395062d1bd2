//! Segment files kept in memory, up to a size limit, the least recently used dropped first
//! (`server.segment_cache_mib`): a hot title's units are then served without a file read on
//! the blocking pool (a thread hand-off, an open and a read per request). Packaged files never
//! change, so nothing is invalidated; a title removed from disk stays servable from here until
//! it is dropped, as an open file would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Bytes of a typical segment, to size the cache's index.
const TYPICAL_SEGMENT: u64 = 256 * 1024;

#[derive(Clone)]
struct ByLength;

impl Weighter<PathBuf, Arc<[u8]>> for ByLength {
    fn weight(&self, _: &PathBuf, bytes: &Arc<[u8]>) -> u64 {
        bytes.len().max(1) as u64
    }
}

pub struct SegmentFiles {
    cache: Option<Cache<PathBuf, Arc<[u8]>, ByLength>>,
    /// Larger files are read each time (they would push out many others).
    largest: usize,
}

impl SegmentFiles {
    /// A cache of `capacity` bytes; 0 keeps nothing.
    pub fn new(capacity: u64) -> Self {
        let cache = (capacity > 0).then(|| {
            let items = (capacity / TYPICAL_SEGMENT).clamp(16, 1 << 20) as usize;
            Cache::with_weighter(items, capacity, ByLength)
        });
        SegmentFiles {
            cache,
            largest: usize::try_from(capacity / 8).unwrap_or(usize::MAX),
        }
    }

    /// The file at `path`, if kept.
    pub fn get(&self, path: &Path) -> Option<Arc<[u8]>> {
        self.cache.as_ref()?.get(path)
    }

    /// Keeps `bytes`, the content of `path`, if it fits.
    pub fn keep(&self, path: &Path, bytes: &[u8]) {
        if let Some(cache) = &self.cache {
            if bytes.len() <= self.largest {
                cache.insert(path.to_path_buf(), Arc::from(bytes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_files_up_to_its_capacity_and_refuses_large_ones() {
        let files = SegmentFiles::new(8 * 1024);
        let a = Path::new("/t/a.m4s");
        files.keep(a, &[1u8; 1000]);
        assert_eq!(files.get(a).as_deref(), Some(&[1u8; 1000][..]));
        // Over an eighth of the capacity: read each time.
        let big = Path::new("/t/big.m4s");
        files.keep(big, &[2u8; 2000]);
        assert!(files.get(big).is_none());
        // Filling it past its capacity drops something; what stays is bounded.
        for k in 0..40 {
            files.keep(&PathBuf::from(format!("/t/{k}.m4s")), &[3u8; 1000]);
        }
        let kept = (0..40)
            .filter(|k| files.get(&PathBuf::from(format!("/t/{k}.m4s"))).is_some())
            .count();
        assert!((1..=8).contains(&kept), "{kept}");
        let none = SegmentFiles::new(0);
        none.keep(a, &[1u8; 10]);
        assert!(none.get(a).is_none());
    }
}
