//! Jobs seen from a test: waiting for one to run, the newest of a kind, `leaktrace doctor`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::db::repo::jobs::{self, JobKind, JobStatus};

use super::evidence::{multipart, post_raw, Auth, Part};
use super::{Harness, Server};

/// Queues the packaging of `source` as `title` through the admin API and waits until its job
/// runs (its staging folder written); false if it ended first.
pub fn package_and_catch_running(
    h: &Harness,
    server: &Server,
    admin: &str,
    title: &str,
    source: &[u8],
) -> bool {
    let (ct, form) = multipart(&[Part::text("title", title), Part::file("s.mp4", source)]);
    let r = post_raw(
        server,
        Auth::Bearer(admin),
        "/api/admin/titles/",
        &ct,
        &form,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let videos = h.data_dir.join("videos");
    caught_running(h, JobKind::PackageTitle, &videos, ".staging-")
}

/// Starts a suspect upload of `source` and sends half its body, holding the connection open
/// (`Connection: close`, so that reading the answer ends), once the server has written its
/// part file.
pub fn half_an_upload(h: &Harness, server: &Server, admin: &str, source: &[u8]) -> HalfUpload {
    use std::io::Write;
    let (ct, body) = multipart(&[Part::file("suspect.mp4", source)]);
    let host = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /api/verify-watermark/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    let uploads = h.data_dir.join("uploads");
    wait_until(Duration::from_secs(30), "the upload's part file", || {
        !files_under(&uploads, "").is_empty()
    });
    HalfUpload { stream, body }
}

pub struct HalfUpload {
    pub stream: std::net::TcpStream,
    body: Vec<u8>,
}

impl HalfUpload {
    /// Sends the rest of the body and reads the whole answer.
    pub fn finish(mut self) -> String {
        use std::io::{Read, Write};
        let rest = &self.body[self.body.len() / 2..];
        self.stream.write_all(rest).unwrap();
        let mut answer = String::new();
        self.stream.read_to_string(&mut answer).unwrap();
        answer
    }
}

pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `leaktrace doctor --json --grace-seconds 0 [--clean]`: its exit code and findings.
pub fn doctor(h: &Harness, clean: bool) -> (i32, Vec<Value>) {
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

pub fn kinds(findings: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

pub fn job_of(h: &Harness, kind: JobKind) -> Option<jobs::JobRow> {
    jobs::recent(&mut h.db().conn().unwrap(), kind, 10)
        .unwrap()
        .into_iter()
        .next()
}

/// Waits until the newest job of `kind` is running and has written into `dir` a folder whose
/// name starts with `prefix`; false if the job ended first.
pub fn caught_running(h: &Harness, kind: JobKind, dir: &Path, prefix: &str) -> bool {
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

pub fn files_under(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}
