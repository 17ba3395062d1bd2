//! The demo endpoints: what the monitor knows about a session and what its watermark payload
//! is, for the session's own device. They can be switched off (`monitoring.demo_api`).

use actix_web::{web, HttpRequest, HttpResponse};
use formats::codes;
use formats::marker::{encode_verifying_key, MARKER_UUID};
use serde_json::json;
use shared::db::now;
use shared::db::repo::security_events;
use shared::db::repo::sessions;

use api::auth::{authenticate, Auth, Device};
use api::ApiError;
use shared::auth::tokens::TokenKind;

use crate::monitor::Pace;
use crate::session_handlers::{owned_session, status_json};
use crate::state::StreamingState;

fn enabled(state: &StreamingState) -> Result<(), ApiError> {
    if state.monitoring.demo_api {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// The session's device, once the demo API is known to be on (when it is off, every caller
/// gets the same 404, authenticated or not).
async fn demo_caller(
    state: &StreamingState,
    auth: &Auth,
    req: &HttpRequest,
) -> Result<Device, ApiError> {
    enabled(state)?;
    authenticate(auth, req, TokenKind::Device).await.map(Device)
}

pub async fn security(
    state: web::Data<StreamingState>,
    auth: web::Data<Auth>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device = demo_caller(&state, &auth, &req).await?;
    let (session, current) = owned_session(&state, &req, &device, &path.into_inner()).await?;
    let title = state.caches.title(&state, &session.video_id).await?;
    let v = &title.package.video;
    let segment_seconds = v.segment_seconds();
    let (sid, uid) = (session.id.clone(), session.user_id.clone());
    let t = now();
    let (events, open) = state
        .db
        .run(move |c| {
            Ok((
                security_events::for_session(c, &sid)?,
                sessions::open_for_user(c, &uid, t)?,
            ))
        })
        .await?;
    let m = state.monitoring;
    let mut body = status_json(&session, current);
    body["pace"] = match Pace::of(&session, segment_seconds) {
        Some(p) => json!({
            "content_seconds": p.content_seconds,
            "elapsed_seconds": p.elapsed_seconds,
            "speed": if p.elapsed_seconds > 0.0 { p.content_seconds / p.elapsed_seconds } else { 0.0 },
        }),
        None => serde_json::Value::Null,
    };
    body["user_open_sessions"] = json!(open.len());
    body["limits"] = json!({
        "max_concurrent_sessions": m.max_concurrent_sessions,
        "ripping_burst_seconds": m.ripping_burst_seconds,
        "ripping_flag_speed": m.ripping_flag_speed,
        "ripping_limit_speed": m.ripping_limit_speed,
        "ripping_action": m.ripping_action,
        "idle_seconds": sessions::IDLE_SECONDS,
    });
    body["events"] = events
        .iter()
        .map(|e| {
            json!({
                "kind": e.kind,
                "severity": e.severity,
                "detail": e.detail,
                "address": e.address,
                "created_at": e.created_at.and_utc().to_rfc3339(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

pub async fn watermark(
    state: web::Data<StreamingState>,
    auth: web::Data<Auth>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device = demo_caller(&state, &auth, &req).await?;
    let (session, _) = owned_session(&state, &req, &device, &path.into_inner()).await?;
    let title = state.caches.title(&state, &session.video_id).await?;
    let code = title.code(&session.id);
    let letters: String = code.iter().map(|&b| if b { 'B' } else { 'A' }).collect();
    let p = &title.package;
    let uuid = MARKER_UUID
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(HttpResponse::Ok().json(json!({
        "session_id": session.id,
        "video_id": title.video_id,
        "algorithm": p.watermark.algorithm,
        "strength": p.watermark.strength,
        "unit_seconds": p.video.unit_seconds(),
        "unit_count": p.video.unit_count,
        "segment_units": p.video.units_per_segment(),
        "code": letters,
        "code_hash": codes::code_hash(&code),
        "metadata_layer": {
            "box": "uuid",
            "user_type": format!("{}-{}-{}-{}-{}", &uuid[0..8], &uuid[8..12], &uuid[12..16], &uuid[16..20], &uuid[20..32]),
            "location": "after moov in the video init segment",
            "signature": "ed25519",
            "verifying_key": encode_verifying_key(&state.marker.verifying_key()),
        },
    })))
}
