//! Signed tokens (JWT, HS256 pinned): the user token from login and the device token, which
//! lives 300 s and is bound to the user, the device id, the device fingerprint, the device's
//! proof key (its thumbprint) and the time the device was registered, which bounds how long a
//! chain of refreshes may last.

use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use crate::domain::Role;

pub const USER_TOKEN_TTL_SECONDS: u64 = 3600;
pub const DEVICE_TOKEN_TTL_SECONDS: u64 = 300;
const ISSUER: &str = "leaktrace";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
    #[error("a {expected} token is required")]
    WrongKind { expected: TokenKind },
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "token_expired",
            TokenError::Invalid => "invalid_token",
            TokenError::WrongKind { .. } => "wrong_token_kind",
        }
    }
}

formats::named_enum! {
    /// What a token is for: a signed-in user, or one registered device of a user.
    pub enum TokenKind {
        User = "user",
        Device = "device",
    }
}

/// What a token says. `did` (device id), `dfp` (fingerprint), `dkt` (thumbprint of the
/// device's proof key) and `chn` (when the chain of refreshes began: the registration) are
/// present on device tokens only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    pub role: Role,
    pub typ: TokenKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dfp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chn: Option<u64>,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

/// Signing and verification keys, built once from the JWT secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(REDACTED)")
    }
}

/// What a device token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBinding<'a> {
    pub device_id: &'a str,
    pub fingerprint: &'a str,
    /// Hex SHA-256 of the device's public proof key.
    pub key_thumbprint: &'a str,
    /// When the device was registered (Unix seconds): refreshes keep it.
    pub chain_started: u64,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
    pub claims: Claims,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    fn issue(&self, claims: Claims) -> Result<Issued, TokenError> {
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok(Issued {
            token,
            expires_in: claims.exp.saturating_sub(claims.iat),
            claims,
        })
    }

    /// A user token (login), valid one hour from `now` (Unix seconds).
    pub fn issue_user(&self, user_id: &str, role: Role, now: u64) -> Result<Issued, TokenError> {
        self.issue(Claims {
            iss: ISSUER.into(),
            sub: user_id.into(),
            role,
            typ: TokenKind::User,
            did: None,
            dfp: None,
            dkt: None,
            chn: None,
            iat: now,
            exp: now + USER_TOKEN_TTL_SECONDS,
            jti: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// A device token, valid 300 s from `now`, bound to the device, its fingerprint and key.
    pub fn issue_device(
        &self,
        user_id: &str,
        role: Role,
        binding: &DeviceBinding<'_>,
        now: u64,
    ) -> Result<Issued, TokenError> {
        self.issue(Claims {
            iss: ISSUER.into(),
            sub: user_id.into(),
            role,
            typ: TokenKind::Device,
            did: Some(binding.device_id.into()),
            dfp: Some(binding.fingerprint.into()),
            dkt: Some(binding.key_thumbprint.into()),
            chn: Some(binding.chain_started),
            iat: now,
            exp: now + DEVICE_TOKEN_TTL_SECONDS,
            jti: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Verifies signature (HS256 only), issuer, expiry (no leeway) and kind.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        let data =
            decode::<Claims>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        let complete = match kind {
            TokenKind::Device => {
                claims.did.is_some()
                    && claims.dfp.is_some()
                    && claims.dkt.is_some()
                    && claims.chn.is_some()
            }
            TokenKind::User => true,
        };
        if claims.typ != kind || !complete {
            return Err(TokenError::WrongKind { expected: kind });
        }
        Ok(claims)
    }
}

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[42u8; 64])
    }

    fn binding(fingerprint: &str) -> DeviceBinding<'_> {
        DeviceBinding {
            device_id: "d1",
            fingerprint,
            key_thumbprint: "k1",
            chain_started: 1_700_000_000,
        }
    }

    #[test]
    fn device_tokens_round_trip_with_binding() {
        let now = unix_now();
        let fp = "ab".repeat(32);
        let t = keys()
            .issue_device("u1", Role::Viewer, &binding(&fp), now)
            .unwrap();
        assert_eq!(t.expires_in, 300);
        let c = keys().verify(&t.token, TokenKind::Device).unwrap();
        assert_eq!((c.sub.as_str(), c.did.as_deref()), ("u1", Some("d1")));
        assert_eq!(c.dfp.as_deref(), Some(fp.as_str()));
        assert_eq!((c.dkt.as_deref(), c.chn), (Some("k1"), Some(1_700_000_000)));
        assert_eq!(
            keys().verify(&t.token, TokenKind::User),
            Err(TokenError::WrongKind {
                expected: TokenKind::User
            })
        );
        let u = keys().issue_user("u1", Role::Analyst, now).unwrap();
        assert_eq!(
            keys().verify(&u.token, TokenKind::Device),
            Err(TokenError::WrongKind {
                expected: TokenKind::Device
            })
        );
        assert_eq!(
            keys().verify(&u.token, TokenKind::User).unwrap().role,
            Role::Analyst
        );
    }

    #[test]
    fn expired_forged_and_other_algorithms_are_refused() {
        let old = unix_now() - 301;
        let t = keys()
            .issue_device("u1", Role::Viewer, &binding("f"), old)
            .unwrap();
        assert_eq!(
            keys().verify(&t.token, TokenKind::Device),
            Err(TokenError::Expired)
        );
        let fresh = keys().issue_user("u1", Role::Viewer, unix_now()).unwrap();
        assert_eq!(
            TokenKeys::new(&[1u8; 64]).verify(&fresh.token, TokenKind::User),
            Err(TokenError::Invalid),
            "another key"
        );
        // Same claims, "alg": "none".
        let payload = fresh.token.split('.').nth(1).unwrap();
        let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{none_header}.{payload}.");
        assert_eq!(
            keys().verify(&forged, TokenKind::User),
            Err(TokenError::Invalid)
        );
        // Tampered payload.
        let mut parts: Vec<String> = fresh.token.split('.').map(String::from).collect();
        parts[1].push('A');
        assert_eq!(
            keys().verify(&parts.join("."), TokenKind::User),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys().verify("garbage", TokenKind::User),
            Err(TokenError::Invalid)
        );
    }
}
