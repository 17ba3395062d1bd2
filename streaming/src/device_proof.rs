//! Checks a request's device proof (see `shared::auth::device_key`) against the key its
//! device registered. A malformed proof is a client error (400); a well-formed proof by
//! another key is what a copied token looks like: refused (403) and recorded as an
//! authentication failure, so it counts toward the address's attempt budget.

use actix_web::HttpRequest;
use shared::auth::device_key::{DeviceKeyError, DevicePublicKey, Purpose};
use shared::db::repo::devices;

use api::auth::Device;
use api::ApiError;

use crate::monitor;
use crate::state::StreamingState;

/// Verifies `proof` of `purpose` over `binding` by the caller's device key: the key the
/// device holds now, which must still be the one the token is bound to, on a device still not
/// revoked (either may have changed since the token was checked).
pub async fn check(
    state: &StreamingState,
    req: &HttpRequest,
    device: &Device,
    purpose: Purpose,
    binding: &str,
    proof: &str,
) -> Result<(), ApiError> {
    let device_id = device.device_id().to_string();
    let row = state.db.run(move |c| devices::get(c, &device_id)).await?;
    if row.revoked_at.is_some() {
        return Err(api::auth::device_revoked());
    }
    let key = row
        .public_key
        .as_deref()
        .ok_or(DeviceKeyError::MalformedKey)
        .and_then(DevicePublicKey::parse);
    if let Ok(key) = &key {
        if Some(key.thumbprint()) != device.0.dkt {
            return Err(api::auth::token_superseded());
        }
    }
    let verified = key.and_then(|key| key.verify(purpose, &row.id, binding, proof));
    match verified {
        Ok(()) => Ok(()),
        Err(e @ DeviceKeyError::MalformedProof) => {
            Err(ApiError::bad_request(e.code(), e.to_string()))
        }
        Err(e) => {
            monitor::record_auth_failure(
                state,
                req,
                Some(device.user_id().to_string()),
                Some(row.id.clone()),
                &format!("{} without the device's key", purpose.as_str()),
            )
            .await?;
            Err(ApiError::forbidden(
                DeviceKeyError::WrongProof.code(),
                match e {
                    DeviceKeyError::WrongProof => e.to_string(),
                    _ => "this device has no usable proof key; register it again".into(),
                },
            ))
        }
    }
}
