//! The integration tests of the `leaktrace` binary, gathered in one test binary so that the
//! suite links FFmpeg, diesel and actix once instead of once per file. Each module is one
//! area; `common` holds the harness (a private data dir and database per test, the real
//! binary, a real server, media and browser helpers).

mod common;

mod abr;
mod admin;
mod browser;
mod callbacks;
mod cli;
mod crash;
mod evidence;
mod extract;
mod legal;
mod metrics;
mod nodes;
mod openapi;
mod package;
mod protocol;
mod roles;
mod serve;
mod shutdown;
mod storage;
mod stream_monitoring;
mod stream_session;
mod viewer_auth;
