use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Errors of the storage layer. `code()` is the stable snake_case identifier used in API
/// error bodies and logs; messages never contain a database password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("malformed database URL: {0}")]
    MalformedUrl(String),
    #[error("unsupported database URL scheme '{0}': use postgres://... for PostgreSQL or a file path (or sqlite://path) for SQLite")]
    UnsupportedScheme(String),
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("cannot migrate {target}: {reason}")]
    Migration { target: String, reason: String },
    #[error("database connection pool: {0}")]
    Pool(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    #[error("database task failed: {0}")]
    Task(String),
    #[error("cannot encode {0} for storage")]
    Encode(String),
}

impl DbError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DbError::MalformedUrl(_) | DbError::UnsupportedScheme(_) => "database_url_invalid",
            DbError::Connect { .. } => "database_unreachable",
            DbError::Migration { .. } => "database_migration_failed",
            DbError::Pool(_) => "database_unavailable",
            DbError::Encode(_) => "database_encode_failed",
            DbError::NotFound(_) => "not_found",
            DbError::Conflict(_) => "conflict",
            DbError::Query(_) | DbError::Task(_) => "database_error",
        }
    }

    /// Maps a unique-constraint violation to `Conflict(message)`, anything else to `Query`.
    pub fn on_unique(err: DieselError, message: impl FnOnce() -> String) -> DbError {
        match err {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                DbError::Conflict(message())
            }
            other => DbError::Query(other),
        }
    }
}
