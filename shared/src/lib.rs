//! `shared`: what both sides of leaktrace need: configuration, domain types and validation,
//! the database (schema, pool, migrations, repositories), credentials and server secrets.

pub mod auth;
pub mod config;
pub mod datadir;
pub mod db;
pub mod domain;
pub mod metrics;
pub mod secrets;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
