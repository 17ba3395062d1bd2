//! Where titles live beyond one machine: the data dir alone (the embedded default), or an
//! S3-compatible bucket (AWS S3, MinIO, Garage, Ceph RGW) with the data dir as this machine's
//! bounded cache of it.
//!
//! Keys are paths relative to the data dir (`videos/<id>/video/a/3.m4s`), so the code that
//! reads files keeps reading the data dir: with a bucket, [`Storage::local`] (one file) and
//! [`Storage::materialize`] (a folder) first fetch what this machine lacks, and
//! [`Storage::publish`] uploads a folder written here. A folder is published file by file
//! with its marker file last (a title's `package.json`, a reference store's `units/1.lts`),
//! so a reader that finds the marker finds everything; the database row written after it is
//! what makes a title visible at all. Files fetched from the bucket are counted against
//! `cache_bytes` and the least recently used are removed from the data dir past it.
//!
//! The folder backend does nothing but answer the data dir's paths: one machine, or several
//! sharing one network folder, as before.
//!
//! Credentials for a bucket come from the usual environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); S3 signing is `object_store`'s.

mod cache;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::cache::Cache;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage settings: {0}")]
    Settings(String),
    #[error("object {key}: {reason}")]
    Object { key: String, reason: String },
    #[error("local file {path}: {reason}")]
    Local { path: PathBuf, reason: String },
    #[error("storage: {0}")]
    Runtime(String),
}

impl StorageError {
    fn object(key: &str, e: impl std::fmt::Display) -> Self {
        StorageError::Object {
            key: key.to_string(),
            reason: e.to_string(),
        }
    }

    fn local(path: &Path, e: impl std::fmt::Display) -> Self {
        StorageError::Local {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// Where a deployment keeps its titles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `None`: the data dir alone. `s3://bucket` or `s3://bucket/prefix`: that bucket.
    pub url: Option<String>,
    /// The S3 endpoint (`http://127.0.0.1:3900` for a local Garage); AWS's when unset.
    pub endpoint: Option<String>,
    /// The bucket's region (Garage's default is `garage`).
    pub region: String,
    /// Bytes of fetched objects kept in the data dir before the least recently used go.
    pub cache_bytes: u64,
    /// An access key and its secret; `None`: from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`), as deployments give them.
    pub credentials: Option<(String, String)>,
}

/// The data dir, and the bucket behind it when there is one.
pub struct Storage {
    data: PathBuf,
    remote: Option<Remote>,
    counters: CacheCounters,
}

/// How the data dir serves as the bucket's cache (counted only with a bucket): what
/// `/metrics` shows as `leaktrace_storage_cache_*`.
#[derive(Clone, Debug, Default)]
pub struct CacheCounters {
    /// Files asked for that were here.
    pub hits: prometheus_client::metrics::counter::Counter,
    /// Files asked for that had to be fetched.
    pub misses: prometheus_client::metrics::counter::Counter,
    pub fetched_bytes: prometheus_client::metrics::counter::Counter,
    /// Files removed from the data dir past the cache limit.
    pub evictions: prometheus_client::metrics::counter::Counter,
}

struct Remote {
    store: Arc<dyn ObjectStore>,
    /// `bucket/prefix`, for messages.
    name: String,
    prefix: String,
    /// The store's own runtime: callers may be plain threads, actix workers or blocking-pool
    /// threads, and a runtime cannot be entered from inside another.
    runtime: tokio::runtime::Runtime,
    cache: Cache,
}

impl Storage {
    /// The data dir alone.
    pub fn folder(data: &Path) -> Storage {
        Storage {
            data: data.to_path_buf(),
            remote: None,
            counters: CacheCounters::default(),
        }
    }

    /// The cache's counters (clones share their values: register them to export them).
    pub fn counters(&self) -> &CacheCounters {
        &self.counters
    }

    /// Storage as `settings` say, over the data dir `data`.
    pub fn open(settings: &Settings, data: &Path) -> Result<Storage, StorageError> {
        let Some(url) = &settings.url else {
            return Ok(Storage::folder(data));
        };
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            StorageError::Settings(format!("'{url}' is not s3://bucket[/prefix]"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/').to_string();
        if bucket.is_empty() {
            return Err(StorageError::Settings(format!("'{url}' names no bucket")));
        }
        // A bucket that does not answer is reported within seconds (readiness, a segment
        // request), not after object_store's default of three minutes of retries.
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(15),
            ..Default::default()
        };
        let client = object_store::ClientOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_timeout(std::time::Duration::from_secs(120));
        let mut builder = AmazonS3Builder::from_env()
            .with_retry(retry)
            .with_client_options(client)
            .with_bucket_name(bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(false);
        if let Some((key_id, secret)) = &settings.credentials {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
        }
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Settings(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("storage")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Runtime(e.to_string()))?;
        let counters = CacheCounters::default();
        let cache = Cache::new(data, settings.cache_bytes, counters.evictions.clone());
        Ok(Storage {
            counters,
            data: data.to_path_buf(),
            remote: Some(Remote {
                store: Arc::new(store),
                name: if prefix.is_empty() {
                    bucket.to_string()
                } else {
                    format!("{bucket}/{prefix}")
                },
                prefix,
                runtime,
                cache,
            }),
        })
    }

    /// Whether a bucket is behind the data dir.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// `folder`, or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match &self.remote {
            None => "folder".into(),
            Some(r) => format!("s3://{}", r.name),
        }
    }

    /// The data dir path of `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.data.join(key)
    }

    /// `key`'s file in the data dir, fetched from the bucket first when this machine lacks it.
    pub fn local(&self, key: &str) -> Result<PathBuf, StorageError> {
        let path = self.path(key);
        let Some(remote) = &self.remote else {
            return Ok(path);
        };
        if path.is_file() {
            remote.cache.touch(key);
            self.counters.hits.inc();
            return Ok(path);
        }
        self.counters.misses.inc();
        let size = remote
            .run({
                let (store, location, dest) =
                    (remote.store.clone(), remote.location(key), path.clone());
                async move { download(store.as_ref(), &location, &dest).await }
            })
            .map_err(|e| StorageError::object(key, e))?;
        self.counters.fetched_bytes.inc_by(size);
        remote.cache.added(key, size);
        Ok(path)
    }

    /// The file at `path` in the data dir, fetched first as [`Storage::local`] does; a path
    /// outside the data dir is answered as it is.
    pub fn ensure(&self, path: &Path) -> Result<PathBuf, StorageError> {
        if self.remote.is_none() {
            return Ok(path.to_path_buf());
        }
        match path.strip_prefix(&self.data) {
            Ok(rel) => self.local(&rel.to_string_lossy()),
            Err(_) => Ok(path.to_path_buf()),
        }
    }

    /// A file some machine stored directly in its data dir's `folder` (`uploads`, `sources`,
    /// `reports`) under a name of its own, recorded by that machine's `stored` path: here as
    /// recorded when this machine can read it; with a bucket, otherwise, fetched by its key
    /// `folder/<file name>` into this data dir.
    pub fn stored_here(&self, stored: &Path, folder: &str) -> Result<PathBuf, StorageError> {
        if stored.is_file() || self.remote.is_none() {
            return Ok(stored.to_path_buf());
        }
        let Some(name) = stored.file_name() else {
            return Ok(stored.to_path_buf());
        };
        self.local(&format!("{folder}/{}", name.to_string_lossy()))
    }

    /// Removes the object `key` from the bucket (not from the data dir); nothing without one.
    pub fn delete(&self, key: &str) -> Result<(), StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let deleted = remote.run({
            let (store, location) = (remote.store.clone(), remote.location(key));
            async move { store.delete(&location).await }
        });
        match deleted {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::object(key, e)),
        }
    }

    /// The data dir key of `path` (its path relative to the data dir), if it is inside it.
    pub fn key_of(&self, path: &Path) -> Option<String> {
        path.strip_prefix(&self.data)
            .ok()
            .map(|rel| rel.to_string_lossy().into_owned())
    }

    /// Every file under the folder `dir` in the data dir, fetched from the bucket when missing
    /// here (but those under `skip`, folder names relative to `dir`). Returns how many were
    /// fetched.
    pub fn materialize(&self, dir: &str, skip: &[&str]) -> Result<usize, StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(0);
        };
        let mut fetched = 0;
        for key in self.list(dir)? {
            if skipped(dir, &key, skip) || self.path(&key).is_file() {
                continue;
            }
            self.local(&key)?;
            fetched += 1;
        }
        if fetched > 0 {
            tracing::info!(dir, fetched, bucket = %remote.name, "fetched from the bucket");
        }
        Ok(fetched)
    }

    /// Uploads every file under the folder `dir` of the data dir (but those under `skip`),
    /// the file `marker` (relative to `dir`) last; does nothing without a bucket. Returns how
    /// many files were uploaded.
    pub fn publish(&self, dir: &str, skip: &[&str], marker: &str) -> Result<usize, StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(0);
        };
        let root = self.path(dir);
        let mut files = Vec::new();
        walk(&root, &mut files)?;
        let marker_key = format!("{dir}/{marker}");
        let mut keys: Vec<String> = files
            .iter()
            .filter_map(|f| f.strip_prefix(&self.data).ok())
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .filter(|key| !skipped(dir, key, skip) && *key != marker_key)
            .collect();
        keys.sort();
        if self.path(&marker_key).is_file() {
            keys.push(marker_key);
        }
        for key in &keys {
            self.publish_file(key)?;
        }
        tracing::info!(dir, files = keys.len(), bucket = %remote.name, "published to the bucket");
        Ok(keys.len())
    }

    /// Uploads the data dir file `key` (nothing without a bucket).
    pub fn publish_file(&self, key: &str) -> Result<(), StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let path = self.path(key);
        let size = std::fs::metadata(&path)
            .map_err(|e| StorageError::local(&path, e))?
            .len();
        remote
            .run({
                let (store, location, source) =
                    (remote.store.clone(), remote.location(key), path.clone());
                async move { upload(store.as_ref(), &location, &source, PART_BYTES).await }
            })
            .map_err(|e| StorageError::object(key, e))?;
        remote.cache.added(key, size);
        Ok(())
    }

    /// Whether `key` exists: in the data dir, or in the bucket when there is one.
    pub fn exists(&self, key: &str) -> Result<bool, StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(self.path(key).is_file());
        };
        if self.path(key).is_file() {
            return Ok(true);
        }
        let found = remote.run({
            let (store, location) = (remote.store.clone(), remote.location(key));
            async move { store.head(&location).await }
        });
        match found {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(StorageError::object(key, e)),
        }
    }

    /// The keys under the folder `dir` in the bucket (the data dir's without one), sorted.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        let Some(remote) = &self.remote else {
            let mut files = Vec::new();
            walk(&self.path(dir), &mut files)?;
            let mut keys: Vec<String> = files
                .iter()
                .filter_map(|f| f.strip_prefix(&self.data).ok())
                .map(|rel| rel.to_string_lossy().into_owned())
                .collect();
            keys.sort();
            return Ok(keys);
        };
        let strip = if remote.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", remote.prefix)
        };
        let listed = remote.run({
            let (store, location) = (remote.store.clone(), remote.location(dir));
            async move {
                let mut out = Vec::new();
                let mut stream = store.list(Some(&location));
                while let Some(meta) = stream.next().await {
                    out.push(meta?.location.to_string());
                }
                Ok(out)
            }
        });
        let mut keys: Vec<String> = listed
            .map_err(|e| StorageError::object(dir, e))?
            .into_iter()
            .map(|k| k.strip_prefix(&strip).map(str::to_string).unwrap_or(k))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Removes the folder `dir` from the bucket (not from the data dir); nothing without one.
    pub fn remove(&self, dir: &str) -> Result<usize, StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(0);
        };
        let keys = self.list(dir)?;
        for key in &keys {
            remote
                .run({
                    let (store, location) = (remote.store.clone(), remote.location(key));
                    async move { store.delete(&location).await }
                })
                .map_err(|e| StorageError::object(key, e))?;
        }
        Ok(keys.len())
    }

    /// Whether the storage answers: the data dir's titles folder is there and, with a bucket,
    /// the bucket can be listed.
    pub fn check(&self) -> Result<(), StorageError> {
        let videos = self.path("videos");
        if !videos.is_dir() {
            return Err(StorageError::local(&videos, "not a folder"));
        }
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        remote
            .run({
                let (store, location) = (remote.store.clone(), remote.location("videos"));
                async move { store.list_with_delimiter(Some(&location)).await }
            })
            .map(|_| ())
            .map_err(|e| StorageError::object("videos/", e))
    }
}

impl Remote {
    fn location(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Runs `work` on the store's runtime from any thread (an async caller should use a
    /// blocking task: this waits).
    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, object_store::Error>> + Send + 'static,
    ) -> Result<T, object_store::Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().unwrap_or_else(|e| {
            Err(object_store::Error::Generic {
                store: "storage",
                source: Box::new(e),
            })
        })
    }
}

/// Files up to this size go up in one PUT; larger ones (a suspect or a source of gigabytes) in
/// parts of this size, a few at a time, so memory stays a few parts whatever the file.
const PART_BYTES: usize = 16 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

fn io_error(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "storage",
        source: Box::new(e),
    }
}

/// Uploads the file `source` to `location`: whole up to `part_bytes`, else in parts.
async fn upload(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    source: &Path,
    part_bytes: usize,
) -> Result<(), object_store::Error> {
    use std::io::Read;
    let mut file = std::fs::File::open(source).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    if size <= part_bytes as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).map_err(io_error)?;
        store.put(location, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let mut writer =
        WriteMultipart::new_with_chunk_size(store.put_multipart(location).await?, part_bytes);
    let mut buf = vec![0u8; part_bytes];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(io_error(e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await?;
    Ok(())
}

/// Streams `location` into the file `dest` through a temporary name (a reader never sees a
/// part); returns its size.
async fn download(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    dest: &Path,
) -> Result<u64, object_store::Error> {
    use std::io::Write;
    let parent = dest
        .parent()
        .ok_or_else(|| io_error(std::io::Error::other("no parent folder")))?;
    std::fs::create_dir_all(parent).map_err(io_error)?;
    let mut part = tempfile::NamedTempFile::new_in(parent).map_err(io_error)?;
    let mut stream = store.get(location).await?.into_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        part.write_all(&chunk).map_err(io_error)?;
        size += chunk.len() as u64;
    }
    part.persist(dest).map_err(|e| io_error(e.error))?;
    Ok(size)
}

/// Whether `key` (under `dir`) lies in one of the `skip` folders.
fn skipped(dir: &str, key: &str, skip: &[&str]) -> bool {
    let rest = key
        .strip_prefix(dir)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(key);
    skip.iter()
        .any(|s| rest == *s || rest.starts_with(&format!("{s}/")))
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StorageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::local(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::local(dir, e))?;
        let kind = entry.file_type().map_err(|e| StorageError::local(dir, e))?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn large_files_go_up_in_parts_and_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = InMemory::new();
        for (name, size) in [
            ("small", 1000usize),
            ("exact", 4096),
            ("large", 4096 * 5 + 17),
        ] {
            let source = dir.path().join(name);
            let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&source, &bytes).unwrap();
            let location = ObjectPath::from(format!("x/{name}"));
            runtime()
                .block_on(upload(&store, &location, &source, 4096))
                .unwrap();
            let dest = dir.path().join("back").join(name);
            let got = runtime()
                .block_on(download(&store, &location, &dest))
                .unwrap();
            assert_eq!(got, size as u64);
            assert_eq!(std::fs::read(&dest).unwrap(), bytes, "{name}");
        }
    }

    #[test]
    fn a_missing_object_is_an_error_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = InMemory::new();
        let dest = dir.path().join("gone");
        let got = runtime().block_on(download(&store, &ObjectPath::from("nope"), &dest));
        assert!(
            matches!(got, Err(object_store::Error::NotFound { .. })),
            "{got:?}"
        );
        assert!(!dest.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary left"
        );
    }

    #[test]
    fn stored_files_are_found_here_or_by_their_folder_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::folder(dir.path());
        let elsewhere = Path::new("/elsewhere/data/uploads/abc-leak.mp4");
        // Without a bucket the recorded path is the answer.
        assert_eq!(
            storage.stored_here(elsewhere, "uploads").unwrap(),
            elsewhere
        );
        assert!(skipped("videos/v", "videos/v/source/x.mp4", &["source"]));
        assert!(!skipped("videos/v", "videos/v/sources.txt", &["source"]));
        assert!(skipped(
            "videos/v",
            "videos/v/reference/units/1.lts",
            &["reference/units"]
        ));
    }
}
