//! Crawler callbacks against a real receiver on loopback: the verdict POSTed when the case
//! ends, signed with the key's hash, retried after a receiver error, recorded and audited;
//! callback URLs refused unless the deployment allows their host.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::db::repo::audit;
use shared::db::repo::callbacks::{self, CallbackStatus};

use crate::common::evidence::{api_key, submit, Auth, Part};
use crate::common::loopback::{Answer, Loopback};
use crate::common::viewer::{user_token, PASSWORD};
use crate::common::Harness;

/// A receiver answering each request with the next status of `answers` (the last one from
/// then on), keeping what it got.
fn receiver(answers: &'static [u16]) -> Loopback {
    Loopback::start(move |n, _| Answer::empty(answers[n.min(answers.len() - 1)]))
}

#[test]
fn a_crawler_is_called_back_with_its_signed_verdict_after_a_receiver_error() {
    let receiver = receiver(&[500, 200]);
    let allowed = format!("127.0.0.1:{}", receiver.port);
    let h = Harness::new().with_env(&[("LEAKTRACE_CALLBACK_HOSTS".into(), allowed.clone())]);
    h.add_user("ann", "analyst", PASSWORD);
    let key = api_key(&h, "crawler");
    let server = h.serve(&[]);
    let clip = std::fs::read(crate::common::media::title_clip(h.dir.path(), 1.0)).unwrap();
    let url = format!("http://{allowed}/leaktrace/hook?token=abc");

    // Refused: a user token, a host not allowed, a URL that is not one.
    let analyst = user_token(&server, "ann", PASSWORD);
    let with = |auth: Auth, url: &str| {
        submit(
            &server,
            auth,
            &[Part::file("s.mp4", &clip), Part::text("callback_url", url)],
        )
    };
    with(Auth::Bearer(&analyst), &url).assert_error(400, "callback_for_keys_only");
    let elsewhere = format!("http://127.0.0.1:{}/hook", receiver.port + 1);
    with(Auth::ApiKey(&key), &elsewhere).assert_error(400, "callback_not_allowed");
    with(
        Auth::ApiKey(&key),
        "http://169.254.169.254/latest/meta-data",
    )
    .assert_error(400, "callback_not_allowed");
    with(Auth::ApiKey(&key), "gopher://127.0.0.1/").assert_error(400, "invalid_callback_url");
    let creds = format!("http://user:pw@{allowed}/hook");
    with(Auth::ApiKey(&key), &creds).assert_error(400, "invalid_callback_url");
    // A key stored before callbacks were signed has no callback secret: refused up front.
    let old = shared::auth::api_key::generate();
    shared::db::repo::api_keys::create(
        &mut h.db().conn().unwrap(),
        "old-crawler",
        &old.display_prefix,
        &old.hash,
        None,
    )
    .unwrap();
    with(Auth::ApiKey(&old.plaintext), &url).assert_error(400, "callback_needs_new_key");

    let r = with(Auth::ApiKey(&key), &url);
    assert_eq!(r.status, 202, "{}", r.body);
    let case_id = r.json()["case_id"].as_str().unwrap().to_string();

    // The first POST gets a 500; the queue's backoff (5 s) brings the second.
    let got = receiver.wait_for(2, Duration::from_secs(120));
    let last = &got[1];
    let body: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body["case_id"], case_id.as_str(), "{body:#}");
    assert_eq!(body["status"], "done", "{body:#}");
    assert!(body["result"]["verdict"].is_string(), "{body:#}");
    assert_eq!(body["status_url"], format!("/api/cases/{case_id}/"));
    assert!(
        body["result"].get("matches").is_none(),
        "a crawler sees references, not sessions: {body:#}"
    );
    assert_eq!(got[0].body, last.body, "the same verdict each time");
    // Signed over "<timestamp>.<body>" with the secret the crawler derives from its key.
    let timestamp = last.header("x-leaktrace-timestamp").unwrap();
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..120).contains(&age), "{age}");
    let mut derive = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    derive.update(b"leaktrace/callback-signing/v1");
    let secret = derive.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&last.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        last.header("x-leaktrace-signature"),
        Some(expected.as_str())
    );
    assert_eq!(last.header("content-type"), Some("application/json"));

    // Recorded and audited, once.
    let db = h.db();
    let mut conn = db.conn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let row = loop {
        let row = callbacks::get(&mut conn, &case_id).unwrap().unwrap();
        if row.status != CallbackStatus::Pending || Instant::now() > deadline {
            break row;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(row.status, CallbackStatus::Delivered, "{row:?}");
    assert_eq!((row.attempts, row.last_status), (2, Some(200)), "{row:?}");
    assert!(row.delivered_at.is_some());
    let actions: Vec<String> = audit::for_case(&mut conn, &case_id)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "callback_delivered")
            .count(),
        1,
        "{actions:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.got.lock().unwrap().len(), 2, "delivered once");
}
