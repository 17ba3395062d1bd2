//! `leaktrace serve` end to end: landing page, health check, JSON errors, secrets on first use.

use std::os::unix::fs::PermissionsExt;

use crate::common::{get, request, Harness};

#[test]
fn serves_landing_page_and_readiness_with_database_check() {
    let h = Harness::new();
    let server = h.serve(&[]);

    let page = get(&server.url("/"));
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(
        page.body.contains("<title>leaktrace</title>"),
        "{}",
        page.body
    );

    let health = get(&server.url("/readyz"));
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(health.content_type.starts_with("application/json"));
    let v = health.json();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["database"]["status"], "ok");
    let backend = shared::testing::requested_backend().as_str();
    assert_eq!(v["database"]["backend"], backend);
    assert!(v["database"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    // Secrets were created on first use, owner-only.
    for f in ["jwt.key", "master.key"] {
        let meta = std::fs::metadata(h.data_dir.join("secrets").join(f)).expect(f);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
    }
}

#[test]
fn unknown_paths_and_methods_get_the_json_error_shape() {
    let h = Harness::new();
    let server = h.serve(&[]);
    for path in [
        "/nope",
        "/media/video.mp4",
        "/../data/leaktrace.db",
        "/data/secrets/jwt.key",
    ] {
        let reply = get(&server.url(path));
        assert_eq!(reply.status, 404, "{path}");
        let v = reply.json();
        assert_eq!(v["error"]["code"], "not_found", "{path}");
        assert!(v["error"]["message"].is_string());
    }
    let reply = request("POST", &server.url("/healthz"));
    assert_eq!(reply.status, 405);
    let v = reply.json();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

#[test]
fn security_headers_are_set() {
    let h = Harness::new();
    let server = h.serve(&[]);
    let resp = ureq::get(&server.url("/")).call().unwrap();
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert!(resp.header("content-security-policy").is_some());
}

#[test]
fn serve_refuses_an_address_in_use() {
    let h = Harness::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    h.run(&["serve", "--bind", &addr], None)
        .fails_with(1, "cannot listen on");
    h.run(&["serve", "--bind", "not-an-address"], None)
        .fails_with(2, "server.bind");
}
