//! Housekeeping beside the server: every [`EVERY`] (and once at start), non-critical security
//! events older than `monitoring.event_retention_days` are removed, so that floods and years
//! of routine events do not grow the database without bound (critical ones, detections and
//! revocations, stay), and signed-out tokens that have expired anyway are forgotten. Stops
//! with the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::config::Config;
use shared::db::repo::{refreshed_tokens, revoked_tokens, security_events};
use shared::db::Db;

/// How long past a token's expiry its revocation or refresh is remembered.
const TOKEN_GRACE_SECONDS: i64 = 600;
/// How often housekeeping runs.
const EVERY: Duration = Duration::from_secs(3600);
/// How often the thread looks at the stop flag.
const TICK: Duration = Duration::from_millis(200);

/// One round: events past retention removed (returns how many), revocations and refreshes of
/// tokens long expired forgotten.
pub fn run_once(config: &Config, db: &Db) -> Result<usize, shared::db::DbError> {
    let mut conn = db.conn()?;
    let now = shared::db::now();
    // Kept a while past their expiry: an instance whose clock runs behind still refuses them.
    let expired = now - chrono::Duration::seconds(TOKEN_GRACE_SECONDS);
    revoked_tokens::purge_expired(&mut conn, expired)?;
    refreshed_tokens::purge_expired(&mut conn, expired)?;
    let days = config.monitoring.event_retention_days;
    if days == 0 {
        return Ok(0);
    }
    security_events::purge_before(&mut conn, now - chrono::Duration::days(i64::from(days)))
}

/// Runs [`run_once`] every [`EVERY`] until `stop`.
pub fn spawn(
    config: &Config,
    db: &Db,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let (config, db) = (config.clone(), db.clone());
    let spawned = std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            let mut last: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                if last.is_none_or(|t| t.elapsed() >= EVERY) {
                    last = Some(Instant::now());
                    match run_once(&config, &db) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(events = n, "security events past retention removed")
                        }
                        Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
                    }
                }
                std::thread::sleep(TICK);
            }
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "cannot start housekeeping");
            None
        }
    }
}
