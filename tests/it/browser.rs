//! The web front end in a real browser (headless Debian Chromium over WebDriver): a viewer
//! plays a title decrypted in the page, the session's expiry stops playback with a sign-in
//! prompt, a copy leaked from that playback is uploaded by an analyst and traced back to it,
//! and the legal user downloads the signed report, which `pdfsig` accepts. Screenshots of
//! every page land in `target/browser-artefacts/`.

use crate::common;

use std::time::Duration;

use base64::Engine;

use crate::common::browser::Browser;
use crate::common::evidence::{nss_trusting, pdfsig};
use crate::common::leaks::packaged;
use crate::common::media::ffmpeg;
use crate::common::viewer::{Client, PASSWORD};
use serde_json::{json, Value};
use shared::db::repo::sessions::{self, SessionState};

const SECOND: Duration = Duration::from_secs(1);

fn testid(id: &str) -> String {
    Browser::testid(id)
}

/// Whether `bytes` start with an ISOBMFF box a player would accept.
fn is_mp4(bytes: &[u8]) -> bool {
    bytes.len() >= 8
        && u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) >= 8
        && [b"ftyp", b"styp", b"moof", b"moov", b"mdat"]
            .iter()
            .any(|t| &bytes[4..8] == *t)
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn a_viewer_plays_in_the_page_and_the_leak_is_traced_through_the_consoles() {
    let t = packaged(40.0);
    t.h.add_user("ann", "analyst", PASSWORD);
    t.h.add_user("lee", "legal", PASSWORD);
    // The transparency panels' watermark timeline reads the demo API.
    let server = t.h.serve_with_env(&[], &[("LEAKTRACE_DEMO_API", "true")]);
    let b = Browser::start("end-to-end", 1280, 720);

    // Landing page, then the viewer signs in there and lands on the watch page.
    b.goto(&server.url("/"));
    b.wait_for("#health.ok", 10 * SECOND);
    b.screenshot("01-landing");
    b.sign_in("val", PASSWORD);
    let title = b.wait_for(&testid("title"), 30 * SECOND);
    assert!(b.text(&title).contains("Leakable"));
    b.screenshot("02-titles");
    b.click(&title);

    // Plays at least 5 s, frames decoded, no player error.
    b.wait_until(
        "5 s of playback",
        90 * SECOND,
        "const v = document.querySelector('[data-testid=player]'); return v.currentTime >= 5;",
    );
    let quality = b.exec(
        "const v = document.querySelector('[data-testid=player]');
         const q = v.getVideoPlaybackQuality();
         return {frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, error: v.error && v.error.message,
                 alert: document.getElementById('alert').textContent};",
        json!([]),
    );
    assert!(quality["frames"].as_u64().unwrap_or(0) > 0, "{quality}");
    assert_eq!(quality["error"], Value::Null, "{quality}");
    assert_eq!(quality["alert"], json!(""), "{quality}");
    b.wait_until(
        "the watermark timeline",
        20 * SECOND,
        "return document.querySelectorAll('#timeline span.played').length >= 5;",
    );
    b.screenshot("03-playing");

    // The device token is renewed (here on demand; the page does it a minute before expiry)
    // and playback goes on with the new one.
    let exp = |token: &Value| -> u64 {
        let payload = token.as_str().unwrap().split('.').nth(1).unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<Value>(&claims).unwrap()["exp"]
            .as_u64()
            .unwrap()
    };
    let before = b.exec("return window.leaktrace.state.device.token;", json!([]));
    let after = b.exec_async(
        "const done = arguments[0];
         window.leaktrace.refreshNow().then(() => done(window.leaktrace.state.device.token));",
        json!([]),
    );
    assert!(exp(&after) > exp(&before), "{before} -> {after}");
    let t0 = b.exec(
        "return document.querySelector('[data-testid=player]').currentTime;",
        json!([]),
    );
    b.wait_until(
        "playback after the refresh",
        20 * SECOND,
        &format!(
            "return document.querySelector('[data-testid=player]').currentTime > {} + 1;",
            t0
        ),
    );
    b.screenshot_at("03b-panels", "#panels");

    // Every segment arrived encrypted and was decrypted in the page.
    let stats = b.exec("return window.leaktrace.stats.segments;", json!([]));
    let segments = stats.as_array().expect("segment stats");
    assert!(segments.len() >= 6, "{stats}");
    for s in segments {
        assert_eq!(s["wireLooksLikeMp4"], json!(false), "{s}");
        assert_eq!(s["plainLooksLikeMp4"], json!(true), "{s}");
        assert!(!is_mp4(&hex_bytes(s["wireHead"].as_str().unwrap())), "{s}");
    }
    let wire_label = b.wait_for_text(&testid("wire-is-mp4"), 5 * SECOND);
    assert_eq!(wire_label, "not MP4");

    // The same bytes fetched outside the page: not MP4 on the wire; the CEK the encryption
    // panel shows opens them. That key and the device token are all a ripper needs.
    let page = b.exec(
        "const s = window.leaktrace.state;
         return {session: s.session.id, token: s.device.token,
                 cek: document.querySelector('[data-testid=cek]').textContent};",
        json!([]),
    );
    let cek: [u8; 32] = hex_bytes(page["cek"].as_str().unwrap())
        .try_into()
        .expect("32-byte CEK");
    let client = Client {
        server: &server,
        device_token: page["token"].as_str().unwrap().to_string(),
        session_id: page["session"].as_str().unwrap().to_string(),
        cek,
    };
    let (status, wire, _) = client.raw_segment("1");
    assert_eq!(status, 200);
    assert!(!is_mp4(&wire) && !is_mp4(&wire[12..]));

    // The anti-piracy panel's direct requests are refused.
    b.click(&b.wait_for("#probe", 5 * SECOND));
    b.wait_until(
        "the direct requests",
        10 * SECOND,
        "return document.querySelectorAll('[data-testid=direct-request-result]').length === 4;",
    );
    let probes = b.exec(
        "return [...document.querySelectorAll('[data-testid=direct-request-result] td:last-child')].map(td => td.textContent);",
        json!([]),
    );
    for (answer, expected) in probes
        .as_array()
        .unwrap()
        .iter()
        .zip(["404", "404", "401", "401"])
    {
        assert!(answer.as_str().unwrap().starts_with(expected), "{probes}");
    }

    // The leak: the page's decrypted stream, saved and re-encoded at another size.
    let d = t.dir.path();
    let mut saved = client.segment("init");
    for k in 1..=t.segments {
        saved.extend(client.segment(&k.to_string()));
    }
    std::fs::write(d.join("ripped.mp4"), saved).unwrap();
    let leaked = d.join("leaked.mp4");
    ffmpeg(&[
        "-i",
        d.join("ripped.mp4").to_str().unwrap(),
        "-vf",
        "scale=400:224",
        "-c:v",
        "libx264",
        "-crf",
        "26",
        leaked.to_str().unwrap(),
    ]);

    // The session expires: playback stops and the page asks to sign in again.
    let db = t.h.db();
    sessions::end(
        &mut db.conn().unwrap(),
        &client.session_id,
        SessionState::Expired,
        Some("idle"),
    )
    .unwrap();
    b.wait_for(&testid("signin-prompt"), 20 * SECOND);
    let stopped = b.exec(
        "const v = document.querySelector('[data-testid=player]');
         return {paused: v.paused, ready: v.readyState, src: v.getAttribute('src'), player: !!window.leaktrace.state.player,
                 message: document.querySelector('[data-testid=signin-message]').textContent};",
        json!([]),
    );
    assert_eq!(stopped["paused"], json!(true), "{stopped}");
    // Nothing left to play: no source, no data, the player torn down.
    assert_eq!(stopped["ready"], json!(0), "{stopped}");
    assert_eq!(stopped["src"], Value::Null, "{stopped}");
    assert_eq!(stopped["player"], json!(false), "{stopped}");
    assert!(
        stopped["message"].as_str().unwrap().contains("expired"),
        "{stopped}"
    );
    b.screenshot("04-expired");

    // The analyst uploads the leak and sees the browser's session identified.
    b.goto(&server.url("/analyst/"));
    b.sign_in("ann", PASSWORD);
    let input = b.wait_for(&testid("upload"), 20 * SECOND);
    b.type_into(&input, leaked.to_str().unwrap());
    b.click(&b.wait_for("#submit", 5 * SECOND));
    b.wait_until(
        "the analysis",
        300 * SECOND,
        "const s = document.querySelector('[data-testid=case-status]');
         return !!s && (s.textContent === 'done' || s.textContent === 'failed');",
    );
    assert_eq!(b.wait_for_text(&testid("case-status"), SECOND), "done");
    assert_eq!(b.wait_for_text(&testid("verdict"), SECOND), "identified");
    let best = b.wait_for_text(&testid("candidate"), SECOND);
    assert!(best.contains(&client.session_id), "{best}");
    assert!(best.contains("val"), "{best}");
    b.wait_for("svg.chart", SECOND);
    b.screenshot_at("05-analyst-case", "#h-case");
    // The title's leak history: filled in from the case, plotted, the leaker listed.
    let field = b.wait_for(&testid("history-video"), SECOND);
    b.wait_until(
        "the title id filled in",
        10 * SECOND,
        "return document.querySelector('[data-testid=history-video]').value !== '';",
    );
    assert_eq!(
        b.exec(
            "return document.querySelector('[data-testid=history-video]').value;",
            json!([])
        ),
        json!(t.video_id)
    );
    let _ = field;
    b.click(&b.wait_for("#history-show", SECOND));
    b.wait_for("svg.history-chart", 20 * SECOND);
    b.wait_for(&testid("history-identified"), SECOND);
    let leaker = b.wait_for_text(&testid("leaker"), SECOND);
    assert!(leaker.starts_with("val"), "{leaker}");
    b.screenshot_at("05b-analyst-history", "#h-history");

    // The legal user downloads the report; pdfsig accepts it and trusts its CA.
    b.exec("sessionStorage.clear(); return true;", json!([]));
    b.goto(&server.url("/legal/"));
    b.sign_in("lee", PASSWORD);
    b.click(&b.wait_for("[data-testid=case-row] button", 20 * SECOND));
    b.click(&b.wait_for(&testid("report-link"), 20 * SECOND));
    let pdf = b.downloaded(".pdf", 60 * SECOND);
    b.screenshot_at("06-legal-case", "#h-case");
    let ca = common::get(&server.url("/api/reports/ca.pem"));
    let nss = d.join("nss");
    nss_trusting(&nss, &ca.body);
    let checked = pdfsig(&pdf, Some(&nss));
    assert!(checked.contains("Signature is Valid"), "{checked}");
    assert!(checked.contains("Certificate is Trusted"), "{checked}");
    // And the evidence bundle, which leaktrace verify-bundle checks offline against the CA.
    b.click(&b.wait_for(&testid("bundle-link"), SECOND));
    let bundle = b.downloaded(".zip", 60 * SECOND);
    std::fs::write(d.join("ca.pem"), &ca.body).unwrap();
    let verified = t.h.run(
        &[
            "verify-bundle",
            bundle.to_str().unwrap(),
            "--ca",
            d.join("ca.pem").to_str().unwrap(),
        ],
        None,
    );
    verified.success();
    assert!(
        verified
            .stdout()
            .contains("the bundle is intact and signed"),
        "{}",
        verified.stdout()
    );

    // The same report handed back to the legal console verifies as authentic.
    b.type_into(
        &b.wait_for(&testid("verify-upload"), SECOND),
        pdf.to_str().unwrap(),
    );
    b.click(&b.wait_for("#verify", SECOND));
    let verdict = b.wait_for_text(&testid("verify-verdict"), 30 * SECOND);
    assert!(verdict.starts_with("Authentic"), "{verdict}");
    b.screenshot_at("07-legal-verified", "#h-verify");
}

#[test]
fn an_admin_packages_a_title_and_revokes_a_ripping_session_in_the_browser() {
    let h = common::Harness::new();
    h.add_user("ada", "admin", PASSWORD);
    h.add_user("vic", "viewer", PASSWORD);
    // A one-second burst: fetching a few units at once is flagged at once. The deployment
    // packages with the collusion-resistant code unless told otherwise.
    let server = h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_RIPPING_BURST_SECONDS", "1"),
            ("LEAKTRACE_PACKAGING_CODE", "tardos-v2"),
        ],
    );
    let source = common::media::clip(
        h.dir.path(),
        "source.mp4",
        &common::media::ClipSpec {
            size: "320x180",
            rate: "25",
            seconds: 6.0,
            audio: true,
            vf: None,
            codec: &["-c:v", "libx264", "-crf", "20", "-c:a", "aac"],
        },
    );
    let b = Browser::start("admin", 1280, 720);
    b.goto(&server.url("/admin/"));
    b.sign_in("ada", PASSWORD);

    // Package an upload; the job's progress ends in the titles table.
    b.type_into(
        &b.wait_for(&testid("package-title"), 20 * SECOND),
        "Browser upload",
    );
    b.type_into(
        &b.wait_for(&testid("package-upload"), SECOND),
        source.to_str().unwrap(),
    );
    b.click(&b.wait_for("#package", SECOND));
    b.wait_until(
        "the packaging job",
        300 * SECOND,
        "const s = document.querySelector('[data-testid=package-status]').textContent;
         return s.startsWith('Packaged') || s.startsWith('Packaging failed');",
    );
    let status = b.wait_for_text(&testid("package-status"), SECOND);
    assert!(status.starts_with("Packaged"), "{status}");
    b.wait_until(
        "the new title in the list",
        10 * SECOND,
        "return document.getElementById('titles').textContent.includes('Browser upload');",
    );
    // Packaged with the deployment's code (the form's options left as they were), as the list
    // says.
    let titles = b.wait_for_text("#titles", SECOND);
    assert!(titles.contains("tardos-v2, 1 s units"), "{titles}");
    b.screenshot("01-packaged");

    // A user and an API key, made in the console.
    b.type_into(&b.wait_for("#user-name", SECOND), "newbie");
    b.type_into(&b.wait_for("#user-password", SECOND), "newbie's password");
    b.click(&b.wait_for("#user-form button", SECOND));
    b.wait_until(
        "the new user",
        10 * SECOND,
        "return [...document.querySelectorAll('[data-testid=user-row]')].some(r => r.textContent.includes('newbie'));",
    );
    assert_eq!(
        common::viewer::login(&server, "newbie", "newbie's password").status,
        200
    );
    b.type_into(&b.wait_for("#key-name", SECOND), "crawler-ui");
    b.click(&b.wait_for("#key-form button", SECOND));
    let key = b.wait_for_text(&testid("new-api-key"), 10 * SECOND);
    let r =
        common::evidence::get_reply(&server, common::evidence::Auth::ApiKey(&key), "/api/cases/");
    assert_eq!(r.status, 200, "{}", r.body);
    b.screenshot_at("02-users-and-keys", "#h-users");

    // A viewer rips the new title; the event streams in and the admin revokes the session.
    let admin = common::viewer::user_token(&server, "ada", PASSWORD);
    let titles = common::evidence::get_reply(
        &server,
        common::evidence::Auth::Bearer(&admin),
        "/api/admin/titles/",
    )
    .json();
    let video_id = titles[0]["id"].as_str().unwrap();
    let client = Client::start(&server, "vic", &"4".repeat(64), video_id);
    for k in 1..=5 {
        client.raw_segment(&k.to_string());
    }
    let revoke = "[data-testid=security-event][data-kind^=ripping] button";
    b.click(&b.wait_for(revoke, 30 * SECOND));
    b.wait_until(
        "the revocation",
        20 * SECOND,
        "return !!document.querySelector('[data-testid=security-event][data-kind=session_revoked]');",
    );
    let (status, body, _) = client.raw_segment("1");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    b.screenshot_at("03-events", "#h-events");

    // The admin lists vic's devices and revokes the one that ripped: its tokens stop at once.
    let phone = common::viewer::device(&server, "vic", &"6".repeat(64));
    b.exec(
        "const row = [...document.querySelectorAll('[data-testid=user-row]')]
           .find(r => r.firstChild.textContent === 'vic');
         row.querySelector('[data-testid=show-devices]').click(); return true;",
        json!([]),
    );
    b.wait_until(
        "vic's devices",
        10 * SECOND,
        &format!(
            "return [...document.querySelectorAll('[data-testid=device-row]')].some(r => r.textContent.includes('{}'));",
            phone.id
        ),
    );
    b.exec(
        &format!(
            "const row = [...document.querySelectorAll('[data-testid=device-row]')]
               .find(r => r.textContent.includes('{}'));
             row.querySelector('[data-testid=revoke-device]').click(); return true;",
            phone.id
        ),
        json!([]),
    );
    b.wait_until(
        "the device revoked",
        10 * SECOND,
        &format!(
            "const row = [...document.querySelectorAll('[data-testid=device-row]')]
               .find(r => r.textContent.includes('{}'));
             return !!row && row.textContent.includes('revoked');",
            phone.id
        ),
    );
    common::send("GET", &server.url("/api/videos/"), Some(&phone.token), None)
        .assert_error(401, "device_revoked");
    b.screenshot_at("04-devices", "#h-users");
    b.screenshot_at("05-audit", "#h-audit");
}

#[test]
fn the_pages_work_by_keyboard_at_phone_width_and_explain_errors() {
    let h = common::Harness::new();
    h.add_user("vic", "viewer", PASSWORD);
    let server = h.serve(&[]);
    let b = Browser::start("phone", 390, 844);
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth + 1;";

    // Sign in with the keyboard only: a wrong password is explained in the form.
    b.goto(&server.url("/"));
    let name = b.wait_for(&testid("username"), 20 * SECOND);
    b.type_into(&name, &format!("vic{}", common::browser::TAB));
    b.type_into(
        &b.active(),
        &format!("not the password{}", common::browser::ENTER),
    );
    b.wait_until(
        "the sign-in error",
        10 * SECOND,
        "return document.querySelector('form [role=alert]').textContent.includes('invalid_credentials');",
    );
    assert_eq!(b.exec(fits, json!([])), json!(true));
    b.screenshot("01-sign-in-error");
    let password = b.wait_for(&testid("password"), SECOND);
    b.clear(&password);
    b.type_into(&password, &format!("{PASSWORD}{}", common::browser::ENTER));

    // The viewer's page: no titles yet, said plainly; nothing wider than the phone.
    b.wait_until(
        "the watch page",
        20 * SECOND,
        "return location.pathname === '/watch/' && document.getElementById('titles').textContent.includes('No titles');",
    );
    assert_eq!(b.exec(fits, json!([])), json!(true));
    b.screenshot("02-watch");

    // Another role's console says whose it is, and every page fits the width.
    b.goto(&server.url("/analyst/"));
    let refusal = b.wait_for_text("#signin [role=alert]", 10 * SECOND);
    assert!(
        refusal.contains("for analyst or admin accounts"),
        "{refusal}"
    );
    b.screenshot("03-analyst-refused");
    for page in ["/legal/", "/admin/", "/"] {
        b.goto(&server.url(page));
        b.wait_for("header.top h1", 10 * SECOND);
        assert_eq!(
            b.exec(fits, json!([])),
            json!(true),
            "{page} is wider than a phone"
        );
    }
    // The device's proof key cannot be read out of the page; signing out revokes the device
    // and the user token on the server, so copies of either are refused.
    b.goto(&server.url("/watch/"));
    b.wait_until(
        "the device registered",
        20 * SECOND,
        "return !!(window.leaktrace.state.device && window.leaktrace.state.device.token);",
    );
    let key = b.exec_async(
        "const done = arguments[0];
         const k = window.leaktrace.state.device.keyPair.privateKey;
         crypto.subtle.exportKey('pkcs8', k).then(
           () => done({exported: true}),
           () => done({exported: false, extractable: k.extractable, curve: k.algorithm.namedCurve}));",
        json!([]),
    );
    assert_eq!(
        key,
        json!({"exported": false, "extractable": false, "curve": "P-256"})
    );
    let tokens = b.exec(
        "return {device: window.leaktrace.state.device.token,
                 user: JSON.parse(sessionStorage.getItem('leaktrace.user')).token};",
        json!([]),
    );
    let (device, user) = (
        tokens["device"].as_str().unwrap().to_string(),
        tokens["user"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        common::send("GET", &server.url("/api/videos/"), Some(&device), None).status,
        200
    );
    b.click(&b.wait_for(&testid("sign-out"), 5 * SECOND));
    b.wait_until(
        "the landing page",
        10 * SECOND,
        "return location.pathname === '/';",
    );
    common::send("GET", &server.url("/api/videos/"), Some(&device), None)
        .assert_error(401, "device_revoked");
    common::viewer::register(&server, &user, &"5".repeat(64)).assert_error(401, "token_revoked");
    b.exec("sessionStorage.clear(); return true;", json!([]));
    b.goto(&server.url("/admin/"));
    b.wait_for(&testid("login"), 10 * SECOND);
    b.screenshot("04-admin-sign-in");
}

/// Median and 95th percentile of `v` (sorted in place).
fn median_p95(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

/// In-page decryption cost per segment, at three picture sizes, beside the same decryption in
/// Rust (`streaming::crypto::open`) in the same run. A benchmark, not a test: run by
/// `scripts/bench-browser.sh` (release build), which prints the table for docs/BENCHMARKS.md.
#[test]
#[ignore = "benchmark: scripts/bench-browser.sh"]
fn bench_in_page_decryption() {
    const REPS: usize = 20;
    println!();
    println!("| picture | mean segment | in page: median | p95 | MB/s | Rust: median | page / Rust | during playback (mean) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (size, label) in [
        ("854x480", "480p"),
        ("1280x720", "720p"),
        ("1920x1080", "1080p"),
    ] {
        let h = common::Harness::new();
        h.add_user("vic", "viewer", PASSWORD);
        let dir = tempfile::tempdir().unwrap();
        let input = common::media::clip(
            dir.path(),
            "title.mp4",
            &common::media::ClipSpec {
                size,
                rate: "25",
                seconds: 20.0,
                audio: false,
                vf: None,
                codec: &["-c:v", "libx264", "-crf", "16"],
            },
        );
        let units = h.package(&input, "Bench", &[])["units"].as_u64().unwrap();
        let server = h.serve_with_env(&[], &[("LEAKTRACE_RIPPING_BURST_SECONDS", "1e9")]);
        let b = Browser::start("bench", 1280, 720);
        b.goto(&server.url("/watch/"));
        b.sign_in("vic", PASSWORD);
        b.click(&b.wait_for(&testid("title"), 30 * SECOND));
        b.wait_until(
            "playback",
            120 * SECOND,
            "return document.querySelector('[data-testid=player]').currentTime >= 3;",
        );
        let playback: Vec<f64> = b
            .exec(
                "return window.leaktrace.stats.segments.map(s => s.ms);",
                json!([]),
            )
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let page = b.exec_async(
            "const [units, reps, done] = arguments;
             (async () => {
               const proto = await import('/assets/protocol.js');
               const s = window.leaktrace.state;
               const out = [];
               for (let k = 1; k <= units; k++) {
                 const r = await fetch(`/api/video/stream/${s.session.id}/${k}/`,
                   {headers: {Authorization: 'Bearer ' + s.device.token}});
                 const wire = new Uint8Array(await r.arrayBuffer());
                 const t0 = performance.now();
                 for (let i = 0; i < reps; i++) await proto.decryptSegment(s.session.cek, s.session.id, String(k), wire);
                 out.push({bytes: wire.length, ms: (performance.now() - t0) / reps});
               }
               return out;
             })().then(done, (e) => done({error: String(e)}));",
            json!([units, REPS]),
        );
        let rows = page.as_array().unwrap_or_else(|| panic!("{page}"));
        let mut page_ms: Vec<f64> = rows.iter().map(|r| r["ms"].as_f64().unwrap()).collect();
        let bytes: f64 = rows.iter().map(|r| r["bytes"].as_f64().unwrap()).sum();
        let total_ms: f64 = page_ms.iter().sum();

        // The same segments decrypted natively, in this process, in the same run.
        let state = b.exec(
            "const s = window.leaktrace.state;
             return {session: s.session.id, token: s.device.token,
                     cek: document.querySelector('[data-testid=cek]').textContent};",
            json!([]),
        );
        let client = Client {
            server: &server,
            device_token: state["token"].as_str().unwrap().to_string(),
            session_id: state["session"].as_str().unwrap().to_string(),
            cek: hex_bytes(state["cek"].as_str().unwrap())
                .try_into()
                .unwrap(),
        };
        let mut native_ms = Vec::new();
        for k in 1..=units {
            let segment = k.to_string();
            let (_, wire, _) = client.raw_segment(&segment);
            let aad = streaming::crypto::segment_aad(&client.session_id, &segment);
            let t0 = std::time::Instant::now();
            for _ in 0..REPS {
                streaming::crypto::open(&client.cek, aad.as_bytes(), &wire).unwrap();
            }
            native_ms.push(t0.elapsed().as_secs_f64() * 1000.0 / REPS as f64);
        }
        let (pm, pp) = median_p95(&mut page_ms);
        let (nm, _) = median_p95(&mut native_ms);
        let played = playback.iter().sum::<f64>() / playback.len().max(1) as f64;
        println!(
            "| {label} | {:.0} KiB | {pm:.2} ms | {pp:.2} ms | {:.0} | {nm:.3} ms | {:.1}x | {played:.2} ms ({} segments) |",
            bytes / rows.len() as f64 / 1024.0,
            bytes / 1e6 / (total_ms / 1000.0),
            pm / nm,
            playback.len(),
        );
    }
}

/// The API reference page renders the OpenAPI document with the vendored Swagger UI (no
/// CDN: the page's CSP allows scripts from the server only), one block per operation.
#[test]
fn the_api_reference_page_renders_every_operation() {
    let h = common::Harness::new();
    let server = h.serve(&[]);
    let b = Browser::start("api-docs", 1280, 900);
    b.goto(&server.url("/api/docs/"));
    let operations: usize = common::contract::document()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            ["get", "post"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();
    b.wait_until(
        "the rendered operations",
        30 * SECOND,
        &format!(
            "return document.querySelectorAll('#reference .opblock').length === {operations};"
        ),
    );
    let title = b.exec(
        "return document.querySelector('#reference .title').textContent;",
        json!([]),
    );
    assert!(title.as_str().unwrap().contains("leaktrace"), "{title}");
    b.screenshot("01-reference");
}

/// Adaptive streaming in the page: with the network throttled (DevTools protocol) the player
/// switches down to a lower rendition, and back up once the network recovers; playback goes
/// on, every segment decrypted, and the watermark timeline shows units of several renditions.
#[test]
fn the_player_switches_renditions_with_the_network_and_keeps_playing() {
    let t = crate::common::leaks::packaged_with(60.0, &["--ladder", "180,134"]);
    let server = t.h.serve_with_env(&[], &[("LEAKTRACE_DEMO_API", "true")]);
    let b = Browser::start("adaptive", 1280, 720);
    b.goto(&server.url("/"));
    b.sign_in("val", PASSWORD);
    b.click(&b.wait_for(&testid("title"), 30 * SECOND));
    let units_in = |rendition: &str| {
        format!(
            "return [...document.querySelectorAll('#timeline span')]
                 .filter(s => s.dataset.rendition !== '' && s.dataset.rendition {rendition}).length;"
        )
    };
    b.wait_until(
        "units of the top rendition",
        60 * SECOND,
        &format!("{} >= 2", units_in("=== '0'").trim_end_matches(';')),
    );

    // A slow link: the player's bandwidth estimate falls and it takes a lower rendition.
    b.cdp("Network.enable", json!({}));
    let throttle = |bytes_per_second: i64| {
        b.cdp(
            "Network.emulateNetworkConditions",
            json!({
                "offline": false,
                "latency": if bytes_per_second < 0 { 0 } else { 150 },
                "downloadThroughput": bytes_per_second,
                "uploadThroughput": bytes_per_second,
            }),
        );
    };
    throttle(12_000);
    b.wait_until(
        "a unit of a lower rendition",
        90 * SECOND,
        &format!("{} >= 1", units_in("!== '0'").trim_end_matches(';')),
    );
    let lowest_time = b.exec(
        "return document.querySelector('[data-testid=player]').currentTime;",
        json!([]),
    );
    b.screenshot_at("adaptive-down", "#panels");

    // The link recovers: back up to the top rendition, for units after the switch down.
    throttle(-1);
    let first_lower = b.exec(
        "return Math.min(...[...document.querySelectorAll('#timeline span')]
             .map((s, i) => s.dataset.rendition !== '' && s.dataset.rendition !== '0' ? i : 1e9));",
        json!([]),
    );
    b.wait_until(
        "the top rendition again",
        90 * SECOND,
        &format!(
            "return [...document.querySelectorAll('#timeline span')]
                 .some((s, i) => i > {first_lower} && s.dataset.rendition === '0');"
        ),
    );
    b.wait_until(
        "playback past the switches",
        60 * SECOND,
        &format!(
            "return document.querySelector('[data-testid=player]').currentTime > {lowest_time} + 3;"
        ),
    );
    b.screenshot_at("adaptive-up", "#panels");
    let state = b.exec(
        "const v = document.querySelector('[data-testid=player]');
         return {error: v.error && v.error.message, alert: document.getElementById('alert').textContent,
                 renditions: [...new Set([...document.querySelectorAll('#timeline span')]
                     .map(s => s.dataset.rendition).filter(r => r !== ''))],
                 segments: window.leaktrace.stats.segments.map(s => s.segment)};",
        json!([]),
    );
    assert_eq!(state["error"], Value::Null, "{state}");
    assert_eq!(state["alert"], json!(""), "{state}");
    assert!(
        state["renditions"].as_array().unwrap().len() >= 2,
        "units of several renditions: {state}"
    );
    // Every segment of every rendition was decrypted in the page (an undecryptable one would
    // have stopped the player with an error).
    let names = state["segments"].as_array().unwrap();
    assert!(
        names.iter().any(|n| n.as_str().unwrap().starts_with('r')),
        "{state}"
    );
}
