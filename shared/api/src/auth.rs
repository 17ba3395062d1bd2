//! Who is calling. Handlers take one of the extractors below as an argument and never check
//! roles in their bodies:
//!
//! | extractor | accepts | refuses |
//! |---|---|---|
//! | [`Device`] | a device token (playback routes) | 401 without one |
//! | [`DeviceToken`] | a well-signed, unexpired device token; its standing checked by the handler (segments) | 401 without one |
//! | [`Viewer`] | a user token of a viewer or admin (registering devices) | 403 `wrong_role` |
//! | [`Admin`] | a user token of an admin | 403 `wrong_role` |
//! | [`Legal`] | a user token of an analyst, legal or admin account: reads cases and evidence | 403 `wrong_role`, also for API keys |
//! | [`Caller`] | an `X-API-Key` (a crawler) or any user token; the route decides what each may do ([`Caller::submitter`], ...) | 401 for an unknown key or a bad token |
//!
//! Every token is checked for signature, kind and expiry, and its user for existing and being
//! enabled. The extractors find an [`Auth`] in the application data.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use shared::auth::tokens::{Claims, TokenKeys, TokenKind};
use shared::auth::{api_key, device_key};
use shared::db::repo::{api_keys, devices, revoked_tokens, users};
use shared::db::{Db, DbConnection, DbError};
use shared::domain::Role;

use crate::error::ApiError;

/// Header a crawler sends its key in.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// What authentication needs: the database (users, API keys) and the token keys. Registered
/// once as `web::Data<Auth>`.
#[derive(Clone)]
pub struct Auth {
    pub db: Db,
    pub tokens: TokenKeys,
}

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

/// Verifies a bearer token of `kind` and that it still stands: its user exists and is enabled;
/// a user token was not signed out; a device token's device exists, belongs to the user, is
/// not revoked and still has the proof key the token is bound to. For handlers that must do
/// something before authenticating (a rate limit); the others take an extractor.
pub async fn authenticate(
    auth: &Auth,
    req: &HttpRequest,
    kind: TokenKind,
) -> Result<Claims, ApiError> {
    let claims = auth.tokens.verify(bearer(req)?, kind)?;
    stands(auth, claims).await
}

/// Checks that the user (and for a device token, the device and its key) of verified `claims`
/// still stand (see [`authenticate`]); returns the claims when they do.
pub async fn stands(auth: &Auth, claims: Claims) -> Result<Claims, ApiError> {
    let checked = claims.clone();
    match auth.db.run(move |c| standing(c, &checked)).await? {
        Standing::Good => Ok(claims),
        Standing::UnknownUser => Err(ApiError::unauthorized(
            "invalid_token",
            "the token's user no longer exists",
        )),
        Standing::UnknownDevice => Err(ApiError::unauthorized(
            "invalid_token",
            "the token's device is not registered",
        )),
        Standing::Disabled => Err(ApiError::forbidden(
            "account_disabled",
            "this account is disabled",
        )),
        Standing::SignedOut => Err(ApiError::unauthorized(
            "token_revoked",
            "this token was signed out; sign in again",
        )),
        Standing::DeviceRevoked => Err(device_revoked()),
        Standing::Superseded => Err(token_superseded()),
    }
}

/// 401 `device_revoked`: the token's device was revoked (also when that is found after the
/// token was checked).
pub fn device_revoked() -> ApiError {
    ApiError::unauthorized(
        "device_revoked",
        "this device was revoked; sign in and register it again",
    )
}

/// 401 `token_superseded`: the token's device registered again with another key.
pub fn token_superseded() -> ApiError {
    ApiError::unauthorized(
        "token_superseded",
        "this device registered again since this token was issued",
    )
}

/// Whether a verified token still stands (see [`authenticate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Good,
    UnknownUser,
    UnknownDevice,
    Disabled,
    SignedOut,
    DeviceRevoked,
    Superseded,
}

fn standing(c: &mut DbConnection, claims: &Claims) -> Result<Standing, DbError> {
    let user = match users::get(c, &claims.sub) {
        Ok(user) => user,
        Err(DbError::NotFound(_)) => return Ok(Standing::UnknownUser),
        Err(e) => return Err(e),
    };
    if user.disabled {
        return Ok(Standing::Disabled);
    }
    match claims.typ {
        TokenKind::User => Ok(if revoked_tokens::is_revoked(c, &claims.jti)? {
            Standing::SignedOut
        } else {
            Standing::Good
        }),
        TokenKind::Device => {
            let device_id = claims.did.as_deref().unwrap_or_default();
            let device = match devices::get(c, device_id) {
                Ok(d) if d.user_id == user.id => d,
                Ok(_) | Err(DbError::NotFound(_)) => return Ok(Standing::UnknownDevice),
                Err(e) => return Err(e),
            };
            if device.revoked_at.is_some() {
                return Ok(Standing::DeviceRevoked);
            }
            let current = device
                .public_key
                .as_deref()
                .and_then(device_key::thumbprint_of_stored);
            Ok(if current.is_some() && current == claims.dkt {
                Standing::Good
            } else {
                Standing::Superseded
            })
        }
    }
}

fn auth_of(req: &HttpRequest) -> Result<web::Data<Auth>, ApiError> {
    req.app_data::<web::Data<Auth>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("the server has no authentication state"))
}

fn wrong_role(message: &'static str) -> ApiError {
    ApiError::forbidden("wrong_role", message)
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// Implements `FromRequest` for an extractor from an async function of the request.
macro_rules! extractor {
    ($name:ident, $from:ident) => {
        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Extracting<$name>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let req = req.clone();
                Box::pin(async move { $from(&req).await })
            }
        }
    };
}

/// A registered device's token: the playback routes.
#[derive(Debug, Clone)]
pub struct Device(pub Claims);

impl Device {
    /// The device the token was issued to.
    pub fn device_id(&self) -> &str {
        self.0.did.as_deref().unwrap_or_default()
    }

    pub fn user_id(&self) -> &str {
        &self.0.sub
    }
}

async fn device(req: &HttpRequest) -> Result<Device, ApiError> {
    authenticate(&*auth_of(req)?, req, TokenKind::Device)
        .await
        .map(Device)
}
extractor!(Device, device);

/// A device token checked for signature, kind and expiry only. Whether its user, device and
/// key still stand is the handler's to check: in the database statement that does the
/// request's own work (the segment route's unit reservation, `sessions::reserve_unit_for`),
/// or else through [`DeviceToken::stands`] before anything else.
#[derive(Clone)]
pub struct DeviceToken {
    pub claims: Claims,
    auth: web::Data<Auth>,
}

impl DeviceToken {
    /// The token as a [`Device`], once its user, device and key are found to stand.
    pub async fn stands(self) -> Result<Device, ApiError> {
        stands(&self.auth, self.claims).await.map(Device)
    }
}

async fn device_token(req: &HttpRequest) -> Result<DeviceToken, ApiError> {
    let auth = auth_of(req)?;
    let claims = auth.tokens.verify(bearer(req)?, TokenKind::Device)?;
    Ok(DeviceToken { claims, auth })
}
extractor!(DeviceToken, device_token);

/// A viewer's or admin's user token: may register playback devices.
#[derive(Debug, Clone)]
pub struct Viewer(pub Claims);

async fn viewer(req: &HttpRequest) -> Result<Viewer, ApiError> {
    let claims = authenticate(&*auth_of(req)?, req, TokenKind::User).await?;
    match claims.role {
        Role::Viewer | Role::Admin => Ok(Viewer(claims)),
        _ => Err(wrong_role(
            "only viewer and admin accounts can register playback devices",
        )),
    }
}
extractor!(Viewer, viewer);

/// An admin's user token: the admin console's API.
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: String,
}

impl Admin {
    /// The audit trail's name for this admin.
    pub fn actor(&self) -> String {
        format!("user:{}", self.id)
    }
}

async fn admin(req: &HttpRequest) -> Result<Admin, ApiError> {
    let claims = authenticate(&*auth_of(req)?, req, TokenKind::User).await?;
    if claims.role != Role::Admin {
        return Err(wrong_role("this page and its API are for admin accounts"));
    }
    Ok(Admin { id: claims.sub })
}
extractor!(Admin, admin);

/// Who calls an evidence route: a crawler's API key or a signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Crawler { key_id: String },
    User { id: String, role: Role },
}

impl Caller {
    /// The audit trail's name for the caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::Crawler { key_id } => format!("api_key:{key_id}"),
            Caller::User { id, .. } => format!("user:{id}"),
        }
    }

    /// Whether this is a user who reads cases and evidence (analyst, legal or admin).
    pub fn reads_evidence(&self) -> bool {
        matches!(
            self,
            Caller::User {
                role: Role::Analyst | Role::Legal | Role::Admin,
                ..
            }
        )
    }

    /// The caller, when it may submit suspect files: a crawler, an analyst or an admin.
    pub fn submitter(self) -> Result<Caller, ApiError> {
        match &self {
            Caller::Crawler { .. }
            | Caller::User {
                role: Role::Analyst | Role::Admin,
                ..
            } => Ok(self),
            Caller::User { .. } => Err(wrong_role("this account cannot submit suspect files")),
        }
    }
}

async fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let auth = auth_of(req)?;
    let Some(key) = req.headers().get(API_KEY_HEADER) else {
        let claims = authenticate(&auth, req, TokenKind::User).await?;
        return Ok(Caller::User {
            id: claims.sub,
            role: claims.role,
        });
    };
    let hash = api_key::hash(key.to_str().unwrap_or_default().trim());
    let found = auth
        .db
        .run(move |c| {
            let row = api_keys::find_active_by_hash(c, &hash)?;
            if let Some(r) = &row {
                api_keys::touch(c, &r.id)?;
            }
            Ok(row)
        })
        .await?;
    match found {
        Some(row) => Ok(Caller::Crawler { key_id: row.id }),
        None => Err(ApiError::unauthorized(
            "invalid_api_key",
            "the API key is unknown or revoked",
        )),
    }
}
extractor!(Caller, caller);

/// A user who reads cases and evidence: an analyst, legal or admin account. An API key is
/// refused with 403 (crawlers read only their own cases, through [`Caller`]).
#[derive(Debug, Clone)]
pub struct Legal {
    pub id: String,
}

impl Legal {
    /// The audit trail's name for this user.
    pub fn actor(&self) -> String {
        format!("user:{}", self.id)
    }
}

async fn legal(req: &HttpRequest) -> Result<Legal, ApiError> {
    match caller(req).await? {
        Caller::User {
            id,
            role: Role::Analyst | Role::Legal | Role::Admin,
        } => Ok(Legal { id }),
        _ => Err(wrong_role(
            "this account cannot read cases and evidence reports",
        )),
    }
}
extractor!(Legal, legal);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_caller_may_do() {
        let user = |role| Caller::User {
            id: "u".into(),
            role,
        };
        let crawler = Caller::Crawler { key_id: "k".into() };
        assert!(crawler.clone().submitter().is_ok());
        assert!(!crawler.reads_evidence());
        assert_eq!(crawler.actor(), "api_key:k");
        for (role, submits, reads) in [
            (Role::Viewer, false, false),
            (Role::Analyst, true, true),
            (Role::Legal, false, true),
            (Role::Admin, true, true),
        ] {
            assert_eq!(user(role).submitter().is_ok(), submits, "{role:?}");
            assert_eq!(user(role).reads_evidence(), reads, "{role:?}");
        }
        assert_eq!(user(Role::Legal).actor(), "user:u");
    }
}
