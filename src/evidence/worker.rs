//! Workers: take jobs from the queue and run them: case analyses (`analyse_case`), title
//! packaging (`package_title`) and reference stores (`build_reference_store`, see
//! [`crate::packaging`]). Any number of
//! workers, in `leaktrace serve` or `leaktrace worker` processes on any number of machines
//! sharing the database, share the work; the queue's leases guarantee one runner per job.
//!
//! While a job runs, a heartbeat thread renews its lease and copies the extraction's progress
//! to the job and the case. A failure because of the suspect (not a video, truncated...) is
//! permanent; any other (database, disk) is retried with exponential backoff until the
//! job's attempts are spent. A worker that dies loses its lease, and another worker takes
//! the job over; analysis is idempotent (a finished case is not analysed again).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use serde_json::json;
use shared::config::Config;
use shared::db::repo::jobs::{self, Failure, JobRow};
use shared::db::repo::{audit, cases};
use shared::db::Db;
use shared::secrets::Secrets;

use crate::error::CliError;
use crate::{analysis, packaging};

/// The job kind of a case analysis; its payload is `{"case_id": ...}`.
pub const ANALYSE_CASE: &str = "analyse_case";
/// How often an idle worker looks for work.
const POLL: Duration = Duration::from_millis(500);
/// First retry delay of a transient failure (doubled at each further attempt).
const FIRST_BACKOFF_SECONDS: i64 = 5;

/// Queues the analysis of `case_id`.
pub fn enqueue_case(db: &Db, config: &Config, case_id: &str) -> Result<JobRow, CliError> {
    let mut conn = db.conn()?;
    let job = jobs::enqueue(
        &mut conn,
        ANALYSE_CASE,
        &json!({ "case_id": case_id }).to_string(),
        config.evidence.job_max_attempts as i32,
    )?;
    audit::append(
        &mut conn,
        Some(case_id),
        "system",
        "job_queued",
        &json!({ "job_id": job.id }).to_string(),
    )?;
    Ok(job)
}

pub struct Worker {
    config: Config,
    db: Db,
    secrets: Secrets,
    /// This worker's name in job leases: unique per process and thread.
    pub owner: String,
}

impl Worker {
    pub fn new(config: Config, db: Db, secrets: Secrets, index: usize) -> Worker {
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
            owner,
        }
    }

    fn lease(&self) -> Span {
        Span::seconds(self.config.evidence.job_lease_seconds as i64)
    }

    /// Runs jobs until `stop` is set (checked between jobs and while idle).
    pub fn run_until(&self, stop: &AtomicBool) {
        tracing::info!(worker = %self.owner, "analysis worker started");
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
    pub fn run_one(&self) -> Result<bool, CliError> {
        let Some(job) = jobs::claim(&mut *self.db.conn()?, &self.owner, self.lease())? else {
            return Ok(false);
        };
        tracing::info!(worker = %self.owner, job = %job.id, attempt = job.attempts, "job claimed");
        let outcome = self.run_job(&job);
        let mut conn = self.db.conn()?;
        let (status, reason) = match outcome {
            Ok(()) => {
                let held = jobs::succeed(&mut conn, &job.id, &self.owner)?;
                (held.then_some(jobs::SUCCEEDED), None)
            }
            Err((reason, failure)) => {
                tracing::warn!(job = %job.id, %reason, "job attempt failed");
                let status = jobs::fail(&mut conn, &job.id, &self.owner, &reason, failure)?;
                if let (Some(jobs::QUEUED), Some(case_id)) = (status, case_of(&job)) {
                    // Back to the queue: the case waits for the next attempt.
                    cases::set_progress(&mut conn, &case_id, "queued", 0.0)?;
                }
                (status, Some(reason))
            }
        };
        // The end of the attempt, unless the job was no longer this worker's to end.
        if let Some(status) = status {
            let detail = json!({
                "job_id": job.id, "attempt": job.attempts, "worker": self.owner,
                "status": status, "reason": reason,
            });
            audit::append(
                &mut conn,
                case_of(&job).as_deref(),
                "system",
                "job_ended",
                &detail.to_string(),
            )?;
        }
        Ok(true)
    }

    fn run_job(&self, job: &JobRow) -> Result<(), (String, Failure)> {
        match job.kind.as_str() {
            ANALYSE_CASE => self.run_analysis(job),
            packaging::PACKAGE_TITLE => self.run_with_progress(job, |w, report| {
                packaging::run_job(&w.config, &w.db, &w.secrets, job, report)
            }),
            packaging::BUILD_REFERENCE => self.run_with_progress(job, |w, report| {
                packaging::run_reference_job(&w.config, &w.db, job, report)
            }),
            other => Err((format!("unknown job kind {other}"), Failure::Permanent)),
        }
    }

    /// How a failed attempt ends: input errors are permanent, the rest retried with backoff.
    fn failure(job: &JobRow, e: CliError) -> (String, Failure) {
        match e {
            e @ CliError::Input(_) => (e.to_string(), Failure::Permanent),
            e => Self::retry(job, e),
        }
    }

    /// A failed attempt to be retried after a backoff doubling with each attempt.
    fn retry(job: &JobRow, reason: impl std::fmt::Display) -> (String, Failure) {
        let exponent = (job.attempts - 1).clamp(0, 10) as u32;
        let retry_after = Span::seconds(FIRST_BACKOFF_SECONDS << exponent);
        (reason.to_string(), Failure::Transient { retry_after })
    }

    /// Runs `work` (a job without a case) with a heartbeat copying its progress to the job.
    fn run_with_progress(
        &self,
        job: &JobRow,
        work: impl FnOnce(&Worker, &dyn Fn(f64)) -> Result<(), CliError>,
    ) -> Result<(), (String, Failure)> {
        let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| self.heartbeat(job, None, &progress, &done));
            let report = |p: f64| progress.store(p.to_bits(), Ordering::Relaxed);
            let result = work(self, &report);
            done.store(true, Ordering::Relaxed);
            result
        });
        result.map_err(|e| Self::failure(job, e))
    }

    fn run_analysis(&self, job: &JobRow) -> Result<(), (String, Failure)> {
        let permanent = |reason: String| (reason, Failure::Permanent);
        let case_id = case_of(job).ok_or_else(|| permanent("payload without case_id".into()))?;
        // Any database error while the case is being opened is worth another attempt (a
        // conflict here is a race with another writer, not bad input).
        let transient = |e: shared::db::DbError| Self::retry(job, e);
        let case = {
            let mut conn = self.db.conn().map_err(transient)?;
            let case = cases::get(&mut conn, &case_id).map_err(|e| match e {
                shared::db::DbError::NotFound(_) => permanent(format!("case {case_id} is gone")),
                other => transient(other),
            })?;
            if matches!(case.status.as_str(), "done" | "failed") {
                // Finished by an earlier attempt whose worker died before ending the job.
                return Ok(());
            }
            // Audited before the case shows as running: whoever sees it running finds the
            // entry of the attempt.
            let detail = json!({"job_id": job.id, "attempt": job.attempts, "worker": self.owner});
            audit::append(
                &mut conn,
                Some(&case.id),
                "system",
                "job_started",
                &detail.to_string(),
            )
            .map_err(transient)?;
            cases::set_progress(&mut conn, &case.id, "running", 0.0).map_err(transient)?;
            case
        };
        let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| self.heartbeat(job, Some(&case.id), &progress, &done));
            let report = |p: f64| progress.store(p.to_bits(), Ordering::Relaxed);
            let result = analysis::run_case(
                &self.config,
                &self.db,
                &self.secrets,
                &case,
                &format!("worker:{}", self.owner),
                &report,
            );
            done.store(true, Ordering::Relaxed);
            result
        });
        result.map(|_| ()).map_err(|e| Self::failure(job, e))
    }

    /// Renews the lease and copies progress (to the job, and to its case if it has one) until
    /// `done`, at a third of the lease period.
    fn heartbeat(
        &self,
        job: &JobRow,
        case_id: Option<&str>,
        progress: &AtomicU64,
        done: &AtomicBool,
    ) {
        let period = Duration::from_secs(self.config.evidence.job_lease_seconds.max(1)) / 3;
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
                let held = jobs::progress(&mut c, &job.id, &self.owner, p, self.lease()).ok()?;
                if let Some(case_id) = case_id {
                    let _ = cases::set_progress(&mut c, case_id, "running", p);
                }
                Some(held)
            });
            if renewed == Some(false) {
                tracing::warn!(job = %job.id, "lease lost: another worker has taken the job over");
            }
        }
    }
}

fn case_of(job: &JobRow) -> Option<String> {
    job.payload_str("case_id")
}

/// Starts `count` workers on their own threads; they stop when `stop` is set.
pub fn spawn_workers(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    count: u32,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    if count > 0 && config.analysis.reference_store {
        match packaging::queue_missing_reference_stores(db, config) {
            Ok(0) => {}
            Ok(n) => tracing::info!(titles = n, "reference stores queued for titles without one"),
            Err(e) => tracing::warn!(error = %e, "cannot queue the missing reference stores"),
        }
    }
    (0..count as usize)
        .map(|i| {
            let worker = Worker::new(config.clone(), db.clone(), secrets.clone(), i);
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("analysis-worker-{i}"))
                .spawn(move || worker.run_until(&stop))
        })
        .filter_map(|spawned| match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "cannot start an analysis worker");
                None
            }
        })
        .collect()
}
