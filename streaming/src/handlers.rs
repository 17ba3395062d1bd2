//! Viewer-facing endpoints: thin handlers that validate input and call the domain and db
//! layers. Paths and bodies are fixed by docs/PROTOCOL.md.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::auth::device_key::{DevicePublicKey, Purpose};
use shared::auth::tokens::{unix_now, Claims, DeviceBinding, TokenError, TokenKind};
use shared::db::now;
use shared::db::repo::security_events::Subject;
use shared::db::repo::{devices, refreshed_tokens, revoked_tokens, users, videos};

use api::auth::{authenticate, bearer, client_address, Auth, Device, Viewer};
use api::ApiError;

use crate::state::StreamingState;
use crate::{device_proof, monitor};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    device_fingerprint: String,
    /// The device's public proof key (see `shared::auth::device_key`).
    device_public_key: String,
}

/// A freshly issued device token; `device_id` on registration only.
#[derive(Serialize)]
pub struct DeviceTokenAnswer {
    device_token: String,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
}

pub async fn register_device(
    Viewer(claims): Viewer,
    state: web::Data<StreamingState>,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let RegisterBody {
        device_fingerprint,
        device_public_key,
    } = body.into_inner();
    let fingerprint = parse_fingerprint(&device_fingerprint)?;
    let key = DevicePublicKey::parse(&device_public_key)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let (user_id, fp, encoded, jti) = (
        claims.sub.clone(),
        fingerprint.clone(),
        key.encoded().to_string(),
        claims.jti.clone(),
    );
    let device = state
        .db
        .run(move |c| {
            devices::register(
                c,
                &devices::Registration {
                    user_id: &user_id,
                    fingerprint: &fp,
                    public_key: &encoded,
                    user_token: &jti,
                },
            )
        })
        .await?;
    let thumbprint = key.thumbprint();
    // The sign-in lifetime runs from the login (the user token's issue), however often the
    // device registers again meanwhile.
    let binding = DeviceBinding {
        device_id: &device.id,
        fingerprint: &fingerprint,
        key_thumbprint: &thumbprint,
        chain_started: claims.iat,
    };
    let mut answer = device_token(&state, &claims, &binding)?;
    answer.device_id = Some(device.id.clone());
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    device_fingerprint: String,
    /// The device key's signature of the refresh of this token (its `jti`).
    device_proof: String,
}

pub async fn refresh_device_token(
    state: web::Data<StreamingState>,
    auth: web::Data<Auth>,
    req: HttpRequest,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let address = client_address(&req).unwrap_or_default();
    // The attempt budget first: a client over it learns nothing more about its token.
    monitor::check_auth_budget(&state, Subject::Address(&address)).await?;
    let device = Device(authenticate(&auth, &req, TokenKind::Device).await?);
    let claims = &device.0;
    let RefreshBody {
        device_fingerprint,
        device_proof: proof,
    } = body.into_inner();
    let fingerprint = parse_fingerprint(&device_fingerprint)?;
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
    let chain_started = claims.chn.unwrap_or_default();
    let lifetime = u64::from(state.monitoring.device_sign_in_hours) * 3600;
    if unix_now().saturating_sub(chain_started) > lifetime {
        return Err(ApiError::unauthorized(
            "sign_in_expired",
            "this device's sign-in has run its course; sign in again",
        ));
    }
    device_proof::check(&state, &req, &device, Purpose::Refresh, &claims.jti, &proof).await?;
    // Once per token: a refresh request captured on its way cannot be replayed for more.
    let (device_id, jti, expires) = (
        device.device_id().to_string(),
        claims.jti.clone(),
        unix_to_db_time(claims.exp),
    );
    let first = state
        .db
        .run(move |c| {
            let first = refreshed_tokens::spend(c, &jti, expires)?;
            devices::touch(c, &device_id)?;
            Ok(first)
        })
        .await?;
    if !first {
        return Err(ApiError::unauthorized(
            "token_already_refreshed",
            "this device token was refreshed already; use the token that refresh gave",
        ));
    }
    let binding = DeviceBinding {
        device_id: device.device_id(),
        fingerprint: &fingerprint,
        key_thumbprint: claims.dkt.as_deref().unwrap_or_default(),
        chain_started,
    };
    Ok(HttpResponse::Ok().json(device_token(&state, claims, &binding)?))
}

fn device_token(
    state: &StreamingState,
    claims: &Claims,
    binding: &DeviceBinding<'_>,
) -> Result<DeviceTokenAnswer, ApiError> {
    let issued = state
        .tokens
        .issue_device(&claims.sub, claims.role, binding, unix_now())?;
    Ok(DeviceTokenAnswer {
        device_token: issued.token,
        expires_in: issued.expires_in,
        device_id: None,
    })
}

/// What a logout ended.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedOut {
    /// A user token: refused from now on, and the devices registered with it revoked.
    UserToken,
    /// A device token: the device is revoked (every token of it refused, its open sessions
    /// revoked) until its user registers it again.
    Device,
}

#[derive(Serialize)]
pub struct LogoutAnswer {
    signed_out: SignedOut,
    /// The devices revoked with it.
    devices_revoked: Vec<String>,
}

/// A logout's body: none for a user token; a device signs its own logout.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    device_proof: Option<String>,
}

/// `POST /api/auth/logout/` with a user token (no body) or a device token (`{"device_proof"}`
/// over the token's `jti`: a copied device token cannot sign its device out).
pub async fn logout(
    state: web::Data<StreamingState>,
    auth: web::Data<Auth>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let kind = match state.tokens.verify(bearer(&req)?, TokenKind::User) {
        Err(TokenError::WrongKind { .. }) => TokenKind::Device,
        _ => TokenKind::User,
    };
    let claims = authenticate(&auth, &req, kind).await?;
    let LogoutBody {
        device_proof: proof,
    } = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not a logout: {e}"))
        })?
    };
    let (signed_out, devices) = match kind {
        TokenKind::User => {
            let expires = unix_to_db_time(claims.exp);
            let jti = claims.jti.clone();
            let registered = state
                .db
                .run(move |c| {
                    revoked_tokens::revoke(c, &jti, &claims.sub, expires)?;
                    devices::registered_with(c, &jti)
                })
                .await?;
            (SignedOut::UserToken, registered)
        }
        TokenKind::Device => {
            let device = Device(claims);
            let proof = proof.ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_device_proof",
                    "a device signs its logout: send {\"device_proof\"}",
                )
            })?;
            let jti = device.0.jti.clone();
            device_proof::check(&state, &req, &device, Purpose::Logout, &jti, &proof).await?;
            (SignedOut::Device, vec![device.device_id().to_string()])
        }
    };
    let mut revoked = Vec::new();
    for id in devices {
        let device_id = id.clone();
        let ended = state
            .db
            .run(move |c| {
                devices::revoke_with_sessions(
                    c,
                    &device_id,
                    "the device signed out",
                    &[],
                    |_, _| Ok(()),
                )
            })
            .await?;
        if let Some(sessions) = ended {
            for session in &sessions {
                state.caches.forget_session(session);
            }
            revoked.push(id);
        }
    }
    Ok(HttpResponse::Ok().json(LogoutAnswer {
        signed_out,
        devices_revoked: revoked,
    }))
}

/// A token's `exp` as the database stores times.
fn unix_to_db_time(unix: u64) -> chrono::NaiveDateTime {
    i64::try_from(unix)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(now, |t| t.naive_utc())
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
