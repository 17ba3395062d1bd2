//! `streaming`: the viewer-facing secure delivery flow: the protocol's cryptography
//! ([`crypto`]), sessions bound to devices, monitoring that acts ([`monitor`]), and the HTTP
//! handlers of the viewer API (callers and errors through the `api` crate). It never calls
//! FFmpeg.

mod activity;
mod cache;
pub mod crypto;
mod demo_handlers;
mod device_proof;
mod handlers;
mod manifest;
pub mod monitor;
mod probes;
mod segment_handlers;
mod segments;
mod session_handlers;
pub mod state;

use actix_web::web;

use api::auth::client_address;
use api::ApiError;
pub use state::StreamingState;

/// Registers the viewer API. Needs `web::Data<StreamingState>` in the app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/api/auth/login/").route(web::post().to(handlers::login)))
        .service(resource("/api/auth/logout/").route(web::post().to(handlers::logout)))
        .service(resource("/api/register-device/").route(web::post().to(handlers::register_device)))
        .service(
            resource("/api/refresh-device-token/")
                .route(web::post().to(handlers::refresh_device_token)),
        )
        .service(resource("/api/videos/").route(web::get().to(handlers::list_videos)))
        .service(
            resource("/api/request-stream/")
                .route(web::post().to(session_handlers::request_stream)),
        )
        .service(
            resource("/api/complete-key-exchange/")
                .route(web::post().to(session_handlers::complete_key_exchange)),
        )
        .service(
            resource("/api/security/status/{session_id}/")
                .route(web::get().to(session_handlers::security_status)),
        )
        .service(
            resource("/api/video/manifest/{session_id}/")
                .route(web::get().to(segment_handlers::manifest)),
        )
        .service(
            resource("/api/video/stream/{session_id}/{segment}/")
                .route(web::get().to(segment_handlers::segment)),
        )
        .service(
            resource("/api/demo/security/{session_id}/")
                .route(web::get().to(demo_handlers::security)),
        )
        .service(
            resource("/api/demo/watermark/{session_id}/")
                .route(web::get().to(demo_handlers::watermark)),
        );
}

/// The answer for any path no route serves. Guesses at files (`/media/...`, `*.mp4`, the
/// data dir's folders) and traversal attempts are recorded as security events; traversal
/// answers 403, everything else 404. Needs `web::Data<StreamingState>`.
pub async fn unknown_path(
    state: web::Data<StreamingState>,
    req: actix_web::HttpRequest,
) -> Result<actix_web::HttpResponse, ApiError> {
    let raw = req.uri().path().to_string();
    let kind = monitor::classify_path(&raw);
    if kind == monitor::PathKind::Unknown {
        return Err(ApiError::not_found());
    }
    let shown: String = raw.chars().take(200).collect();
    monitor::record_probe(
        &state,
        client_address(&req),
        format!("{} {shown}", req.method()),
    )
    .await?;
    if kind == monitor::PathKind::Traversal {
        Err(ApiError::forbidden(
            "forbidden_path",
            "this path is not allowed",
        ))
    } else {
        Err(ApiError::not_found())
    }
}

/// The JSON answer for a known path with an unsupported method.
pub async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed())
}
