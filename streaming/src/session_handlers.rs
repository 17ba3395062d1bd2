//! Stream sessions: request (fresh X25519 key pair), key exchange (HKDF session key, wrapped
//! CEK) and status. The server's ephemeral secret and the CEK are stored only sealed under the
//! master key; the ephemeral secret is destroyed once the exchange is done.

use actix_web::{web, HttpRequest, HttpResponse};
use formats::sealing;
use serde::Deserialize;
use serde_json::json;
use shared::auth::device_key::{self, Purpose};
use shared::db::now;
use shared::db::repo::security_events::{Severity, Subject};
use shared::db::repo::sessions::{self, NewSession, SessionRow, SessionState, IDLE_SECONDS};
use shared::db::repo::videos;
use shared::db::DbError;
use x25519_dalek::StaticSecret;

use api::auth::{client_address, Device};
use api::error::not_found_as;
use api::ApiError;

use crate::state::StreamingState;
use crate::{crypto, device_proof, monitor};

fn secret_aad(session_id: &str) -> Vec<u8> {
    format!("leaktrace/v1/session-secret/{session_id}").into_bytes()
}

/// AAD of a session's CEK sealed under the master key.
pub fn cek_seal_aad(session_id: &str) -> Vec<u8> {
    format!("leaktrace/v1/session-cek/{session_id}").into_bytes()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestStreamBody {
    video_id: String,
}

pub async fn request_stream(
    Device(claims): Device,
    state: web::Data<StreamingState>,
    req: HttpRequest,
    body: web::Json<RequestStreamBody>,
) -> Result<HttpResponse, ApiError> {
    let video_id = body.into_inner().video_id;
    let (secret, public) = crypto::generate_keypair();
    let session_id = uuid::Uuid::new_v4().to_string();
    let sealed = sealing::seal(
        &state.master_key,
        &secret_aad(&session_id),
        secret.as_bytes(),
    )
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let new = NewSession::requested(
        session_id.clone(),
        claims.sub.clone(),
        claims.did.clone().unwrap_or_default(),
        video_id.clone(),
        crypto::encode_public_key(&public),
        sealed,
        client_address(&req),
    );
    // Counted and created in one step (see `sessions::create_within_limit`).
    let max = state.monitoring.max_concurrent_sessions as usize;
    let at = now();
    let admitted = state
        .db
        .run(move |c| {
            videos::get(c, &video_id)?;
            sessions::create_within_limit(c, &new, max, at)
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound(_) => ApiError::not_found_what("video_not_found", "no such title"),
            other => other.into(),
        })?;
    match admitted {
        sessions::Admission::Created(_) => {}
        sessions::Admission::Full(open) => {
            return Err(monitor::refuse_concurrent(
                &state,
                &req,
                &claims.sub,
                claims.did.as_deref(),
                &open,
                at,
            )
            .await)
        }
        sessions::Admission::DeviceRevoked => return Err(api::auth::device_revoked()),
    }
    Ok(HttpResponse::Ok().json(json!({
        "session_id": session_id,
        "server_public_key": crypto::encode_public_key(&public),
        "expires_in": IDLE_SECONDS,
    })))
}

/// The session, if it belongs to the caller's user and device; expired sessions are marked.
/// A session asked for by another device or user is refused (403) and the attempt recorded
/// against the caller; the session itself is untouched, so knowing a session's id is not
/// enough to end someone else's playback.
pub async fn owned_session(
    state: &StreamingState,
    req: &HttpRequest,
    device: &Device,
    session_id: &str,
) -> Result<(SessionRow, SessionState), ApiError> {
    let claims = &device.0;
    let id = session_id.to_string();
    let mut session = state
        .db
        .run(move |c| sessions::get(c, &id))
        .await
        .map_err(not_found_as("session_not_found", "no such session"))?;
    // Counts this instance has not written yet (see `activity`).
    session.segments_served += state.activity.pending(&session.id);
    if session.user_id != claims.sub || Some(&session.device_id) != claims.did.as_ref() {
        monitor::record(
            state,
            Severity::Warning,
            monitor::Event {
                kind: "session_device_mismatch",
                session_id: Some(session.id.clone()),
                user_id: Some(claims.sub.clone()),
                device_id: claims.did.clone(),
                address: client_address(req),
                detail: "session asked for by another device or user; refused".into(),
                account: None,
            },
        )
        .await?;
        return Err(ApiError::forbidden(
            "device_mismatch",
            "this session belongs to another user or device",
        ));
    }
    let current = session.state_at(now());
    if current == SessionState::Expired && session.state != SessionState::Expired {
        let id = session.id.clone();
        state
            .db
            .run(move |c| sessions::end(c, &id, SessionState::Expired, Some("idle")))
            .await?;
    }
    Ok((session, current))
}

/// Refuses a session that has ended (expired: 401, revoked: 403).
pub fn refuse_ended(current: SessionState) -> Result<(), ApiError> {
    match current {
        SessionState::Expired => Err(ApiError::unauthorized(
            "session_expired",
            "the session has expired",
        )),
        SessionState::Revoked => Err(ApiError::forbidden(
            "session_revoked",
            "the session was revoked",
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyExchangeBody {
    session_id: String,
    client_public_key: String,
    /// The device key's signature of this exchange (session id and client public key): a
    /// copied device token alone never yields a content key.
    device_proof: String,
}

pub async fn complete_key_exchange(
    device: Device,
    state: web::Data<StreamingState>,
    req: HttpRequest,
    body: web::Json<KeyExchangeBody>,
) -> Result<HttpResponse, ApiError> {
    let KeyExchangeBody {
        session_id,
        client_public_key,
        device_proof: proof,
    } = body.into_inner();
    let client = crypto::decode_public_key(&client_public_key)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let (session, current) = owned_session(&state, &req, &device, &session_id).await?;
    refuse_ended(current)?;
    // Wrong proofs are authentication failures: past the budget the address is refused first.
    let address = client_address(&req).unwrap_or_default();
    monitor::check_auth_budget(&state, Subject::Address(&address)).await?;
    let binding = device_key::key_exchange_binding(&session.id, &client_public_key);
    device_proof::check(
        &state,
        &req,
        &device,
        Purpose::KeyExchange,
        &binding,
        &proof,
    )
    .await?;
    if current != SessionState::Requested {
        return Err(ApiError::conflict(
            "already_keyed",
            "the key exchange of this session is already complete",
        ));
    }
    let sealed = session
        .sealed_server_secret
        .as_deref()
        .ok_or_else(|| ApiError::conflict("already_keyed", "the session has no pending key"))?;
    let raw: [u8; 32] = sealing::open(&state.master_key, &secret_aad(&session.id), sealed)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ApiError::internal("the session key cannot be unsealed"))?;
    let server_secret = StaticSecret::from(raw);
    let session_key = crypto::derive_session_key(&server_secret, &client, &session.id)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let cek = crypto::generate_cek();
    let encrypted_cek = crypto::wrap_cek(&session_key, &session.id, &cek)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let sealed_cek = sealing::seal(&state.master_key, &cek_seal_aad(&session.id), &cek)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let id = session.id.clone();
    let keyed = state
        .db
        .run(move |c| sessions::mark_keyed(c, &id, &sealed_cek))
        .await?;
    if !keyed {
        return Err(ApiError::conflict(
            "already_keyed",
            "the key exchange of this session is already complete",
        ));
    }
    state.metrics.key_exchange();
    Ok(HttpResponse::Ok().json(json!({ "encrypted_cek": encrypted_cek })))
}

pub async fn security_status(
    device: Device,
    state: web::Data<StreamingState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (session, current) = owned_session(&state, &req, &device, &path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(status_json(&session, current)))
}

/// The body of `/api/security/status/{id}/` (the demo endpoint extends it).
pub fn status_json(session: &SessionRow, current: SessionState) -> serde_json::Value {
    let status = match current {
        SessionState::Expired => "expired",
        SessionState::Revoked => "revoked",
        _ => "ok",
    };
    let remaining = (session.expires_at - now()).num_seconds().max(0);
    json!({
        "status": status,
        "state": current.as_str(),
        "session_id": session.id,
        "video_id": session.video_id,
        "device_id": session.device_id,
        "segments_served": session.segments_served,
        "expires_in": if status == "ok" { remaining } else { 0 },
        "reason": session.revoked_reason,
    })
}
