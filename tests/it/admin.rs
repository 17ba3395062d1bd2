//! The admin API (behind the admin console): packaging titles as jobs from an upload or the
//! inbox, users, API keys, the security events stream and session revocation, each audited;
//! bad requests refused with the documented errors and no file left behind.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::evidence::{get_reply, multipart, post_json, post_raw, Auth, Part};
use crate::common::media::{clip, ClipSpec};
use crate::common::viewer::{self, user_token, Client, PASSWORD};
use crate::common::{get, Harness, Server};
use serde_json::{json, Value};

fn small_clip(dir: &Path, name: &str) -> std::path::PathBuf {
    clip(
        dir,
        name,
        &ClipSpec {
            size: "320x180",
            rate: "25",
            seconds: 3.0,
            audio: false,
            vf: None,
            codec: &["-c:v", "libx264", "-crf", "20"],
        },
    )
}

/// Polls a packaging job until it ends; its last status document.
fn wait_job(server: &Server, token: &str, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let r = get_reply(
            server,
            Auth::Bearer(token),
            &format!("/api/admin/jobs/{job_id}/"),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        if j["status"] == "succeeded" || j["status"] == "failed" {
            return j;
        }
        assert!(Instant::now() < deadline, "job still {}", j["status"]);
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn an_admin_packages_titles_from_an_upload_and_from_the_inbox() {
    let h = Harness::new();
    h.add_user("ada", "admin", PASSWORD);
    h.add_user("vic", "viewer", PASSWORD);
    let server = h.serve(&[]);
    let admin = user_token(&server, "ada", PASSWORD);
    let auth = Auth::Bearer(&admin);
    let d = h.dir.path();
    let source = std::fs::read(small_clip(d, "source.mp4")).unwrap();
    let sources = h.data_dir.join("sources");

    // An upload with options, packaged by a job with progress.
    let (ct, body) = multipart(&[
        Part::text("title", "Uploaded"),
        Part::text("unit_seconds", "0.5"),
        Part::file("source.mp4", &source),
    ]);
    let r = post_raw(&server, auth, "/api/admin/titles/", &ct, &body);
    assert_eq!(r.status, 202, "{}", r.body);
    let job_id = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["status_url"], format!("/api/admin/jobs/{job_id}/"));
    let job = wait_job(&server, &admin, &job_id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["progress"], json!(1.0), "{job}");
    assert_eq!(job["title"], "Uploaded");
    let video_id = job["video_id"].as_str().expect("the packaged title's id");
    let titles = get_reply(&server, auth, "/api/admin/titles/").json();
    assert_eq!(titles[0]["id"], video_id, "{titles}");
    assert_eq!(titles[0]["units"], 6, "3 s in 0.5 s units: {titles}");
    // The uploaded source is gone once packaged; a viewer can open the title.
    assert_eq!(files_in(&sources), 0);
    let client = Client::start(&server, "vic", &"1".repeat(64), video_id);
    assert!(!client.segment("init").is_empty());

    // The same title again: 409 before any work, and no upload left behind.
    let r = post_raw(&server, auth, "/api/admin/titles/", &ct, &body);
    r.assert_error(409, "title_exists");
    assert_eq!(files_in(&sources), 0);
    // Bad options and a file that is not a video, likewise refused cleanly.
    let bad_options: [&[(&str, &str)]; 7] = [
        &[("unit_seconds", "9")],
        &[("crf", "high")],
        &[("segment_units", "3")],
        &[("segment_units", "two")],
        &[("unit_seconds", "3"), ("segment_units", "2")],
        &[("ladder", "360,abc")],
        &[("ladder", "135")],
    ];
    let refused_options = bad_options.iter().map(|fields| {
        let mut parts = vec![Part::text("title", "Other")];
        parts.extend(fields.iter().map(|&(name, value)| Part::text(name, value)));
        parts.push(Part::file("s.mp4", &source));
        (parts, 400, "invalid_option")
    });
    for (parts, status, code) in refused_options.chain([
        (
            vec![Part::text("title", ""), Part::file("s.mp4", &source)],
            400,
            "invalid_title",
        ),
        (
            vec![
                Part::text("title", "Other"),
                Part::file("notes.txt", b"not a video"),
            ],
            415,
            "unsupported_media",
        ),
        (vec![Part::text("title", "Other")], 400, "missing_file"),
    ]) {
        let (ct, body) = multipart(&parts);
        post_raw(&server, auth, "/api/admin/titles/", &ct, &body).assert_error(status, code);
        assert_eq!(files_in(&sources), 0, "{code} left a file");
    }
    post_raw(&server, auth, "/api/admin/titles/", "text/plain", b"x")
        .assert_error(415, "unsupported_media_type");

    // A file already in the inbox: copied (through the checked handle) and packaged; the
    // inbox file stays, the copy goes once packaged.
    let inbox = h.data_dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("drop.mp4"), &source).unwrap();
    post_json(
        &server,
        auth,
        "/api/admin/titles/",
        &json!({"source_path": "drop.mp4", "title": "Other", "segment_units": 0}),
    )
    .assert_error(400, "invalid_option");
    let r = post_json(
        &server,
        auth,
        "/api/admin/titles/",
        &json!({"source_path": "drop.mp4", "title": "From the inbox", "ladder": [90, 180],
                "unit_seconds": 0.5, "segment_units": 2}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let job = wait_job(&server, &admin, r.json()["job_id"].as_str().unwrap());
    assert_eq!(job["status"], "succeeded", "{job}");
    // Packaged with the lower rendition it asked for.
    let db = h.db();
    let titles = shared::db::repo::videos::list(&mut db.conn().unwrap()).unwrap();
    let inboxed = titles.iter().find(|v| v.title == "From the inbox").unwrap();
    let layout = formats::layout::DataLayout::new(&h.data_dir).title(&inboxed.storage_dir);
    let package = formats::package::PackageManifest::read(&layout).unwrap();
    assert_eq!(package.renditions.len(), 1, "{package:?}");
    // Two half-second units per segment: every rendition in four variants.
    assert_eq!(package.video.segment_units, 2);
    for variant in formats::layout::SegmentVariant::all(2) {
        for index in [0, 1] {
            let segment = layout.rendition_unit(index, variant, package.video.segment_count());
            assert!(segment.is_file(), "{}", segment.display());
        }
    }
    assert_eq!(
        (package.renditions[0].width, package.renditions[0].height),
        (160, 90),
        "the source is 180 lines high: only 90 is below it"
    );
    assert!(inbox.join("drop.mp4").is_file());
    assert_eq!(files_in(&sources), 0, "the copy is removed once packaged");
    post_json(
        &server,
        auth,
        "/api/admin/titles/",
        &json!({"source_path": "../secrets/jwt.key", "title": "Escape"}),
    )
    .assert_error(400, "path_outside_inbox");
    let jobs = get_reply(&server, auth, "/api/admin/jobs/").json();
    assert_eq!(jobs.as_array().unwrap().len(), 2, "{jobs}");
    get_reply(&server, auth, "/api/admin/jobs/nothing/").assert_error(404, "job_not_found");
}

/// A deployment's `[packaging]` settings are what the CLI and the admin API package with when
/// a request does not say; the titles list shows how each title was packaged, also for a title
/// recorded before that was recorded (read from its manifest when the server starts).
#[test]
fn the_deployment_chooses_the_packaging_a_request_does_not_name() {
    let h = Harness::new().with_env(&[
        ("LEAKTRACE_PACKAGING_CODE".into(), "tardos-v2".into()),
        ("LEAKTRACE_PACKAGING_UNIT_SECONDS".into(), "0.5".into()),
        ("LEAKTRACE_PACKAGING_SEGMENT_UNITS".into(), "2".into()),
        ("LEAKTRACE_PACKAGING_LADDER".into(), "none".into()),
    ]);
    h.add_user("ada", "admin", PASSWORD);
    let source = small_clip(h.dir.path(), "source.mp4");
    // The CLI: the deployment's packaging, or what the flags say.
    let cli = h.package(&source, "CLI default", &[]);
    assert_eq!(
        (
            &cli["code"],
            &cli["segment_units"],
            &cli["units"],
            &cli["segments"]
        ),
        (&json!("tardos-v2"), &json!(2), &json!(6), &json!(3)),
        "{cli}"
    );
    let asked = h.package(
        &source,
        "CLI asked",
        &["--code", "uniform-v1", "--segment-units", "1"],
    );
    assert_eq!(
        (&asked["code"], &asked["segment_units"], &asked["units"]),
        (&json!("uniform-v1"), &json!(1), &json!(6)),
        "the unit length still the deployment's: {asked}"
    );

    // The admin API, likewise.
    let server = h.serve(&[]);
    let admin = user_token(&server, "ada", PASSWORD);
    let auth = Auth::Bearer(&admin);
    let inbox = h.data_dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::copy(&source, inbox.join("drop.mp4")).unwrap();
    for body in [
        json!({"source_path": "drop.mp4", "title": "API default"}),
        json!({"source_path": "drop.mp4", "title": "API asked", "unit_seconds": 1.0,
               "segment_units": 1, "code": "uniform-v1"}),
    ] {
        let r = post_json(&server, auth, "/api/admin/titles/", &body);
        assert_eq!(r.status, 202, "{}", r.body);
        let job = wait_job(&server, &admin, r.json()["job_id"].as_str().unwrap());
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    // The upload form likewise.
    let (ct, body) = multipart(&[
        Part::text("title", "Form default"),
        Part::file("source.mp4", &std::fs::read(&source).unwrap()),
    ]);
    let r = post_raw(&server, auth, "/api/admin/titles/", &ct, &body);
    assert_eq!(r.status, 202, "{}", r.body);
    let job = wait_job(&server, &admin, r.json()["job_id"].as_str().unwrap());
    assert_eq!(job["status"], "succeeded", "{job}");
    // A unit length that does not fit the deployment's two units per segment is refused,
    // saying where the two came from; one out of range is refused as such, whatever the
    // deployment's setting.
    for (unit_seconds, names_the_setting, says) in [
        (3, true, "packaging.segment_units"),
        (9, false, "unit length 9 s"),
    ] {
        let r = post_json(
            &server,
            auth,
            "/api/admin/titles/",
            &json!({"source_path": "drop.mp4", "title": "Too long", "unit_seconds": unit_seconds}),
        );
        r.assert_error(400, "invalid_option");
        assert!(r.body.contains(says), "{}", r.body);
        assert_eq!(
            r.body.contains("packaging.segment_units"),
            names_the_setting,
            "{}",
            r.body
        );
    }
    let listed = |server: &Server, admin: &str| -> Vec<(String, Value, Value, Value)> {
        let titles = get_reply(server, Auth::Bearer(admin), "/api/admin/titles/").json();
        titles
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let title = t["title"].as_str().unwrap().to_string();
                (
                    title,
                    t["code"].clone(),
                    t["segment_units"].clone(),
                    t["units"].clone(),
                )
            })
            .collect()
    };
    let row = |title: &str, code: &str, segment_units: u32, units: u32| {
        (
            title.to_string(),
            json!(code),
            json!(segment_units),
            json!(units),
        )
    };
    assert_eq!(
        listed(&server, &admin),
        [
            row("API asked", "uniform-v1", 1, 3),
            row("API default", "tardos-v2", 2, 6),
            row("CLI asked", "uniform-v1", 1, 6),
            row("CLI default", "tardos-v2", 2, 6),
            row("Form default", "tardos-v2", 2, 6),
        ]
    );
    // The manifest says the same as the list.
    let db = h.db();
    let titles = shared::db::repo::videos::list(&mut db.conn().unwrap()).unwrap();
    let by_api = titles.iter().find(|v| v.title == "API default").unwrap();
    let layout = formats::layout::DataLayout::new(&h.data_dir).title(&by_api.storage_dir);
    let package = formats::package::PackageManifest::read(&layout).unwrap();
    assert_eq!(
        (package.watermark.code, package.video.segment_units),
        (formats::codes::CodeScheme::Tardos, 2)
    );
    assert!(
        package.renditions.is_empty(),
        "the deployment's ladder: none"
    );

    // Titles recorded before their packaging was: their rows say nothing of it until a
    // server starts and reads their manifests (one that names its title; one that names
    // another title and one that is missing stay unknown, and the server still starts).
    drop(server);
    let legacy_dir = h.data_dir.join("videos").join("v-legacy");
    std::fs::create_dir_all(&legacy_dir).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(layout.manifest()).unwrap()).unwrap();
    manifest["video_id"] = json!("v-legacy");
    std::fs::write(
        legacy_dir.join("package.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    for (id, title, dir) in [
        ("v-legacy", "Legacy", "videos/v-legacy"),
        ("v-other", "Names another", by_api.storage_dir.as_str()),
        ("v-missing", "Missing", "videos/v-missing"),
    ] {
        shared::db::repo::videos::create(
            &mut db.conn().unwrap(),
            &shared::db::repo::videos::NewVideo {
                id: id.into(),
                title: title.into(),
                storage_dir: dir.into(),
                code: None,
                segment_units: None,
                ..by_api.clone()
            },
        )
        .unwrap();
    }
    let server = h.serve(&[]);
    let admin = user_token(&server, "ada", PASSWORD);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listed(&server, &admin).contains(&row("Legacy", "tardos-v2", 2, 6)) {
        assert!(Instant::now() < deadline, "{:?}", listed(&server, &admin));
        std::thread::sleep(Duration::from_millis(100));
    }
    let unknown = (json!(null), json!(null), json!(6));
    for title in ["Names another", "Missing"] {
        let (_, code, segment_units, units) = listed(&server, &admin)
            .into_iter()
            .find(|(t, ..)| t == title)
            .unwrap();
        assert_eq!((code, segment_units, units), unknown, "{title}");
    }
}

/// A packaging job that keeps failing for a reason of this installation (here the titles'
/// folder is a file) is retried until its attempts are spent; the last one drops the upload.
#[test]
fn the_last_failed_attempt_of_a_packaging_job_drops_its_upload() {
    let h = Harness::new();
    h.add_user("ada", "admin", PASSWORD);
    let server = h.serve_with_env(&[], &[("LEAKTRACE_JOB_MAX_ATTEMPTS", "1")]);
    let admin = user_token(&server, "ada", PASSWORD);
    let videos = h.data_dir.join("videos");
    if videos.is_dir() {
        std::fs::remove_dir_all(&videos).unwrap();
    }
    std::fs::write(&videos, b"not a folder").unwrap();
    let source = std::fs::read(small_clip(h.dir.path(), "source.mp4")).unwrap();
    let (ct, body) = multipart(&[
        Part::text("title", "Doomed"),
        Part::file("source.mp4", &source),
    ]);
    let r = post_raw(
        &server,
        Auth::Bearer(&admin),
        "/api/admin/titles/",
        &ct,
        &body,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let job = wait_job(&server, &admin, r.json()["job_id"].as_str().unwrap());
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert!(
        job["error"].as_str().unwrap_or("").contains("videos"),
        "the reason names the folder: {job}"
    );
    assert_eq!(files_in(&h.data_dir.join("sources")), 0);
}

#[test]
fn an_admin_manages_users_keys_events_and_sessions() {
    let t = common::leaks::packaged(4.0);
    t.h.add_user("ada", "admin", PASSWORD);
    let server = t.h.serve(&[]);
    let admin = user_token(&server, "ada", PASSWORD);
    let auth = Auth::Bearer(&admin);

    // Users: added, listed, disabled (cannot sign in), enabled again.
    let r = post_json(
        &server,
        auth,
        "/api/admin/users/",
        &json!({"username": "nina", "role": "analyst", "password": "nina's password"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["role"], "analyst");
    assert!(r.json().get("password_hash").is_none());
    post_json(
        &server,
        auth,
        "/api/admin/users/",
        &json!({"username": "nina", "role": "analyst", "password": "another password"}),
    )
    .assert_error(409, "user_exists");
    for (body, code) in [
        (
            json!({"username": "x", "role": "boss", "password": "long enough pw"}),
            "invalid_role",
        ),
        (
            json!({"username": "x", "role": "viewer", "password": "short"}),
            "invalid_password",
        ),
    ] {
        post_json(&server, auth, "/api/admin/users/", &body).assert_error(400, code);
    }
    let users = get_reply(&server, auth, "/api/admin/users/").json();
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "nina"));
    let r = post_json(&server, auth, "/api/admin/users/nina/disable/", &json!({}));
    assert_eq!(r.json()["disabled"], true, "{}", r.body);
    common::viewer::login(&server, "nina", "nina's password")
        .assert_error(401, "invalid_credentials");
    post_json(&server, auth, "/api/admin/users/nina/enable/", &json!({}));
    assert_eq!(
        common::viewer::login(&server, "nina", "nina's password").status,
        200
    );
    post_json(&server, auth, "/api/admin/users/ada/disable/", &json!({}))
        .assert_error(409, "cannot_disable_self");

    // API keys: the key is shown once, works, and stops working when revoked.
    let r = post_json(
        &server,
        auth,
        "/api/admin/api-keys/",
        &json!({"name": "crawler-x"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.json()["key"].as_str().unwrap().to_string();
    let listed = get_reply(&server, auth, "/api/admin/api-keys/").json();
    assert!(listed[0].get("key").is_none(), "{listed}");
    assert!(
        key.starts_with(listed[0]["prefix"].as_str().unwrap()),
        "{listed}"
    );
    // A crawler lists only its own cases (it has none).
    let r = get_reply(&server, Auth::ApiKey(&key), "/api/cases/");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([]));
    post_json(
        &server,
        auth,
        "/api/admin/api-keys/crawler-x/revoke/",
        &json!({}),
    );
    get_reply(&server, Auth::ApiKey(&key), "/api/cases/").assert_error(401, "invalid_api_key");

    // The events stream: a probe for a file shows up; `since` narrows the list.
    get(&server.url("/media/title.mp4")).assert_error(404, "not_found");
    let events = get_reply(&server, auth, "/api/admin/security-events/?limit=5").json();
    assert_eq!(events[0]["kind"], "direct_file_probe", "{events}");
    let since = events[0]["created_at"].as_str().unwrap().to_string();
    let newer = get_reply(
        &server,
        auth,
        &format!(
            "/api/admin/security-events/?since={}",
            since.replace('+', "%2B")
        ),
    )
    .json();
    // Only the events at or after the newest one known.
    assert!(newer
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == events[0]["id"]));
    let since_time = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
    for e in newer.as_array().unwrap() {
        let t = chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap()).unwrap();
        assert!(t >= since_time, "{e} is older than {since}");
    }
    get_reply(&server, auth, "/api/admin/security-events/?since=yesterday")
        .assert_error(400, "invalid_since");
    get_reply(&server, auth, "/api/admin/security-events/?limit=0")
        .assert_error(400, "invalid_limit");

    // A session revoked by the admin is refused at once, and cannot be revoked twice.
    let client = Client::start(&server, "vic", &"1".repeat(64), &t.video_id);
    client.segment("1");
    let path = format!("/api/admin/sessions/{}/revoke/", client.session_id);
    let r = post_json(&server, auth, &path, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, body, _) = client.raw_segment("2");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    post_json(&server, auth, &path, &json!({})).assert_error(409, "session_ended");
    let events = get_reply(&server, auth, "/api/admin/security-events/?limit=5").json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "session_revoked"
                && e["session_id"] == json!(client.session_id)
                && e["user"] == "vic"),
        "{events}"
    );

    // A device revoked by the admin: its open session is revoked, its tokens refused at once,
    // and it stays revoked until vic signs in and registers it again.
    let phone = viewer::device(&server, "vic", &"2".repeat(64));
    let client = Client::start_on(&server, &phone, &t.video_id);
    client.segment("1");
    let listed = get_reply(&server, auth, "/api/admin/users/vic/devices/").json();
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == json!(phone.id))
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(mine["fingerprint"], "2".repeat(64));
    assert_eq!(mine["revoked_at"], Value::Null);
    get_reply(&server, auth, "/api/admin/users/nobody/devices/")
        .assert_error(404, "user_not_found");
    let path = format!("/api/admin/devices/{}/revoke/", phone.id);
    let r = post_json(&server, auth, &path, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sessions_revoked"], json!([client.session_id]));
    assert!(r.json()["device"]["revoked_at"].is_string(), "{}", r.body);
    let (status, body, _) = client.raw_segment("2");
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("device_revoked"));
    phone
        .refresh_of(&server, &phone.token)
        .assert_error(401, "device_revoked");
    post_json(&server, auth, &path, &json!({})).assert_error(409, "device_revoked");
    let again = viewer::device(&server, "vic", &"2".repeat(64));
    assert_eq!(again.id, phone.id);
    let back = Client::start_on(&server, &again, &t.video_id);
    assert!(!back.segment("init").is_empty());

    // Every change is in the audit trail, whose chain still verifies.
    let trail = get_reply(&server, auth, "/api/admin/audit/?limit=50").json();
    assert_eq!(trail["chain"]["intact"], true, "{trail}");
    let actions: Vec<String> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for action in [
        "user_created",
        "user_disabled",
        "user_enabled",
        "api_key_created",
        "api_key_revoked",
        "session_revoked",
        "device_revoked",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    t.h.run(&["audit", "verify"], None).success();
}
