//! kill -9 in the middle of the work that writes files: an upload, a packaging, a reference
//! store build (an analysis killed mid-way is in `evidence.rs`, with worker processes). After
//! each restart every job completes exactly once, no partial title is ever visible, the audit
//! chain verifies, and `leaktrace doctor` finds what the crashes left behind and cleans it,
//! after which it finds nothing. Runs on SQLite and on PostgreSQL like the rest of the suite.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::db::repo::jobs::{self, JobKind, JobStatus};
use shared::db::repo::videos;

use crate::common::evidence::{get_reply, multipart, post_raw, Auth, Part};
use crate::common::media::{clip, ClipSpec};
use crate::common::viewer::{user_token, Client, PASSWORD};
use crate::common::Harness;

/// Short leases: a killed server's job is taken again within seconds of the restart.
const ENV: &[(&str, &str)] = &[("LEAKTRACE_JOB_LEASE_SECONDS", "3")];

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `leaktrace doctor --json --grace-seconds 0 [--clean]`: its exit code and findings.
fn doctor(h: &Harness, clean: bool) -> (i32, Vec<Value>) {
    let mut args = vec!["doctor", "--json", "--grace-seconds", "0"];
    if clean {
        args.push("--clean");
    }
    let run = h.run(&args, None);
    let report: Value = serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", run.stdout()));
    (
        run.code(),
        report["findings"].as_array().cloned().unwrap_or_default(),
    )
}

fn kinds(findings: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

fn job_of(h: &Harness, kind: JobKind) -> Option<jobs::JobRow> {
    jobs::recent(&mut h.db().conn().unwrap(), kind, 10)
        .unwrap()
        .into_iter()
        .next()
}

/// Waits until the newest job of `kind` is running and has written into `dir` a folder whose
/// name starts with `prefix`; false if the job ended first.
fn caught_running(h: &Harness, kind: JobKind, dir: &Path, prefix: &str) -> bool {
    let mut caught = false;
    let started = Instant::now();
    loop {
        let job = job_of(h, kind);
        if job.as_ref().is_some_and(|j| j.status == JobStatus::Running)
            && !files_under(dir, prefix).is_empty()
        {
            caught = true;
            break;
        }
        if job.is_some_and(|j| matches!(j.status, JobStatus::Succeeded | JobStatus::Failed)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "timed out waiting for the job to start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    caught
}

fn files_under(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_during_upload_packaging_and_store_build_loses_nothing_and_doctor_cleans_up() {
    let h = Harness::new();
    h.add_user("ada", "admin", PASSWORD);
    h.add_user("vic", "viewer", PASSWORD);
    let source = clip(
        h.dir.path(),
        "source.mp4",
        &ClipSpec {
            size: "640x360",
            rate: "25",
            seconds: 12.0,
            audio: false,
            vf: None,
            codec: &["-c:v", "libx264", "-crf", "20"],
        },
    );
    let source = std::fs::read(source).unwrap();
    let server = h.serve_with_env(&[], ENV);
    let admin = user_token(&server, "ada", PASSWORD);

    // 1. An upload under way (half its body sent, the connection held open) and a packaging
    //    job running when the server is killed.
    let (ct, body) = multipart(&[Part::file("suspect.mp4", &source)]);
    let host = server.base.trim_start_matches("http://").to_string();
    let mut upload = std::net::TcpStream::connect(&host).unwrap();
    let head = format!(
        "POST /api/verify-watermark/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    std::io::Write::write_all(&mut upload, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut upload, &body[..body.len() / 2]).unwrap();
    let uploads = h.data_dir.join("uploads");
    wait_until(Duration::from_secs(30), "the upload's part file", || {
        !files_under(&uploads, "").is_empty()
    });
    let (ct, form) = multipart(&[Part::text("title", "Crashed"), Part::file("s.mp4", &source)]);
    let r = post_raw(
        &server,
        Auth::Bearer(&admin),
        "/api/admin/titles/",
        &ct,
        &form,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let videos_dir = h.data_dir.join("videos");
    assert!(
        caught_running(&h, JobKind::PackageTitle, &videos_dir, ".staging-"),
        "the packaging ended before it could be killed"
    );
    drop(server); // SIGKILL
    drop(upload);
    let db = h.db();
    assert!(
        videos::list(&mut db.conn().unwrap()).unwrap().is_empty(),
        "no partial title is visible"
    );
    assert_eq!(
        files_under(&h.data_dir.join("videos"), ".staging-").len(),
        1
    );
    // The lease lapses: the doctor sees the job as stale, the staging folder and the part.
    std::thread::sleep(Duration::from_secs(4));
    let (code, findings) = doctor(&h, false);
    assert_ne!(code, 0, "{findings:?}");
    for kind in ["partial_upload", "staging_title", "stale_lease"] {
        assert!(kinds(&findings).contains(&kind.to_string()), "{findings:?}");
    }
    assert!(
        !kinds(&findings).contains(&"orphan_source".to_string()),
        "the queued job still needs its source: {findings:?}"
    );

    // 2. Restarted: the packaging is taken again and completes once; the reference store
    //    build it queues is killed in turn.
    let server = h.serve_with_env(&[], ENV);
    wait_until(Duration::from_secs(600), "the packaging", || {
        job_of(&h, JobKind::PackageTitle).is_some_and(|j| j.status == JobStatus::Succeeded)
    });
    let job = job_of(&h, JobKind::PackageTitle).unwrap();
    assert_eq!(job.attempts, 2, "killed once, then done");
    let titles = videos::list(&mut db.conn().unwrap()).unwrap();
    assert_eq!(titles.len(), 1, "one title, recorded once");
    let video_id = titles[0].id.clone();
    assert!(
        caught_running(
            &h,
            JobKind::BuildReferenceStore,
            &h.data_dir.join("work"),
            "reference-"
        ),
        "the store build ended before it could be killed"
    );
    drop(server);
    let store = h
        .data_dir
        .join("videos")
        .join(&video_id)
        .join("reference/units/1.lts");
    assert!(!store.exists(), "no partial store is published");

    // 3. Restarted again: the store is built once and published whole.
    let server = h.serve_with_env(&[], ENV);
    wait_until(Duration::from_secs(600), "the store build", || {
        job_of(&h, JobKind::BuildReferenceStore).is_some_and(|j| j.status == JobStatus::Succeeded)
    });
    assert!(store.is_file());
    let listed = get_reply(&server, Auth::Bearer(&admin), "/api/admin/titles/").json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // 4. The doctor finds what the crashes left and cleans it; then nothing is left, the
    //    audit chain verifies and the title plays.
    let (code, findings) = doctor(&h, false);
    assert_ne!(code, 0);
    let found = kinds(&findings);
    for kind in ["partial_upload", "staging_title", "orphan_work"] {
        assert!(found.contains(&kind.to_string()), "{findings:?}");
    }
    for kind in ["stale_lease", "unrecorded_title", "audit_broken"] {
        assert!(!found.contains(&kind.to_string()), "{findings:?}");
    }
    let (code, cleaned) = doctor(&h, true);
    assert_eq!(code, 0, "{cleaned:?}");
    assert!(cleaned.iter().all(|f| f["removed"] == true), "{cleaned:?}");
    let (code, after) = doctor(&h, false);
    assert_eq!((code, after.len()), (0, 0), "{after:?}");
    assert!(files_under(&h.data_dir.join("videos"), ".staging-").is_empty());
    assert!(files_under(&uploads, "").is_empty());
    h.run(&["audit", "verify"], None).success();
    let client = Client::start(&server, "vic", &"1".repeat(64), &video_id);
    assert!(!client.segment("1").is_empty());
}
