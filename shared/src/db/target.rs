//! Which database a URL names, and how to describe it without its password.

use std::path::{Path, PathBuf};

use formats::layout::DataLayout;

use super::DbError;

/// The two supported backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A parsed database location.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        /// The URL handed to libpq (with a connect timeout added when none was given).
        url: String,
        host: String,
        port: u16,
        database: String,
        user: String,
        password: Option<String>,
    },
}

/// Seconds libpq waits for a server before giving up, unless the URL sets `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT_SECS: u32 = 5;

impl DatabaseTarget {
    /// The SQLite database inside the data dir: the zero set-up default.
    pub fn default_sqlite(data_dir: &Path) -> Self {
        DatabaseTarget::Sqlite {
            path: DataLayout::new(data_dir).sqlite_database(),
        }
    }

    /// Parses `postgres://` / `postgresql://` URLs, `sqlite://PATH`, `sqlite:PATH` or a plain
    /// file path (SQLite).
    pub fn parse(raw: &str) -> Result<Self, DbError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(DbError::MalformedUrl("the URL is empty".into()));
        }
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(DbError::MalformedUrl(
                    "sqlite URL without a file path".into(),
                ));
            }
            return Ok(DatabaseTarget::Sqlite { path: rest.into() });
        }
        match raw.split_once("://") {
            None => Ok(DatabaseTarget::Sqlite { path: raw.into() }),
            Some((scheme, _)) if scheme == "postgres" || scheme == "postgresql" => {
                Self::parse_postgres(raw)
            }
            Some((scheme, _)) => Err(DbError::UnsupportedScheme(scheme.to_string())),
        }
    }

    fn parse_postgres(raw: &str) -> Result<Self, DbError> {
        // Never echo the URL itself: it may hold a password.
        let mut url = url::Url::parse(raw)
            .map_err(|e| DbError::MalformedUrl(format!("not a valid postgres:// URL ({e})")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| DbError::MalformedUrl("postgres URL without a host".into()))?
            .to_string();
        let database = url.path().trim_start_matches('/').to_string();
        if database.is_empty() || database.contains('/') {
            return Err(DbError::MalformedUrl(format!(
                "postgres URL for host {host} does not name one database (postgres://user:password@host:port/DATABASE)"
            )));
        }
        let port = url.port().unwrap_or(5432);
        let user = if url.username().is_empty() {
            "postgres".to_string()
        } else {
            url.username().to_string()
        };
        let password = url.password().map(str::to_string);
        if !url.query_pairs().any(|(k, _)| k == "connect_timeout") {
            url.query_pairs_mut()
                .append_pair("connect_timeout", &DEFAULT_CONNECT_TIMEOUT_SECS.to_string());
        }
        Ok(DatabaseTarget::Postgres {
            url: url.into(),
            host,
            port,
            database,
            user,
            password,
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseTarget::Sqlite { .. } => Backend::Sqlite,
            DatabaseTarget::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A human description that names host and database but never the password.
    pub fn describe(&self) -> String {
        match self {
            DatabaseTarget::Sqlite { path } => format!("SQLite database {}", path.display()),
            DatabaseTarget::Postgres {
                host,
                port,
                database,
                user,
                ..
            } => format!("PostgreSQL database '{database}' on {host}:{port} (user '{user}')"),
        }
    }

    /// The URL with any password replaced, for display.
    pub fn redacted_url(&self) -> String {
        match self {
            DatabaseTarget::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseTarget::Postgres { url, password, .. } => match url::Url::parse(url) {
                Ok(mut u) if password.is_some() => {
                    // set_password only fails for URLs that cannot have one; ours can.
                    let _ = u.set_password(Some("REDACTED"));
                    u.into()
                }
                _ => url.clone(),
            },
        }
    }

    /// Removes the password from a message produced by a driver, in case it echoed it.
    pub fn scrub(&self, message: &str) -> String {
        match self {
            DatabaseTarget::Postgres {
                password: Some(p), ..
            } if !p.is_empty() => message.replace(p.as_str(), "REDACTED"),
            _ => message.to_string(),
        }
    }
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_sqlite_urls_select_sqlite() {
        for raw in [
            "data/x.db",
            "/tmp/x.db",
            "sqlite://data/x.db",
            "sqlite:data/x.db",
        ] {
            let t = DatabaseTarget::parse(raw).expect(raw);
            assert_eq!(t.backend(), Backend::Sqlite, "{raw}");
        }
        assert!(matches!(
            DatabaseTarget::parse("sqlite://"),
            Err(DbError::MalformedUrl(_))
        ));
    }

    #[test]
    fn postgres_url_is_parsed_and_redacted() {
        let t = DatabaseTarget::parse("postgres://alice:s3cret@db.example:6543/leak").unwrap();
        let DatabaseTarget::Postgres {
            host,
            port,
            database,
            user,
            url,
            ..
        } = &t
        else {
            panic!("expected postgres")
        };
        assert_eq!(
            (host.as_str(), *port, database.as_str()),
            ("db.example", 6543, "leak")
        );
        assert_eq!(user, "alice");
        assert!(url.contains("connect_timeout=5"));
        let d = t.describe();
        assert!(d.contains("db.example:6543") && d.contains("'leak'"), "{d}");
        assert!(!d.contains("s3cret") && !t.redacted_url().contains("s3cret"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.scrub("bad password s3cret"), "bad password REDACTED");
    }

    #[test]
    fn explicit_connect_timeout_is_kept() {
        let t = DatabaseTarget::parse("postgresql://h/db?connect_timeout=9").unwrap();
        let DatabaseTarget::Postgres { url, port, .. } = t else {
            panic!()
        };
        assert!(url.ends_with("connect_timeout=9") && !url.contains("=5"));
        assert_eq!(port, 5432);
    }

    #[test]
    fn malformed_urls_are_rejected_without_echoing_secrets() {
        for raw in [
            "",
            "postgres://u:topsecret@/db",
            "postgres://u:topsecret@host",
            "postgres://u:topsecret@host/a/b",
            "postgres://u:topsecret@host:notaport/db",
        ] {
            let err = DatabaseTarget::parse(raw).expect_err(raw);
            assert!(matches!(err, DbError::MalformedUrl(_)), "{raw}: {err}");
            assert!(!err.to_string().contains("topsecret"), "{err}");
        }
        let err = DatabaseTarget::parse("mysql://u:p@h/db").unwrap_err();
        assert!(matches!(err, DbError::UnsupportedScheme(ref s) if s == "mysql"));
    }
}
