//! Stream sessions over real HTTP: request, X25519 key exchange, CEK unwrap by a client that
//! implements docs/PROTOCOL.md independently of the server code paths, and the status endpoint.

use crate::common;

use crate::common::viewer::Registered;
use crate::common::{send, Harness, Server};
use base64::Engine;
use serde_json::json;
use shared::db::repo::sessions::SessionState;
use shared::db::repo::{security_events, sessions, videos};
use streaming::crypto;

const FP_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const FP_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn setup() -> (Harness, Server) {
    let h = Harness::new();
    h.add_user("vic", "viewer", common::viewer::PASSWORD);
    let db = h.db();
    videos::create(
        &mut db.conn().unwrap(),
        &videos::NewVideo {
            id: "v-1".into(),
            title: "Title".into(),
            duration_seconds: 6.0,
            unit_seconds: 1.0,
            unit_count: 6,
            width: 320,
            height: 240,
            frame_rate: 25.0,
            has_audio: false,
            storage_dir: "videos/v-1".into(),
            sealed_secret: vec![0; 60],
            source_sha256: "00".repeat(32),
            created_at: shared::db::now(),
            code: Some("uniform-v1".into()),
            segment_units: Some(1),
        },
    )
    .unwrap();
    let server = h.serve(&[]);
    (h, server)
}

fn device(s: &Server, fp: &str) -> Registered {
    common::viewer::device(s, "vic", fp)
}

fn request(s: &Server, dt: &str, video: &str) -> common::Reply {
    common::viewer::request_stream(s, dt, video)
}

/// The key exchange as the device signs it.
fn exchange(s: &Server, device: &Registered, session: &str, key: &str) -> common::Reply {
    device.exchange(s, session, key)
}

#[test]
fn key_exchange_delivers_a_cek_only_the_client_can_unwrap() {
    let (h, s) = setup();
    let d = device(&s, FP_A);
    let dt = d.token.clone();
    let r = request(&s, &dt, "v-1");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let session_id = v["session_id"].as_str().unwrap().to_string();
    assert_eq!(v["expires_in"], 300);
    let server_public =
        crypto::decode_public_key(v["server_public_key"].as_str().unwrap()).unwrap();

    let (client_secret, client_public) = crypto::generate_keypair();
    let ok = exchange(
        &s,
        &d,
        &session_id,
        &crypto::encode_public_key(&client_public),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let wrapped = ok.json()["encrypted_cek"].as_str().unwrap().to_string();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&wrapped)
            .unwrap()
            .len(),
        12 + 32 + 16,
        "nonce || ciphertext || tag"
    );
    let session_key =
        crypto::derive_session_key(&client_secret, &server_public, &session_id).unwrap();
    let cek =
        crypto::unwrap_cek(&session_key, &session_id, &wrapped).expect("client unwraps the CEK");
    assert_eq!(cek.len(), 32);

    // At rest: the ephemeral secret is gone, the CEK is sealed, not stored in the clear.
    let db = h.db();
    let row = sessions::get(&mut db.conn().unwrap(), &session_id).unwrap();
    assert_eq!(row.state, SessionState::Keyed);
    assert!(row.sealed_server_secret.is_none());
    let sealed = row.sealed_cek.unwrap();
    assert!(
        !sealed.windows(32).any(|w| w == cek),
        "CEK never stored in the clear"
    );

    exchange(
        &s,
        &d,
        &session_id,
        &crypto::encode_public_key(&client_public),
    )
    .assert_error(409, "already_keyed");

    let status = send(
        "GET",
        &s.url(&format!("/api/security/status/{session_id}/")),
        Some(&dt),
        None,
    );
    assert_eq!(status.status, 200, "{}", status.body);
    let st = status.json();
    assert_eq!(
        (st["status"].as_str(), st["state"].as_str()),
        (Some("ok"), Some("keyed"))
    );
    assert!(st["expires_in"].as_i64().unwrap() > 290);
}

#[test]
fn bad_keys_sessions_and_devices_are_refused_with_documented_codes() {
    let (h, s) = setup();
    let d = device(&s, FP_A);
    let dt = d.token.clone();
    request(&s, &dt, "no-such-video").assert_error(404, "video_not_found");
    let session_id = request(&s, &dt, "v-1").json()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    exchange(&s, &d, &session_id, "not base64!").assert_error(400, "invalid_public_key");
    exchange(&s, &d, &session_id, &b64(&[7u8; 31])).assert_error(400, "invalid_public_key");
    exchange(&s, &d, &session_id, &b64(&[7u8; 33])).assert_error(400, "invalid_public_key");
    exchange(&s, &d, &session_id, &b64(&[0u8; 32])).assert_error(400, "weak_public_key");
    let (_, good) = crypto::generate_keypair();
    let good = crypto::encode_public_key(&good);
    exchange(&s, &d, "no-such-session", &good).assert_error(404, "session_not_found");

    // Malformed keys did not consume the session.
    let fresh = request(&s, &dt, "v-1").json()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(exchange(&s, &d, &fresh, &good).status, 200);

    // Another device may not use a session: refused and recorded against the caller, and the
    // session is untouched (knowing its id must not let anyone end it).
    let od = device(&s, FP_B);
    let other = od.token.clone();
    exchange(&s, &od, &session_id, &good).assert_error(403, "device_mismatch");
    let status_url = s.url(&format!("/api/security/status/{session_id}/"));
    send("GET", &status_url, Some(&other), None).assert_error(403, "device_mismatch");
    assert_eq!(exchange(&s, &d, &session_id, &good).status, 200);
    let status = send("GET", &status_url, Some(&dt), None);
    assert_ne!(status.json()["status"], "revoked", "{}", status.body);
    let db = h.db();
    let events = security_events::for_session(&mut db.conn().unwrap(), &session_id).unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].kind.as_str(), events[0].severity.as_str()),
        ("session_device_mismatch", "warning")
    );
    let claims = |token: &str| {
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    assert_eq!(
        events[0].device_id.as_deref(),
        claims(&other)["did"].as_str(),
        "the event names the device that asked"
    );
    send(
        "POST",
        &s.url("/api/request-stream/"),
        Some(&dt),
        Some(&json!({"video": "v-1"})),
    )
    .assert_error(400, "invalid_json");
}
