//! Device proof keys (docs/PROTOCOL.md, "Device proof"). At registration a device makes an
//! ECDSA P-256 key pair whose private half never leaves it (in the browser a non-extractable
//! WebCrypto key) and sends the public half. A device token is bound to that key's
//! thumbprint, and the steps that extend or end what a token can do (refreshing it, once;
//! completing a key exchange; signing the device out) carry a signature by the key over what
//! they do. A copied device token alone therefore lives at most its 300 s, never yields a
//! content key and cannot sign its device out.
//!
//! Wire forms: the public key is standard base64 of the uncompressed SEC1 point (65 bytes,
//! WebCrypto's `exportKey('raw')`); a proof is standard base64 of the 64-byte `r || s`
//! signature (WebCrypto's ECDSA output) with SHA-256 over [`proof_message`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// What a proof authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A new device token in place of the one whose `jti` is signed.
    Refresh,
    /// The key exchange of a session with the client public key signed.
    KeyExchange,
    /// Signing the device out (revoking it) with the token whose `jti` is signed.
    Logout,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Refresh => "refresh",
            Purpose::KeyExchange => "key-exchange",
            Purpose::Logout => "logout",
        }
    }
}

/// The bytes a device signs: `leaktrace/v1/device-proof/<purpose>\n<device_id>\n<binding>`,
/// where the binding is the presented token's `jti` (refresh, logout), or
/// `<session_id>\n<client_public_key>` for a key exchange (see [`key_exchange_binding`]).
pub fn proof_message(purpose: Purpose, device_id: &str, binding: &str) -> Vec<u8> {
    format!(
        "leaktrace/v1/device-proof/{}\n{device_id}\n{binding}",
        purpose.as_str()
    )
    .into_bytes()
}

/// The binding of a key exchange's proof.
pub fn key_exchange_binding(session_id: &str, client_public_key: &str) -> String {
    format!("{session_id}\n{client_public_key}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceKeyError {
    #[error("device_public_key is not standard base64 of an uncompressed P-256 point (65 bytes)")]
    MalformedKey,
    #[error("device_proof is not standard base64 of a 64-byte P-256 signature")]
    MalformedProof,
    #[error("device_proof is not this device's signature of the request")]
    WrongProof,
}

impl DeviceKeyError {
    pub fn code(&self) -> &'static str {
        match self {
            DeviceKeyError::MalformedKey => "invalid_device_key",
            DeviceKeyError::MalformedProof => "invalid_device_proof",
            DeviceKeyError::WrongProof => "wrong_device_proof",
        }
    }
}

/// A device's public proof key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePublicKey {
    key: VerifyingKey,
    /// The canonical wire form (standard base64 of the uncompressed point).
    encoded: String,
}

impl DevicePublicKey {
    /// Parses the wire form; only uncompressed points on the curve are accepted.
    pub fn parse(b64: &str) -> Result<Self, DeviceKeyError> {
        let raw = STANDARD
            .decode(b64.trim().as_bytes())
            .map_err(|_| DeviceKeyError::MalformedKey)?;
        if raw.len() != 65 || raw[0] != 0x04 {
            return Err(DeviceKeyError::MalformedKey);
        }
        let key = VerifyingKey::from_sec1_bytes(&raw).map_err(|_| DeviceKeyError::MalformedKey)?;
        Ok(DevicePublicKey {
            key,
            encoded: STANDARD.encode(&raw),
        })
    }

    /// Standard base64 of the uncompressed point: what is stored.
    pub fn encoded(&self) -> &str {
        &self.encoded
    }

    /// Hex SHA-256 of the uncompressed point: what a device token is bound to.
    pub fn thumbprint(&self) -> String {
        hex::encode(Sha256::digest(self.key.to_encoded_point(false).as_bytes()))
    }

    /// Checks `proof` (base64 `r || s`) over [`proof_message`].
    pub fn verify(
        &self,
        purpose: Purpose,
        device_id: &str,
        binding: &str,
        proof: &str,
    ) -> Result<(), DeviceKeyError> {
        let raw = STANDARD
            .decode(proof.trim().as_bytes())
            .map_err(|_| DeviceKeyError::MalformedProof)?;
        let signature = Signature::from_slice(&raw).map_err(|_| DeviceKeyError::MalformedProof)?;
        self.key
            .verify(&proof_message(purpose, device_id, binding), &signature)
            .map_err(|_| DeviceKeyError::WrongProof)
    }
}

/// The thumbprint of a stored key (its canonical wire form, as [`DevicePublicKey::encoded`]
/// gives it), without parsing the point: checked on every device-token request.
pub fn thumbprint_of_stored(encoded: &str) -> Option<String> {
    let raw = STANDARD.decode(encoded.as_bytes()).ok()?;
    Some(hex::encode(Sha256::digest(raw)))
}

/// A device's private proof key, for Rust clients (tests, examples, load scripts); browsers
/// use WebCrypto.
pub struct DeviceKey(SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(REDACTED)")
    }
}

impl DeviceKey {
    pub fn generate() -> Self {
        DeviceKey(SigningKey::random(&mut rand::rngs::OsRng))
    }

    /// The public half in its wire form.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.0.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// A proof (base64 `r || s`) of `purpose` for `device_id` and `binding`.
    pub fn prove(&self, purpose: Purpose, device_id: &str, binding: &str) -> String {
        let signature: Signature = self.0.sign(&proof_message(purpose, device_id, binding));
        STANDARD.encode(signature.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_only_for_its_key_purpose_device_and_binding() {
        let key = DeviceKey::generate();
        let public = DevicePublicKey::parse(&key.public_key()).unwrap();
        assert_eq!(public.encoded(), key.public_key());
        assert_eq!(public.thumbprint().len(), 64);
        assert_eq!(
            thumbprint_of_stored(public.encoded()),
            Some(public.thumbprint())
        );
        let proof = key.prove(Purpose::Refresh, "d1", "jti-1");
        assert_eq!(
            public.verify(Purpose::Refresh, "d1", "jti-1", &proof),
            Ok(())
        );
        for (purpose, device, binding) in [
            (Purpose::KeyExchange, "d1", "jti-1"),
            (Purpose::Refresh, "d2", "jti-1"),
            (Purpose::Refresh, "d1", "jti-2"),
        ] {
            assert_eq!(
                public.verify(purpose, device, binding, &proof),
                Err(DeviceKeyError::WrongProof),
                "{purpose:?} {device} {binding}"
            );
        }
        let other = DeviceKey::generate().prove(Purpose::Refresh, "d1", "jti-1");
        assert_eq!(
            public.verify(Purpose::Refresh, "d1", "jti-1", &other),
            Err(DeviceKeyError::WrongProof)
        );
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([0u8; 64]),
            &STANDARD.encode([1u8; 63]),
        ] {
            assert!(
                public.verify(Purpose::Refresh, "d1", "jti-1", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_uncompressed_points_on_the_curve_are_keys() {
        let key = DeviceKey::generate();
        let raw = STANDARD.decode(key.public_key()).unwrap();
        assert_eq!(raw.len(), 65);
        let compressed = DevicePublicKey::parse(&key.public_key())
            .unwrap()
            .key
            .to_encoded_point(true);
        let mut off_curve = raw.clone();
        off_curve[64] ^= 1;
        for bad in [
            String::new(),
            "%%%".into(),
            STANDARD.encode(compressed.as_bytes()),
            STANDARD.encode(&off_curve),
            STANDARD.encode([4u8; 65]),
        ] {
            assert_eq!(
                DevicePublicKey::parse(&bad),
                Err(DeviceKeyError::MalformedKey),
                "{bad}"
            );
        }
    }

    /// A key pair and signature made by WebCrypto (Node 20's `crypto.subtle`, the same API as
    /// the browser's: `generateKey({name: 'ECDSA', namedCurve: 'P-256'})`, `exportKey('raw')`,
    /// `sign({name: 'ECDSA', hash: 'SHA-256'})`): the browser and the server agree on the wire
    /// forms. The browser test signs live as well.
    #[test]
    fn a_webcrypto_signature_verifies() {
        let public = DevicePublicKey::parse(
            "BN1WoQIcjRly9YI88QI6Jm28Gky1nDCD/utXNuFszwEroJtJqELsd+sGAjah+zQjsfDvnkQeJk+HEcsZ+kaPDCU=",
        )
        .unwrap();
        let proof = "ommyFIuQ3tc54CJn+Zc81fnP59k7j3yt7T1wNAh1ozMq06WB2OOeIzn0sFIx1oOLSma1kfK4vP/O7ryAK6tqPg==";
        let binding = key_exchange_binding("session-1", "client-key");
        assert_eq!(
            public.verify(Purpose::KeyExchange, "device-1", &binding, proof),
            Ok(())
        );
        assert_eq!(
            public.verify(Purpose::Refresh, "device-1", &binding, proof),
            Err(DeviceKeyError::WrongProof)
        );
    }
}
