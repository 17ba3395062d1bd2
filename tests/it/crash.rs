//! kill -9 in the middle of the work that writes files: an upload, a packaging, a reference
//! store build (an analysis killed mid-way is in `evidence.rs`, with worker processes). After
//! each restart every job completes exactly once, no partial title is ever visible, the audit
//! chain verifies, and `leaktrace doctor` finds what the crashes left behind and cleans it,
//! after which it finds nothing. Runs on SQLite and on PostgreSQL like the rest of the suite.

use std::time::Duration;

use shared::db::repo::jobs::{JobKind, JobStatus};
use shared::db::repo::videos;

use crate::common::evidence::{get_reply, Auth};
use crate::common::jobs::{
    caught_running, doctor, files_under, half_an_upload, job_of, kinds, package_and_catch_running,
    wait_until,
};
use crate::common::media::packaging_source;
use crate::common::viewer::{user_token, Client, PASSWORD};
use crate::common::Harness;

/// Short leases: a killed server's job is taken again within seconds of the restart.
const ENV: &[(&str, &str)] = &[("LEAKTRACE_JOB_LEASE_SECONDS", "3")];

#[test]
fn kill_9_during_upload_packaging_and_store_build_loses_nothing_and_doctor_cleans_up() {
    let h = Harness::new();
    h.add_user("ada", "admin", PASSWORD);
    h.add_user("vic", "viewer", PASSWORD);
    let source = packaging_source(h.dir.path(), 12.0);
    let server = h.serve_with_env(&[], ENV);
    let admin = user_token(&server, "ada", PASSWORD);

    // 1. An upload under way (half its body sent, the connection held open) and a packaging
    //    job running when the server is killed.
    let upload = half_an_upload(&h, &server, &admin, &source);
    assert!(
        package_and_catch_running(&h, &server, &admin, "Crashed", &source),
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
    assert!(files_under(&h.data_dir.join("uploads"), "").is_empty());
    h.run(&["audit", "verify"], None).success();
    let client = Client::start(&server, "vic", &"1".repeat(64), &video_id);
    assert!(!client.segment("1").is_empty());
}
