//! The segment fast path's unit reservations ([`sessions::reserve_unit_for`]), committed in
//! groups on SQLite.
//!
//! SQLite lets one connection write at a time. Reservations run on the blocking pool, each on
//! its own pooled connection, wait for each other's write lock, and a waiter sleeps in
//! SQLite's busy handler (a millisecond or more) before it tries again; each one also commits
//! alone. Here one writer thread, on a connection of its own, takes every reservation that is
//! waiting when it is free (a round), runs each one's statement in turn in one transaction
//! and commits once, then answers each. The statement is the same and sees the database as
//! the ones before it in the round left it, so each reservation is decided exactly as it would
//! have been alone at that moment (a revocation committed before the round is seen by all of
//! it); no answer is given before the commit.
//!
//! - A round that fails (on SQLite that is the database's failure, not one claim's: a lock
//!   held past the busy timeout, a full disk) answers every claim in it with the error and is
//!   not run again; the writer's connection is closed (which rolls back whatever it held) and
//!   opened afresh for the next round. A panic in a round is caught and answered the same way.
//! - A claim whose request has gone (the client left, the server is stopping) is not run when
//!   its turn comes: nothing is counted for a unit nobody will receive.
//! - The queue is bounded ([`QUEUE`]); past it, a reservation runs on the pool as on
//!   PostgreSQL.
//! - Other writes (the full path's `sessions::reserve_unit`, activity, jobs) still take the
//!   write lock from the pool; a round waits for them like any writer.
//!
//! PostgreSQL locks rows, not the database: there reservations of different sessions do not
//! wait for each other, and they run in parallel on the pool.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;

use diesel::Connection;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;

use super::repo::sessions::{self, Holder};
use super::{establish, Backend, Db, DbConnection, DbError};

/// At most this many reservations share one transaction, so that none waits long behind a
/// round (the statement is a few tens of microseconds on SQLite).
pub const MAX_GROUP: usize = 64;

/// Reservations that may wait for the writer; past this, they run on the pool.
pub const QUEUE: usize = 4096;

/// What a reservation answers: the session's count after it, or `None` when refused.
pub type Answer = Result<Option<i64>, DbError>;

/// One unit asked for on the fast path: the session, who holds it, and the pace's limit
/// (the arguments of [`sessions::reserve_unit_for`], owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitClaim {
    pub session_id: String,
    pub user_id: String,
    pub device_id: String,
    pub device_key: String,
    pub allowed: i64,
}

impl UnitClaim {
    /// Runs the claim's statement on `conn`.
    pub fn reserve(&self, conn: &mut DbConnection) -> Answer {
        let holder = Holder {
            user_id: &self.user_id,
            device_id: &self.device_id,
            device_key: &self.device_key,
        };
        sessions::reserve_unit_for(conn, &self.session_id, &holder, self.allowed)
    }
}

/// A claim waiting for the writer, with where its answer goes.
struct Waiting {
    claim: UnitClaim,
    answer: oneshot::Sender<Answer>,
}

/// What the reservation writer of one database handle did (`/metrics`), shared by every clone
/// of a [`Db`]: its rounds, failed ones included, and the claims they took.
#[derive(Clone, Debug, Default)]
pub struct WriterCounts {
    pub rounds: Counter,
    pub claims: Counter,
}

/// Reserves units: through one writer thread in groups on SQLite, on the pool on PostgreSQL.
/// Dropped, it lets the writer answer what is queued and waits for it to end.
pub struct Reservations {
    db: Db,
    writer: Option<SyncSender<Waiting>>,
    thread: Option<JoinHandle<()>>,
}

impl Reservations {
    pub fn new(db: &Db) -> Reservations {
        let mut reservations = Reservations {
            db: db.clone(),
            writer: None,
            thread: None,
        };
        if db.backend() == Backend::Sqlite {
            let (send, waiting) = mpsc::sync_channel(QUEUE);
            let own = db.clone();
            let started = std::thread::Builder::new()
                .name("unit-reservations".into())
                .spawn(move || write(&own, &waiting));
            match started {
                Ok(thread) => {
                    reservations.writer = Some(send);
                    reservations.thread = Some(thread);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reservations: no writer thread, each reservation commits alone");
                }
            }
        }
        reservations
    }

    /// Whether reservations are committed in groups here.
    pub fn grouped(&self) -> bool {
        self.writer.is_some()
    }

    /// Reserves the unit `claim` asks for: the session's count after it, or `None` when the
    /// statement refused it.
    pub async fn reserve(&self, claim: UnitClaim) -> Answer {
        let claim = match &self.writer {
            Some(writer) => {
                let (answer, answered) = oneshot::channel();
                match writer.try_send(Waiting { claim, answer }) {
                    // Never run again on the pool once queued: the writer may have committed
                    // it before it stopped.
                    Ok(()) => {
                        return answered
                            .await
                            .map_err(|_| DbError::Task("the reservation writer stopped".into()))?;
                    }
                    Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => back.claim,
                }
            }
            None => claim,
        };
        self.db.run(move |c| claim.reserve(c)).await
    }
}

impl Drop for Reservations {
    fn drop(&mut self) {
        // The writer answers what is queued, then sees the queue closed and ends.
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("reservations: the writer thread panicked");
            }
        }
    }
}

/// The writer thread: rounds of whatever waits, until the queue is closed and empty.
fn write(db: &Db, waiting: &Receiver<Waiting>) {
    let mut conn = None;
    while let Ok(first) = waiting.recv() {
        let mut round = vec![first];
        while round.len() < MAX_GROUP {
            match waiting.try_recv() {
                Ok(next) => round.push(next),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let written = db.writer_counts();
        written.rounds.inc();
        written.claims.inc_by(round.len() as u64);
        let answers = run_round(db, &mut conn, &round);
        for (w, answer) in round.into_iter().zip(answers) {
            // A request that gave up waiting dropped its receiver: nothing to tell it.
            let _ = w.answer.send(answer);
        }
    }
}

/// One round on the writer's connection (opened when there is none): an answer per claim.
/// Any failure closes the connection.
fn run_round(db: &Db, conn: &mut Option<DbConnection>, round: &[Waiting]) -> Vec<Answer> {
    let failed = |why: &str| {
        round
            .iter()
            .map(|_| Err(DbError::Task(format!("unit reservation: {why}"))))
            .collect()
    };
    let c = match conn {
        Some(c) => c,
        None => match establish(db.target()) {
            Ok(c) => conn.insert(c),
            Err(e) => return failed(&e.to_string()),
        },
    };
    let ran = catch_unwind(AssertUnwindSafe(|| {
        commit_group(c, round, |c, w| {
            if w.answer.is_closed() {
                return Ok(None);
            }
            w.claim.reserve(c)
        })
    }));
    match ran {
        Ok(Ok(counts)) => counts.into_iter().map(Ok).collect(),
        Ok(Err(e)) => {
            *conn = None;
            tracing::warn!(error = %e, size = round.len(), "reservations: a round failed");
            failed(&e.to_string())
        }
        Err(_) => {
            *conn = None;
            tracing::error!(size = round.len(), "reservations: a round panicked");
            failed("the round panicked")
        }
    }
}

/// Runs `reserve` for each of `group` in one transaction (a group of one as its own
/// statement): a count or `None` per claim, in order, all committed; or the first error, with
/// nothing of the group committed.
pub fn commit_group<C, T>(
    conn: &mut C,
    group: &[T],
    mut reserve: impl FnMut(&mut C, &T) -> Answer,
) -> Result<Vec<Option<i64>>, DbError>
where
    C: Connection,
{
    let mut all = |c: &mut C| group.iter().map(|claim| reserve(c, claim)).collect();
    match group.len() {
        0 | 1 => all(conn),
        _ => conn.transaction::<_, DbError, _>(all),
    }
}
