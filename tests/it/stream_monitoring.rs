//! What the streaming side does beyond the happy path, against a real server and a really
//! packaged title with audio: the audio track and the presentation offset in the MPD, the
//! demo endpoints, and monitoring that acts (ripping, concurrent sessions, authentication
//! failures, file probes, roles), each leaving a security event.

use std::path::Path;
use std::process::Command;

use crate::common::media::{clip, decode_errors, ClipSpec};
use crate::common::viewer::{self, login, register, request_stream, user_token, Client, PASSWORD};
use crate::common::{get, raw_get, send, Harness};
use formats::codes;
use formats::layout::Layout;
use formats::package::PackageManifest;
use formats::sealing;
use shared::db::repo::sessions::SessionState;
use shared::db::repo::{security_events, sessions, videos};

/// A 6-second 160x90 title with audio, in 1-second units.
fn packaged() -> (Harness, String, tempfile::TempDir) {
    let h = Harness::new();
    h.add_user("vic", "viewer", PASSWORD);
    h.add_user("ann", "analyst", "ann's password");
    let dir = tempfile::tempdir().unwrap();
    let input = clip(
        dir.path(),
        "title.mp4",
        &ClipSpec {
            size: "160x90",
            rate: "25",
            seconds: 6.0,
            audio: true,
            vf: None,
            codec: &["-c:v", "libx264"],
        },
    );
    let id = h.package(&input, "Monitored", &[])["video_id"]
        .as_str()
        .unwrap()
        .to_string();
    (h, id, dir)
}

fn package(h: &Harness, video_id: &str) -> (Layout, PackageManifest) {
    let layout = Layout::new(h.data_dir.join("videos").join(video_id));
    let m = serde_json::from_slice(&std::fs::read(layout.manifest()).unwrap()).unwrap();
    (layout, m)
}

fn events(h: &Harness, kind: &str) -> Vec<security_events::SecurityEventRow> {
    security_events::recent(&mut h.db().conn().unwrap(), 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// `ffprobe` values of the first packet of one stream type.
fn first_packet(file: &Path, stream: &str) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .args([
            "packet=pts_time",
            "-of",
            "csv=p=0",
            "-read_intervals",
            "%+#1",
        ])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().trim_end_matches(',').parse().ok())
}

#[test]
fn audio_and_presentation_offset_are_in_the_mpd_and_the_segments_play() {
    let (h, video_id, dir) = packaged();
    let (layout, m) = package(&h, &video_id);
    let audio = m.audio.clone().expect("the title has audio");
    let server = h.serve(&[]);
    let client = Client::start(&server, "vic", &"5".repeat(64), &video_id);
    let mpd = client.manifest();
    assert_eq!(mpd.status, 200);
    let sid = &client.session_id;
    assert!(mpd.body.contains(r#"contentType="audio""#), "{}", mpd.body);
    assert!(mpd
        .body
        .contains(&format!("/api/video/stream/{sid}/audio-init/")));
    assert!(mpd
        .body
        .contains(&format!("/api/video/stream/{sid}/audio-$Number$/")));
    assert!(mpd.body.contains(r#"codecs="mp4a.40.2""#));

    // Video: the offset in the MPD is the first frame's presentation time. CMAF fragments use
    // signed composition offsets, so the key frame that opens unit 1 is presented at 0 in
    // ISOBMFF (and MSE) terms. (FFmpeg's demuxer reports 0.08 s: it shifts every timestamp by
    // the B-frame delay to keep pts >= dts. That is its convention, not the file's timing.)
    let mut video = client.segment("init");
    for k in 1..=m.video.unit_count {
        video.extend(client.segment(&k.to_string()));
    }
    let vfile = dir.path().join("video.mp4");
    std::fs::write(&vfile, &video).unwrap();
    assert_eq!(decode_errors(&vfile), "");
    let unit1 = std::fs::read(layout.video_unit(formats::layout::Variant::A, 1)).unwrap();
    assert_eq!(formats::isobmff::first_presentation_time(&unit1), Some(0));
    assert_eq!(m.video.start_seconds, 0.0);
    assert!(first_packet(&vfile, "v:0").is_some());
    assert!(
        mpd.body.contains(r#"presentationTimeOffset="0""#),
        "{}",
        mpd.body
    );

    // Audio: init and every segment decrypt and decode; the bytes are the packaged ones.
    let mut sound = client.segment("audio-init");
    assert_eq!(sound, std::fs::read(layout.audio_init()).unwrap());
    for k in 1..=audio.segment_count {
        let plain = client.segment(&format!("audio-{k}"));
        assert_eq!(plain, std::fs::read(layout.audio_unit(k)).unwrap());
        sound.extend(plain);
    }
    let afile = dir.path().join("audio.mp4");
    std::fs::write(&afile, &sound).unwrap();
    assert_eq!(decode_errors(&afile), "");
    assert!(first_packet(&afile, "a:0").is_some());
    let (status, _, _) = client.raw_segment(&format!("audio-{}", audio.segment_count + 1));
    assert_eq!(status, 404);
    // Audio does not count towards the pace: only the video units were counted.
    let status = client.get(&format!("/api/security/status/{sid}/")).json();
    assert_eq!(status["segments_served"], m.video.unit_count as i64);
}

#[test]
fn demo_endpoints_show_the_security_state_and_the_code_to_the_owner_only() {
    let (h, video_id, _dir) = packaged();
    let server = h.serve_with_env(&[], &[("LEAKTRACE_DEMO_API", "true")]);
    let client = Client::start(&server, "vic", &"6".repeat(64), &video_id);
    let sid = client.session_id.clone();
    client.segment("1");

    let sec = client.get(&format!("/api/demo/security/{sid}/"));
    assert_eq!(sec.status, 200, "{}", sec.body);
    let sec = sec.json();
    assert_eq!(sec["status"], "ok");
    assert_eq!(sec["state"], "streaming");
    assert_eq!(sec["segments_served"], 1);
    assert_eq!(sec["limits"]["max_concurrent_sessions"], 2);
    assert_eq!(sec["user_open_sessions"], 1);
    assert!(sec["pace"]["content_seconds"].as_f64().unwrap() > 0.0);
    assert!(sec["events"].as_array().unwrap().is_empty());

    let wm = client.get(&format!("/api/demo/watermark/{sid}/"));
    assert_eq!(wm.status, 200, "{}", wm.body);
    let wm = wm.json();
    let row = videos::get(&mut h.db().conn().unwrap(), &video_id).unwrap();
    let secret: [u8; 32] = sealing::open(
        &h.master_key(),
        &sealing::video_secret_aad(&video_id),
        &row.sealed_secret,
    )
    .unwrap()
    .try_into()
    .unwrap();
    let code = codes::session_code(
        &secret,
        codes::CodeScheme::Uniform,
        &sid,
        wm["unit_count"].as_u64().unwrap() as u32,
    );
    let letters: String = code.iter().map(|&b| if b { 'B' } else { 'A' }).collect();
    assert_eq!(wm["code"], letters);
    assert_eq!(wm["code_hash"], codes::code_hash(&code));
    assert_eq!(wm["metadata_layer"]["signature"], "ed25519");

    // Another device of the same user is refused (recorded; the session goes on).
    let other = viewer::device_token(&server, "vic", &"7".repeat(64));
    send(
        "GET",
        &server.url(&format!("/api/demo/watermark/{sid}/")),
        Some(&other),
        None,
    )
    .assert_error(403, "device_mismatch");
    let sec = client.get(&format!("/api/demo/security/{sid}/")).json();
    assert_ne!(sec["status"], "revoked");
    assert_eq!(sec["events"][0]["kind"], "session_device_mismatch");
    assert_eq!(sec["events"][0]["severity"], "warning");
    assert!(!client.segment("1").is_empty());
    drop(server);

    // Off (the default), the demo endpoints do not exist.
    let server = h.serve(&[]);
    let client = Client::start(&server, "vic", &"6".repeat(64), &video_id);
    client
        .get(&format!("/api/demo/security/{}/", client.session_id))
        .assert_error(404, "not_found");
}

#[test]
fn ripping_is_flagged_then_throttled_with_retry_after() {
    let (h, video_id, _dir) = packaged();
    let server = h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_RIPPING_BURST_SECONDS", "2"),
            ("LEAKTRACE_RIPPING_FLAG_SPEED", "0.5"),
            ("LEAKTRACE_RIPPING_LIMIT_SPEED", "1"),
        ],
    );
    let client = Client::start(&server, "vic", &"8".repeat(64), &video_id);
    // Two units fit the burst; the third is far ahead of real time (6 units in well under
    // the seconds a real player would take).
    let mut refused = None;
    for k in 1..=6 {
        let (status, body, retry) = client.raw_segment(&k.to_string());
        if status != 200 {
            refused = Some((k, status, body, retry));
            break;
        }
    }
    let (k, status, body, retry) = refused.expect("a ripping client is throttled");
    assert!(k >= 3, "throttled at unit {k}: the burst allows two units");
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After is given");
    let flagged = events(&h, "ripping_suspected");
    assert_eq!(flagged.len(), 1, "flagged once");
    assert_eq!(
        flagged[0].session_id.as_deref(),
        Some(client.session_id.as_str())
    );
    assert_eq!(flagged[0].severity, "warning");
    assert_eq!(events(&h, "ripping_throttled").len(), 1);
    // Throttled, not revoked: the session still answers its status.
    let status = client
        .get(&format!("/api/security/status/{}/", client.session_id))
        .json();
    assert_eq!(status["status"], "ok");
}

/// Parallel requests for every unit of a title: however many run at once, and on however
/// many servers, the session is served no more units than the burst and the pace allow (each
/// unit is reserved in the database before it is served). Before, every request in flight
/// passed the check with the same count.
#[test]
fn a_parallel_burst_gets_no_more_than_the_pace_allows_on_one_or_two_servers() {
    let h = Harness::new();
    h.add_user("vic", "viewer", PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let input = clip(
        dir.path(),
        "title.mp4",
        &ClipSpec {
            size: "160x90",
            rate: "25",
            seconds: 40.0,
            audio: false,
            vf: None,
            codec: &["-c:v", "libx264"],
        },
    );
    let video_id = h.package(&input, "Burst", &["--unit-seconds", "0.5"])["video_id"]
        .as_str()
        .unwrap()
        .to_string();
    let env = [
        ("LEAKTRACE_RIPPING_BURST_SECONDS", "10"),
        ("LEAKTRACE_RIPPING_FLAG_SPEED", "1"),
        ("LEAKTRACE_RIPPING_LIMIT_SPEED", "1"),
    ];
    let (burst, limit_speed, unit) = (10.0, 1.0, 0.5);
    let one = h.serve_with_env(&[], &env);
    let two = h.serve_with_env(&[], &env);
    for (case, servers) in [
        ("one server", vec![&one]),
        ("two servers", vec![&one, &two]),
    ] {
        let started = std::time::Instant::now();
        let first = Client::start(servers[0], "vic", &"d".repeat(64), &video_id);
        let clients: Vec<Client> = servers
            .iter()
            .map(|s| Client {
                server: s,
                device_token: first.device_token.clone(),
                session_id: first.session_id.clone(),
                cek: first.cek,
            })
            .collect();
        let served = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..32 {
                let (client, served) = (&clients[t % clients.len()], &served);
                scope.spawn(move || {
                    for k in 1..=80 {
                        if client.raw_segment(&k.to_string()).0 == 200 {
                            served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        let served = served.into_inner();
        let allowed = ((burst + limit_speed * elapsed) / unit).floor() as usize;
        assert!(
            served >= (burst / unit) as usize && served <= allowed,
            "{case}: {served} units served in {elapsed:.1} s; the pace allows {allowed}"
        );
        let db = h.db();
        let row = sessions::get(&mut db.conn().unwrap(), &first.session_id).unwrap();
        assert_eq!(
            row.segments_served as usize, served,
            "{case}: every unit served is counted"
        );
        drop(clients);
        drop(first);
        // The next case's session: this one ends so that the account has room.
        sessions::end(
            &mut db.conn().unwrap(),
            &row.id,
            SessionState::Revoked,
            Some("test"),
        )
        .unwrap();
    }
}

/// Parallel stream requests of one account, on two servers: no more sessions open than the
/// account may hold (counted and created under one lock). Before, each request counted the
/// open sessions before any of them was created.
#[test]
fn parallel_session_requests_open_no_more_than_the_limit_on_two_servers() {
    let (h, video_id, _dir) = packaged();
    let one = h.serve(&[]);
    let two = h.serve(&[]);
    let token = viewer::device_token(&one, "vic", &"e".repeat(64));
    let opened = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..64 {
            let (server, token, video_id, opened) = (
                if t % 2 == 0 { &one } else { &two },
                &token,
                &video_id,
                &opened,
            );
            scope.spawn(move || {
                let r = request_stream(server, token, video_id);
                match r.status {
                    200 => {
                        opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    429 => r.assert_error(429, "too_many_sessions"),
                    other => panic!("{other}: {}", r.body),
                }
            });
        }
    });
    assert_eq!(
        opened.into_inner(),
        2,
        "the default limit is two open sessions"
    );
    let db = h.db();
    let user = shared::db::repo::users::find_by_username(&mut db.conn().unwrap(), "vic")
        .unwrap()
        .unwrap();
    let open =
        sessions::open_for_user(&mut db.conn().unwrap(), &user.id, shared::db::now()).unwrap();
    assert_eq!(open.len(), 2);
}

#[test]
fn ripping_past_the_limit_revokes_when_configured() {
    let (h, video_id, _dir) = packaged();
    let server = h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_RIPPING_BURST_SECONDS", "2"),
            ("LEAKTRACE_RIPPING_FLAG_SPEED", "0.5"),
            ("LEAKTRACE_RIPPING_LIMIT_SPEED", "1"),
            ("LEAKTRACE_RIPPING_ACTION", "revoke"),
        ],
    );
    let client = Client::start(&server, "vic", &"9".repeat(64), &video_id);
    let mut last = 200;
    for k in 1..=6 {
        let (status, _, _) = client.raw_segment(&k.to_string());
        last = status;
        if status != 200 {
            break;
        }
    }
    assert_eq!(last, 403);
    let (status, body, _) = client.raw_segment("1");
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("session_revoked"));
    let row = sessions::get(&mut h.db().conn().unwrap(), &client.session_id).unwrap();
    assert_eq!(row.state, SessionState::Revoked);
    let revoked = events(&h, "ripping_revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].severity, "critical");
    assert_eq!(
        revoked[0].device_id.as_deref(),
        Some(row.device_id.as_str())
    );
}

#[test]
fn a_user_may_hold_only_the_allowed_number_of_open_sessions() {
    let (h, video_id, _dir) = packaged();
    let server = h.serve(&[]);
    let phone = viewer::device_token(&server, "vic", &"a".repeat(64));
    let laptop = viewer::device_token(&server, "vic", &"b".repeat(64));
    assert_eq!(request_stream(&server, &phone, &video_id).status, 200);
    assert_eq!(request_stream(&server, &laptop, &video_id).status, 200);
    let third = request_stream(&server, &laptop, &video_id);
    third.assert_error(429, "too_many_sessions");
    let wait = third.retry_after.expect("Retry-After");
    assert!((1..=300).contains(&wait), "{wait}");
    let refused = events(&h, "concurrent_sessions_exceeded");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].detail.contains("2 device(s)"),
        "{}",
        refused[0].detail
    );
    drop(server);

    // The limit is configurable.
    let server = h.serve_with_env(&[], &[("LEAKTRACE_MAX_CONCURRENT_SESSIONS", "3")]);
    assert_eq!(request_stream(&server, &laptop, &video_id).status, 200);
}

#[test]
fn repeated_login_failures_are_rate_limited_per_address_and_account() {
    let (h, _video_id, _dir) = packaged();
    let server = h.serve_with_env(&[], &[("LEAKTRACE_AUTH_FAILURES_MAX", "3")]);
    for _ in 0..3 {
        login(&server, "vic", "wrong").assert_error(401, "invalid_credentials");
    }
    // Even the right password waits now.
    let blocked = login(&server, "vic", PASSWORD);
    blocked.assert_error(429, "too_many_attempts");
    assert!(blocked.retry_after.is_some_and(|s| (1..=300).contains(&s)));
    let failures = events(&h, "auth_failure");
    assert_eq!(failures.len(), 3);
    assert!(failures
        .iter()
        .all(|e| e.address.as_deref() == Some("127.0.0.1")));
    assert!(failures.iter().all(|e| e.user_id.is_some()));
    drop(server);

    // A short window lets the account in again once it has passed.
    let server = h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_AUTH_FAILURES_MAX", "3"),
            ("LEAKTRACE_AUTH_FAILURES_WINDOW_SECONDS", "1"),
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(login(&server, "vic", PASSWORD).status, 200);
}

/// The login budget holds under parallel attempts (each attempt is counted before its
/// password is checked), and the per-account budget is kept by the submitted name, so a
/// refusal says nothing about which names exist.
#[test]
fn login_budgets_hold_under_bursts_and_do_not_reveal_which_names_exist() {
    let (h, _video_id, _dir) = packaged();
    // Many people behind one address (an office, a NAT) signing in together are not refused:
    // logins whose passwords are being checked count against the address only past the
    // parallel allowance, and none of them fails.
    let people: Vec<String> = (0..12).map(|i| format!("person-{i}")).collect();
    for name in &people {
        h.add_user(name, "viewer", PASSWORD);
    }
    let server = h.serve_with_env(&[], &[("LEAKTRACE_AUTH_FAILURES_MAX", "5")]);
    let together: Vec<u16> = std::thread::scope(|scope| {
        let logins: Vec<_> = people
            .iter()
            .map(|name| scope.spawn(|| login(&server, name, PASSWORD).status))
            .collect();
        logins.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(together.iter().all(|s| *s == 200), "{together:?}");
    assert!(
        events(&h, "auth_attempt").is_empty(),
        "attempts that succeed are taken back"
    );

    let outcomes: Vec<u16> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..24)
            .map(|_| scope.spawn(|| login(&server, "vic", "wrong").status))
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let checked = outcomes.iter().filter(|s| **s == 401).count();
    assert!(
        outcomes.iter().all(|s| *s == 401 || *s == 429),
        "{outcomes:?}"
    );
    assert!(
        checked <= 5,
        "{checked} passwords checked in a burst; the budget is 5"
    );
    assert_eq!(events(&h, "auth_failure").len(), checked);
    drop(server);

    // A guesser spread over many addresses: five failures on a name from elsewhere lock the
    // name (not this address), whether the account exists or not.
    let db = h.db();
    // (the burst's failures are moved out of the window first: this address starts clean)
    shared::testing::age_security_events(&mut db.conn().unwrap(), "auth_failure", 1).unwrap();
    for (i, name) in ["vic", "ghost"]
        .iter()
        .flat_map(|n| std::iter::repeat_n(n, 5))
        .enumerate()
    {
        security_events::record(
            &mut db.conn().unwrap(),
            security_events::Severity::Warning,
            &security_events::NewEvent {
                kind: "auth_failure",
                address: Some(&format!("10.0.0.{i}")),
                account: Some(name),
                detail: "login failed",
                ..Default::default()
            },
        )
        .unwrap();
    }
    let server = h.serve_with_env(&[], &[("LEAKTRACE_AUTH_FAILURES_MAX", "5")]);
    let existing = login(&server, "vic", "wrong");
    let missing = login(&server, "ghost", "wrong");
    if existing.status == 429 && missing.status == 429 {
        let e: serde_json::Value = serde_json::from_str(&existing.body).unwrap();
        let m: serde_json::Value = serde_json::from_str(&missing.body).unwrap();
        assert_eq!(e, m, "the same refusal for an existing and a missing name");
    } else {
        panic!(
            "names with five failures are refused: {} {} / {} {}",
            existing.status, existing.body, missing.status, missing.body
        );
    }
    // Another name from this address is still checked.
    login(&server, "nobody-else", "wrong").assert_error(401, "invalid_credentials");
}

#[test]
fn file_probes_and_traversal_are_refused_and_recorded() {
    let (h, video_id, _dir) = packaged();
    let server = h.serve(&[]);
    for path in [
        "/media/title.mp4".to_string(),
        format!("/videos/{video_id}/video/a/1.m4s"),
        format!("/data/videos/{video_id}/package.json"),
        "/secrets/master.key".to_string(),
    ] {
        get(&server.url(&path)).assert_error(404, "not_found");
    }
    raw_get(&server, "/static/%2e%2e/secrets/master.key").assert_error(403, "forbidden_path");
    raw_get(&server, "/api/..%2f..%2fdata/leaktrace.db").assert_error(403, "forbidden_path");
    raw_get(&server, "/x/../../secrets/jwt.key").assert_error(403, "forbidden_path");
    // One address's probes are one event (per 10 minutes) that counts them.
    let probes = events(&h, "direct_file_probe");
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert!(
        probes[0].detail.contains("first: GET /media/title.mp4"),
        "{probes:?}"
    );
    assert_eq!(probes[0].address.as_deref(), Some("127.0.0.1"));
    // A plain wrong URL is a 404 without an event.
    get(&server.url("/no-such-page")).assert_error(404, "not_found");
    // A flood stays one row, its count written now and then (at powers of two and every 64).
    for i in 0..300 {
        get(&server.url(&format!("/media/{i}.mp4"))).assert_error(404, "not_found");
    }
    let probes = events(&h, "direct_file_probe");
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert!(
        probes[0].detail.starts_with("256 probes from this address"),
        "{probes:?}"
    );
    drop(server);

    // Events past retention are removed by the server's housekeeping (at start, then hourly).
    let aged =
        shared::testing::age_security_events(&mut h.db().conn().unwrap(), "direct_file_probe", 100);
    assert_eq!(aged.unwrap(), 1);
    let server = h.serve(&[]);
    get(&server.url("/media/again.mp4")).assert_error(404, "not_found");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while events(&h, "direct_file_probe").len() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let probes = events(&h, "direct_file_probe");
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert!(probes[0].detail.contains("/media/again.mp4"), "{probes:?}");
}

#[test]
fn analysts_cannot_register_playback_devices() {
    let (h, video_id, _dir) = packaged();
    let server = h.serve(&[]);
    let ut = user_token(&server, "ann", "ann's password");
    register(&server, &ut, &"c".repeat(64)).assert_error(403, "wrong_role");
    // A user token is not a device token, whatever the role.
    request_stream(&server, &ut, &video_id).assert_error(401, "wrong_token_kind");
}
