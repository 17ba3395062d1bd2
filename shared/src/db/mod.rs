//! Storage: one diesel schema over SQLite (embedded default) and PostgreSQL (production),
//! an r2d2 pool, embedded migrations per backend, and repository functions in [`repo`].

mod error;
pub mod names;
pub mod repo;
pub mod reservations;
pub mod schema;
mod target;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use error::DbError;
pub use target::{Backend, DatabaseTarget};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Key of the PostgreSQL advisory lock that serialises migrations between processes.
const MIGRATION_LOCK_KEY: i64 = 0x6c65_616b_7472_6163; // "leaktrac"

/// SQLite settings for a server: WAL for concurrent readers, a busy timeout instead of
/// immediate "database is locked" errors, enforced foreign keys. The busy timeout comes
/// first: switching to WAL takes a lock, and without the timeout a connection opened while
/// another process writes failed at once (seen as "database is locked" under load).
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// A connection to either backend. Queries written against [`schema`] run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Opens one connection to `target`, choosing the driver by the target itself (never by
/// trial), and maps driver failures to an error that names host and database only.
pub fn establish(target: &DatabaseTarget) -> Result<DbConnection, DbError> {
    let connect_err = |e: diesel::ConnectionError| DbError::Connect {
        target: target.describe(),
        reason: target.scrub(e.to_string().trim()),
    };
    match target {
        DatabaseTarget::Sqlite { path } => {
            let path_str = path.to_str().ok_or_else(|| {
                DbError::MalformedUrl(format!("SQLite path {} is not UTF-8", path.display()))
            })?;
            let mut conn = SqliteConnection::establish(path_str).map_err(connect_err)?;
            conn.batch_execute(SQLITE_PRAGMAS)
                .map_err(|e| DbError::Connect {
                    target: target.describe(),
                    reason: e.to_string(),
                })?;
            Ok(DbConnection::Sqlite(conn))
        }
        DatabaseTarget::Postgres { url, .. } => {
            let conn = PgConnection::establish(url).map_err(connect_err)?;
            Ok(DbConnection::Postgresql(conn))
        }
    }
}

/// r2d2 manager that opens connections with [`establish`].
pub struct ConnectionManager {
    target: DatabaseTarget,
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        establish(&self.target)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::Query)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

pub type PooledDb = PooledConnection<ConnectionManager>;

/// The database handle every part of leaktrace receives: a pool plus what it points at.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager>,
    target: DatabaseTarget,
    waits: PoolWaits,
    writer: reservations::WriterCounts,
}

/// How long callers waited for a pooled connection and how often they gave up (the pool's
/// timeout): what `/metrics` shows of the pool besides its size. Shared by every clone of a
/// [`Db`].
#[derive(Clone, Debug)]
pub struct PoolWaits {
    /// Seconds from asking for a connection to holding one (or giving up).
    pub seconds: prometheus_client::metrics::histogram::Histogram,
    pub timeouts: prometheus_client::metrics::counter::Counter,
}

impl Default for PoolWaits {
    fn default() -> Self {
        PoolWaits {
            // 10 us to about 21 s: an idle connection is handed over in microseconds, a pool
            // under pressure waits up to its 15 s timeout.
            seconds: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1e-5, 4.0, 11),
            ),
            timeouts: Default::default(),
        }
    }
}

impl PoolWaits {
    fn checkout(
        &self,
        pool: &Pool<ConnectionManager>,
    ) -> Result<PooledConnection<ConnectionManager>, DbError> {
        let asked = Instant::now();
        let got = pool.get();
        self.seconds.observe(asked.elapsed().as_secs_f64());
        got.map_err(|e| {
            self.timeouts.inc();
            DbError::Pool(e.to_string())
        })
    }
}

/// The pool's connections now: open, and idle among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolState {
    pub connections: u32,
    pub idle: u32,
    pub max_size: u32,
}

impl Db {
    /// Connects (once directly, so that a bad URL or an unreachable server gives its real
    /// reason) and builds the pool. Does not migrate: call [`Db::migrate`].
    pub fn open(target: &DatabaseTarget) -> Result<Db, DbError> {
        if let DatabaseTarget::Sqlite { path } = target {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| DbError::Connect {
                    target: target.describe(),
                    reason: format!("cannot create folder {}: {e}", parent.display()),
                })?;
            }
        }
        let first = establish(target)?;
        let max_size = match target.backend() {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(15))
            .build_unchecked(ConnectionManager {
                target: target.clone(),
            });
        drop(first);
        Ok(Db {
            pool,
            target: target.clone(),
            waits: PoolWaits::default(),
            writer: Default::default(),
        })
    }

    pub fn target(&self) -> &DatabaseTarget {
        &self.target
    }

    pub fn backend(&self) -> Backend {
        self.target.backend()
    }

    /// A pooled connection, for blocking code (CLI commands, jobs).
    pub fn conn(&self) -> Result<PooledDb, DbError> {
        self.waits.checkout(&self.pool)
    }

    /// The waits for pooled connections (shared by every clone of this handle).
    pub fn pool_waits(&self) -> &PoolWaits {
        &self.waits
    }

    /// What the unit-reservation writer on this handle did (shared by every clone).
    pub fn writer_counts(&self) -> &reservations::WriterCounts {
        &self.writer
    }

    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            max_size: self.pool.max_size(),
        }
    }

    /// Runs blocking database work off the async executor.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        let (pool, waits) = (self.pool.clone(), self.waits.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = waits.checkout(&pool)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Applies pending migrations; returns the versions applied now (empty when current).
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.conn()?;
        migrate_connection(&mut conn, &self.target)
    }

    /// Round trip to the database, for health checks.
    pub fn ping(&self) -> Result<Duration, DbError> {
        let started = Instant::now();
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1")?;
        Ok(started.elapsed())
    }
}

fn migrate_connection(
    conn: &mut DbConnection,
    target: &DatabaseTarget,
) -> Result<Vec<String>, DbError> {
    let fail = |reason: String| DbError::Migration {
        target: target.describe(),
        reason,
    };
    let versions = |r: Result<Vec<diesel::migration::MigrationVersion<'_>>, _>| {
        r.map(|v| v.iter().map(|v| v.to_string()).collect::<Vec<_>>())
            .map_err(|e: Box<dyn std::error::Error + Send + Sync>| fail(e.to_string()))
    };
    match conn {
        DbConnection::Sqlite(c) => versions(c.run_pending_migrations(SQLITE_MIGRATIONS)),
        DbConnection::Postgresql(c) => {
            // Several servers may start at once against one PostgreSQL: one migrates at a time.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = versions(c.run_pending_migrations(POSTGRES_MIGRATIONS));
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            result
        }
    }
}

/// Current time as stored: UTC, microsecond precision (what PostgreSQL keeps).
/// Runs `work` in a transaction serialised with every other holder of `pg_lock_key`: a
/// transaction-scoped advisory lock on PostgreSQL, an immediate transaction (the write lock
/// taken first) on SQLite. On failure, including a failed COMMIT, the transaction is rolled
/// back before the connection returns to the pool.
pub fn serialised<T>(
    conn: &mut DbConnection,
    pg_lock_key: i64,
    work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    serialised_all(conn, &[pg_lock_key], work)
}

/// [`serialised`] with every holder of any of `pg_lock_keys` (taken in the order given: keep
/// one order everywhere).
pub fn serialised_all<T>(
    conn: &mut DbConnection,
    pg_lock_keys: &[i64],
    work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    match conn {
        DbConnection::Postgresql(_) => conn.transaction(|c| {
            for key in pg_lock_keys {
                c.batch_execute(&format!("SELECT pg_advisory_xact_lock({key})"))?;
            }
            work(c)
        }),
        DbConnection::Sqlite(_) => {
            conn.batch_execute("BEGIN IMMEDIATE")?;
            let done = work(conn).and_then(|done| {
                conn.batch_execute("COMMIT")?;
                Ok(done)
            });
            if done.is_err() {
                let _ = conn.batch_execute("ROLLBACK");
            }
            done
        }
    }
}

pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// A fresh random identifier for a row.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
