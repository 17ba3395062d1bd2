//! `GET /healthz`: liveness plus a database round trip.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let backend = db.backend().as_str();
    let checked = web::block(move || db.ping()).await;
    let uptime = state.started.elapsed().as_secs();
    let version = env!("CARGO_PKG_VERSION");
    match checked {
        Ok(Ok(latency)) => HttpResponse::Ok().json(json!({
            "status": "ok",
            "version": version,
            "uptime_seconds": uptime,
            "database": {
                "backend": backend,
                "status": "ok",
                "latency_ms": (latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            },
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database failed");
            unavailable(backend, version, uptime, e.code())
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check: task failed");
            unavailable(backend, version, uptime, "database_error")
        }
    }
}

fn unavailable(backend: &str, version: &str, uptime: u64, code: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({
        "status": "unavailable",
        "version": version,
        "uptime_seconds": uptime,
        "database": {"backend": backend, "status": "error", "error": code},
    }))
}
