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

use crate::common::viewer::{login, register};

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
fn devices_register_and_refresh_bound_to_their_fingerprint() {
    let (h, s) = setup();
    let ut = user_token(&s);
    register(&s, "", FP).assert_error(401, "invalid_token");
    send(
        "POST",
        &s.url("/api/register-device/"),
        None,
        Some(&json!({"device_fingerprint": FP})),
    )
    .assert_error(401, "missing_token");
    register(&s, &ut, "abc").assert_error(400, "invalid_fingerprint");
    register(&s, &ut, &"g".repeat(64)).assert_error(400, "invalid_fingerprint");

    let first = register(&s, &ut, FP);
    assert_eq!(first.status, 200, "{}", first.body);
    let d = first.json();
    assert_eq!(d["expires_in"], 300);
    let device_id = d["device_id"].as_str().unwrap().to_string();
    let dt = d["device_token"].as_str().unwrap().to_string();
    let again = register(&s, &ut, &FP.to_uppercase()).json();
    assert_eq!(
        again["device_id"],
        device_id.as_str(),
        "same fingerprint, same device"
    );
    register(&s, &dt, FP).assert_error(401, "wrong_token_kind");

    let refresh = |token: &str, fp: &str| {
        send(
            "POST",
            &s.url("/api/refresh-device-token/"),
            Some(token),
            Some(&json!({"device_fingerprint": fp})),
        )
    };
    let r = refresh(&dt, FP);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["expires_in"], 300);
    let other_fp = "f".repeat(64);
    refresh(&dt, &other_fp).assert_error(403, "fingerprint_mismatch");
    refresh(&ut, FP).assert_error(401, "wrong_token_kind");

    // An expired device token (signed by the server's own key) is refused.
    let keys = server_keys(&h);
    let db = h.db();
    let vic = shared::db::repo::users::find_by_username(&mut db.conn().unwrap(), "vic")
        .unwrap()
        .unwrap();
    let expired = keys
        .issue_device(&vic.id, Role::Viewer, &device_id, FP, unix_now() - 301)
        .unwrap();
    refresh(&expired.token, FP).assert_error(401, "token_expired");
    // A token naming a device of another user (or none) is refused.
    let forged = keys
        .issue_device(&vic.id, Role::Viewer, "no-such-device", FP, unix_now())
        .unwrap();
    refresh(&forged.token, FP).assert_error(403, "unknown_device");
    // A token signed by another key is refused.
    let foreign = TokenKeys::new(&[9u8; 64])
        .issue_device(&vic.id, Role::Viewer, &device_id, FP, unix_now())
        .unwrap();
    refresh(&foreign.token, FP).assert_error(401, "invalid_token");
}

#[test]
fn titles_are_listed_to_device_tokens_only() {
    let (h, s) = setup();
    let db = h.db();
    videos::create(
        &mut db.conn().unwrap(),
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
        },
    )
    .unwrap();
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
