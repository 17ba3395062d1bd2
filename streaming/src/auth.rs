//! Who is calling: bearer tokens checked against the signing key and the database.

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use shared::auth::tokens::Claims;
use shared::db::repo::users;

use crate::error::ApiError;
use crate::state::StreamingState;

/// The caller's IP address, as seen by this server (behind a proxy: the proxy's).
pub fn client_address(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

/// The token from `Authorization: Bearer <token>`.
pub fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req.headers().get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "an Authorization: Bearer token is required",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header is not a Bearer token",
            )
        })
}

/// Verifies a token of `kind` ("user" or "device") and that its user still exists and is
/// enabled.
pub async fn authenticate(
    state: &StreamingState,
    req: &HttpRequest,
    kind: &'static str,
) -> Result<Claims, ApiError> {
    let claims = state.tokens.verify(bearer(req)?, kind)?;
    let user_id = claims.sub.clone();
    let user = state
        .db
        .run(move |c| users::get(c, &user_id))
        .await
        .map_err(|_| {
            ApiError::unauthorized("invalid_token", "the token's user no longer exists")
        })?;
    if user.disabled {
        return Err(ApiError::forbidden(
            "account_disabled",
            "this account is disabled",
        ));
    }
    Ok(claims)
}
