//! `GET /metrics`: the Prometheus text of [`shared::metrics::Metrics`], for a scraper. Off
//! on the main address unless `metrics.token` is set (then it takes that bearer token); always
//! on the metrics listener (`metrics.bind`), which asks for the token too when one is set.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use api::ApiError;
use sha2::{Digest, Sha256};

use super::AppState;

/// Which listener a request came through (app data of each server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `server.bind`: the API, pages and streaming.
    Main,
    /// `metrics.bind`: metrics and health only.
    Metrics,
}

pub async fn metrics(
    state: web::Data<AppState>,
    listener: web::Data<Listener>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    match (&state.config.metrics.token, **listener) {
        // Not served here: as any unknown path.
        (None, Listener::Main) => return Err(ApiError::not_found()),
        (None, Listener::Metrics) => {}
        (Some(token), _) => {
            if !bearer_matches(&req, token.expose()) {
                return Err(ApiError::unauthorized(
                    "metrics_token_required",
                    "metrics need the configured bearer token",
                ));
            }
        }
    }
    let (metrics, db) = (state.metrics.clone(), state.db.clone());
    let text = web::block(move || metrics.scrape(&db))
        .await
        .map_err(ApiError::internal)??;
    Ok(HttpResponse::Ok()
        .content_type(shared::metrics::CONTENT_TYPE)
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(text))
}

/// Whether the request carries `Authorization: Bearer <token>`, compared through digests so
/// that the time taken says nothing about how much of the token was right.
fn bearer_matches(req: &HttpRequest, token: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    Sha256::digest(given.as_bytes()) == Sha256::digest(token.as_bytes())
}
