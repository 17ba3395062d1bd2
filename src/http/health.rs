//! `GET /healthz` (liveness: the process answers) and `GET /readyz` (readiness: the database
//! answers a round trip and the storage holding titles is reachable), separate so that an
//! orchestrator restarts a process only when it is stuck, and routes traffic away from one
//! whose dependencies are down.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use shared::db::Backend;

use super::AppState;

#[derive(Serialize)]
struct Liveness {
    status: &'static str,
    version: &'static str,
    uptime_seconds: u64,
}

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Liveness {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}

#[derive(Serialize)]
struct Readiness {
    /// `ready`, or `unavailable` when a dependency failed.
    status: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    database: DatabaseCheck,
    storage: StorageCheck,
}

#[derive(Serialize)]
struct DatabaseCheck {
    backend: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[derive(Serialize)]
struct StorageCheck {
    /// Where titles live: `folder` (the data dir) or `s3` (a bucket behind it).
    kind: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let backend: Backend = db.backend();
    let pinged = web::block(move || db.ping()).await;
    let database = match pinged {
        Ok(Ok(latency)) => DatabaseCheck {
            backend: backend.as_str(),
            status: "ok",
            latency_ms: Some((latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
            error: None,
        },
        failed => {
            let code = match failed {
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: database failed");
                    e.code()
                }
                _ => "database_error",
            };
            DatabaseCheck {
                backend: backend.as_str(),
                status: "error",
                latency_ms: None,
                error: Some(code),
            }
        }
    };
    let store = state.storage.clone();
    let kind = if store.is_remote() { "s3" } else { "folder" };
    let reachable = web::block(move || store.check()).await;
    let storage = match reachable {
        Ok(Ok(())) => StorageCheck {
            kind,
            status: "ok",
            error: None,
        },
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(())) => String::new(),
            };
            tracing::warn!(error = %why, "readiness: the storage is not reachable");
            StorageCheck {
                kind,
                status: "error",
                error: Some("storage_unreachable"),
            }
        }
    };
    let ready = database.status == "ok" && storage.status == "ok";
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        database,
        storage,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
