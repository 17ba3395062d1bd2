//! Admin routes for viewers' devices: list a user's devices, revoke one. A revoked device's
//! tokens are refused at once, its open sessions are revoked, and it stays revoked until its
//! user signs in and registers it again (disable the account to keep the user out). Every
//! revocation is an audit entry, written in the same transaction.

use actix_web::{web, HttpResponse};
use api::auth::Admin;
use api::error::not_found_as;
use api::ApiError;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use shared::db::repo::devices::{self, DeviceRow};
use shared::db::repo::{audit, users};
use shared::db::DbError;
use streaming::StreamingState;

use super::AppState;

/// A device as the admin console shows it.
#[derive(Debug, Serialize)]
pub struct DeviceView {
    id: String,
    user_id: String,
    fingerprint: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<&DeviceRow> for DeviceView {
    fn from(d: &DeviceRow) -> Self {
        let utc = |t: NaiveDateTime| t.and_utc();
        DeviceView {
            id: d.id.clone(),
            user_id: d.user_id.clone(),
            fingerprint: d.fingerprint.clone(),
            created_at: utc(d.created_at),
            last_seen_at: utc(d.last_seen_at),
            revoked_at: d.revoked_at.map(utc),
        }
    }
}

/// `GET /api/admin/users/{name}/devices/`: the user's devices, oldest first.
pub async fn list_for_user(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let rows = state
        .db
        .run(move |c| {
            let user = users::find_by_username(c, &name)?.ok_or(DbError::NotFound("user"))?;
            devices::list_for_user(c, &user.id)
        })
        .await
        .map_err(not_found_as("user_not_found", "no such user"))?;
    Ok(HttpResponse::Ok().json(rows.iter().map(DeviceView::from).collect::<Vec<_>>()))
}

/// What a device revocation did.
#[derive(Debug, Serialize)]
pub struct Revoked {
    device: DeviceView,
    /// The device's sessions that were open and are now revoked.
    sessions_revoked: Vec<String>,
}

#[derive(Serialize)]
struct AuditDetail<'a> {
    device_id: &'a str,
    user_id: &'a str,
    sessions_revoked: &'a [String],
}

/// `POST /api/admin/devices/{device_id}/revoke/`: 409 `device_revoked` when it already is.
pub async fn revoke(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
    streaming: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let id = path.into_inner();
    let (device, ended) = state
        .db
        .run(move |c| {
            let device = devices::get(c, &id)?;
            // The revocation, its sessions' and the audit entry: one transaction.
            let ended = devices::revoke_with_sessions(
                c,
                &id,
                "device revoked by an admin",
                &[audit::APPEND_LOCK_KEY],
                |c, ended| {
                    let detail = AuditDetail {
                        device_id: &device.id,
                        user_id: &device.user_id,
                        sessions_revoked: ended,
                    };
                    let detail = serde_json::to_string(&detail)
                        .map_err(|_| DbError::Encode("an audit detail".into()))?;
                    audit::append_within(c, None, &actor, "device_revoked", &detail).map(|_| ())
                },
            )?
            .ok_or_else(|| DbError::Conflict("the device is already revoked".into()))?;
            Ok((devices::get(c, &id)?, ended))
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound(_) => ApiError::not_found_what("device_not_found", "no such device"),
            DbError::Conflict(m) => {
                ApiError::new(actix_web::http::StatusCode::CONFLICT, "device_revoked", m)
            }
            other => other.into(),
        })?;
    for session in &ended {
        streaming.caches.forget_session(session);
    }
    Ok(HttpResponse::Ok().json(Revoked {
        device: DeviceView::from(&device),
        sessions_revoked: ended,
    }))
}
