//! The evidence pipeline end to end: suspects submitted over the API (crawler key or analyst
//! token), queued as jobs, analysed by workers (in the server and in `leaktrace worker`
//! processes), with audit trail and detection events; bad submissions refused cleanly.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::evidence::{
    self, api_key, case, get_bytes, get_reply, nss_trusting, pdfsig, post_raw, raw_request,
    send_and_leave, submit, submit_raw, wait_case, Auth, Part,
};
use crate::common::leaks::{leak, packaged, Title};
use crate::common::viewer::{user_token, PASSWORD};
use crate::common::{get, Harness};
use shared::db::repo::jobs::{self, JobKind, JobStatus};
use shared::db::repo::{audit, security_events};

/// The job kind of a case analysis (packaging also queues reference-store jobs).
const ANALYSE: JobKind = JobKind::AnalyseCase;

fn uploads_left(h: &Harness) -> Vec<String> {
    std::fs::read_dir(h.data_dir.join("uploads"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn audit_actions(h: &Harness, case_id: &str) -> Vec<String> {
    audit_entries(h, case_id)
        .into_iter()
        .map(|(action, _)| action)
        .collect()
}

fn audit_entries(h: &Harness, case_id: &str) -> Vec<(String, String)> {
    let db = h.db();
    let mut conn = db.conn().unwrap();
    audit::for_case(&mut conn, case_id)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.detail))
        .collect()
}

#[test]
fn a_crawler_submission_is_analysed_identified_audited_and_raises_a_detection() {
    let t = packaged(40.0);
    t.h.add_user("ann", "analyst", PASSWORD);
    t.h.add_user("lee", "legal", PASSWORD);
    let key = api_key(&t.h, "crawler-1");
    let other_key = api_key(&t.h, "crawler-2");
    let server = t.h.serve(&[]);
    let d = t.dir.path();
    let leaker = leak(&server, "val", &"1".repeat(64), &t, &d.join("val.mp4"));
    leak(&server, "vic", &"2".repeat(64), &t, &d.join("vic.mp4"));
    let bytes = std::fs::read(d.join("val.mp4")).unwrap();

    let r = submit(
        &server,
        Auth::ApiKey(&key),
        &[
            Part::file("found-online.mp4", &bytes),
            Part::text("video_id", &t.video_id),
            Part::text("expected_watermark_hash", &"ab".repeat(32)),
        ],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.json();
    let case_id = v["case_id"].as_str().unwrap().to_string();
    assert_eq!(v["status_url"], format!("/api/cases/{case_id}/"));

    let done = wait_case(
        &server,
        Auth::ApiKey(&key),
        &case_id,
        Duration::from_secs(600),
    );
    assert_eq!(done["status"], "done", "{done:#}");
    // A case is finished just before its job ends.
    wait_until(Duration::from_secs(60), "the job to end", || {
        audit_actions(&t.h, &case_id).contains(&"job_ended".to_string())
    });
    assert_eq!(done["progress"], 1.0);
    // The crawler is told the verdict and an opaque reference of the accused session: no
    // session ids, users or devices (of the accused or of anyone compared).
    let result = &done["result"];
    assert_eq!(result["verdict"], "identified", "{result:#}");
    assert_eq!(result["case_id"], case_id.as_str());
    assert_eq!(done["file_name"], "found-online.mp4");
    assert_eq!(done["file_size"], bytes.len());
    assert_eq!(result["expected_watermark_hash_equal"], false);
    assert!(result.get("matches").is_none(), "{result:#}");
    let reference = result["accused"][0]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reference.starts_with("ref_"), "{reference}");
    assert!(
        result["accused"][0]["false_positive_probability"]
            .as_f64()
            .unwrap()
            < 1e-6
    );
    let seen = done.to_string();
    for secret in [
        leaker.as_str(),
        "\"val\"",
        "\"vic\"",
        "\"device_id\"",
        "\"user\"",
    ] {
        assert!(
            !seen.contains(secret),
            "{secret} shown to a crawler: {seen}"
        );
    }

    // Who may read the case: legal and analysts see the sessions, the accused with the
    // reference the crawler was given.
    let legal = user_token(&server, "lee", PASSWORD);
    let full = case(&server, Auth::Bearer(&legal), &case_id);
    assert_eq!(full.status, 200);
    let full = full.json();
    let best = &full["result"]["matches"][0];
    assert_eq!(best["session_id"], leaker.as_str());
    assert_eq!(best["user"], "val");
    assert_eq!(best["reference"], reference.as_str());
    assert!(full["result"]["matches"][1].get("reference").is_none());
    assert_eq!(full["result"]["expected_watermark_hash"]["equal"], false);
    assert_eq!(
        full["result"]["expected_watermark_hash"]["best_match_code_hash"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    let viewer = user_token(&server, "vic", PASSWORD);
    case(&server, Auth::Bearer(&viewer), &case_id).assert_error(403, "wrong_role");
    case(&server, Auth::ApiKey(&other_key), &case_id).assert_error(403, "wrong_role");
    case(&server, Auth::None, &case_id).assert_error(401, "missing_token");
    case(&server, Auth::ApiKey(&key), "no-such-case").assert_error(404, "case_not_found");

    // The detection event names the session, its user and device.
    let db = t.h.db();
    let mut conn = db.conn().unwrap();
    let events = security_events::recent(&mut conn, 100).unwrap();
    let detection = events
        .iter()
        .find(|e| e.kind == "piracy_detected")
        .expect("a piracy_detected event");
    assert_eq!(detection.session_id.as_deref(), Some(leaker.as_str()));
    assert!(detection.user_id.is_some() && detection.device_id.is_some());
    assert!(detection.detail.contains(&case_id));

    // The signed evidence report: legal downloads it; pdfsig finds the signature valid, and
    // the certificate trusted once the published CA is in its database; one changed byte
    // breaks it. Viewers and crawlers cannot download reports.
    let report_path = format!("/api/cases/{case_id}/report.pdf");
    let (status, content_type, pdf) = get_bytes(&server, Auth::Bearer(&legal), &report_path);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(content_type, "application/pdf");
    assert!(pdf.starts_with(b"%PDF"));
    let file = d.join("report.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let plain = pdfsig(&file, None);
    assert!(plain.contains("Signature is Valid"), "{plain}");
    assert!(plain.contains("ETSI.CAdES.detached"), "{plain}");
    assert!(plain.contains("Total document signed"), "{plain}");
    // The certificate names the deployment by its configured name, never a server folder.
    assert!(
        plain.contains("leaktrace report signing (leaktrace)"),
        "{plain}"
    );
    let data_dir = t.h.data_dir.to_string_lossy().to_string();
    assert!(!plain.contains(&data_dir), "{plain}");
    let (status, _, ca) = get_bytes(&server, Auth::None, "/api/reports/ca.pem");
    assert_eq!(status, 200);
    let ca = String::from_utf8(ca).unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"));
    let nss = d.join("nss");
    nss_trusting(&nss, &ca);
    let trusted = pdfsig(&file, Some(&nss));
    assert!(trusted.contains("Certificate is Trusted"), "{trusted}");
    // One byte of the signed content changed: in the middle of what precedes the signature
    // (the first signed byte range; an incremental update appends the signature dictionary).
    let mut tampered = pdf.clone();
    let signature = pdf.windows(10).rposition(|w| w == b"/ByteRange").unwrap();
    tampered[signature / 2] ^= 0x01;
    std::fs::write(d.join("tampered.pdf"), &tampered).unwrap();
    let broken = pdfsig(&d.join("tampered.pdf"), None);
    assert!(!broken.contains("Signature is Valid"), "{broken}");
    // The same stored report on a second download.
    let (_, _, again) = get_bytes(&server, Auth::Bearer(&legal), &report_path);
    assert_eq!(again, pdf);
    for who in [Auth::Bearer(&viewer), Auth::ApiKey(&key)] {
        let (status, _, body) = get_bytes(&server, who, &report_path);
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    }
    // Verification: the downloaded report is valid, ours and stored; the tampered copy is not
    // valid and matches nothing stored; a file without signature says so; viewers may not ask.
    let verify = |who: Auth, bytes: &[u8]| {
        post_raw(
            &server,
            who,
            "/api/reports/verify/",
            "application/pdf",
            bytes,
        )
    };
    let r = verify(Auth::Bearer(&legal), &pdf);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["signed"], true, "{v}");
    assert_eq!(v["signature_valid"], true, "{v}");
    assert_eq!(v["issued_by_this_deployment"], true, "{v}");
    assert_eq!(v["matches_stored_report"], true, "{v}");
    assert_eq!(v["case_id"], case_id.as_str());
    let v = verify(Auth::Bearer(&legal), &tampered).json();
    assert_eq!(v["signature_valid"], false, "{v}");
    assert_eq!(v["matches_stored_report"], false, "{v}");
    let v = verify(Auth::Bearer(&legal), b"%PDF-1.7 not signed").json();
    assert_eq!(v["signed"], false, "{v}");
    verify(Auth::Bearer(&viewer), &pdf).assert_error(403, "wrong_role");
    verify(Auth::Bearer(&legal), b"").assert_error(400, "empty_file");

    // The CLI issues one too.
    let out = d.join("cli-report.pdf");
    t.h.run(&["report", &case_id, "--out", out.to_str().unwrap()], None)
        .success();
    assert!(pdfsig(&out, None).contains("Signature is Valid"));

    // The audit trail holds every step, and the chain verifies.
    assert_eq!(
        audit_actions(&t.h, &case_id),
        [
            "suspect_submitted",
            "job_queued",
            "job_started",
            "analysis_started",
            "analysis_finished",
            "job_ended",
            "report_issued",
            "report_downloaded",
            "report_downloaded",
            "report_verified",
            "report_issued",
        ]
    );
    let out = t.h.run(&["audit", "verify"], None);
    out.success();
    assert!(out.stdout().contains("intact"), "{}", out.stdout());
}

/// A form whose body ends inside a part, its last byte a `\r`, used to hang the request for
/// as long as the client held the connection (actix-multipart 0.7's field reader waited for
/// bytes that could not come; found by `scripts/fuzz-parsers.sh`, kept in
/// fuzz/regressions/multipart/). It is refused as incomplete at once.
#[test]
fn a_form_cut_off_after_a_carriage_return_is_refused_not_left_hanging() {
    let h = Harness::new();
    let key = api_key(&h, "crawler");
    let server = h.serve(&[]);
    // Every multipart input the fuzzer kept: each is answered at once, with a 4xx.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/multipart");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 3, "{inputs:?}");
    let host = server.base.trim_start_matches("http://").to_string();
    for input in &inputs {
        let body = std::fs::read(input).unwrap();
        let head = format!(
            "POST /api/verify-watermark/ HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n\
             Content-Type: multipart/form-data; boundary=leaktrace-fuzz-boundary\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let started = Instant::now();
        let (status, answer) = raw_request(&server, &head, &body, false);
        assert!((400..500).contains(&status), "{input:?}: {status} {answer}");
        assert!(started.elapsed() < Duration::from_secs(30), "{input:?}");
    }
    let body = std::fs::read(dir.join("stall-cr-at-eof")).unwrap();
    let head = format!(
        "POST /api/verify-watermark/ HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n\
         Content-Type: multipart/form-data; boundary=leaktrace-fuzz-boundary\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, answer) = raw_request(&server, &head, &body, false);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("upload_incomplete"), "{answer}");
    assert!(uploads_left(&h).is_empty(), "{:?}", uploads_left(&h));
}

/// `limits.isolate_probe`: uploads are checked by a child process under resource limits. A
/// video passes, garbage is refused, and a decoder that runs out of its memory limit ends the
/// child, not the server: the file is refused and the server answers the next request.
#[test]
fn uploads_checked_in_a_limited_child_process() {
    let h = Harness::new();
    let key = api_key(&h, "crawler");
    let sample = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/bigbuckbunny.mp4"),
    )
    .unwrap();
    let server = h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_ISOLATE_PROBE", "true"),
            ("LEAKTRACE_WORKERS", "0"),
        ],
    );
    let ok = submit(
        &server,
        Auth::ApiKey(&key),
        &[Part::file("copy.mp4", &sample)],
    );
    assert_eq!(ok.status, 202, "{}", ok.body);
    submit(
        &server,
        Auth::ApiKey(&key),
        &[Part::file("copy.mp4", b"not a video at all, just text")],
    )
    .assert_error(415, "unsupported_media");
    drop(server);

    // 64 MiB of address space: the child's decoder cannot allocate its frames.
    let server = h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_ISOLATE_PROBE", "true"),
            ("LEAKTRACE_PROBE_MEMORY_MIB", "64"),
            ("LEAKTRACE_WORKERS", "0"),
        ],
    );
    let refused = submit(
        &server,
        Auth::ApiKey(&key),
        &[Part::file("copy.mp4", &sample)],
    );
    refused.assert_error(415, "unsupported_media");
    assert!(
        !refused.body.contains(h.data_dir.to_str().unwrap()),
        "{}",
        refused.body
    );
    assert_eq!(get(&server.url("/healthz")).status, 200);
    assert!(uploads_left(&h).iter().all(|n| !n.ends_with(".part")));
}

#[test]
fn bad_submissions_get_their_documented_error_and_leave_nothing_behind() {
    let t = packaged(4.0);
    t.h.add_user("ann", "analyst", PASSWORD);
    t.h.add_user("lee", "legal", PASSWORD);
    let key = api_key(&t.h, "crawler");
    let limit = 400_000usize;
    let limit_env = limit.to_string();
    let server = t.h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_MAX_UPLOAD_BYTES", &limit_env),
            ("LEAKTRACE_WORKERS", "0"),
        ],
    );
    let d = t.dir.path();
    leak(&server, "val", &"1".repeat(64), &t, &d.join("val.mp4"));
    let video = std::fs::read(d.join("val.mp4")).unwrap();
    assert!(video.len() < limit, "the sample leak fits the test limit");
    let analyst = user_token(&server, "ann", PASSWORD);
    let legal = user_token(&server, "lee", PASSWORD);
    let viewer = user_token(&server, "vic", PASSWORD);
    let file = |bytes: &'static [u8]| vec![Part::file("x.mp4", bytes)];

    // Who may submit.
    submit(&server, Auth::None, &file(b"x")).assert_error(401, "missing_token");
    submit(&server, Auth::ApiKey("ltk_not-a-key"), &file(b"x"))
        .assert_error(401, "invalid_api_key");
    submit(&server, Auth::Bearer(&viewer), &file(b"x")).assert_error(403, "wrong_role");
    submit(&server, Auth::Bearer(&legal), &file(b"x")).assert_error(403, "wrong_role");
    submit(&server, Auth::Bearer("not.a.jwt"), &file(b"x")).assert_error(401, "invalid_token");

    let a = Auth::Bearer(&analyst);
    // Empty, not a video, too big, no file.
    submit(&server, a, &file(b"")).assert_error(400, "empty_file");
    let not_video = submit(&server, a, &file(b"this is not a video at all"));
    not_video.assert_error(415, "unsupported_media");
    // Answers name no server folder.
    let data_dir = t.h.data_dir.to_string_lossy().to_string();
    assert!(!not_video.body.contains(&data_dir), "{}", not_video.body);
    assert!(!not_video.body.contains("/uploads/"), "{}", not_video.body);
    let big = vec![7u8; limit + 1];
    submit(&server, a, &[Part::file("big.mp4", &big)]).assert_error(413, "upload_too_large");
    submit(&server, a, &[Part::text("video_id", &t.video_id)]).assert_error(400, "missing_file");
    // A truncated video: the first 2 KB of a real one.
    submit(&server, a, &[Part::file("cut.mp4", &video[..2048])])
        .assert_error(415, "unsupported_media");
    // Names and fields.
    submit(&server, a, &[Part::file("../../etc/x.mp4", &video)])
        .assert_error(400, "invalid_file_name");
    submit(
        &server,
        a,
        &[Part::file("a.mp4", &video), Part::text("video_id", "nope")],
    )
    .assert_error(404, "unknown_video");
    submit(
        &server,
        a,
        &[
            Part::file("a.mp4", &video),
            Part::text("expected_watermark_hash", "xyz"),
        ],
    )
    .assert_error(400, "invalid_watermark_hash");
    submit(
        &server,
        a,
        &[Part::file("a.mp4", &video), Part::file("b.mp4", b"second")],
    )
    .assert_error(400, "too_many_files");
    // Only the documented text fields, each once: a form of endless field names is refused at
    // the first unknown one, not gathered in memory.
    let many: Vec<String> = (0..2_000).map(|i| format!("f{i}")).collect();
    let parts: Vec<Part> = many.iter().map(|n| Part::text(n, "x")).collect();
    submit(&server, a, &parts).assert_error(400, "unknown_field");
    submit(
        &server,
        a,
        &[
            Part::file("a.mp4", &video),
            Part::text("video_id", &t.video_id),
            Part::text("video_id", &t.video_id),
        ],
    )
    .assert_error(400, "duplicate_field");
    submit_raw(&server, a, "text/plain", b"hello").assert_error(415, "unsupported_media_type");

    // A huge declared length is refused before any byte is read; a body cut off mid-way is
    // refused as incomplete.
    let (ct, body) = evidence::multipart(&[Part::file("a.mp4", &video)]);
    let head = |length: usize| {
        format!(
            "POST /api/verify-watermark/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {analyst}\r\n\
             Content-Type: {ct}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        )
    };
    let (status, reply) = raw_request(&server, &head(1 << 40), b"", true);
    assert_eq!(status, 413, "{reply}");
    assert!(reply.contains("upload_too_large"), "{reply}");
    let (status, reply) = raw_request(&server, &head(body.len()), &body[..body.len() / 2], true);
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("upload_incomplete"), "{reply}");
    // A file and an inbox path: refused, and the uploaded file does not stay.
    submit(
        &server,
        a,
        &[
            Part::file("a.mp4", &video),
            Part::text("video_file_path", "dropped.mp4"),
        ],
    )
    .assert_error(400, "ambiguous_submission");
    // Clients that send a whole upload and go away before the answer: each file is a case's
    // (the submission had got that far) or gone, never left over (counted at the end).
    for _ in 0..5 {
        send_and_leave(&server, &head(body.len()), &body);
    }

    // The crawler inbox: inside it, accepted (and copied); outside it, refused.
    let inbox = t.h.data_dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("dropped.mp4"), &video).unwrap();
    let json_submit = |path: &str| {
        let body = serde_json::json!({ "video_file_path": path }).to_string();
        submit_raw(
            &server,
            Auth::ApiKey(&key),
            "application/json",
            body.as_bytes(),
        )
    };
    json_submit("../secrets/jwt.key").assert_error(400, "path_outside_inbox");
    json_submit("/etc/passwd").assert_error(400, "path_outside_inbox");
    json_submit("missing.mp4").assert_error(400, "file_not_found");
    let r = submit(
        &server,
        Auth::ApiKey(&key),
        &[Part::text("video_file_path", "../../etc/passwd")],
    );
    r.assert_error(400, "path_outside_inbox");
    let r = json_submit("dropped.mp4");
    assert_eq!(r.status, 202, "{}", r.body);
    let queued = r.json()["case_id"].as_str().unwrap().to_string();
    // No worker runs in this server: the case waits in the queue.
    let c = case(&server, Auth::ApiKey(&key), &queued).json();
    assert_eq!(
        (c["status"].as_str(), c["progress"].as_f64()),
        (Some("queued"), Some(0.0))
    );
    assert!(
        inbox.join("dropped.mp4").is_file(),
        "the inbox file is copied, not moved"
    );
    // No report before the analysis is done.
    let (status, _, body) = get_bytes(
        &server,
        Auth::Bearer(&legal),
        &format!("/api/cases/{queued}/report.pdf"),
    );
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));

    // Nothing refused left a file: the uploads are the accepted inbox copy and the files of
    // the cases the departed clients' submissions opened (waiting until those are settled).
    let cases_opened = || {
        let list = get_reply(&server, Auth::Bearer(&analyst), "/api/cases/?limit=500").json();
        list.as_array().map_or(0, |l| l.len())
    };
    let mut left = uploads_left(&t.h);
    let deadline = Instant::now() + Duration::from_secs(30);
    while left.len() != cases_opened() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = uploads_left(&t.h);
    }
    assert_eq!(left.len(), cases_opened(), "{left:?}");
    // Stored under random names, without the client's name or extension.
    assert!(left.iter().all(|f| f.ends_with(".upload")), "{left:?}");
    assert!(left.iter().all(|f| !f.contains("dropped")), "{left:?}");
    assert_eq!(get(&server.url("/healthz")).status, 200);
}

/// A `leaktrace worker` process.
fn worker(h: &Harness, env: &[(&str, &str)]) -> Child {
    let mut c = h.cmd();
    c.args(["--log-level", "warn", "worker"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().expect("start worker")
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn submit_copies(
    t: &Title,
    server: &common::Server,
    key: &str,
    leak_file: &Path,
    n: usize,
) -> Vec<String> {
    let bytes = std::fs::read(leak_file).unwrap();
    (0..n)
        .map(|i| {
            let name = format!("copy-{i}.mp4");
            let r = submit(
                server,
                Auth::ApiKey(key),
                &[
                    Part::file(&name, &bytes),
                    Part::text("video_id", &t.video_id),
                ],
            );
            assert_eq!(r.status, 202, "{}", r.body);
            r.json()["case_id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn worker_processes_share_the_queue_each_job_runs_once_and_a_killed_workers_job_completes() {
    let t = packaged(8.0);
    let key = api_key(&t.h, "crawler");
    // The server only takes submissions; `leaktrace worker` processes do the analyses.
    let server = t.h.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    let d = t.dir.path();
    leak(&server, "val", &"1".repeat(64), &t, &d.join("val.mp4"));
    let lease = [("LEAKTRACE_JOB_LEASE_SECONDS", "6")];

    // Two workers, many jobs: every job succeeds after exactly one attempt.
    let cases = submit_copies(&t, &server, &key, &d.join("val.mp4"), 6);
    let mut pair = [worker(&t.h, &lease), worker(&t.h, &lease)];
    for c in &cases {
        let v = wait_case(&server, Auth::ApiKey(&key), c, Duration::from_secs(600));
        assert_eq!(v["status"], "done", "{v:#}");
    }
    let db = t.h.db();
    let mut conn = db.conn().unwrap();
    // A case is finished just before its job is ended.
    wait_until(Duration::from_secs(60), "the jobs to end", || {
        jobs::count_by_status(&mut conn, ANALYSE, JobStatus::Succeeded).unwrap() == 6
    });
    for w in &mut pair {
        let _ = w.kill();
        let _ = w.wait();
    }
    let mut runners = std::collections::HashSet::new();
    for c in &cases {
        let entries = audit::for_case(&mut conn, c).unwrap();
        let started: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "job_started")
            .collect();
        assert_eq!(started.len(), 1, "case {c} ran {} times", started.len());
        let detail: serde_json::Value = serde_json::from_str(&started[0].detail).unwrap();
        assert_eq!(detail["attempt"], 1);
        runners.insert(detail["worker"].as_str().unwrap().to_string());
    }
    assert_eq!(runners.len(), 2, "both workers took jobs: {runners:?}");

    // A worker killed mid-job: its lease lapses and another worker completes the job. (If
    // the job ends before the kill, try again with a new one.)
    let mut crashed = None;
    for _ in 0..4 {
        let c = submit_copies(&t, &server, &key, &d.join("val.mp4"), 1).remove(0);
        let mut first = worker(&t.h, &lease);
        let mut status = String::new();
        wait_until(Duration::from_secs(120), "the job to start", || {
            status = case(&server, Auth::ApiKey(&key), &c).json()["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            status == "running" || status == "done"
        });
        first.kill().unwrap();
        first.wait().unwrap();
        if status == "running" {
            crashed = Some(c);
            break;
        }
    }
    let cases = [crashed.expect("a job caught running")];
    let succeeded_before = jobs::count_by_status(&mut conn, ANALYSE, JobStatus::Succeeded).unwrap();
    let mut second = worker(&t.h, &lease);
    let v = wait_case(
        &server,
        Auth::ApiKey(&key),
        &cases[0],
        Duration::from_secs(600),
    );
    wait_until(Duration::from_secs(60), "the job to end", || {
        jobs::count_by_status(&mut conn, ANALYSE, JobStatus::Succeeded).unwrap()
            == succeeded_before + 1
    });
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(v["status"], "done", "{v:#}");
    let entries = audit::for_case(&mut conn, &cases[0]).unwrap();
    let workers: Vec<String> = entries
        .iter()
        .filter(|e| e.action == "job_started")
        .map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            d["worker"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert_ne!(workers[0], workers[1]);
    assert_eq!(
        jobs::count_by_status(&mut conn, ANALYSE, JobStatus::Succeeded).unwrap(),
        succeeded_before + 1
    );
    assert!(matches!(
        audit::verify(&mut conn).unwrap(),
        audit::Verification::Intact { .. }
    ));
    // Whatever the killed worker left (its analysis's scratch folder, once it had made one)
    // the doctor removes; then nothing is out of place.
    t.h.run(&["doctor", "--clean", "--grace-seconds", "0"], None)
        .success();
    let after = t.h.run(&["doctor", "--grace-seconds", "0"], None);
    after.success();
    assert!(
        after.stdout().contains("nothing out of place"),
        "{}",
        after.stdout()
    );
}

/// A short title and a suspect submitted for it by an analyst to a server that runs no
/// workers: the case waits queued. Returns the title, the server, the analyst's token and
/// the case id.
fn queued_without_workers() -> (Title, common::Server, String, String) {
    let t = packaged(2.0);
    t.h.add_user("ann", "analyst", PASSWORD);
    let server = t.h.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    let analyst = user_token(&server, "ann", PASSWORD);
    let clip = std::fs::read(common::media::title_clip(t.dir.path(), 1.0)).unwrap();
    let r = submit(
        &server,
        Auth::Bearer(&analyst),
        &[
            Part::text("video_id", &t.video_id),
            Part::file("s.mp4", &clip),
        ],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let case_id = r.json()["case_id"].as_str().unwrap().to_string();
    (t, server, analyst, case_id)
}

/// Runs one `leaktrace worker` until the analyst sees case `case_id` end; its last status.
fn worker_ends(
    h: &Harness,
    server: &common::Server,
    analyst: &str,
    case_id: &str,
) -> serde_json::Value {
    let mut worker = h.cmd();
    worker
        .args(["worker", "--threads", "1"])
        .env("LEAKTRACE_JOB_LEASE_SECONDS", "3");
    let mut worker = worker.stdout(Stdio::null()).spawn().unwrap();
    let done = wait_case(
        server,
        Auth::Bearer(analyst),
        case_id,
        Duration::from_secs(120),
    );
    let _ = worker.kill();
    let _ = worker.wait();
    done
}

/// An analysis that fails for good before extraction (here: its title's manifest is gone)
/// fails its case, with a reason and no server path, instead of leaving it "running".
#[test]
fn a_case_whose_analysis_fails_for_good_before_extraction_is_failed() {
    let (t, server, analyst, case_id) = queued_without_workers();
    let manifest =
        t.h.data_dir
            .join("videos")
            .join(&t.video_id)
            .join("package.json");
    std::fs::remove_file(&manifest).unwrap();
    // With a bucket, gone from there too (else it is fetched again).
    if let Some(bucket) = t.h.bucket() {
        bucket
            .delete(&format!("videos/{}/package.json", t.video_id))
            .unwrap();
    }
    let done = worker_ends(&t.h, &server, &analyst, &case_id);
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{done:#}");
    assert!(!error.contains(t.h.data_dir.to_str().unwrap()), "{error}");
}

/// A suspect changed on disk between its upload and its analysis (by anyone who can write the
/// data dir or the bucket) is not analysed: evidence must be the file that was received. The
/// case fails, saying so, and the audit trail keeps both hashes.
#[test]
fn a_suspect_changed_after_upload_is_not_analysed() {
    let (t, server, analyst, case_id) = queued_without_workers();
    let stored = uploads_left(&t.h);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let path = t.h.data_dir.join("uploads").join(&stored[0]);
    // The same length, one byte different: only a hash sees it.
    let mut changed = std::fs::read(&path).unwrap();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
    std::fs::write(&path, &changed).unwrap();
    let done = worker_ends(&t.h, &server, &analyst, &case_id);
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(error.contains("SHA-256"), "{error}");
    assert!(!error.contains(t.h.data_dir.to_str().unwrap()), "{error}");
    assert!(done["result"].is_null(), "{done:#}");
    let entries = audit_entries(&t.h, &case_id);
    let changed_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&changed));
    assert!(
        entries
            .iter()
            .any(|(action, detail)| action == "suspect_changed" && detail.contains(&changed_hash)),
        "{entries:?}"
    );
}

/// The case list a crawler polls: filtered by status and by time, in pages that follow the
/// `Link` header to the end without repeating or skipping a case; a key sees only its own.
#[test]
fn cases_are_listed_by_status_and_time_in_pages() {
    let h = Harness::new();
    h.add_user("ann", "analyst", PASSWORD);
    let (a, b) = (api_key(&h, "crawler-a"), api_key(&h, "crawler-b"));
    let server = h.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    let analyst = user_token(&server, "ann", PASSWORD);
    let clip = std::fs::read(common::media::title_clip(h.dir.path(), 1.0)).unwrap();
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let send = |auth: Auth| {
        let r = submit(&server, auth, &[Part::file("s.mp4", &clip)]);
        assert_eq!(r.status, 202, "{}", r.body);
        r.json()["case_id"].as_str().unwrap().to_string()
    };
    let mine: Vec<String> = (0..5).map(|_| send(Auth::ApiKey(&a))).collect();
    send(Auth::ApiKey(&b));
    send(Auth::Bearer(&analyst));
    let ids = |r: &common::Reply| -> Vec<String> {
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case_id"].as_str().unwrap().to_string())
            .collect()
    };
    // Pages of two, followed to the end: the key's five cases, newest first, once each.
    let mut seen = Vec::new();
    let mut created = Vec::new();
    let mut path = "/api/cases/?limit=2&status=queued".to_string();
    let mut pages = 0;
    loop {
        let r = get_reply(&server, Auth::ApiKey(&a), &path);
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(ids(&r));
        for c in r.json().as_array().unwrap() {
            let at = chrono::DateTime::parse_from_rfc3339(c["created_at"].as_str().unwrap());
            created.push(at.unwrap());
        }
        pages += 1;
        let Some(link) = r.link.clone() else { break };
        assert!(link.ends_with("rel=\"next\""), "{link}");
        path = link
            .trim_start_matches('<')
            .split_once('>')
            .unwrap()
            .0
            .to_string();
        assert!(
            path.contains("status=queued") && path.contains("limit=2"),
            "{path}"
        );
    }
    assert_eq!(pages, 3);
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_mine = mine.clone();
    sorted_mine.sort();
    assert_eq!(sorted_seen, sorted_mine, "every case once, no other key's");
    // Filters: status and time, for the analyst (every case).
    let count = |auth: Auth, path: &str| {
        let r = get_reply(&server, auth, path);
        assert_eq!(r.status, 200, "{}", r.body);
        ids(&r).len()
    };
    let all = Auth::Bearer(&analyst);
    assert_eq!(count(all, "/api/cases/?status=queued"), 7);
    assert_eq!(count(all, "/api/cases/?status=done"), 0);
    let since = |t: chrono::DateTime<chrono::Utc>| {
        let text = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        format!("/api/cases/?since={}", text.replace('+', "%2B"))
    };
    assert_eq!(count(all, &since(before)), 7);
    assert_eq!(
        count(all, &since(chrono::Utc::now() + chrono::Duration::hours(1))),
        0
    );
    assert_eq!(count(Auth::ApiKey(&b), "/api/cases/"), 1);
    // Bad filters: the documented errors.
    for (query, code) in [
        ("status=finished", "invalid_status"),
        ("since=yesterday", "invalid_since"),
        ("since=2026-12-01", "invalid_since"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("cursor=", "invalid_cursor"),
        ("limit=0", "invalid_limit"),
    ] {
        get_reply(&server, all, &format!("/api/cases/?{query}")).assert_error(400, code);
    }
}

/// A title's leak history: three leaked copies analysed, one viewer twice; as JSON (counts,
/// days, leakers most cases first, the repeat leaker) and as CSV (one row per accusation);
/// for analysts and the like only.
#[test]
fn a_titles_leak_history_names_its_repeat_leakers_as_json_and_csv() {
    let t = packaged(40.0);
    t.h.add_user("ann", "analyst", PASSWORD);
    let key = api_key(&t.h, "crawler");
    let server = t.h.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    let d = t.dir.path();
    let vic1 = leak(&server, "vic", &"1".repeat(64), &t, &d.join("vic1.mp4"));
    let vic2 = leak(&server, "vic", &"2".repeat(64), &t, &d.join("vic2.mp4"));
    let val = leak(&server, "val", &"3".repeat(64), &t, &d.join("val.mp4"));
    for copy in ["vic1.mp4", "vic2.mp4", "val.mp4"] {
        let path = d.join(copy);
        t.h.run(&["extract", path.to_str().unwrap(), "--json"], None)
            .success();
    }
    let analyst = user_token(&server, "ann", PASSWORD);
    let path = format!("/api/titles/{}/leaks/", t.video_id);
    let r = get_reply(&server, Auth::Bearer(&analyst), &path);
    assert_eq!(r.status, 200, "{}", r.body);
    let h = r.json();
    assert_eq!(h["video_id"], t.video_id.as_str());
    assert_eq!(h["cases"]["total"], 3, "{h:#}");
    assert_eq!(h["cases"]["identified"], 3, "{h:#}");
    assert_eq!(h["by_day"].as_array().unwrap().len(), 1, "{h:#}");
    assert_eq!(h["by_day"][0]["identified"], 3);
    let leakers = h["leakers"].as_array().unwrap();
    assert_eq!(leakers.len(), 2, "{h:#}");
    assert_eq!(leakers[0]["user"], "vic");
    assert_eq!(leakers[0]["case_ids"].as_array().unwrap().len(), 2);
    let sessions: Vec<&str> = leakers[0]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(sessions, [vic1.as_str(), vic2.as_str()]);
    assert_eq!(leakers[0]["devices"].as_array().unwrap().len(), 2);
    assert_eq!(leakers[1]["user"], "val");
    assert_eq!(h["repeat_leakers"], serde_json::json!(["vic"]));
    assert_eq!(h["collusion"], serde_json::json!([]));
    assert_eq!(h["truncated"], false);

    let r = get_reply(
        &server,
        Auth::Bearer(&analyst),
        &format!("{path}?format=csv"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.starts_with("text/csv"), "{}", r.content_type);
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.body);
    assert!(lines[0].starts_with("case_id,case_created_at,session_id,user"));
    for session in [&vic1, &vic2, &val] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(session.as_str()))
                .count(),
            1,
            "{}",
            r.body
        );
    }

    get_reply(
        &server,
        Auth::Bearer(&analyst),
        &format!("{path}?format=xml"),
    )
    .assert_error(400, "invalid_format");
    get_reply(&server, Auth::Bearer(&analyst), "/api/titles/nope/leaks/")
        .assert_error(404, "unknown_video");
    get_reply(&server, Auth::ApiKey(&key), &path).assert_error(403, "wrong_role");
    let viewer = user_token(&server, "vera", PASSWORD);
    get_reply(&server, Auth::Bearer(&viewer), &path).assert_error(403, "wrong_role");
}
