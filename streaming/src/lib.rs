//! `streaming`: the viewer-facing secure delivery flow: the protocol's cryptography
//! ([`crypto`]), authentication and device binding, and the HTTP handlers of the viewer API.
//! It never calls FFmpeg.

mod auth;
pub mod crypto;
pub mod error;
mod handlers;
mod manifest;
mod segment_handlers;
mod session_handlers;
pub mod state;

use actix_web::web;

pub use error::ApiError;
pub use state::StreamingState;

/// Registers the viewer API. Needs `web::Data<StreamingState>` in the app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/api/auth/login/").route(web::post().to(handlers::login)))
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
        );
}

/// The JSON answer for a known path with an unsupported method.
pub async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed())
}
