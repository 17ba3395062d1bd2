//! Viewer-facing endpoints: thin handlers that validate input and call the domain and db
//! layers. Paths and bodies are fixed by docs/PROTOCOL.md.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use shared::auth::tokens::{unix_now, Claims, TokenKind};
use shared::db::repo::security_events::Subject;
use shared::db::repo::{devices, users, videos};

use api::auth::{authenticate, client_address, Auth, Device, Viewer};
use api::ApiError;

use crate::monitor;
use crate::state::StreamingState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

pub async fn login(
    state: web::Data<StreamingState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let address = client_address(&req).unwrap_or_default();
    let LoginBody { username, password } = body.into_inner();
    // The per-account budget is kept by the submitted name, whether or not such an account
    // exists: a 429 does not tell which names exist.
    let account: String = username.chars().take(MAX_ACCOUNT_CHARS).collect();
    monitor::check_auth_budget(&state, Subject::Address(&address)).await?;
    monitor::check_auth_budget(&state, Subject::Account(&account)).await?;
    let name = username.clone();
    let user = state
        .db
        .run(move |c| users::find_by_username(c, &name))
        .await?;
    let attempt =
        monitor::LoginAttempt::begin(&state, &req, &account, user.as_ref().map(|u| u.id.clone()))
            .await?;
    // Argon2 runs on the blocking pool, a few at a time, holding no database connection (a
    // burst of logins must not starve the pool that streaming needs).
    let hash = user.as_ref().map_or_else(
        || state.dummy_password_hash.clone(),
        |u| u.password_hash.clone(),
    );
    let ok = state.verify_password(password, hash).await?;
    let Some(user) = user.clone().filter(|u| ok && !u.disabled) else {
        let detail = if user.is_some() {
            "login failed: wrong password or disabled account"
        } else {
            "login failed: unknown user name"
        };
        attempt.failed(&state, detail).await?;
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "wrong user name or password",
        ));
    };
    attempt.succeeded(&state).await?;
    let role = user.role()?;
    let issued = state.tokens.issue_user(&user.id, role, unix_now())?;
    Ok(HttpResponse::Ok().json(json!({
        "user_token": issued.token,
        "role": role,
        "expires_in": issued.expires_in,
    })))
}

/// Longest account name kept for the per-account budget.
const MAX_ACCOUNT_CHARS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintBody {
    device_fingerprint: String,
}

/// A device fingerprint: exactly 64 hex digits (a SHA-256), compared in lower case.
fn parse_fingerprint(raw: &str) -> Result<String, ApiError> {
    if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(
            "invalid_fingerprint",
            "device_fingerprint must be 64 hexadecimal characters",
        ))
    }
}

pub async fn register_device(
    Viewer(claims): Viewer,
    state: web::Data<StreamingState>,
    body: web::Json<FingerprintBody>,
) -> Result<HttpResponse, ApiError> {
    let fingerprint = parse_fingerprint(&body.device_fingerprint)?;
    let user_id = claims.sub.clone();
    let fp = fingerprint.clone();
    let device = state
        .db
        .run(move |c| devices::register(c, &user_id, &fp))
        .await?;
    let mut answer = device_token_answer(&state, &claims, &device.id, &fingerprint)?;
    answer["device_id"] = json!(device.id);
    Ok(HttpResponse::Ok().json(answer))
}

pub async fn refresh_device_token(
    state: web::Data<StreamingState>,
    auth: web::Data<Auth>,
    req: HttpRequest,
    body: web::Json<FingerprintBody>,
) -> Result<HttpResponse, ApiError> {
    let address = client_address(&req).unwrap_or_default();
    // The attempt budget first: a client over it learns nothing more about its token.
    monitor::check_auth_budget(&state, Subject::Address(&address)).await?;
    let claims = authenticate(&auth, &req, TokenKind::Device).await?;
    let fingerprint = parse_fingerprint(&body.device_fingerprint)?;
    if claims.dfp.as_deref() != Some(fingerprint.as_str()) {
        monitor::record_auth_failure(
            &state,
            &req,
            Some(claims.sub.clone()),
            claims.did.clone(),
            "device token refresh with another fingerprint",
        )
        .await?;
        return Err(ApiError::forbidden(
            "fingerprint_mismatch",
            "the fingerprint does not match the device this token was issued to",
        ));
    }
    let device_id = claims.did.clone().unwrap_or_default();
    let device = state
        .db
        .run(move |c| {
            let d = devices::get(c, &device_id)?;
            devices::touch(c, &d.id)?;
            Ok(d)
        })
        .await
        .map_err(|_| ApiError::forbidden("unknown_device", "this device is not registered"))?;
    if device.user_id != claims.sub || device.fingerprint != fingerprint {
        return Err(ApiError::forbidden(
            "device_mismatch",
            "the token does not belong to this device",
        ));
    }
    Ok(HttpResponse::Ok().json(device_token_answer(
        &state,
        &claims,
        &device.id,
        &fingerprint,
    )?))
}

/// `{"device_token", "expires_in"}` for a freshly issued device token.
fn device_token_answer(
    state: &StreamingState,
    claims: &Claims,
    device_id: &str,
    fingerprint: &str,
) -> Result<serde_json::Value, ApiError> {
    let issued =
        state
            .tokens
            .issue_device(&claims.sub, claims.role, device_id, fingerprint, unix_now())?;
    Ok(json!({
        "device_token": issued.token,
        "expires_in": issued.expires_in,
    }))
}

pub async fn list_videos(
    _device: Device,
    state: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let all = state.db.run(videos::list).await?;
    let items: Vec<_> = all
        .into_iter()
        .map(|v| json!({"id": v.id, "title": v.title, "duration_seconds": v.duration_seconds}))
        .collect();
    Ok(HttpResponse::Ok().json(items))
}
