//! Repository functions: the only place that writes SQL (through diesel's query builder).
//! Every function takes a `&mut DbConnection` and runs unchanged on SQLite and PostgreSQL.

pub mod api_keys;
pub mod audit;
pub mod callbacks;
pub mod cases;
pub mod devices;
pub mod evidence_reports;
pub mod jobs;
pub mod refreshed_tokens;
pub mod report_pki;
pub mod revoked_tokens;
pub mod security_events;
pub mod sessions;
pub mod users;
pub mod videos;
