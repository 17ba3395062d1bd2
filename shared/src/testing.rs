//! Test support (feature `test-support`): a throwaway database per test.
//!
//! The backend comes from `LEAKTRACE_TEST_BACKEND` (`sqlite`, the default, or `postgres`).
//! For PostgreSQL, `LEAKTRACE_TEST_PG_URL` names a server where the tests may create and drop
//! databases (the test script starts one); each test gets its own database, dropped at the end.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use crate::db::{Backend, DatabaseTarget, Db};

pub struct TestDatabase {
    /// The URL to hand to the code under test (`--database-url`).
    pub url: String,
    pub target: DatabaseTarget,
    pg_admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

/// The backend the test run asked for.
pub fn requested_backend() -> Backend {
    match std::env::var("LEAKTRACE_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("LEAKTRACE_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

impl TestDatabase {
    /// A fresh, empty (unmigrated) database on the requested backend.
    pub fn new() -> Self {
        match requested_backend() {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => {
                let admin = std::env::var("LEAKTRACE_TEST_PG_URL").expect(
                    "LEAKTRACE_TEST_BACKEND=postgres needs LEAKTRACE_TEST_PG_URL (scripts/test.sh sets both)",
                );
                Self::postgres(&admin)
            }
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.db");
        let url = path.to_str().expect("utf-8 temp path").to_string();
        TestDatabase {
            target: DatabaseTarget::parse(&url).expect("sqlite target"),
            url,
            pg_admin: None,
            _dir: Some(dir),
        }
    }

    pub fn postgres(admin_url: &str) -> Self {
        let name = format!("lt_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(admin_url).expect("connect to the test PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let mut url = url::Url::parse(admin_url).expect("admin URL");
        url.set_path(&format!("/{name}"));
        let url: String = url.into();
        TestDatabase {
            target: DatabaseTarget::parse(&url).expect("postgres target"),
            url,
            pg_admin: Some((admin_url.to_string(), name)),
            _dir: None,
        }
    }

    /// Opens and migrates the database.
    pub fn open(&self) -> Db {
        let db = Db::open(&self.target).expect("open test database");
        db.migrate().expect("migrate test database");
        db
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.pg_admin {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// Moves every security event of `kind` `days` into the past (retention tests).
pub fn age_security_events(
    conn: &mut crate::db::DbConnection,
    kind: &str,
    days: i64,
) -> Result<usize, crate::db::DbError> {
    use crate::db::schema::security_events::dsl;
    use diesel::prelude::*;
    let then = crate::db::now() - chrono::Duration::days(days);
    Ok(
        diesel::update(dsl::security_events.filter(dsl::kind.eq(kind)))
            .set(dsl::created_at.eq(then))
            .execute(conn)?,
    )
}
