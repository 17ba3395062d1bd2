//! Login, device registration, device token refresh and the title list over real HTTP.

use crate::common;

use crate::common::{send, Harness, Server};
use serde_json::json;
use shared::auth::tokens::{unix_now, TokenKeys};
use shared::db::repo::videos;
use shared::domain::Role;

const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn setup() -> (Harness, Server) {
    let h = Harness::new();
    h.add_user("vic", "viewer", common::viewer::PASSWORD);
    h.add_user("ann", "analyst", "ann's password");
    let server = h.serve(&[]);
    (h, server)
}

use crate::common::viewer::{exchange, login, refresh, register, token_jti, Registered};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use shared::auth::device_key::{key_exchange_binding, DeviceKey, DevicePublicKey, Purpose};
use shared::auth::tokens::DeviceBinding;

fn user_token(s: &Server) -> String {
    common::viewer::user_token(s, "vic", common::viewer::PASSWORD)
}

/// The server's own signing key, read from its data dir (to craft expired tokens).
fn server_keys(h: &Harness) -> TokenKeys {
    TokenKeys::new(&h.secret_key("jwt.key"))
}

#[test]
fn login_issues_a_user_token_and_refuses_everything_else() {
    let (h, s) = setup();
    let ok = login(&s, "ann", "ann's password");
    assert_eq!(ok.status, 200, "{}", ok.body);
    let v = ok.json();
    assert_eq!(v["role"], "analyst");
    assert_eq!(v["expires_in"], 3600);
    assert!(v["user_token"].as_str().unwrap().split('.').count() == 3);

    login(&s, "ann", "wrong password").assert_error(401, "invalid_credentials");
    login(&s, "nobody", "whatever it is").assert_error(401, "invalid_credentials");
    h.run(&["user", "disable", "ann"], None).success();
    login(&s, "ann", "ann's password").assert_error(401, "invalid_credentials");

    let url = s.url("/api/auth/login/");
    send("POST", &url, None, Some(&json!({"username": "vic"}))).assert_error(400, "invalid_json");
    send("POST", &url, None, Some(&json!(["not", "an", "object"])))
        .assert_error(400, "invalid_json");
    let raw = ureq::post(&url)
        .set("Content-Type", "text/plain")
        .send_string("username=vic");
    let resp = match raw {
        Err(ureq::Error::Status(_, r)) => r,
        other => panic!("expected an error status, got {other:?}"),
    };
    assert_eq!(resp.status(), 415);
    send("GET", &url, None, None).assert_error(405, "method_not_allowed");
}

#[test]
fn devices_register_and_refresh_bound_to_their_fingerprint_and_key() {
    let (h, s) = setup();
    let ut = user_token(&s);
    register(&s, "", FP).assert_error(401, "invalid_token");
    let url = s.url("/api/register-device/");
    let key = DeviceKey::generate();
    send(
        "POST",
        &url,
        None,
        Some(&json!({"device_fingerprint": FP, "device_public_key": key.public_key()})),
    )
    .assert_error(401, "missing_token");
    register(&s, &ut, "abc").assert_error(400, "invalid_fingerprint");
    register(&s, &ut, &"g".repeat(64)).assert_error(400, "invalid_fingerprint");
    // The proof key is required and must be an uncompressed P-256 point.
    send(
        "POST",
        &url,
        Some(&ut),
        Some(&json!({"device_fingerprint": FP})),
    )
    .assert_error(400, "invalid_json");
    for bad in ["", "not base64!", "BAAA", &"A".repeat(88)] {
        send(
            "POST",
            &url,
            Some(&ut),
            Some(&json!({"device_fingerprint": FP, "device_public_key": bad})),
        )
        .assert_error(400, "invalid_device_key");
    }

    let device = Registered::new(&s, &ut, FP);
    let again = register(&s, &ut, &FP.to_uppercase());
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.json()["device_id"],
        device.id.as_str(),
        "same fingerprint, same device"
    );
    // That registration gave the device a new key: tokens of the old one are superseded.
    send("GET", &s.url("/api/videos/"), Some(&device.token), None)
        .assert_error(401, "token_superseded");
    let device = Registered::new(&s, &ut, FP);
    register(&s, &device.token, FP).assert_error(401, "wrong_token_kind");

    let r = device.refresh_of(&s, &device.token);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["expires_in"], 300);
    let fresh = r.json()["device_token"].as_str().unwrap().to_string();
    // A token is refreshed once: the same request replayed (token and proof, as a proxy log
    // or a saved network capture holds them) gets nothing more.
    device
        .refresh_of(&s, &device.token)
        .assert_error(401, "token_already_refreshed");
    assert_eq!(
        send("GET", &s.url("/api/videos/"), Some(&fresh), None).status,
        200
    );
    // The proof is over the refreshed token: a proof for one token does not refresh another.
    let proof_for_first = device
        .key
        .prove(Purpose::Refresh, &device.id, &token_jti(&device.token));
    refresh(&s, &fresh, FP, &proof_for_first).assert_error(403, "wrong_device_proof");
    let other_fp = "f".repeat(64);
    refresh(&s, &device.token, &other_fp, &proof_for_first)
        .assert_error(403, "fingerprint_mismatch");
    refresh(&s, &ut, FP, &proof_for_first).assert_error(401, "wrong_token_kind");

    // An expired device token (signed by the server's own key) is refused.
    let keys = server_keys(&h);
    let vic = vic_id(&h);
    let thumbprint = thumbprint(&device.key);
    let binding = |device_id: &'static str| DeviceBinding {
        device_id,
        fingerprint: FP,
        key_thumbprint: "",
        chain_started: unix_now(),
    };
    let mut bound = binding("");
    bound.device_id = &device.id;
    bound.key_thumbprint = &thumbprint;
    let expired = keys
        .issue_device(&vic, Role::Viewer, &bound, unix_now() - 301)
        .unwrap();
    refresh(&s, &expired.token, FP, "").assert_error(401, "token_expired");
    // A token naming a device of another user (or none) is refused.
    let forged = keys
        .issue_device(&vic, Role::Viewer, &binding("no-such-device"), unix_now())
        .unwrap();
    refresh(&s, &forged.token, FP, "").assert_error(401, "invalid_token");
    // A token signed by another key is refused.
    let foreign = TokenKeys::new(&[9u8; 64])
        .issue_device(&vic, Role::Viewer, &bound, unix_now())
        .unwrap();
    refresh(&s, &foreign.token, FP, "").assert_error(401, "invalid_token");
}

fn vic_id(h: &Harness) -> String {
    shared::db::repo::users::find_by_username(&mut h.db().conn().unwrap(), "vic")
        .unwrap()
        .unwrap()
        .id
}

fn thumbprint(key: &DeviceKey) -> String {
    DevicePublicKey::parse(&key.public_key())
        .unwrap()
        .thumbprint()
}

/// Issue 16.2: the fingerprint is readable in the token, so a copied device token used to
/// refresh forever from any machine. Without the device's private key it now lives its 300 s
/// and never yields a content key.
#[test]
fn a_copied_device_token_neither_refreshes_nor_keys_a_session() {
    let h = Harness::new();
    h.add_user("vic", "viewer", common::viewer::PASSWORD);
    let s = h.serve_with_env(&[], &[("LEAKTRACE_AUTH_FAILURES_MAX", "6")]);
    let ut = user_token(&s);
    let device = Registered::new(&s, &ut, FP);
    // The thief has the token and the fingerprint (both readable), and a key of its own.
    let thief = DeviceKey::generate();
    let jti = token_jti(&device.token);
    let stolen_proof = thief.prove(Purpose::Refresh, &device.id, &jti);
    refresh(&s, &device.token, FP, &stolen_proof).assert_error(403, "wrong_device_proof");
    refresh(&s, &device.token, FP, "not a signature").assert_error(400, "invalid_device_proof");
    refresh(&s, &device.token, FP, &BASE64.encode([1u8; 64]))
        .assert_error(403, "wrong_device_proof");
    let db = h.db();
    let failures = shared::db::repo::security_events::recent(&mut db.conn().unwrap(), 50)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "auth_failure" && e.detail.contains("without the device's key"))
        .count();
    assert_eq!(
        failures, 2,
        "each refused proof is an authentication failure"
    );

    // A title to open a session on (its files are never read by the key exchange).
    add_title(&h);
    let opened = common::viewer::request_stream(&s, &device.token, "v-1");
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session_id = opened.json()["session_id"].as_str().unwrap().to_string();
    let (_, public) = streaming::crypto::generate_keypair();
    let client_key = streaming::crypto::encode_public_key(&public);
    let binding = key_exchange_binding(&session_id, &client_key);
    let wrong = thief.prove(Purpose::KeyExchange, &device.id, &binding);
    exchange(&s, &device.token, &session_id, &client_key, &wrong)
        .assert_error(403, "wrong_device_proof");
    // A proof for another client key (the thief swapping in its own) does not carry over.
    let (_, other) = streaming::crypto::generate_keypair();
    let other_key = streaming::crypto::encode_public_key(&other);
    let for_other = device.key.prove(Purpose::KeyExchange, &device.id, &binding);
    exchange(&s, &device.token, &session_id, &other_key, &for_other)
        .assert_error(403, "wrong_device_proof");
    // A refresh proof is not a key-exchange proof.
    let refresh_proof = device.key.prove(Purpose::Refresh, &device.id, &binding);
    exchange(&s, &device.token, &session_id, &client_key, &refresh_proof)
        .assert_error(403, "wrong_device_proof");
    let ok = device.exchange(&s, &session_id, &client_key);
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Five wrong proofs so far; the sixth uses up the address's budget, and then even the
    // right proof is refused (guessing is bounded like password guessing).
    exchange(&s, &device.token, &session_id, &client_key, &wrong)
        .assert_error(403, "wrong_device_proof");
    device
        .exchange(&s, &session_id, &client_key)
        .assert_error(429, "too_many_attempts");
}

/// Refreshes keep the time the device registered; past `device_sign_in_hours` the chain ends.
#[test]
fn a_refresh_chain_ends_after_the_sign_in_lifetime() {
    let h = Harness::new();
    h.add_user("vic", "viewer", common::viewer::PASSWORD);
    let s = h.serve_with_env(&[], &[("LEAKTRACE_DEVICE_SIGN_IN_HOURS", "2")]);
    let device = Registered::new(&s, &user_token(&s), FP);
    let keys = server_keys(&h);
    let thumbprint = thumbprint(&device.key);
    let token_started = |hours_ago: u64| {
        let binding = DeviceBinding {
            device_id: &device.id,
            fingerprint: FP,
            key_thumbprint: &thumbprint,
            chain_started: unix_now() - hours_ago * 3600,
        };
        keys.issue_device(&vic_id(&h), Role::Viewer, &binding, unix_now())
            .unwrap()
            .token
    };
    let young = token_started(1);
    let r = device.refresh_of(&s, &young);
    assert_eq!(r.status, 200, "{}", r.body);
    // The new token keeps the chain's start.
    let renewed = r.json()["device_token"].as_str().unwrap().to_string();
    let claims = keys
        .verify(&renewed, shared::auth::tokens::TokenKind::Device)
        .unwrap();
    assert!(claims.chn.unwrap() <= unix_now() - 3600);
    let old = token_started(3);
    device
        .refresh_of(&s, &old)
        .assert_error(401, "sign_in_expired");
    // Signing in again starts a new chain.
    let again = Registered::new(&s, &user_token(&s), FP);
    assert_eq!(again.refresh_of(&s, &again.token).status, 200);
}

/// `/api/auth/logout/`: a user token is refused from then on and the devices registered with
/// it are revoked; a device signs its own logout (a copied device token cannot), which revokes
/// it (every token, open sessions) until the user registers it again.
#[test]
fn logout_ends_user_tokens_and_devices() {
    let (h, s) = setup();
    let logout = |token: &str| send("POST", &s.url("/api/auth/logout/"), Some(token), None);
    let ut = user_token(&s);
    let device = Registered::new(&s, &ut, FP);
    add_title(&h);
    let opened = common::viewer::request_stream(&s, &device.token, "v-1");
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session_id = opened.json()["session_id"].as_str().unwrap().to_string();

    // A device token alone cannot sign its device out.
    logout(&device.token).assert_error(400, "invalid_device_proof");
    let thief = DeviceKey::generate().prove(Purpose::Logout, &device.id, &token_jti(&device.token));
    send(
        "POST",
        &s.url("/api/auth/logout/"),
        Some(&device.token),
        Some(&json!({ "device_proof": thief })),
    )
    .assert_error(403, "wrong_device_proof");
    send(
        "POST",
        &s.url("/api/auth/logout/"),
        Some(&device.token),
        Some(&json!({ "device_proof": thief, "more": 1 })),
    )
    .assert_error(400, "invalid_json");
    let out = device.logout(&s);
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(
        out.json(),
        json!({"signed_out": "device", "devices_revoked": [device.id]})
    );
    send("GET", &s.url("/api/videos/"), Some(&device.token), None)
        .assert_error(401, "device_revoked");
    device
        .refresh_of(&s, &device.token)
        .assert_error(401, "device_revoked");
    common::viewer::request_stream(&s, &device.token, "v-1").assert_error(401, "device_revoked");
    let db = h.db();
    let session = shared::db::repo::sessions::get(&mut db.conn().unwrap(), &session_id).unwrap();
    assert_eq!(session.state.as_str(), "revoked");
    // The user token still works: registering again gives the device a new key.
    let back = Registered::new(&s, &ut, FP);
    assert_eq!(back.id, device.id);
    assert_eq!(
        send("GET", &s.url("/api/videos/"), Some(&back.token), None).status,
        200
    );
    send("GET", &s.url("/api/videos/"), Some(&device.token), None)
        .assert_error(401, "token_superseded");

    // Signing the user token out revokes it and the devices it registered (a device a thief
    // registered with a copied user token ends with it).
    let other = Registered::new(&s, &ut, &"e".repeat(64));
    let out = logout(&ut);
    assert_eq!(out.status, 200, "{}", out.body);
    let v = out.json();
    assert_eq!(v["signed_out"], "user_token");
    let mut revoked: Vec<String> = serde_json::from_value(v["devices_revoked"].clone()).unwrap();
    revoked.sort();
    let mut expected = vec![back.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    send("GET", &s.url("/api/videos/"), Some(&other.token), None)
        .assert_error(401, "device_revoked");
    register(&s, &ut, FP).assert_error(401, "token_revoked");
    logout(&ut).assert_error(401, "token_revoked");
    // Another sign-in is another token.
    assert_eq!(register(&s, &user_token(&s), FP).status, 200);
    send("POST", &s.url("/api/auth/logout/"), None, None).assert_error(401, "missing_token");
    logout("garbage").assert_error(401, "invalid_token");
    send("GET", &s.url("/api/auth/logout/"), Some(&ut), None)
        .assert_error(405, "method_not_allowed");
}

fn add_title(h: &Harness) {
    videos::create(
        &mut h.db().conn().unwrap(),
        &videos::NewVideo {
            id: "v-1".into(),
            title: "Test Title".into(),
            duration_seconds: 12.5,
            unit_seconds: 1.0,
            unit_count: 13,
            width: 640,
            height: 360,
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
}

#[test]
fn titles_are_listed_to_device_tokens_only() {
    let (h, s) = setup();
    add_title(&h);
    let ut = user_token(&s);
    let dt = register(&s, &ut, FP).json()["device_token"]
        .as_str()
        .unwrap()
        .to_string();
    let list = send("GET", &s.url("/api/videos/"), Some(&dt), None);
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(
        list.json(),
        json!([{"id": "v-1", "title": "Test Title", "duration_seconds": 12.5}])
    );
    send("GET", &s.url("/api/videos/"), Some(&ut), None).assert_error(401, "wrong_token_kind");
    send("GET", &s.url("/api/videos/"), None, None).assert_error(401, "missing_token");
}
