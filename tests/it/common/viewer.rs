//! A viewer as a client of docs/PROTOCOL.md sees it: log in, register a device, open a
//! session, exchange keys, fetch and decrypt segments. Built on the protocol's own
//! cryptography functions (checked against the worked example by the test vectors).

use serde_json::json;
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

pub fn register(server: &Server, user_token: &str, fingerprint: &str) -> Reply {
    send(
        "POST",
        &server.url("/api/register-device/"),
        Some(user_token),
        Some(&json!({"device_fingerprint": fingerprint})),
    )
}

/// Logs in as `user` (password [`PASSWORD`]) and registers `fingerprint`: a device token.
pub fn device_token(server: &Server, user: &str, fingerprint: &str) -> String {
    let ut = user_token(server, user, PASSWORD);
    let reg = register(server, &ut, fingerprint);
    assert_eq!(reg.status, 200, "{}", reg.body);
    reg.json()["device_token"].as_str().unwrap().to_string()
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
        let device_token = device_token(server, user, fingerprint);
        Client::start_on(server, device_token, video_id)
    }

    /// A keyed session on an already registered device.
    pub fn start_on(server: &'a Server, device_token: String, video_id: &str) -> Client<'a> {
        let req = request_stream(server, &device_token, video_id);
        assert_eq!(req.status, 200, "{}", req.body);
        let session_id = req.json()["session_id"].as_str().unwrap().to_string();
        let server_public =
            crypto::decode_public_key(req.json()["server_public_key"].as_str().unwrap()).unwrap();
        let (secret, public) = crypto::generate_keypair();
        let kex = send(
            "POST",
            &server.url("/api/complete-key-exchange/"),
            Some(&device_token),
            Some(
                &json!({"session_id": session_id, "client_public_key": crypto::encode_public_key(&public)}),
            ),
        );
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
