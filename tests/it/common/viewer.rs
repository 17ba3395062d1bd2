//! A viewer as a client of docs/PROTOCOL.md sees it: log in, register a device, open a
//! session, exchange keys, fetch and decrypt segments. Built on the protocol's own
//! cryptography functions (checked against the worked example by the test vectors).

use serde_json::json;
use shared::auth::device_key::{key_exchange_binding, DeviceKey, Purpose};
use streaming::crypto;

use super::{send, Reply, Server};

pub const PASSWORD: &str = "vic's password";

/// Logs in and returns the user token.
pub fn user_token(server: &Server, user: &str, password: &str) -> String {
    let r = login(server, user, password);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["user_token"].as_str().unwrap().to_string()
}

pub fn login(server: &Server, user: &str, password: &str) -> Reply {
    send(
        "POST",
        &server.url("/api/auth/login/"),
        None,
        Some(&json!({"username": user, "password": password})),
    )
}

/// Registers `fingerprint` with a fresh proof key.
pub fn register(server: &Server, user_token: &str, fingerprint: &str) -> Reply {
    register_with(server, user_token, fingerprint, &DeviceKey::generate())
}

pub fn register_with(
    server: &Server,
    user_token: &str,
    fingerprint: &str,
    key: &DeviceKey,
) -> Reply {
    send(
        "POST",
        &server.url("/api/register-device/"),
        Some(user_token),
        Some(&json!({"device_fingerprint": fingerprint, "device_public_key": key.public_key()})),
    )
}

/// A registered device as its client holds it: id, current token, fingerprint and the
/// private proof key.
pub struct Registered {
    pub id: String,
    pub token: String,
    pub fingerprint: String,
    pub key: DeviceKey,
}

impl Registered {
    /// Registers `fingerprint` for the holder of `user_token`.
    pub fn new(server: &Server, user_token: &str, fingerprint: &str) -> Registered {
        let key = DeviceKey::generate();
        let reg = register_with(server, user_token, fingerprint, &key);
        assert_eq!(reg.status, 200, "{}", reg.body);
        let v = reg.json();
        Registered {
            id: v["device_id"].as_str().unwrap().to_string(),
            token: v["device_token"].as_str().unwrap().to_string(),
            fingerprint: fingerprint.to_string(),
            key,
        }
    }

    /// The refresh of `token` as this device asks for it (a proof over the token's `jti`).
    pub fn refresh_of(&self, server: &Server, token: &str) -> Reply {
        let jti = token_jti(token);
        refresh(
            server,
            token,
            &self.fingerprint,
            &self.key.prove(Purpose::Refresh, &self.id, &jti),
        )
    }

    /// `POST /api/auth/logout/` with this device's token, signed by its key.
    pub fn logout(&self, server: &Server) -> Reply {
        let proof = self
            .key
            .prove(Purpose::Logout, &self.id, &token_jti(&self.token));
        send(
            "POST",
            &server.url("/api/auth/logout/"),
            Some(&self.token),
            Some(&json!({ "device_proof": proof })),
        )
    }

    /// The key exchange of `session_id` with `client_public_key`, signed by this device.
    pub fn exchange(&self, server: &Server, session_id: &str, client_public_key: &str) -> Reply {
        let proof = self.key.prove(
            Purpose::KeyExchange,
            &self.id,
            &key_exchange_binding(session_id, client_public_key),
        );
        exchange(server, &self.token, session_id, client_public_key, &proof)
    }
}

/// `POST /api/refresh-device-token/` as sent.
pub fn refresh(server: &Server, token: &str, fingerprint: &str, proof: &str) -> Reply {
    send(
        "POST",
        &server.url("/api/refresh-device-token/"),
        Some(token),
        Some(&json!({"device_fingerprint": fingerprint, "device_proof": proof})),
    )
}

/// `POST /api/complete-key-exchange/` as sent.
pub fn exchange(
    server: &Server,
    token: &str,
    session_id: &str,
    client_public_key: &str,
    proof: &str,
) -> Reply {
    send(
        "POST",
        &server.url("/api/complete-key-exchange/"),
        Some(token),
        Some(&json!({
            "session_id": session_id,
            "client_public_key": client_public_key,
            "device_proof": proof,
        })),
    )
}

/// The `jti` claim of a token (read, not verified: the client's view).
pub fn token_jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("the payload is JSON");
    claims["jti"].as_str().expect("a jti").to_string()
}

/// Logs in as `user` (password [`PASSWORD`]) and registers `fingerprint`.
pub fn device(server: &Server, user: &str, fingerprint: &str) -> Registered {
    let ut = user_token(server, user, PASSWORD);
    Registered::new(server, &ut, fingerprint)
}

/// Logs in as `user` (password [`PASSWORD`]) and registers `fingerprint`: a device token.
pub fn device_token(server: &Server, user: &str, fingerprint: &str) -> String {
    device(server, user, fingerprint).token
}

pub fn request_stream(server: &Server, device_token: &str, video_id: &str) -> Reply {
    send(
        "POST",
        &server.url("/api/request-stream/"),
        Some(device_token),
        Some(&json!({"video_id": video_id})),
    )
}

/// One keyed viewer session.
pub struct Client<'a> {
    pub server: &'a Server,
    pub device_token: String,
    pub session_id: String,
    pub cek: [u8; 32],
}

impl<'a> Client<'a> {
    /// A session of `user` on the device `fingerprint`, keyed.
    pub fn start(server: &'a Server, user: &str, fingerprint: &str, video_id: &str) -> Client<'a> {
        Client::start_on(server, &device(server, user, fingerprint), video_id)
    }

    /// A keyed session on an already registered device.
    pub fn start_on(server: &'a Server, device: &Registered, video_id: &str) -> Client<'a> {
        let device_token = device.token.clone();
        let req = request_stream(server, &device_token, video_id);
        assert_eq!(req.status, 200, "{}", req.body);
        let session_id = req.json()["session_id"].as_str().unwrap().to_string();
        let server_public =
            crypto::decode_public_key(req.json()["server_public_key"].as_str().unwrap()).unwrap();
        let (secret, public) = crypto::generate_keypair();
        let kex = device.exchange(server, &session_id, &crypto::encode_public_key(&public));
        assert_eq!(kex.status, 200, "{}", kex.body);
        let key = crypto::derive_session_key(&secret, &server_public, &session_id).unwrap();
        let cek = crypto::unwrap_cek(
            &key,
            &session_id,
            kex.json()["encrypted_cek"].as_str().unwrap(),
        )
        .unwrap();
        Client {
            server,
            device_token,
            session_id,
            cek,
        }
    }

    /// GET with this session's device token.
    pub fn get(&self, path: &str) -> Reply {
        send(
            "GET",
            &self.server.url(path),
            Some(&self.device_token),
            None,
        )
    }

    pub fn manifest(&self) -> Reply {
        self.get(&format!("/api/video/manifest/{}/", self.session_id))
    }

    /// Status, body bytes and Retry-After of a segment request.
    pub fn raw_segment(&self, segment: &str) -> (u16, Vec<u8>, Option<u64>) {
        let url = self
            .server
            .url(&format!("/api/video/stream/{}/{segment}/", self.session_id));
        let resp = match ureq::get(&url)
            .set("Authorization", &format!("Bearer {}", self.device_token))
            .call()
        {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = resp.status();
        let retry = resp.header("retry-after").and_then(|v| v.parse().ok());
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        (status, body, retry)
    }

    /// A segment, decrypted with its own AAD.
    pub fn segment(&self, segment: &str) -> Vec<u8> {
        let (status, body, _) = self.raw_segment(segment);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let aad = crypto::segment_aad(&self.session_id, segment);
        crypto::open(&self.cek, aad.as_bytes(), &body).expect("segment decrypts with its own AAD")
    }
}
