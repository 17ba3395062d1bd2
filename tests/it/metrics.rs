//! `/metrics`, `/healthz` and `/readyz`: the metrics are off by default, take the configured
//! bearer token on the main address, are served without it on their own listener, parse as
//! Prometheus text, and count what the server did (requests by route pattern, segments and
//! bytes, key exchanges, cache lookups, the job queue, security events, the pool).

use std::collections::HashMap;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};

use crate::common::leaks::packaged;
use crate::common::viewer::Client;
use crate::common::{get, send, Reply};

pub(crate) const TOKEN: &str = "metrics-token-for-tests-0123456789";

/// A Prometheus text scrape, parsed by a parser of the whole format (label values with
/// braces and escapes included).
pub(crate) struct Scrape(MetricsExposition<PrometheusType, PrometheusValue>);

impl Scrape {
    pub(crate) fn parse(reply: &Reply) -> Scrape {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.content_type.starts_with("text/plain; version=0.0.4"),
            "{}",
            reply.content_type
        );
        Scrape(parse_prometheus(&reply.body).expect("Prometheus text"))
    }

    /// The value of family `name` over its samples whose labels include `labels` (summed):
    /// counters and gauges by value, histograms by observation count.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = self.0.families.get(name)?;
        let matching: Vec<f64> = family
            .iter_samples()
            .filter(|sample| {
                let set = sample.get_labelset().expect("labelled sample");
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|sample| match &sample.value {
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                PrometheusValue::Summary(s) => s.count.unwrap_or(0) as f64,
            })
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// Family names with their HELP text.
    fn families(&self) -> HashMap<&str, &str> {
        self.0
            .families
            .iter()
            .map(|(k, f)| (k.as_str(), f.help.as_str()))
            .collect()
    }
}

pub(crate) fn scrape(base: &str, token: Option<&str>) -> Reply {
    send("GET", &format!("{base}/metrics"), token, None)
}

#[test]
fn metrics_are_off_unless_configured_and_need_the_token() {
    let t = packaged(3.0);
    // (No workers there: the title's reference store is left for the server below to build.)
    let plain = t.h.serve_with_env(&[], &[("LEAKTRACE_WORKERS", "0")]);
    get(&plain.url("/metrics")).assert_error(404, "not_found");
    drop(plain);

    let server =
        t.h.serve_with_env(&[], &[("LEAKTRACE_METRICS_TOKEN", TOKEN)]);
    scrape(&server.base, None).assert_error(401, "metrics_token_required");
    scrape(&server.base, Some("metrics-token-for-tests-0123456780"))
        .assert_error(401, "metrics_token_required");
    let before = Scrape::parse(&scrape(&server.base, Some(TOKEN)));
    assert_eq!(
        before.value("leaktrace_key_exchanges_total", &[]),
        Some(0.0)
    );

    // One viewer plays the title: two units and the init segment; then a probe.
    let client = Client::start(&server, "vic", &"7".repeat(64), &t.video_id);
    let init = client.segment("init").len();
    let one = client.segment("1").len();
    let two = client.segment("2").len();
    assert!(init > 0 && one > 0 && two > 0);
    assert_eq!(get(&server.url("/media/leak.mp4")).status, 404);

    let after = Scrape::parse(&scrape(&server.base, Some(TOKEN)));
    let docs = after.families();
    for family in [
        "leaktrace_http_requests_total",
        "leaktrace_http_request_duration_seconds",
        "leaktrace_segments_served_total",
        "leaktrace_segment_bytes_served_total",
        "leaktrace_key_exchanges_total",
        "leaktrace_stream_cache_lookups_total",
        "leaktrace_db_pool_wait_seconds",
        "leaktrace_db_pool_connections",
        "leaktrace_open_sessions",
        "leaktrace_job_queue_jobs",
        "leaktrace_job_queue_oldest_queued_age_seconds",
        "leaktrace_security_events_last_hour",
    ] {
        assert!(
            docs.contains_key(family),
            "{family} is not described: {docs:?}"
        );
    }
    let v = |name: &str, labels: &[(&str, &str)]| {
        after
            .value(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing"))
    };
    assert_eq!(v("leaktrace_key_exchanges_total", &[]), 1.0);
    assert_eq!(
        v("leaktrace_segments_served_total", &[("kind", "video")]),
        2.0
    );
    assert_eq!(
        v("leaktrace_segments_served_total", &[("kind", "init")]),
        1.0
    );
    // Each segment is the plain bytes plus the 12-byte nonce and the 16-byte tag.
    assert_eq!(
        v("leaktrace_segment_bytes_served_total", &[("kind", "video")]),
        (one + two + 2 * 28) as f64
    );
    assert_eq!(v("leaktrace_open_sessions", &[]), 1.0);
    let segment_route = "/api/video/stream/{session_id}/{segment}/";
    assert_eq!(
        v(
            "leaktrace_http_requests_total",
            &[("route", segment_route), ("status", "200")]
        ),
        3.0,
        "by pattern, not by path"
    );
    assert!(
        v(
            "leaktrace_http_request_duration_seconds",
            &[("route", segment_route)]
        ) >= 3.0
    );
    assert_eq!(
        v(
            "leaktrace_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert!(
        v(
            "leaktrace_security_events_last_hour",
            &[("kind", "direct_file_probe")]
        ) >= 1.0
    );
    assert!(
        v(
            "leaktrace_stream_cache_lookups_total",
            &[("cache", "session_keys"), ("result", "hit")]
        ) >= 2.0
    );
    assert!(v("leaktrace_db_pool_wait_seconds", &[]) >= 1.0);
    // The second unit took the fast path: on SQLite its reservation was the writer's one round.
    let rounds = match shared::testing::requested_backend() {
        shared::db::Backend::Sqlite => 1.0,
        shared::db::Backend::Postgres => 0.0,
    };
    assert_eq!(v("leaktrace_reservation_writer_rounds_total", &[]), rounds);
    assert_eq!(v("leaktrace_reservation_writer_claims_total", &[]), rounds);
    // Packaging queued the title's reference store: the queue shows it, whatever its state.
    let store_jobs: f64 = ["queued", "running", "succeeded", "failed"]
        .iter()
        .map(|s| {
            v(
                "leaktrace_job_queue_jobs",
                &[("kind", "build_reference_store"), ("status", s)],
            )
        })
        .sum();
    assert!(store_jobs >= 1.0);
    // The server's workers build that store: the attempt is counted with its duration.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let now = Scrape::parse(&scrape(&server.base, Some(TOKEN)));
        let ended = now.value(
            "leaktrace_jobs_ended_total",
            &[("kind", "build_reference_store"), ("outcome", "succeeded")],
        );
        if ended == Some(1.0) {
            let timed = now.value(
                "leaktrace_job_duration_seconds",
                &[("kind", "build_reference_store")],
            );
            assert_eq!(timed, Some(1.0));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store build was not counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(v("leaktrace_uptime_seconds", &[]) >= 0.0);
}

#[test]
fn a_metrics_listener_serves_metrics_and_health_apart_from_the_api() {
    let t = packaged(2.0);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bind = format!("127.0.0.1:{port}");
    let server =
        t.h.serve_with_env(&[], &[("LEAKTRACE_METRICS_BIND", &bind)]);
    let side = format!("http://{bind}");
    // Without a token configured, the listener's address is the protection.
    let scraped = Scrape::parse(&get(&format!("{side}/metrics")));
    assert!(scraped.value("leaktrace_open_sessions", &[]).is_some());
    assert_eq!(get(&format!("{side}/healthz")).json()["status"], "ok");
    assert_eq!(get(&format!("{side}/readyz")).json()["status"], "ready");
    // Only operations there: the API stays on the main address (a plain request: the API's
    // document does not describe the metrics listener).
    let api = ureq::get(&format!("{side}/api/videos/")).call();
    assert!(matches!(api, Err(ureq::Error::Status(404, _))), "{api:?}");
    get(&server.url("/metrics")).assert_error(404, "not_found");
    drop(server);

    let server = t.h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_METRICS_BIND", &bind),
            ("LEAKTRACE_METRICS_TOKEN", TOKEN),
        ],
    );
    scrape(&side, None).assert_error(401, "metrics_token_required");
    Scrape::parse(&scrape(&side, Some(TOKEN)));
    Scrape::parse(&scrape(&server.base, Some(TOKEN)));
}

#[test]
fn liveness_and_readiness_are_separate() {
    let t = packaged(2.0);
    let server = t.h.serve(&[]);
    let live = get(&server.url("/healthz")).json();
    assert_eq!(live["status"], "ok");
    assert!(
        live.get("database").is_none(),
        "liveness checks nothing else"
    );
    let ready = get(&server.url("/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.body);
    let v = ready.json();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["database"]["status"], "ok");
    assert_eq!(
        v["database"]["backend"],
        shared::testing::requested_backend().as_str()
    );
    let kind = if crate::common::bucket_run() {
        "s3"
    } else {
        "folder"
    };
    assert_eq!(
        v["storage"],
        serde_json::json!({"kind": kind, "status": "ok"})
    );

    // The titles folder gone: not ready, still alive. (With a bucket the folder is only a cache
    // the server's own workers fill again as they fetch titles, so it cannot be held away.)
    if crate::common::bucket_run() {
        return;
    }
    let videos = t.h.data_dir.join("videos");
    let aside = t.h.data_dir.join("videos.aside");
    std::fs::rename(&videos, &aside).unwrap();
    let ready = get(&server.url("/readyz"));
    assert_eq!(ready.status, 503, "{}", ready.body);
    let v = ready.json();
    assert_eq!(v["status"], "unavailable");
    assert_eq!(v["storage"]["error"], "storage_unreachable");
    assert!(!ready.body.contains(t.h.data_dir.to_str().unwrap()));
    assert_eq!(get(&server.url("/healthz")).status, 200);
    std::fs::rename(&aside, &videos).unwrap();
    assert_eq!(get(&server.url("/readyz")).status, 200);
}
