//! The job queue: durable work items that any number of workers, in any number of processes
//! and machines sharing the database, take one at a time.
//!
//! A worker *claims* a job by taking a lease (owner + expiry) on it; while it works it
//! renews the lease (heartbeat) and reports progress; it ends the job as succeeded, or as
//! failed: a transient failure goes back to the queue after a backoff until the job's
//! attempts are spent, a permanent one ends it at once. A job whose lease expired (its worker
//! crashed or lost the database) is claimable again. On PostgreSQL claiming is
//! `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for each other and
//! never take the same job; on SQLite the claim runs in an immediate (write-locked)
//! transaction.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::jobs;
use crate::db::{new_id, now, DbConnection, DbError};

formats::named_enum! {
    /// Where a job is.
    pub enum JobStatus {
        /// Waiting for a worker (new, or back after a transient failure).
        Queued = "queued",
        /// Held by a worker's lease.
        Running = "running",
        Succeeded = "succeeded",
        /// Failed for good (a permanent failure, or the attempts spent).
        Failed = "failed",
    }
}

formats::named_enum! {
    /// What a job does; each kind has its payload and its runner (`src/jobs/` of the binary).
    pub enum JobKind {
        /// Analyse a case's suspect file.
        AnalyseCase = "analyse_case",
        /// Package a source file as a title.
        PackageTitle = "package_title",
        /// Build a packaged title's reference store.
        BuildReferenceStore = "build_reference_store",
        /// POST a finished case's verdict to its crawler's callback URL.
        DeliverCallback = "deliver_callback",
    }
}

/// The stored names of every kind this build runs: a worker claims no other (a newer
/// deployment's kind waits for a worker that knows it).
fn known_kinds() -> Vec<&'static str> {
    JobKind::ALL.iter().map(|k| k.as_str()).collect()
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    pub id: String,
    #[diesel(deserialize_as = String)]
    pub kind: JobKind,
    pub payload: String,
    #[diesel(deserialize_as = String)]
    pub status: JobStatus,
    pub progress: f64,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = jobs)]
struct NewJob<'a> {
    id: &'a str,
    kind: &'a str,
    payload: &'a str,
    status: &'a str,
    progress: f64,
    attempts: i32,
    max_attempts: i32,
    run_after: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Queues a job of `kind` with its JSON `payload`, to run at most `max_attempts` times.
pub fn enqueue(
    conn: &mut DbConnection,
    kind: JobKind,
    payload: &str,
    max_attempts: i32,
) -> Result<JobRow, DbError> {
    let id = new_id();
    let t = now();
    diesel::insert_into(jobs::table)
        .values(NewJob {
            id: &id,
            kind: kind.as_str(),
            payload,
            status: JobStatus::Queued.as_str(),
            progress: 0.0,
            attempts: 0,
            max_attempts: max_attempts.max(1),
            run_after: t,
            created_at: t,
            updated_at: t,
        })
        .execute(conn)?;
    get(conn, &id)
}

/// The newest jobs of `kind` first, at most `limit`.
pub fn recent(conn: &mut DbConnection, kind: JobKind, limit: i64) -> Result<Vec<JobRow>, DbError> {
    Ok(jobs::table
        .filter(jobs::kind.eq(kind.as_str()))
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .limit(limit)
        .select(JobRow::as_select())
        .load(conn)?)
}

/// The jobs of `kind` not finished yet (queued, including those waiting to be retried, or
/// running), oldest first.
pub fn pending(conn: &mut DbConnection, kind: JobKind) -> Result<Vec<JobRow>, DbError> {
    let unfinished = [JobStatus::Queued.as_str(), JobStatus::Running.as_str()];
    Ok(jobs::table
        .filter(jobs::kind.eq(kind.as_str()))
        .filter(jobs::status.eq_any(unfinished))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(JobRow::as_select())
        .load(conn)?)
}

/// Every job not finished yet (queued or running), of any kind, oldest first.
pub fn active(conn: &mut DbConnection) -> Result<Vec<JobRow>, DbError> {
    let unfinished = [JobStatus::Queued.as_str(), JobStatus::Running.as_str()];
    Ok(jobs::table
        .filter(jobs::status.eq_any(unfinished))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(JobRow::as_select())
        .load(conn)?)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<JobRow, DbError> {
    jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DbError::NotFound("job"))
}

/// The filter of claimable jobs at time `t`: of a kind this build knows, and queued and due,
/// or running with an expired lease (its worker is gone).
macro_rules! claimable {
    ($t:expr) => {
        jobs::kind.eq_any(known_kinds()).and(
            jobs::status
                .eq(JobStatus::Queued.as_str())
                .and(jobs::run_after.le($t))
                .or(jobs::status
                    .eq(JobStatus::Running.as_str())
                    .and(jobs::lease_expires_at.lt($t))),
        )
    };
}

/// Takes job `$id` (if any) for `$owner` on the concrete connection `$c`, inside the claim's
/// transaction.
macro_rules! take {
    ($c:expr, $id:expr, $owner:expr, $until:expr, $t:expr) => {{
        match $id {
            None => Ok(None),
            Some(id) => {
                diesel::update(jobs::table.find(&id))
                    .set((
                        jobs::status.eq(JobStatus::Running.as_str()),
                        jobs::lease_owner.eq(Some($owner)),
                        jobs::lease_expires_at.eq(Some($until)),
                        jobs::attempts.eq(jobs::attempts + 1),
                        jobs::updated_at.eq($t),
                    ))
                    .execute($c)?;
                jobs::table
                    .find(&id)
                    .select(JobRow::as_select())
                    .first($c)
                    .map(Some)
            }
        }
    }};
}

/// Takes the oldest claimable job for `owner` with a lease of `lease`; `None` when there is
/// nothing to do. The claim counts as an attempt.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    lease: Duration,
) -> Result<Option<JobRow>, DbError> {
    let t = now();
    let until = t + lease;
    let claimed = match conn {
        DbConnection::Postgresql(pg) => pg.transaction(|pg| {
            let id: Option<String> = jobs::table
                .filter(claimable!(t))
                .order((jobs::run_after.asc(), jobs::created_at.asc()))
                .select(jobs::id)
                .for_update()
                .skip_locked()
                .first(pg)
                .optional()?;
            take!(pg, id, owner, until, t)
        }),
        DbConnection::Sqlite(lite) => lite.immediate_transaction(|lite| {
            let id: Option<String> = jobs::table
                .filter(claimable!(t))
                .order((jobs::run_after.asc(), jobs::created_at.asc()))
                .select(jobs::id)
                .first(lite)
                .optional()?;
            take!(lite, id, owner, until, t)
        }),
    };
    Ok(claimed?)
}

/// The lease of `owner` on a running job, as a filter: only the job's current holder may
/// touch it (a worker whose lease expired and was taken over has lost the job).
macro_rules! held_by {
    ($id:expr, $owner:expr) => {
        jobs::table
            .find($id)
            .filter(jobs::status.eq(JobStatus::Running.as_str()))
            .filter(jobs::lease_owner.eq($owner))
    };
}

/// Renews `owner`'s lease; `false` when the job is no longer held by `owner`.
pub fn heartbeat(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    lease: Duration,
) -> Result<bool, DbError> {
    let t = now();
    let n = diesel::update(held_by!(id, owner))
        .set((
            jobs::lease_expires_at.eq(Some(t + lease)),
            jobs::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Records progress (0..1) and renews the lease; `false` when the job is no longer held.
pub fn progress(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    progress: f64,
    lease: Duration,
) -> Result<bool, DbError> {
    let t = now();
    let n = diesel::update(held_by!(id, owner))
        .set((
            jobs::progress.eq(progress.clamp(0.0, 1.0)),
            jobs::lease_expires_at.eq(Some(t + lease)),
            jobs::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Ends a held job as succeeded; `false` when it was no longer held.
pub fn succeed(conn: &mut DbConnection, id: &str, owner: &str) -> Result<bool, DbError> {
    let n = diesel::update(held_by!(id, owner))
        .set((
            jobs::status.eq(JobStatus::Succeeded.as_str()),
            jobs::progress.eq(1.0),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_expires_at.eq(None::<NaiveDateTime>),
            jobs::last_error.eq(None::<String>),
            jobs::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Hands a held job back to the queue, runnable at once, without counting the attempt: its
/// worker is stopping (graceful shutdown), and the job has not failed. `false` when it was no
/// longer held.
pub fn release(conn: &mut DbConnection, id: &str, owner: &str) -> Result<bool, DbError> {
    let t = now();
    let n = diesel::update(held_by!(id, owner))
        .set((
            jobs::status.eq(JobStatus::Queued.as_str()),
            jobs::attempts.eq(jobs::attempts - 1),
            jobs::progress.eq(0.0),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_expires_at.eq(None::<NaiveDateTime>),
            jobs::run_after.eq(t),
            jobs::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// How a failed attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt (after `retry_after`) while attempts remain.
    Transient { retry_after: Duration },
    /// Another attempt would fail the same way.
    Permanent,
}

/// Ends a held job's attempt with `error`. Returns the job's new status (`queued` again or
/// `failed`), `None` when it was no longer held.
pub fn fail(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    error: &str,
    failure: Failure,
) -> Result<Option<JobStatus>, DbError> {
    conn.transaction(|c| {
        let Some(job) = held_by!(id, owner)
            .select(JobRow::as_select())
            .first(c)
            .optional()?
        else {
            return Ok(None);
        };
        let t = now();
        let retry = match failure {
            Failure::Transient { retry_after } if job.attempts < job.max_attempts => {
                Some(t + retry_after)
            }
            _ => None,
        };
        let status = if retry.is_some() {
            JobStatus::Queued
        } else {
            JobStatus::Failed
        };
        diesel::update(jobs::table.find(id))
            .set((
                jobs::status.eq(status.as_str()),
                jobs::run_after.eq(retry.unwrap_or(job.run_after)),
                jobs::lease_owner.eq(None::<String>),
                jobs::lease_expires_at.eq(None::<NaiveDateTime>),
                jobs::last_error.eq(Some(error)),
                jobs::updated_at.eq(t),
            ))
            .execute(c)?;
        Ok(Some(status))
    })
}

/// Jobs of `kind` by status, for monitoring and tests.
pub fn count_by_status(
    conn: &mut DbConnection,
    kind: JobKind,
    status: JobStatus,
) -> Result<i64, DbError> {
    Ok(jobs::table
        .filter(jobs::kind.eq(kind.as_str()))
        .filter(jobs::status.eq(status.as_str()))
        .count()
        .get_result(conn)?)
}

/// The queue by kind and status: how many jobs, their attempts so far, and the oldest one's
/// creation time (the job-queue gauges).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub kind: String,
    pub status: String,
    pub jobs: i64,
    pub attempts: i64,
    pub oldest: Option<NaiveDateTime>,
}

/// kind, status, jobs, sum of attempts, oldest creation.
type QueueTuple = (String, String, i64, Option<i64>, Option<NaiveDateTime>);

pub fn queue_summary(conn: &mut DbConnection) -> Result<Vec<QueueRow>, DbError> {
    use diesel::dsl::{count_star, min, sum};
    let rows: Vec<QueueTuple> = jobs::table
        .group_by((jobs::kind, jobs::status))
        .select((
            jobs::kind,
            jobs::status,
            count_star(),
            sum(jobs::attempts),
            min(jobs::created_at),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(kind, status, jobs, attempts, oldest)| QueueRow {
            kind,
            status,
            jobs,
            attempts: attempts.unwrap_or(0),
            oldest,
        })
        .collect())
}
