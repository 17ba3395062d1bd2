use formats::layout::DataLayout;
use formats::marker::MarkerSigner;
use shared::auth::tokens::TokenKeys;
use shared::config::Monitoring;
use shared::db::Db;
use shared::metrics::Metrics;

use crate::activity::Activity;
use crate::cache::Caches;

/// What the viewer-facing handlers need; built once at start-up.
pub struct StreamingState {
    pub db: Db,
    pub tokens: TokenKeys,
    /// An Argon2 hash of a random password, verified when a user name is unknown, so that
    /// unknown names and wrong passwords take the same time.
    pub dummy_password_hash: String,
    /// Seals ephemeral session secrets and content keys at rest.
    pub master_key: [u8; 32],
    /// The data dir, where packaged titles live (`videos.storage_dir` is relative to it).
    pub data: DataLayout,
    pub monitoring: Monitoring,
    /// Signs the session marker box of each session's init segment.
    pub marker: MarkerSigner,
    pub caches: Caches,
    pub activity: Activity,
    /// Unauthenticated probes counted per address and window.
    pub probes: crate::probes::Probes,
    /// This process's counters (`/metrics`).
    pub metrics: std::sync::Arc<Metrics>,
    /// Where titles live: segments are read from the data dir, fetched from the bucket
    /// behind it first when this machine lacks them.
    pub storage: std::sync::Arc<storage::Storage>,
    /// Segment files kept in memory.
    pub segments: crate::segments::SegmentFiles,
    /// The fast path's unit reservations (committed in groups on SQLite).
    pub reservations: shared::db::reservations::Reservations,
    /// Password hashes checked at once (Argon2 takes tens of MiB and a core each).
    hashing: tokio::sync::Semaphore,
}

impl StreamingState {
    pub fn new(
        db: Db,
        tokens: TokenKeys,
        dummy_password_hash: String,
        master_key: [u8; 32],
        data: DataLayout,
        monitoring: Monitoring,
    ) -> Self {
        let metrics = std::sync::Arc::new(Metrics::new(&db));
        let storage = std::sync::Arc::new(storage::Storage::folder(&data.root));
        StreamingState {
            reservations: shared::db::reservations::Reservations::new(&db),
            db,
            tokens,
            dummy_password_hash,
            marker: MarkerSigner::from_master_key(&master_key),
            master_key,
            data,
            monitoring,
            caches: Caches::default(),
            activity: Activity::default(),
            probes: crate::probes::Probes::default(),
            metrics,
            storage,
            segments: crate::segments::SegmentFiles::new(
                shared::config::DEFAULT_SEGMENT_CACHE_MIB << 20,
            ),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        }
    }

    /// Counts into `metrics` (instead of a registry of its own).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reads titles through `storage` (instead of the data dir alone).
    pub fn with_storage(mut self, storage: std::sync::Arc<storage::Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Keeps `mib` MiB of segment files in memory (0: none).
    pub fn with_segment_cache_mib(mut self, mib: u64) -> Self {
        self.segments = crate::segments::SegmentFiles::new(mib << 20);
        self
    }

    /// Checks `password` against `hash` on the blocking pool, at most one per core at once.
    pub async fn verify_password(
        &self,
        password: String,
        hash: String,
    ) -> Result<bool, api::ApiError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| api::ApiError::internal(e.to_string()))?;
        actix_web::web::block(move || shared::auth::password::verify(&password, &hash))
            .await
            .map_err(api::ApiError::internal)
    }
}
