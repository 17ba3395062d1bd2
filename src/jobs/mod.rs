//! Jobs: durable work any number of workers take from the queue (`shared::db::repo::jobs`),
//! in `leaktrace serve` or `leaktrace worker` processes on any number of machines sharing the
//! database. One file per kind, each a [`Job`]: its [`JobKind`], its typed payload (the job
//! itself, stored as JSON) and `run`:
//!
//! | kind | file | payload |
//! |---|---|---|
//! | `analyse_case` | [`analyse_case`] | `{"case_id"}` |
//! | `package_title` | [`package_title`] | `{"source","remove_source","spec","requested_by"}` |
//! | `build_reference_store` | [`build_reference_store`] | `{"video_id"}` |
//! | `deliver_callback` | [`deliver_callback`] | `{"case_id"}` (queued when a case with a callback ends) |
//!
//! One runner ([`Worker`]) claims a job, runs it with one heartbeat thread that renews the
//! lease and copies progress (to the job, and to its case when it has one), and ends the
//! attempt: an input error (the suspect, the source, the payload) ends the job for good, any
//! other is retried with exponential backoff until the job's attempts are spent. A worker
//! that dies loses its lease and another takes the job over; every kind is idempotent.

pub mod analyse_case;
pub mod build_reference_store;
pub mod deliver_callback;
pub mod package_title;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::config::Config;
use shared::db::repo::jobs::{self, Failure, JobKind, JobRow, JobStatus};
use shared::db::repo::{audit, cases};
use shared::db::{Db, DbConnection};
use shared::metrics::{JobOutcome, Metrics};
use shared::secrets::Secrets;

use crate::error::AppError;

/// How often an idle worker looks for work.
const POLL: Duration = Duration::from_millis(500);
/// First retry delay of a transient failure (doubled at each further attempt).
const FIRST_BACKOFF_SECONDS: i64 = 5;

/// What a running job may use.
pub struct Context<'a> {
    pub config: &'a Config,
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    /// Where titles live (the data dir, and the bucket behind it when there is one).
    pub storage: &'a storage::Storage,
    /// The job's row: attempts so far, its id.
    pub row: &'a JobRow,
    /// The worker's name in leases and audit entries.
    pub worker: &'a str,
    /// Reports progress, 0 to 1 (cheap: the heartbeat copies it to the database).
    pub progress: &'a (dyn Fn(f64) + Sync),
    /// Set once the job's case is audited and shows as running: from then on the heartbeat
    /// copies progress to the case too.
    case_running: &'a AtomicBool,
}

impl Context<'_> {
    /// Says that the job's case now shows as running (its attempt is audited).
    pub fn case_running(&self) {
        self.case_running.store(true, Ordering::Relaxed);
    }

    /// Whether a failure now is the job's last attempt.
    pub fn last_attempt(&self) -> bool {
        self.row.attempts >= self.row.max_attempts
    }
}

/// One kind of job: the payload is the job itself.
pub trait Job: Serialize + DeserializeOwned + Sync {
    const KIND: JobKind;

    /// The case the job works for: its progress and audit entries go there too.
    fn case_id(&self) -> Option<&str> {
        None
    }

    fn run(&self, cx: &Context) -> Result<(), AppError>;
}

/// Queues `job` as a new job of its kind.
pub fn enqueue<J: Job>(
    conn: &mut DbConnection,
    config: &Config,
    job: &J,
) -> Result<JobRow, AppError> {
    let payload = serde_json::to_string(job).map_err(|e| AppError::JobPayload {
        kind: J::KIND.as_str(),
        reason: e.to_string(),
    })?;
    Ok(jobs::enqueue(
        conn,
        J::KIND,
        &payload,
        config.jobs.max_attempts as i32,
    )?)
}

/// The typed payload of a job row of kind `J`.
pub fn payload<J: Job>(row: &JobRow) -> Result<J, AppError> {
    let wrong = |reason: String| AppError::JobPayload {
        kind: J::KIND.as_str(),
        reason,
    };
    if row.kind != J::KIND {
        return Err(wrong(format!("the job is of kind {}", row.kind)));
    }
    serde_json::from_str(&row.payload).map_err(|e| wrong(e.to_string()))
}

/// The case of a job row, whatever its kind.
fn case_of(row: &JobRow) -> Option<String> {
    match row.kind {
        JobKind::AnalyseCase => payload::<analyse_case::AnalyseCase>(row)
            .ok()
            .map(|j| j.case_id),
        // A callback's job leaves its (finished) case as it is.
        JobKind::PackageTitle | JobKind::BuildReferenceStore | JobKind::DeliverCallback => None,
    }
}

/// The detail of a `job_started` audit entry.
#[derive(Serialize)]
pub struct AttemptDetail<'a> {
    pub job_id: &'a str,
    pub attempt: i32,
    pub worker: &'a str,
}

/// The detail of a `job_ended` audit entry.
#[derive(Serialize)]
struct EndedDetail<'a> {
    #[serde(flatten)]
    attempt: AttemptDetail<'a>,
    status: JobStatus,
    reason: Option<&'a str>,
}

/// Audits the end of an attempt (`job_ended`).
fn audit_end(
    conn: &mut DbConnection,
    case: Option<&str>,
    attempt: AttemptDetail,
    status: JobStatus,
    reason: Option<&str>,
) -> Result<(), AppError> {
    let detail = detail_json(&EndedDetail {
        attempt,
        status,
        reason,
    });
    audit::append(conn, case, "system", "job_ended", &detail)?;
    Ok(())
}

/// An audit entry's detail as stored (plain data: it always serialises).
pub fn detail_json(detail: &impl Serialize) -> String {
    serde_json::to_string(detail).unwrap_or_default()
}

pub struct Worker {
    config: Config,
    db: Db,
    secrets: Secrets,
    storage: Arc<storage::Storage>,
    /// This worker's name in job leases: unique per process and thread.
    pub owner: String,
    metrics: Option<Arc<Metrics>>,
    /// The job it runs now, for whoever stops the process ([`Workers::shutdown`]).
    holding: Arc<Holding>,
}

/// The attempt a worker thread runs now, seen from outside the thread.
#[derive(Default)]
struct Holding(Mutex<Option<Attempt>>);

#[derive(Clone)]
struct Attempt {
    job_id: String,
    number: i32,
    case: Option<String>,
}

impl Holding {
    fn set(&self, attempt: Option<Attempt>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = attempt;
    }

    fn get(&self) -> Option<Attempt> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Worker {
    pub fn new(
        config: Config,
        db: Db,
        secrets: Secrets,
        storage: Arc<storage::Storage>,
        index: usize,
    ) -> Worker {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let owner = format!(
            "{host}/{}/{index}/{}",
            std::process::id(),
            &shared::db::new_id()[..8]
        );
        Worker {
            config,
            db,
            secrets,
            storage,
            owner,
            metrics: None,
            holding: Arc::default(),
        }
    }

    /// Counts the attempts this worker ends in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        self.metrics = Some(metrics);
        self
    }

    fn lease(&self) -> Span {
        Span::seconds(self.config.jobs.lease_seconds as i64)
    }

    /// Runs jobs until `stop` is set (checked between jobs and while idle).
    pub fn run_until(&self, stop: &AtomicBool) {
        tracing::info!(worker = %self.owner, "worker started");
        while !stop.load(Ordering::Relaxed) {
            match self.run_one() {
                Ok(true) => {}
                Ok(false) => std::thread::sleep(POLL),
                Err(e) => {
                    tracing::warn!(worker = %self.owner, error = %e, "job queue unavailable");
                    std::thread::sleep(POLL * 4);
                }
            }
        }
    }

    /// Claims and runs one job; `false` when there was none.
    pub fn run_one(&self) -> Result<bool, AppError> {
        let Some(row) = jobs::claim(&mut *self.db.conn()?, &self.owner, self.lease())? else {
            return Ok(false);
        };
        tracing::info!(worker = %self.owner, job = %row.id, kind = %row.kind, attempt = row.attempts, "job claimed");
        let case = case_of(&row);
        self.holding.set(Some(Attempt {
            job_id: row.id.clone(),
            number: row.attempts,
            case: case.clone(),
        }));
        let ended = self.run_claimed(&row, case);
        self.holding.set(None);
        ended.map(|()| true)
    }

    /// Runs a claimed job and ends its attempt (unless it was no longer this worker's).
    fn run_claimed(&self, row: &JobRow, case: Option<String>) -> Result<(), AppError> {
        let started = Instant::now();
        let outcome = match row.kind {
            JobKind::AnalyseCase => self.run_job::<analyse_case::AnalyseCase>(row),
            JobKind::PackageTitle => self.run_job::<package_title::PackageTitle>(row),
            JobKind::BuildReferenceStore => {
                self.run_job::<build_reference_store::BuildReferenceStore>(row)
            }
            JobKind::DeliverCallback => self.run_job::<shared::db::repo::callbacks::Delivery>(row),
        };
        let mut conn = self.db.conn()?;
        let (status, reason) = match outcome {
            Ok(()) => {
                let held = jobs::succeed(&mut conn, &row.id, &self.owner)?;
                (held.then_some(JobStatus::Succeeded), None)
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(job = %row.id, %reason, "job attempt failed");
                let status =
                    jobs::fail(&mut conn, &row.id, &self.owner, &reason, failure(row, &e))?;
                match (status, &case) {
                    // Back to the queue: the case waits for the next attempt.
                    (Some(JobStatus::Queued), Some(case_id)) => cases::set_progress(
                        &mut conn,
                        case_id,
                        formats::case::CaseStatus::Queued,
                        0.0,
                    )?,
                    // Failed for good: so is its case, unless the analysis already ended it
                    // (an extraction failure records its own reason).
                    (Some(JobStatus::Failed), Some(case_id)) => {
                        let ended = cases::get(&mut conn, case_id)
                            .map(|c| c.status.is_finished())
                            .unwrap_or(true);
                        if !ended {
                            cases::fail(&mut conn, case_id, &e.public_message())?;
                        }
                    }
                    _ => {}
                }
                (status, Some(reason))
            }
        };
        if let Some(metrics) = &self.metrics {
            let ended = match status {
                Some(JobStatus::Succeeded) => JobOutcome::Succeeded,
                Some(JobStatus::Queued) => JobOutcome::Retried,
                Some(_) => JobOutcome::Failed,
                None => JobOutcome::Lost,
            };
            metrics.job_ended(row.kind, ended, started.elapsed().as_secs_f64());
        }
        // The end of the attempt, unless the job was no longer this worker's to end.
        if let Some(status) = status {
            let attempt = AttemptDetail {
                job_id: &row.id,
                attempt: row.attempts,
                worker: &self.owner,
            };
            audit_end(
                &mut conn,
                case.as_deref(),
                attempt,
                status,
                reason.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Runs a job of kind `J` with the heartbeat beside it.
    fn run_job<J: Job>(&self, row: &JobRow) -> Result<(), AppError> {
        let job: J = payload(row)?;
        let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
        let done = AtomicBool::new(false);
        let case_running = AtomicBool::new(false);
        let case = job.case_id().map(|id| (id, &case_running));
        std::thread::scope(|scope| {
            scope.spawn(|| self.heartbeat(row, case, &progress, &done));
            let report = |p: f64| progress.store(p.to_bits(), Ordering::Relaxed);
            let cx = Context {
                config: &self.config,
                db: &self.db,
                secrets: &self.secrets,
                storage: &self.storage,
                row,
                worker: &self.owner,
                progress: &report,
                case_running: &case_running,
            };
            let result = job.run(&cx);
            done.store(true, Ordering::Relaxed);
            result
        })
    }

    /// Renews the lease and copies progress (to the job, and to its case once it runs) until
    /// `done`, at a third of the lease period (at least every second).
    fn heartbeat(
        &self,
        row: &JobRow,
        case: Option<(&str, &AtomicBool)>,
        progress: &AtomicU64,
        done: &AtomicBool,
    ) {
        let period = Duration::from_secs(self.config.jobs.lease_seconds.max(1)) / 3;
        let tick = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < period.min(Duration::from_secs(1)) {
                continue;
            }
            waited = Duration::ZERO;
            let p = f64::from_bits(progress.load(Ordering::Relaxed));
            let renewed = self.db.conn().ok().and_then(|mut c| {
                let held = jobs::progress(&mut c, &row.id, &self.owner, p, self.lease()).ok()?;
                if let Some((case_id, running)) = case {
                    if running.load(Ordering::Relaxed) {
                        let status = formats::case::CaseStatus::Running;
                        let _ = cases::set_progress(&mut c, case_id, status, p);
                    }
                }
                Some(held)
            });
            if renewed == Some(false) {
                tracing::warn!(job = %row.id, "lease lost: another worker has taken the job over");
            }
        }
    }
}

/// How a failed attempt ends: input errors are permanent, the rest retried after a backoff
/// doubling with each attempt.
fn failure(row: &JobRow, e: &AppError) -> Failure {
    if e.is_input() {
        return Failure::Permanent;
    }
    let exponent = (row.attempts - 1).clamp(0, 10) as u32;
    Failure::Transient {
        retry_after: Span::seconds(FIRST_BACKOFF_SECONDS << exponent),
    }
}

/// Why a released attempt ended, in its audit entry.
const RELEASED: &str =
    "released unfinished: its worker was stopped (shutdown); another worker takes it again";

/// The worker threads of a process, stopped together by [`Workers::shutdown`].
pub struct Workers {
    threads: Vec<(std::thread::JoinHandle<()>, String, Arc<Holding>)>,
    stop: Arc<AtomicBool>,
}

impl Workers {
    /// How many worker threads started.
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Whether every worker thread has ended.
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|(t, _, _)| t.is_finished())
    }

    /// Stops the workers: none claims another job; each running job gets `grace` to finish,
    /// then whatever still runs is handed back to the queue ([`jobs::release`]: runnable at
    /// once by another worker, the attempt not counted, its case queued again, audited) and
    /// its thread is left behind, to end with the process. Jobs are idempotent, so the work
    /// begun is simply done again. Returns how many jobs were handed back.
    pub fn shutdown(self, db: &Db, grace: Duration) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + grace;
        while !self.finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut released = 0;
        for (thread, owner, holding) in self.threads {
            if thread.is_finished() {
                let _ = thread.join();
                continue;
            }
            let Some(attempt) = holding.get() else {
                continue;
            };
            match release(db, &owner, &attempt) {
                Ok(true) => {
                    released += 1;
                    tracing::warn!(job = %attempt.job_id, worker = %owner, "job handed back unfinished at shutdown");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(job = %attempt.job_id, error = %e, "cannot hand the job back: it is taken again when its lease lapses");
                }
            }
        }
        released
    }
}

/// Hands `owner`'s attempt back to the queue (see [`Workers::shutdown`]); `false` when the
/// job was no longer its own (it ended meanwhile, or its lease was taken over).
fn release(db: &Db, owner: &str, attempt: &Attempt) -> Result<bool, AppError> {
    let mut conn = db.conn()?;
    if !jobs::release(&mut conn, &attempt.job_id, owner)? {
        return Ok(false);
    }
    if let Some(case_id) = &attempt.case {
        cases::set_progress(&mut conn, case_id, formats::case::CaseStatus::Queued, 0.0)?;
    }
    let detail = AttemptDetail {
        job_id: &attempt.job_id,
        attempt: attempt.number,
        worker: owner,
    };
    let case = attempt.case.as_deref();
    audit_end(&mut conn, case, detail, JobStatus::Queued, Some(RELEASED))?;
    Ok(true)
}

/// Starts `count` workers on their own threads; they stop when `stop` is set (see
/// [`Workers::shutdown`]). Titles recorded without their packaging details get them from
/// their manifests first; with at least one worker and the reference store on, the stores
/// titles lack are queued too.
pub fn spawn_workers(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    storage: &Arc<storage::Storage>,
    count: u32,
    metrics: &Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> Workers {
    // In the background: with a bucket each manifest may be fetched first, and serving need
    // not wait for that.
    let (c, d, s) = (config.clone(), db.clone(), storage.clone());
    let spawned = std::thread::Builder::new()
        .name("record-packaging".into())
        .spawn(
            move || match crate::packaging::record_missing_packaging(&d, &c, &s) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(titles = n, "packaging details recorded from the manifests")
                }
                Err(e) => tracing::warn!(error = %e, "cannot record the titles' packaging details"),
            },
        );
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start recording the titles' packaging details");
    }
    if count > 0 && config.analysis.reference_store {
        match build_reference_store::queue_missing(db, config, storage) {
            Ok(0) => {}
            Ok(n) => tracing::info!(titles = n, "reference stores queued for titles without one"),
            Err(e) => tracing::warn!(error = %e, "cannot queue the missing reference stores"),
        }
    }
    let threads = (0..count as usize)
        .filter_map(|i| {
            let worker = Worker::new(
                config.clone(),
                db.clone(),
                secrets.clone(),
                storage.clone(),
                i,
            )
            .with_metrics(metrics.clone());
            let (owner, holding) = (worker.owner.clone(), worker.holding.clone());
            let stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker.run_until(&stop));
            match spawned {
                Ok(handle) => Some((handle, owner, holding)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a worker");
                    None
                }
            }
        })
        .collect();
    Workers { threads, stop }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: JobKind, payload: &str, attempts: i32) -> JobRow {
        let t = shared::db::now();
        JobRow {
            id: "j".into(),
            kind,
            payload: payload.into(),
            status: JobStatus::Running,
            progress: 0.0,
            attempts,
            max_attempts: 3,
            run_after: t,
            lease_owner: None,
            lease_expires_at: None,
            last_error: None,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn payloads_are_read_by_their_own_kind_only() {
        let analysis = row(JobKind::AnalyseCase, r#"{"case_id":"c1"}"#, 1);
        assert_eq!(case_of(&analysis).as_deref(), Some("c1"));
        let read: analyse_case::AnalyseCase = payload(&analysis).unwrap();
        assert_eq!(read.case_id, "c1");
        assert!(payload::<build_reference_store::BuildReferenceStore>(&analysis).is_err());
        let broken = row(JobKind::AnalyseCase, r#"{"case":"c1"}"#, 1);
        let e = payload::<analyse_case::AnalyseCase>(&broken).unwrap_err();
        assert!(e.is_input(), "an unusable payload is not retried: {e}");
        assert_eq!(case_of(&row(JobKind::BuildReferenceStore, "{}", 1)), None);
    }

    #[test]
    fn input_failures_are_permanent_and_the_rest_back_off() {
        let r = row(JobKind::PackageTitle, "{}", 2);
        assert_eq!(
            failure(&r, &AppError::UnknownTitle("v".into())),
            Failure::Permanent
        );
        assert_eq!(
            failure(&r, &AppError::Retry("race".into())),
            Failure::Transient {
                retry_after: Span::seconds(10)
            }
        );
    }
}
