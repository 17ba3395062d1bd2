//! Who may do what: the evidence routes, the admin API and the viewer API's entry points against every kind
//! of caller (each role, crawler keys, no token, an expired, a tampered and an `alg: none`
//! token, a device token where a user token is needed). Allowed callers reach the route's own checks (a
//! submission of a text file gets 415), refused ones get the documented 401 or 403.

use crate::common;

use crate::common::evidence::{
    case, get_bytes, get_reply, post_json, post_raw, submit, submit_raw, Auth, Part,
};
use crate::common::leaks::{leak, packaged};
use crate::common::viewer::{device_token, user_token, PASSWORD};
use base64::Engine;
use shared::auth::device_key::DeviceKey;
use shared::auth::tokens::{unix_now, TokenKeys};
use shared::db::repo::users;
use shared::domain::Role;

/// The answer a caller gets: a status and, for errors, the code.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Status(u16),
    Error(u16, &'static str),
}
use Expect::{Error, Status};

#[test]
fn evidence_and_viewer_routes_against_every_caller() {
    let t = packaged(4.0);
    for (name, role) in [("ann", "analyst"), ("lee", "legal"), ("ada", "admin")] {
        t.h.add_user(name, role, PASSWORD);
    }
    let key_of = |name: &str| {
        let out = t.h.run(&["apikey", "create", name], None);
        out.success();
        out.stdout().lines().last().unwrap().trim().to_string()
    };
    let crawler = key_of("crawler-a");
    let other_crawler = key_of("crawler-b");
    let revoked = key_of("crawler-old");
    t.h.run(&["apikey", "revoke", "crawler-old"], None)
        .success();
    let server = t.h.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);

    // A case submitted by crawler A (it stays queued: no worker runs).
    let d = t.dir.path();
    leak(&server, "val", &"1".repeat(64), &t, &d.join("val.mp4"));
    let video = std::fs::read(d.join("val.mp4")).unwrap();
    let r = submit(
        &server,
        Auth::ApiKey(&crawler),
        &[Part::file("v.mp4", &video)],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let case_id = r.json()["case_id"].as_str().unwrap().to_string();

    let viewer = user_token(&server, "vic", PASSWORD);
    let analyst = user_token(&server, "ann", PASSWORD);
    let legal = user_token(&server, "lee", PASSWORD);
    let admin = user_token(&server, "ada", PASSWORD);
    let device = device_token(&server, "vic", &"2".repeat(64));
    let keys = TokenKeys::new(&t.h.secret_key("jwt.key"));
    let ann = users::find_by_username(&mut t.h.db().conn().unwrap(), "ann")
        .unwrap()
        .unwrap();
    let expired = keys
        .issue_user(&ann.id, Role::Analyst, unix_now() - 3601)
        .unwrap()
        .token;
    let mut tampered: Vec<String> = analyst.split('.').map(String::from).collect();
    // The payload claims admin; the signature no longer matches.
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&tampered[1])
        .unwrap();
    let claims = String::from_utf8(claims)
        .unwrap()
        .replace("\"analyst\"", "\"admin\"");
    tampered[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
    let tampered = tampered.join(".");
    let none_header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", analyst.split('.').nth(1).unwrap());

    let callers: Vec<(&str, Auth)> = vec![
        ("viewer", Auth::Bearer(&viewer)),
        ("analyst", Auth::Bearer(&analyst)),
        ("legal", Auth::Bearer(&legal)),
        ("admin", Auth::Bearer(&admin)),
        ("crawler (submitter)", Auth::ApiKey(&crawler)),
        ("another crawler", Auth::ApiKey(&other_crawler)),
        ("revoked key", Auth::ApiKey(&revoked)),
        ("no token", Auth::None),
        ("expired token", Auth::Bearer(&expired)),
        ("tampered token", Auth::Bearer(&tampered)),
        ("alg none token", Auth::Bearer(&alg_none)),
        ("device token", Auth::Bearer(&device)),
    ];
    let refused_tokens = |who: &str| match who {
        "revoked key" => Some(Error(401, "invalid_api_key")),
        "no token" => Some(Error(401, "missing_token")),
        "expired token" => Some(Error(401, "token_expired")),
        "tampered token" | "alg none token" => Some(Error(401, "invalid_token")),
        "device token" => Some(Error(401, "wrong_token_kind")),
        _ => None,
    };
    let submit_expect = |who: &str| {
        refused_tokens(who).unwrap_or(match who {
            "analyst" | "admin" | "crawler (submitter)" | "another crawler" => {
                Error(415, "unsupported_media")
            }
            _ => Error(403, "wrong_role"),
        })
    };
    // The case is still queued: whoever may download reports gets 409 case_not_finished.
    let report_expect = |who: &str| {
        refused_tokens(who).unwrap_or(match who {
            "analyst" | "legal" | "admin" => Error(409, "case_not_finished"),
            _ => Error(403, "wrong_role"),
        })
    };
    let verify_expect = |who: &str| {
        refused_tokens(who).unwrap_or(match who {
            "analyst" | "legal" | "admin" => Status(200),
            _ => Error(403, "wrong_role"),
        })
    };
    // The viewer API takes bearer tokens only: a crawler key there is no credential at all.
    let viewer_refusals = |who: &str| match who {
        "crawler (submitter)" | "another crawler" | "revoked key" | "no token" => {
            Some(Error(401, "missing_token"))
        }
        "expired token" => Some(Error(401, "token_expired")),
        "tampered token" | "alg none token" => Some(Error(401, "invalid_token")),
        _ => None,
    };
    let register_expect = |who: &str| {
        viewer_refusals(who).unwrap_or(match who {
            "viewer" | "admin" => Status(200),
            "device token" => Error(401, "wrong_token_kind"),
            _ => Error(403, "wrong_role"),
        })
    };
    let titles_expect = |who: &str| {
        viewer_refusals(who).unwrap_or(match who {
            "device token" => Status(200),
            _ => Error(401, "wrong_token_kind"),
        })
    };
    let read_expect = |who: &str| {
        refused_tokens(who).unwrap_or(match who {
            "analyst" | "legal" | "admin" | "crawler (submitter)" => Status(200),
            _ => Error(403, "wrong_role"),
        })
    };

    let list_expect = |who: &str| {
        refused_tokens(who).unwrap_or(match who {
            "viewer" => Error(403, "wrong_role"),
            _ => Status(200),
        })
    };
    // The admin API takes admins' user tokens only.
    let admin_expect = |who: &str, allowed: Expect| {
        viewer_refusals(who).unwrap_or(match who {
            "admin" => allowed,
            "device token" => Error(401, "wrong_token_kind"),
            _ => Error(403, "wrong_role"),
        })
    };
    let check = |route: &str, who: &str, reply: common::Reply, want: Expect| match want {
        Status(s) => assert_eq!(reply.status, s, "{route} as {who}: {}", reply.body),
        Error(s, code) => {
            assert_eq!(reply.status, s, "{route} as {who}: {}", reply.body);
            assert_eq!(reply.json()["error"]["code"], code, "{route} as {who}");
        }
    };
    for (who, auth) in &callers {
        let text = [Part::file("notes.txt", b"not a video")];
        check(
            "POST /api/verify-watermark/",
            who,
            submit(&server, *auth, &text),
            submit_expect(who),
        );
        check(
            "GET /api/cases/{id}/",
            who,
            case(&server, *auth, &case_id),
            read_expect(who),
        );
        check(
            "GET /api/cases/{id}/report.pdf",
            who,
            get_reply(&server, *auth, &format!("/api/cases/{case_id}/report.pdf")),
            report_expect(who),
        );
        check(
            "POST /api/reports/verify/",
            who,
            post_raw(
                &server,
                *auth,
                "/api/reports/verify/",
                "application/pdf",
                b"%PDF-1.7",
            ),
            verify_expect(who),
        );
        check(
            "POST /api/register-device/",
            who,
            post_json(
                &server,
                *auth,
                "/api/register-device/",
                &serde_json::json!({
                    "device_fingerprint": "3".repeat(64),
                    "device_public_key": DeviceKey::generate().public_key(),
                }),
            ),
            register_expect(who),
        );
        check(
            "GET /api/videos/",
            who,
            get_reply(&server, *auth, "/api/videos/"),
            titles_expect(who),
        );
        check(
            "GET /api/cases/",
            who,
            get_reply(&server, *auth, "/api/cases/"),
            list_expect(who),
        );
        for path in [
            "/api/admin/titles/",
            "/api/admin/jobs/",
            "/api/admin/users/",
            "/api/admin/api-keys/",
            "/api/admin/security-events/",
            "/api/admin/audit/",
            "/api/admin/users/vic/devices/",
        ] {
            check(
                &format!("GET {path}"),
                who,
                get_reply(&server, *auth, path),
                admin_expect(who, Status(200)),
            );
        }
        // Admins reach each change's own checks; nobody else does.
        let changes: [(&str, serde_json::Value, Expect); 7] = [
            (
                "/api/admin/titles/",
                serde_json::json!({"source_path": "nothing-here.mp4", "title": "T"}),
                Error(400, "file_not_found"),
            ),
            (
                "/api/admin/users/",
                serde_json::json!({"username": "bad name", "role": "viewer", "password": "long enough pw"}),
                Error(400, "invalid_username"),
            ),
            (
                "/api/admin/users/nobody/disable/",
                serde_json::json!({}),
                Error(404, "user_not_found"),
            ),
            (
                "/api/admin/api-keys/",
                serde_json::json!({"name": "bad name"}),
                Error(400, "invalid_api_key_name"),
            ),
            (
                "/api/admin/api-keys/nothing/revoke/",
                serde_json::json!({}),
                Error(404, "api_key_not_found"),
            ),
            (
                "/api/admin/sessions/nothing/revoke/",
                serde_json::json!({}),
                Error(404, "session_not_found"),
            ),
            (
                "/api/admin/devices/nothing/revoke/",
                serde_json::json!({}),
                Error(404, "device_not_found"),
            ),
        ];
        for (path, body, allowed) in changes {
            check(
                &format!("POST {path}"),
                who,
                post_json(&server, *auth, path, &body),
                admin_expect(who, allowed),
            );
        }
        // The CA certificate is public: any caller, any token.
        let (status, _, _) = get_bytes(&server, *auth, "/api/reports/ca.pem");
        assert_eq!(status, 200, "ca.pem as {who}");
    }
    // A JSON inbox submission passes the same gate.
    let body = br#"{"video_file_path": "nothing-here.mp4"}"#;
    submit_raw(&server, Auth::Bearer(&legal), "application/json", body)
        .assert_error(403, "wrong_role");
    submit_raw(&server, Auth::ApiKey(&crawler), "application/json", body)
        .assert_error(400, "file_not_found");
}
