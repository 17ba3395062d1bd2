//! Graceful shutdown: SIGTERM stops accepting, lets the requests under way finish (an upload
//! whose body is still arriving), and hands running jobs back to the queue once the grace
//! period is over, so that another worker takes them at once instead of when their lease
//! lapses; `leaktrace worker` does the same. Runs on SQLite and on PostgreSQL.

use std::time::Duration;

use shared::db::repo::audit;
use shared::db::repo::jobs::{JobKind, JobStatus};

use crate::common::jobs::{
    caught_running, half_an_upload, job_of, package_and_catch_running, wait_until,
};
use crate::common::media::packaging_source;
use crate::common::viewer::{user_token, PASSWORD};
use crate::common::{terminate, wait_exit, Harness};

/// A lease far longer than the test: a job taken again was handed back, not left to lapse.
const ENV: &[(&str, &str)] = &[
    ("LEAKTRACE_JOB_LEASE_SECONDS", "600"),
    ("LEAKTRACE_SHUTDOWN_GRACE_SECONDS", "2"),
];

/// The packaging job, handed back: queued, no lease, the attempt not counted, audited.
fn assert_handed_back(h: &Harness) {
    let job = job_of(h, JobKind::PackageTitle).unwrap();
    assert_eq!(job.status, JobStatus::Queued, "{job:?}");
    assert_eq!(job.attempts, 0, "the interrupted attempt is not counted");
    assert!(job.lease_owner.is_none() && job.lease_expires_at.is_none());
    let entries = audit::recent(&mut h.db().conn().unwrap(), 50).unwrap();
    let released = entries
        .iter()
        .find(|e| e.action == "job_ended" && e.detail.contains(&job.id))
        .expect("the hand-back is audited (the newest entry of the job)");
    assert!(
        released.detail.contains("\"status\":\"queued\"") && released.detail.contains("released"),
        "{}",
        released.detail
    );
}

#[test]
fn sigterm_lets_an_upload_finish_and_hands_running_jobs_back() {
    let h = Harness::new();
    h.add_user("ada", "admin", PASSWORD);
    // Long enough that its packaging (about 12 s here) outlasts the upload and the grace period
    // with room to spare on a faster machine: at 20 s it once ended inside that window.
    let source = packaging_source(h.dir.path(), 60.0);
    let mut server = h.serve_with_env(&[], ENV);
    let admin = user_token(&server, "ada", PASSWORD);

    // A packaging job running, and an upload whose body is half sent.
    assert!(
        package_and_catch_running(&h, &server, &admin, "Stopped", &source),
        "the packaging ended before the server could be stopped"
    );
    let upload = half_an_upload(&h, &server, &admin, &source);
    let host = server.base.trim_start_matches("http://").to_string();

    server.terminate();
    // Not accepting any more; the upload under way still completes.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(&host).is_err(),
        "still accepting connections after SIGTERM"
    );
    let answer = upload.finish();
    assert!(
        answer.starts_with("HTTP/1.1 202"),
        "the upload under way was not finished: {answer}"
    );
    assert!(answer.contains("\"case_id\""), "{answer}");

    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("the server exits after its grace periods");
    assert!(status.success(), "{status}");
    assert_handed_back(&h);

    // `leaktrace worker` takes it at once (no lease to wait for), and hands it back as well.
    let mut worker = h.cmd();
    worker.args(["worker", "--threads", "1"]);
    for (k, v) in ENV {
        worker.env(k, v);
    }
    let mut worker = worker.stdout(std::process::Stdio::null()).spawn().unwrap();
    assert!(
        caught_running(
            &h,
            JobKind::PackageTitle,
            &h.data_dir.join("videos"),
            ".staging-"
        ),
        "the worker's packaging ended before it could be stopped"
    );
    terminate(&worker);
    let status = wait_exit(&mut worker, Duration::from_secs(60)).expect("the worker exits");
    assert!(status.success(), "{status}");
    assert_handed_back(&h);

    // A new server finishes it, counting one attempt; the upload's case is there.
    let _server = h.serve_with_env(&[], ENV);
    wait_until(Duration::from_secs(600), "the packaging", || {
        job_of(&h, JobKind::PackageTitle).is_some_and(|j| j.status == JobStatus::Succeeded)
    });
    assert_eq!(job_of(&h, JobKind::PackageTitle).unwrap().attempts, 1);
    assert!(
        job_of(&h, JobKind::AnalyseCase).is_some(),
        "the upload's case was queued"
    );
}
