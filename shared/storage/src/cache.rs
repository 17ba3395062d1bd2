//! The data dir as a bounded cache of the bucket: the files fetched or published here, by
//! size and last use; past the limit, the least recently used are removed from the data dir
//! (the bucket keeps them, and [`super::Storage::local`] fetches them again when asked).
//! Files this process did not put there are not counted (and never removed).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) struct Cache {
    data: PathBuf,
    limit: u64,
    inner: Mutex<Inner>,
    evictions: prometheus_client::metrics::counter::Counter,
}

#[derive(Default)]
struct Inner {
    /// key -> (bytes, last use)
    entries: HashMap<String, (u64, u64)>,
    /// last use -> key, oldest first
    by_use: BTreeMap<u64, String>,
    total: u64,
    clock: u64,
}

impl Inner {
    fn use_now(&mut self, key: &str, size: u64) {
        self.clock += 1;
        if let Some((old_size, old_use)) = self.entries.remove(key) {
            self.by_use.remove(&old_use);
            self.total -= old_size;
        }
        self.entries.insert(key.to_string(), (size, self.clock));
        self.by_use.insert(self.clock, key.to_string());
        self.total += size;
    }
}

impl Cache {
    pub(crate) fn new(
        data: &Path,
        limit: u64,
        evictions: prometheus_client::metrics::counter::Counter,
    ) -> Cache {
        Cache {
            data: data.to_path_buf(),
            limit,
            inner: Mutex::default(),
            evictions,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `key` was used: it becomes the most recent (if it is counted at all).
    pub(crate) fn touch(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(&(size, _)) = inner.entries.get(key) {
            inner.use_now(key, size);
        }
    }

    /// `key` (`size` bytes) was written to the data dir; the least recently used others are
    /// removed while the total is past the limit.
    pub(crate) fn added(&self, key: &str, size: u64) {
        let evicted = {
            let mut inner = self.lock();
            inner.use_now(key, size);
            let mut evicted = Vec::new();
            while inner.total > self.limit {
                let Some((&oldest, _)) = inner.by_use.iter().next() else {
                    break;
                };
                let Some(victim) = inner.by_use.remove(&oldest) else {
                    break;
                };
                if victim == key {
                    // The newest file stays even when it alone is past the limit.
                    inner.by_use.insert(oldest, victim);
                    break;
                }
                if let Some((bytes, _)) = inner.entries.remove(&victim) {
                    inner.total -= bytes;
                }
                evicted.push(victim);
            }
            evicted
        };
        for victim in evicted {
            self.evictions.inc();
            let path = self.data.join(&victim);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(key = %victim, error = %e, "cannot remove a cached file");
            }
        }
    }

    #[cfg(test)]
    fn total(&self) -> u64 {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_files_go_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), 250, Default::default());
        for k in ["a", "b", "c"] {
            std::fs::write(dir.path().join(k), [0u8; 100]).unwrap();
        }
        cache.added("a", 100);
        cache.added("b", 100);
        cache.touch("a");
        cache.added("c", 100);
        // 300 bytes > 250: b, the least recently used, goes.
        assert!(dir.path().join("a").exists());
        assert!(!dir.path().join("b").exists());
        assert!(dir.path().join("c").exists());
        assert_eq!(cache.total(), 200);
        // A file larger than the limit stays alone.
        std::fs::write(dir.path().join("big"), [0u8; 400]).unwrap();
        cache.added("big", 400);
        assert!(dir.path().join("big").exists());
        assert!(!dir.path().join("a").exists() && !dir.path().join("c").exists());
        assert_eq!(cache.total(), 400);
        assert_eq!(cache.evictions.get(), 3);
    }
}
