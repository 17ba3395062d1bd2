//! What `/metrics` shows, in the Prometheus text format (0.0.4): one [`Metrics`] per process,
//! built at start-up and handed to whoever counts (no global registry).
//!
//! Two sources:
//! - **this process**, counted as things happen: HTTP requests by route pattern, method and
//!   status with their latency, segments and bytes served, key exchanges, the streaming
//!   caches' hits and misses, jobs this process ran (by kind and outcome, with durations), and
//!   the database pool's waits. Counters start at zero with the process, as Prometheus expects;
//!   sum them over instances.
//! - **the database**, read at each scrape ([`Metrics::scrape`]): open sessions, the job queue
//!   by kind and status (jobs, attempts, age of the oldest), security events of the last hour
//!   by kind. These describe the whole deployment, so every instance reports the same values:
//!   take `max` over instances, not `sum`.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use chrono::Duration as Span;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::db::repo::jobs::{self, JobKind, JobStatus};
use crate::db::repo::{security_events, sessions};
use crate::db::{now, Db, DbConnection, DbError};

/// The content type of [`Metrics::scrape`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How far back the security-events gauge counts.
const EVENTS_WINDOW_SECONDS: i64 = 3600;

/// A request's route: its pattern (`/api/cases/{case_id}/`), never the path itself, so that
/// ids do not make one series each; `unmatched` for paths no route serves.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

/// What a segment request served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// An init segment (video, with the session marker, or audio).
    Init,
    /// A watermarked video unit (the session's variant).
    Video,
    Audio,
}

impl SegmentKind {
    fn label(self) -> &'static str {
        match self {
            SegmentKind::Init => "init",
            SegmentKind::Video => "video",
            SegmentKind::Audio => "audio",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SegmentLabels {
    kind: &'static str,
}

/// The streaming caches (`streaming::cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheName {
    /// Packaged titles: manifest, secret, init segments.
    Title,
    /// Sessions' content keys and codes.
    SessionKeys,
    /// Segment files kept in memory.
    Segment,
    /// Video units served by the one-statement fast path (hit) or by the full checks (miss).
    KnownSession,
}

impl CacheName {
    fn label(self) -> &'static str {
        match self {
            CacheName::Title => "title",
            CacheName::SessionKeys => "session_keys",
            CacheName::Segment => "segment",
            CacheName::KnownSession => "known_session",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    /// `hit` or `miss`.
    result: &'static str,
}

/// How one attempt at a job ended in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Succeeded,
    /// Failed, back in the queue for another attempt.
    Retried,
    /// Failed for good.
    Failed,
    /// The lease was lost meanwhile: another worker has the job.
    Lost,
}

impl JobOutcome {
    fn label(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Retried => "retried",
            JobOutcome::Failed => "failed",
            JobOutcome::Lost => "lost",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobOutcomeLabels {
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobStatusLabels {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Request latencies: 1 ms to about 33 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Job durations: 0.5 s to about 2.3 h.
fn job_duration() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 15))
}

/// Every metric of one process.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Histograms<RouteLabels>,
    segments: Family<SegmentLabels, Counter>,
    segment_bytes: Family<SegmentLabels, Counter>,
    key_exchanges: Counter,
    cache: Family<CacheLabels, Counter>,
    jobs_ended: Family<JobOutcomeLabels, Counter>,
    job_seconds: Histograms<JobLabels>,
    uptime: FloatGauge,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    open_sessions: Gauge,
    queue_jobs: Family<JobStatusLabels, Gauge>,
    queue_attempts: Family<JobStatusLabels, Gauge>,
    queue_oldest: Family<JobLabels, FloatGauge>,
    recent_events: Family<EventLabels, Gauge>,
}

impl Metrics {
    /// Every metric registered, the pool's waits of `db` among them.
    pub fn new(db: &Db) -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("leaktrace"),
            started: Instant::now(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency),
            segments: Family::default(),
            segment_bytes: Family::default(),
            key_exchanges: Counter::default(),
            cache: Family::default(),
            jobs_ended: Family::default(),
            job_seconds: Family::new_with_constructor(job_duration),
            uptime: FloatGauge::default(),
            pool_connections: Gauge::default(),
            pool_idle: Gauge::default(),
            pool_max: Gauge::default(),
            open_sessions: Gauge::default(),
            queue_jobs: Family::default(),
            queue_attempts: Family::default(),
            queue_oldest: Family::default(),
            recent_events: Family::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            metrics.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time from request to response head, by route pattern and method",
            metrics.http_seconds.clone(),
        );
        r.register(
            "segments_served",
            "Encrypted segments served, by kind",
            metrics.segments.clone(),
        );
        r.register(
            "segment_bytes_served",
            "Bytes of encrypted segments served, by kind",
            metrics.segment_bytes.clone(),
        );
        r.register(
            "key_exchanges",
            "Key exchanges completed (sessions keyed)",
            metrics.key_exchanges.clone(),
        );
        r.register(
            "stream_cache_lookups",
            "Streaming cache lookups, by cache and hit or miss",
            metrics.cache.clone(),
        );
        r.register(
            "jobs_ended",
            "Job attempts this process ended, by kind and outcome",
            metrics.jobs_ended.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Duration of job attempts this process ran (packaging, analysis, reference stores), by kind",
            metrics.job_seconds.clone(),
        );
        r.register(
            "uptime_seconds",
            "Seconds since this process started",
            metrics.uptime.clone(),
        );
        r.register(
            "db_pool_wait_seconds",
            "Time spent waiting for a pooled database connection",
            db.pool_waits().seconds.clone(),
        );
        r.register(
            "db_pool_timeouts",
            "Requests for a pooled database connection that timed out",
            db.pool_waits().timeouts.clone(),
        );
        r.register(
            "reservation_writer_rounds",
            "Rounds of the SQLite unit-reservation writer: each runs every reservation waiting, in one transaction when there are several (none on PostgreSQL)",
            db.writer_counts().rounds.clone(),
        );
        r.register(
            "reservation_writer_claims",
            "Unit reservations the writer took in those rounds (over the rounds: the mean round size)",
            db.writer_counts().claims.clone(),
        );
        r.register(
            "db_pool_connections",
            "Database connections open in this process's pool",
            metrics.pool_connections.clone(),
        );
        r.register(
            "db_pool_idle_connections",
            "Idle database connections in this process's pool",
            metrics.pool_idle.clone(),
        );
        r.register(
            "db_pool_max_connections",
            "Size limit of this process's database pool",
            metrics.pool_max.clone(),
        );
        r.register(
            "open_sessions",
            "Stream sessions open now (requested, keyed or streaming, not idle): whole deployment",
            metrics.open_sessions.clone(),
        );
        r.register(
            "job_queue_jobs",
            "Jobs by kind and status: whole deployment",
            metrics.queue_jobs.clone(),
        );
        r.register(
            "job_queue_attempts",
            "Attempts made so far by the jobs of each kind and status: whole deployment",
            metrics.queue_attempts.clone(),
        );
        r.register(
            "job_queue_oldest_queued_age_seconds",
            "Age of the oldest queued job of each kind (0 when none waits): whole deployment",
            metrics.queue_oldest.clone(),
        );
        r.register(
            "security_events_last_hour",
            "Security events recorded in the last hour, by kind: whole deployment",
            metrics.recent_events.clone(),
        );
        metrics
    }

    /// Exports the storage cache's counters (the `storage` crate's `CacheCounters`).
    pub fn register_storage(
        &mut self,
        hits: Counter,
        misses: Counter,
        fetched_bytes: Counter,
        evictions: Counter,
    ) {
        let r = &mut self.registry;
        r.register(
            "storage_cache_hits",
            "Files asked of the storage that this machine's data dir held (with a bucket)",
            hits,
        );
        r.register(
            "storage_cache_misses",
            "Files asked of the storage that were fetched from the bucket",
            misses,
        );
        r.register(
            "storage_fetched_bytes",
            "Bytes fetched from the bucket into the data dir",
            fetched_bytes,
        );
        r.register(
            "storage_cache_evictions",
            "Files removed from the data dir past storage.cache_mib",
            evictions,
        );
    }

    /// One answered request. `route` is the matched pattern, `None` for an unknown path.
    pub fn http_request(&self, route: Option<&str>, method: &str, status: u16, seconds: f64) {
        let route = route.unwrap_or("unmatched").to_string();
        // Methods outside the standard set would each make a series.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        }
        .to_string();
        self.http_seconds
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method: method.clone(),
            })
            .observe(seconds);
        self.http_requests
            .get_or_create(&HttpLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// One encrypted segment served, `bytes` long.
    pub fn segment_served(&self, kind: SegmentKind, bytes: usize) {
        let labels = SegmentLabels { kind: kind.label() };
        self.segments.get_or_create(&labels).inc();
        self.segment_bytes
            .get_or_create(&labels)
            .inc_by(bytes as u64);
    }

    pub fn key_exchange(&self) {
        self.key_exchanges.inc();
    }

    pub fn cache_lookup(&self, cache: CacheName, hit: bool) {
        let labels = CacheLabels {
            cache: cache.label(),
            result: if hit { "hit" } else { "miss" },
        };
        self.cache.get_or_create(&labels).inc();
    }

    /// One job attempt run by this process ended after `seconds`.
    pub fn job_ended(&self, kind: JobKind, outcome: JobOutcome, seconds: f64) {
        let kind = kind.as_str().to_string();
        self.job_seconds
            .get_or_create(&JobLabels { kind: kind.clone() })
            .observe(seconds);
        self.jobs_ended
            .get_or_create(&JobOutcomeLabels {
                kind,
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Reads the deployment's gauges from the database, then encodes everything.
    pub fn scrape(&self, db: &Db) -> Result<String, DbError> {
        self.read_database(&mut *db.conn()?)?;
        let pool = db.pool_state();
        self.pool_connections.set(i64::from(pool.connections));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max_size));
        self.uptime.set(self.started.elapsed().as_secs_f64());
        Ok(self.encode())
    }

    fn read_database(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        let at = now();
        self.open_sessions.set(sessions::count_open(conn, at)?);
        // Every known kind and status shows, at 0 when it has no job: a series that vanishes
        // when a queue empties would read as "no data", not as zero.
        for kind in JobKind::ALL {
            let kind = kind.as_str().to_string();
            for status in JobStatus::ALL {
                let labels = JobStatusLabels {
                    kind: kind.clone(),
                    status: status.as_str().to_string(),
                };
                self.queue_jobs.get_or_create(&labels).set(0);
                self.queue_attempts.get_or_create(&labels).set(0);
            }
            self.queue_oldest
                .get_or_create(&JobLabels { kind })
                .set(0.0);
        }
        for row in jobs::queue_summary(conn)? {
            let queued = row.status == JobStatus::Queued.as_str();
            let labels = JobStatusLabels {
                kind: row.kind.clone(),
                status: row.status,
            };
            self.queue_jobs.get_or_create(&labels).set(row.jobs);
            self.queue_attempts.get_or_create(&labels).set(row.attempts);
            if let (true, Some(oldest)) = (queued, row.oldest) {
                let age = (at - oldest).num_milliseconds().max(0) as f64 / 1000.0;
                self.queue_oldest
                    .get_or_create(&JobLabels { kind: row.kind })
                    .set(age);
            }
        }
        let since = at - Span::seconds(EVENTS_WINDOW_SECONDS);
        self.recent_events.clear();
        for (kind, count) in security_events::count_by_kind_since(conn, since)? {
            self.recent_events
                .get_or_create(&EventLabels { kind })
                .set(count);
        }
        Ok(())
    }

    /// The text format of everything registered.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric's
        // labels, and the scrape then shows what was written before it.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    fn sample<'a>(text: &'a str, name_and_labels: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
            .map(|l| &l[name_and_labels.len() + 1..])
    }

    #[test]
    fn counts_requests_by_pattern_and_reads_the_queue() {
        let t = TestDatabase::new();
        let db = t.open();
        let m = Metrics::new(&db);
        m.http_request(Some("/api/cases/{case_id}/"), "GET", 200, 0.003);
        m.http_request(Some("/api/cases/{case_id}/"), "GET", 200, 0.004);
        m.http_request(None, "BREW", 404, 0.001);
        m.segment_served(SegmentKind::Video, 1000);
        m.segment_served(SegmentKind::Video, 500);
        m.cache_lookup(CacheName::Title, true);
        m.job_ended(JobKind::AnalyseCase, JobOutcome::Retried, 2.0);
        jobs::enqueue(&mut db.conn().unwrap(), JobKind::PackageTitle, "{}", 3).unwrap();
        let text = m.scrape(&db).unwrap();
        let get = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
        assert_eq!(
            get(
                r#"leaktrace_http_requests_total{route="/api/cases/{case_id}/",method="GET",status="200"}"#
            ),
            "2"
        );
        assert_eq!(
            get(r#"leaktrace_http_requests_total{route="unmatched",method="other",status="404"}"#),
            "1"
        );
        assert_eq!(
            get(r#"leaktrace_segment_bytes_served_total{kind="video"}"#),
            "1500"
        );
        assert_eq!(
            get(r#"leaktrace_stream_cache_lookups_total{cache="title",result="hit"}"#),
            "1"
        );
        assert_eq!(
            get(r#"leaktrace_jobs_ended_total{kind="analyse_case",outcome="retried"}"#),
            "1"
        );
        assert_eq!(
            get(r#"leaktrace_job_queue_jobs{kind="package_title",status="queued"}"#),
            "1"
        );
        assert_eq!(
            get(r#"leaktrace_job_queue_jobs{kind="analyse_case",status="queued"}"#),
            "0"
        );
        assert_eq!(get("leaktrace_open_sessions"), "0");
        assert!(
            get(r#"leaktrace_db_pool_wait_seconds_count"#)
                .parse::<u64>()
                .unwrap()
                >= 1
        );
    }
}
