//! Several instances of one deployment (issue 17): two `serve` on their own data dirs, one
//! database, one bucket, the same secrets. A viewer keyed on one instance plays on after that
//! instance dies, through the other, with the same session and key; a user disabled, a session
//! or a device revoked through one instance is refused by the other at its next request (the
//! instances cache no authorisation: every request reads it from the database). Runs on
//! SQLite (one file both instances open) and PostgreSQL.

use serde_json::json;

use crate::common::evidence::{post_json, Auth};
use crate::common::garage::Garage;
use crate::common::media::title_clip;
use crate::common::viewer::{self, user_token, Client, PASSWORD};
use crate::common::{get, Harness};
use crate::metrics::{scrape, Scrape, TOKEN};

#[test]
fn playback_survives_an_instance_and_refusals_hold_on_every_instance() {
    let garage = Garage::start();
    // One deployment: the same secrets on every machine (they are not in the bucket).
    let env = garage.deployment("nodes");
    let one = Harness::folder().with_env(&env);
    for (user, role) in [
        ("vic", "viewer"),
        ("val", "viewer"),
        ("vera", "viewer"),
        ("ada", "admin"),
    ] {
        one.add_user(user, role, PASSWORD);
    }
    let v = one.package(&title_clip(one.dir.path(), 6.0), "Nodes", &[]);
    let video_id = v["video_id"].as_str().unwrap().to_string();
    let units = v["units"].as_u64().unwrap() as u32;
    let two = one.another_machine();
    let first = one.serve(&[]);
    let second = two.serve_with_env(&[], &[("LEAKTRACE_METRICS_TOKEN", TOKEN)]);

    // Keyed on the first instance, which then dies mid-playback (SIGKILL).
    let client = Client::start(&first, "vic", &"8".repeat(64), &video_id);
    let init = client.segment("init");
    assert!(!init.is_empty() && !client.segment("1").is_empty());
    let (device_token, session_id, cek) = (
        client.device_token.clone(),
        client.session_id.clone(),
        client.cek,
    );
    drop(client);
    drop(first);
    // The same session, device token and content key, on the second instance.
    let moved = Client {
        server: &second,
        device_token,
        session_id,
        cek,
    };
    for k in 2..=units {
        assert!(!moved.segment(&k.to_string()).is_empty(), "unit {k}");
    }
    // The second instance fetched what it lacked from the bucket, and says so.
    let scraped = Scrape::parse(&scrape(&second.base, Some(TOKEN)));
    let misses = scraped.value("leaktrace_storage_cache_misses_total", &[]);
    assert!(
        misses.is_some_and(|m| m >= f64::from(units - 1)),
        "{misses:?}"
    );
    let fetched = scraped.value("leaktrace_storage_fetched_bytes_total", &[]);
    assert!(fetched.is_some_and(|b| b > 0.0), "{fetched:?}");
    // The first unit there went through the full checks; the others through the one
    // statement that checks them and reserves the unit.
    let known = |result: &str| {
        scraped.value(
            "leaktrace_stream_cache_lookups_total",
            &[("cache", "known_session"), ("result", result)],
        )
    };
    assert_eq!(known("miss"), Some(1.0));
    assert_eq!(known("hit"), Some(f64::from(units - 2)));

    // Refusals decided through one instance hold on the other at once.
    let third = one.serve(&[]);
    // One report CA for the deployment, whichever instance is asked first.
    let ca = |server: &crate::common::Server| get(&server.url("/api/reports/ca.pem")).body;
    let (ca_third, ca_second) = (ca(&third), ca(&second));
    assert!(ca_third.contains("BEGIN CERTIFICATE"), "{ca_third}");
    assert_eq!(ca_third, ca_second, "each instance made its own report CA");
    let admin = user_token(&second, "ada", PASSWORD);
    let auth = Auth::Bearer(&admin);
    let val = Client::start(&third, "val", &"9".repeat(64), &video_id);
    val.segment("1");
    let r = post_json(&second, auth, "/api/admin/users/val/disable/", &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, body, _) = val.raw_segment("2");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("account_disabled"));

    let path = format!("/api/admin/sessions/{}/revoke/", moved.session_id);
    let r = post_json(&third, auth, &path, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, body, _) = moved.raw_segment("1");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("session_revoked"));

    let phone = viewer::device(&third, "vera", &"a".repeat(64));
    let vera = Client::start_on(&third, &phone, &video_id);
    vera.segment("1");
    let path = format!("/api/admin/devices/{}/revoke/", phone.id);
    let r = post_json(&second, auth, &path, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, body, _) = vera.raw_segment("2");
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("device_revoked"));
}
