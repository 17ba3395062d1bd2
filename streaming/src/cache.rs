//! What the hot path would otherwise recompute on every segment request: per title the parsed
//! package manifest, the unsealed video secret and the init segments; per session the CEK and
//! the whole session code, and what the segment fast path knows of it ([`Known`]). Titles never
//! change once packaged; session keys never change once the key exchange is done, so neither
//! needs invalidation, only a bound on its size; what [`Known`] holds that can change (the
//! user's and device's standing, the session's state) is checked again by the database
//! statement that reserves every unit, so revocations need no invalidation either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use formats::codes;
use formats::layout::{DataLayout, Layout, SegmentVariant};
use formats::package::PackageManifest;
use formats::sealing;
use shared::db::repo::sessions::SessionRow;
use shared::db::repo::videos::{self, VideoRow};
use shared::metrics::CacheName;

use crate::session_handlers::cek_seal_aad;
use crate::state::StreamingState;
use api::ApiError;

/// Session keys kept at most this long after their last use (a session idles out after five
/// minutes, so an entry older than this belongs to a dead session).
const SESSION_KEYS_TTL: Duration = Duration::from_secs(15 * 60);
/// Above this many entries, stale ones are dropped on the next insert.
const SESSION_KEYS_SOFT_CAP: usize = 50_000;

/// A packaged title, ready to serve.
pub struct Title {
    pub video_id: String,
    pub package: PackageManifest,
    pub layout: Layout,
    /// The video init segment of each rendition, the top one first.
    pub video_inits: Vec<Vec<u8>>,
    pub audio_init: Option<Vec<u8>>,
    secret: [u8; 32],
}

impl Title {
    fn load(
        master_key: &[u8; 32],
        data: &DataLayout,
        storage: &storage::Storage,
        video: &VideoRow,
    ) -> Result<Title, ApiError> {
        let layout = data.title(&video.storage_dir);
        // With a bucket, each file is fetched here first when this machine lacks it.
        let read = |path: std::path::PathBuf| {
            let path = storage.ensure(&path).map_err(ApiError::internal)?;
            std::fs::read(&path).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))
        };
        storage
            .ensure(&layout.manifest())
            .map_err(ApiError::internal)?;
        let package = PackageManifest::read(&layout).map_err(ApiError::internal)?;
        let secret = sealing::open_video_secret(master_key, &video.id, &video.sealed_secret)
            .map_err(|e| ApiError::internal(format!("the video secret cannot be unsealed: {e}")))?;
        let video_inits = std::iter::once(0)
            .chain(package.renditions.iter().map(|r| r.index))
            .map(|index| read(layout.rendition_init(index)))
            .collect::<Result<Vec<_>, _>>()?;
        let audio_init = match package.audio {
            Some(_) => Some(read(layout.audio_init())?),
            None => None,
        };
        Ok(Title {
            video_id: video.id.clone(),
            package,
            layout,
            video_inits,
            audio_init,
            secret,
        })
    }

    /// The session's whole code (one bit per unit).
    pub fn code(&self, session_id: &str) -> Vec<bool> {
        codes::session_code(
            &self.secret,
            self.package.watermark.code,
            session_id,
            self.package.video.unit_count,
        )
    }
}

/// What a keyed session needs for every segment.
pub struct SessionKeys {
    pub cek: [u8; 32],
    pub code: Vec<bool>,
    /// Watermark units per segment of the session's title.
    pub segment_units: u32,
}

impl SessionKeys {
    /// The variant of 1-based video segment `segment` this session receives.
    pub fn variant(&self, segment: u32) -> Option<SegmentVariant> {
        codes::segment_variant(&self.code, segment, self.segment_units)
    }
}

/// What the segment route's fast path needs to know of a session it served before: its row as
/// read then (only the fields that never change after the key exchange are used: owner, device,
/// title, keyed time) and the device key and token key thumbprint found current then. The
/// database statement that reserves each unit checks they still stand.
pub struct Known {
    pub session: SessionRow,
    pub device_key: String,
    pub token_key: String,
}

/// Per-session entries kept while used: dropped `SESSION_KEYS_TTL` after their last use once
/// the map holds `SESSION_KEYS_SOFT_CAP` entries.
struct Recent<V> {
    map: Mutex<HashMap<String, (Instant, Arc<V>)>>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<V> Recent<V> {
    fn get(&self, id: &str) -> Option<Arc<V>> {
        let mut map = lock(&self.map);
        let (used, v) = map.get_mut(id)?;
        *used = Instant::now();
        Some(v.clone())
    }

    fn insert(&self, id: &str, v: Arc<V>) {
        let now = Instant::now();
        let mut map = lock(&self.map);
        if map.len() >= SESSION_KEYS_SOFT_CAP {
            map.retain(|_, (used, _)| now.duration_since(*used) < SESSION_KEYS_TTL);
        }
        map.insert(id.to_string(), (now, v));
    }

    fn remove(&self, id: &str) {
        lock(&self.map).remove(id);
    }
}

#[derive(Default)]
pub struct Caches {
    titles: Mutex<HashMap<String, Arc<Title>>>,
    sessions: Recent<SessionKeys>,
    known: Recent<Known>,
}

/// A poisoned lock only means another request panicked mid-insert; the map is still sound.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Caches {
    /// The title `video_id`, loaded on first use.
    pub async fn title(
        &self,
        state: &StreamingState,
        video_id: &str,
    ) -> Result<Arc<Title>, ApiError> {
        if let Some(t) = lock(&self.titles).get(video_id) {
            state.metrics.cache_lookup(CacheName::Title, true);
            return Ok(t.clone());
        }
        state.metrics.cache_lookup(CacheName::Title, false);
        let id = video_id.to_string();
        let video = state.db.run(move |c| videos::get(c, &id)).await?;
        let (key, dir, storage) = (state.master_key, state.data.clone(), state.storage.clone());
        let title = Arc::new(
            actix_web::web::block(move || Title::load(&key, &dir, &storage, &video))
                .await
                .map_err(ApiError::internal)??,
        );
        lock(&self.titles).insert(video_id.to_string(), title.clone());
        Ok(title)
    }

    /// The keys of a keyed session, unsealed and computed on first use.
    pub fn session_keys(
        &self,
        state: &StreamingState,
        session: &SessionRow,
        title: &Title,
    ) -> Result<Arc<SessionKeys>, ApiError> {
        if let Some(keys) = self.sessions.get(&session.id) {
            state.metrics.cache_lookup(CacheName::SessionKeys, true);
            return Ok(keys);
        }
        state.metrics.cache_lookup(CacheName::SessionKeys, false);
        let cek: [u8; 32] = session
            .sealed_cek
            .as_deref()
            .and_then(|sealed| {
                sealing::open(&state.master_key, &cek_seal_aad(&session.id), sealed).ok()
            })
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| ApiError::internal("the session CEK cannot be unsealed"))?;
        let keys = Arc::new(SessionKeys {
            cek,
            code: title.code(&session.id),
            segment_units: title.package.video.units_per_segment(),
        });
        self.sessions.insert(&session.id, keys.clone());
        Ok(keys)
    }

    /// What the fast path knows of session `id`, if it served it before.
    pub fn known(&self, id: &str) -> Option<Arc<Known>> {
        self.known.get(id)
    }

    /// Remembers a session served through the full checks, for the fast path.
    pub fn remember(&self, known: Known) {
        let id = known.session.id.clone();
        self.known.insert(&id, Arc::new(known));
    }

    /// Forgets a session's keys (it was revoked or expired).
    pub fn forget_session(&self, session_id: &str) {
        self.sessions.remove(session_id);
        self.known.remove(session_id);
    }
}
