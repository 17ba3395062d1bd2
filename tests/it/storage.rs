//! Titles in an S3-compatible bucket (a real one-node Garage): packaged on one machine,
//! their reference store built and published there, then played on a second machine and
//! analysed on a third that never had the files; readiness follows the bucket. Runs on
//! SQLite and PostgreSQL (the machines share the test's database).

use std::path::Path;
use std::time::Duration;

use shared::db::repo::jobs::{JobKind, JobStatus};

use crate::common::evidence::{
    get_bytes, get_reply, multipart, post_raw, submit, wait_case, Auth, Part,
};
use crate::common::garage::{deployment_secrets, Garage};
use crate::common::jobs::{doctor, job_of, kinds, wait_until};
use crate::common::media::{packaging_source, title_clip};
use crate::common::viewer::{user_token, Client, PASSWORD};
use crate::common::{get, terminate, wait_exit, Harness};

#[test]
fn a_title_packaged_on_one_machine_plays_and_is_analysed_on_others() {
    let mut garage = Garage::start();
    // One deployment: the same secrets on every machine (they are not in the bucket).
    let env = garage.deployment("prod");
    let one = Harness::folder().with_env(&env);
    one.add_user("vic", "viewer", PASSWORD);
    one.add_user("ann", "analyst", PASSWORD);
    one.add_user("lee", "legal", PASSWORD);
    let input = title_clip(one.dir.path(), 40.0);
    let v = one.package(&input, "Shared", &[]);
    let video_id = v["video_id"].as_str().unwrap().to_string();
    let units = v["units"].as_u64().unwrap() as u32;

    // Every file of the title is in the bucket under the prefix, but its source.
    let title = format!("prod/videos/{video_id}");
    let keys = garage.keys();
    for file in [
        "package.json",
        "video/init.mp4",
        "video/a/1.m4s",
        "video/b/1.m4s",
    ] {
        let key = format!("{title}/{file}");
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.contains("/source/")), "{keys:?}");

    // Machine one's worker builds the reference store and publishes it.
    let server = one.serve(&[]);
    let store = format!("{title}/reference/units/1.lts");
    wait_until(Duration::from_secs(300), "the published store", || {
        garage.keys().contains(&store)
    });
    drop(server);

    // Machine two never had the title: a viewer plays all of it there.
    let two = one.another_machine();
    let server = two.serve(&[]);
    let ready = get(&server.url("/readyz")).json();
    assert_eq!(
        ready["storage"],
        serde_json::json!({"kind": "s3", "status": "ok"})
    );
    let client = Client::start(&server, "vic", &"5".repeat(64), &video_id);
    let mut leak = client.segment("init");
    for k in 1..=units {
        leak.extend(client.segment(&k.to_string()));
    }
    let session_id = client.session_id.clone();
    drop(client);
    let fetched = two.data_dir.join("videos").join(&video_id);
    assert!(fetched.join("package.json").is_file());
    assert!(
        !fetched.join("source").exists(),
        "the source stays where it was packaged"
    );
    drop(server);

    // Machine three analyses the leak, fetching the title and its store.
    let three = one.another_machine();
    let suspect = three.dir.path().join("leak.mp4");
    std::fs::write(&suspect, &leak).unwrap();
    let out = three.run(
        &[
            "extract",
            suspect.to_str().unwrap(),
            "--video",
            &video_id,
            "--json",
        ],
        None,
    );
    out.success();
    let result: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(result["verdict"], "identified", "{result:#}");
    assert_eq!(result["matches"][0]["session_id"], session_id.as_str());
    let here = three.data_dir.join("videos").join(&video_id);
    assert!(
        here.join("reference/units/1.lts").is_file(),
        "the store was fetched"
    );

    // A suspect uploaded to machine two, which runs no workers, is analysed by a worker on a
    // fourth machine that has neither the upload nor the title.
    let server = two.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    let analyst = user_token(&server, "ann", PASSWORD);
    let r = submit(
        &server,
        Auth::Bearer(&analyst),
        &[
            Part::text("video_id", &video_id),
            Part::file("leak.mp4", &leak),
        ],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let case_id = r.json()["case_id"].as_str().unwrap().to_string();
    // Here every machine shares one disk: machine two's uploads are hidden from the worker, as
    // another machine's disk would be.
    let uploads = two.data_dir.join("uploads");
    let hidden = two.data_dir.join("uploads.elsewhere");
    std::fs::rename(&uploads, &hidden).unwrap();
    let four = one.another_machine();
    let mut worker = four.cmd();
    worker.args(["worker", "--threads", "1"]);
    let mut worker = worker.stdout(std::process::Stdio::null()).spawn().unwrap();
    let done = wait_case(
        &server,
        Auth::Bearer(&analyst),
        &case_id,
        Duration::from_secs(300),
    );
    terminate(&worker);
    let _ = wait_exit(&mut worker, Duration::from_secs(60));
    assert_eq!(done["status"], "done", "{done:#}");
    assert_eq!(done["result"]["verdict"], "identified", "{done:#}");
    assert!(
        four.data_dir
            .join("uploads")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "the worker fetched the suspect"
    );
    // Its signed report, issued on machine two, is the same file when another instance serves
    // it (fetched from the bucket, not issued again).
    let legal = user_token(&server, "lee", PASSWORD);
    let report = format!("/api/cases/{case_id}/report.pdf");
    let (status, _, issued) = get_bytes(&server, Auth::Bearer(&legal), &report);
    assert_eq!(status, 200);
    std::fs::rename(&hidden, &uploads).unwrap();
    drop(server);
    let reports = two.data_dir.join("reports");
    std::fs::rename(&reports, two.data_dir.join("reports.elsewhere")).unwrap();
    let elsewhere = one.another_machine();
    let server = elsewhere.serve(&[]);
    let (status, _, served) = get_bytes(&server, Auth::Bearer(&legal), &report);
    assert_eq!(status, 200);
    assert!(served == issued, "another instance issued a new report");
    drop(server);
    std::fs::rename(two.data_dir.join("reports.elsewhere"), &reports).unwrap();

    // A machine with none of the title's files: the doctor finds it in the bucket.
    let (_, findings) = doctor(&one.another_machine(), false);
    assert!(
        !kinds(&findings).contains(&"missing_title_files".to_string()),
        "{findings:?}"
    );

    // The bucket gone: machine two is alive but not ready.
    let server = two.serve(&[]);
    garage.stop();
    assert_eq!(get(&server.url("/healthz")).status, 200);
    let ready = get(&server.url("/readyz"));
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["storage"]["error"], "storage_unreachable");
    assert!(!ready.body.contains("127.0.0.1"), "{}", ready.body);
}

#[test]
fn a_source_uploaded_to_a_server_without_workers_is_packaged_by_a_worker_elsewhere() {
    let garage = Garage::start();
    // One deployment: the same secrets on every machine (they are not in the bucket).
    let env = garage.deployment("studio");
    let one = Harness::folder().with_env(&env);
    one.add_user("ada", "admin", PASSWORD);
    let source = packaging_source(one.dir.path(), 4.0);
    let server = one.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    let admin = user_token(&server, "ada", PASSWORD);
    let (ct, form) = multipart(&[
        Part::text("title", "Elsewhere"),
        Part::file("s.mp4", &source),
    ]);
    let r = post_raw(
        &server,
        Auth::Bearer(&admin),
        "/api/admin/titles/",
        &ct,
        &form,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(
        garage
            .keys()
            .iter()
            .any(|k| k.starts_with("studio/sources/")),
        "the upload is in the bucket before the job is queued"
    );
    // This machine's disk is not the worker's.
    let sources = one.data_dir.join("sources");
    std::fs::rename(&sources, one.data_dir.join("sources.elsewhere")).unwrap();

    let two = one.another_machine();
    let mut worker = two.cmd();
    worker.args(["worker", "--threads", "1"]);
    let mut worker = worker.stdout(std::process::Stdio::null()).spawn().unwrap();
    wait_until(Duration::from_secs(300), "the packaging elsewhere", || {
        job_of(&one, JobKind::PackageTitle).is_some_and(|j| j.status == JobStatus::Succeeded)
    });
    terminate(&worker);
    let _ = wait_exit(&mut worker, Duration::from_secs(60));
    let keys = garage.keys();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("studio/videos/") && k.ends_with("/package.json")),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("studio/sources/")),
        "the packaged upload is removed from the bucket: {keys:?}"
    );
    // The server that received it lists the title.
    let titles = get_reply(&server, Auth::Bearer(&admin), "/api/admin/titles/");
    assert!(titles.body.contains("Elsewhere"), "{}", titles.body);
}

#[test]
fn a_folder_deployment_moves_into_a_bucket_and_another_machine_serves_it() {
    let garage = Garage::start();
    let secrets = deployment_secrets("moved");
    // One machine, everything in its data dir: a title with its reference store.
    let folder = Harness::folder().with_env(&secrets);
    folder.add_user("vic", "viewer", PASSWORD);
    let input = title_clip(folder.dir.path(), 4.0);
    let v = folder.package(&input, "Moved", &[]);
    let video_id = v["video_id"].as_str().unwrap().to_string();
    let server = folder.serve(&[]);
    let store = folder
        .data_dir
        .join(format!("videos/{video_id}/reference/units/1.lts"));
    wait_until(Duration::from_secs(300), "the local store", || {
        store.is_file()
    });
    drop(server);
    // Without a bucket named, there is nowhere to move to.
    folder
        .run(&["storage", "migrate"], None)
        .fails_with(2, "storage.url");

    let moved = folder.with_env(&garage.env("moved"));
    let out = moved.run(&["storage", "migrate", "--json"], None);
    out.success();
    let summary: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(summary["titles"], 1, "{summary}");
    let keys = garage.keys();
    for file in ["package.json", "video/a/1.m4s", "reference/units/1.lts"] {
        let key = format!("moved/videos/{video_id}/{file}");
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    // Running it again is harmless (an interrupted migration is finished that way).
    moved.run(&["storage", "migrate"], None).success();

    let other = moved.another_machine();
    let server = other.serve(&[]);
    let client = Client::start(&server, "vic", &"6".repeat(64), &video_id);
    assert!(!client.segment("init").is_empty());
    assert!(!client.segment("1").is_empty());
}

/// A file of many parts (a suspect or a source of gigabytes goes up the same way) crosses the
/// bucket whole, and a machine's cache keeps to its limit, least recently used out first.
#[test]
fn large_files_cross_the_bucket_in_parts_and_the_cache_keeps_to_its_limit() {
    let garage = Garage::start();
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sender = garage.storage(here.path(), 1 << 30);
    let big: Vec<u8> = (0..40_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::create_dir_all(here.path().join("uploads")).unwrap();
    std::fs::write(here.path().join("uploads/big.mp4"), &big).unwrap();
    sender.publish_file("uploads/big.mp4").unwrap();

    // The receiver keeps 50 MB: the big file, then two of 8 MB, then another 40 MB file.
    let receiver = garage.storage(there.path(), 50_000_000);
    let fetched = receiver
        .stored_here(Path::new("/elsewhere/uploads/big.mp4"), "uploads")
        .unwrap();
    assert!(
        std::fs::read(&fetched).unwrap() == big,
        "the file came back different"
    );
    for name in ["a", "b"] {
        std::fs::write(
            here.path().join(format!("uploads/{name}")),
            vec![7u8; 8_000_000],
        )
        .unwrap();
        sender.publish_file(&format!("uploads/{name}")).unwrap();
        receiver.local(&format!("uploads/{name}")).unwrap();
    }
    receiver.local("uploads/big.mp4").unwrap();
    std::fs::copy(
        here.path().join("uploads/big.mp4"),
        here.path().join("uploads/big2.mp4"),
    )
    .unwrap();
    sender.publish_file("uploads/big2.mp4").unwrap();
    receiver.local("uploads/big2.mp4").unwrap();
    let kept = |name: &str| there.path().join("uploads").join(name).is_file();
    assert!(kept("big2.mp4"), "the newest stays");
    assert!(
        !kept("a") && !kept("b"),
        "the least recently used went first"
    );
    assert!(
        !kept("big.mp4"),
        "past the limit, the next least recently used went too"
    );
    // Gone from the cache, not from the bucket: fetched again on demand.
    receiver.local("uploads/a").unwrap();
    assert!(kept("a"));
}

/// A suspect whose object was swapped in the bucket after it was received (anyone holding the
/// bucket's write key could) is not analysed by the worker that fetches it: the case fails
/// with the two SHA-256s instead of naming whoever the swapped file names.
#[test]
fn a_suspect_swapped_in_the_bucket_is_not_analysed() {
    let garage = Garage::start();
    let env = garage.deployment("prod");
    let one = Harness::folder().with_env(&env);
    one.add_user("ann", "analyst", PASSWORD);
    let server = one.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    let analyst = user_token(&server, "ann", PASSWORD);
    let clip = std::fs::read(title_clip(one.dir.path(), 1.0)).unwrap();
    let r = submit(
        &server,
        Auth::Bearer(&analyst),
        &[Part::file("s.mp4", &clip)],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let case_id = r.json()["case_id"].as_str().unwrap().to_string();
    let uploads = one.data_dir.join("uploads");
    let name = std::fs::read_dir(&uploads)
        .unwrap()
        .next()
        .expect("the stored upload")
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let key = format!("prod/uploads/{name}");
    assert!(garage.keys().contains(&key), "{:?}", garage.keys());
    // The object replaced by other bytes of the same length.
    let staging = tempfile::tempdir().unwrap();
    let mut swapped = clip.clone();
    swapped.reverse();
    std::fs::create_dir_all(staging.path().join("prod/uploads")).unwrap();
    std::fs::write(staging.path().join(&key), &swapped).unwrap();
    garage
        .storage(staging.path(), 1 << 30)
        .publish_file(&key)
        .unwrap();
    // The worker is on another machine: it fetches the object.
    std::fs::rename(&uploads, one.data_dir.join("uploads.elsewhere")).unwrap();
    let two = one.another_machine();
    let mut worker = two.cmd();
    worker.args(["worker", "--threads", "1"]);
    let mut worker = worker.stdout(std::process::Stdio::null()).spawn().unwrap();
    let done = wait_case(
        &server,
        Auth::Bearer(&analyst),
        &case_id,
        Duration::from_secs(120),
    );
    terminate(&worker);
    let _ = wait_exit(&mut worker, Duration::from_secs(60));
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(error.contains("SHA-256"), "{error}");
    assert!(!error.contains(two.data_dir.to_str().unwrap()), "{error}");
}

/// The suite's bucket run (scripts/test.sh runs the end-to-end tests a second time with every
/// harness's deployment in a bucket) really keeps the files there: a packaged title's objects
/// are in the bucket under the harness's own prefix. Nothing to check on the data dir alone.
#[test]
fn in_a_bucket_run_every_harness_keeps_its_titles_in_the_bucket() {
    if !crate::common::bucket_run() {
        return;
    }
    let h = Harness::new();
    let v = h.package(&title_clip(h.dir.path(), 2.0), "In the bucket", &[]);
    let video_id = v["video_id"].as_str().unwrap();
    let keys = h
        .bucket()
        .expect("a bucket run gives every harness a bucket")
        .list(&format!("videos/{video_id}"))
        .unwrap();
    for file in [
        "package.json",
        "video/init.mp4",
        "video/a/1.m4s",
        "video/b/1.m4s",
    ] {
        let key = format!("videos/{video_id}/{file}");
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
}
