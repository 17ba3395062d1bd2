//! The OpenAPI document against the server: served as written, naming every route the code
//! registers (and nothing the server does not answer). Every reply of the whole suite is
//! validated against it as well (`common::contract`).

use std::collections::BTreeSet;

use crate::common::contract;
use crate::common::{get, send, Harness};

/// `(METHOD, path)` of every route the code registers, read from the route tables.
fn registered_routes() -> BTreeSet<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut routes = BTreeSet::new();
    for file in [
        "src/http/mod.rs",
        "streaming/src/lib.rs",
        "src/http/pages.rs",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect("route table");
        // Each `resource("PATH")` up to the next one: the methods routed there.
        for chunk in text.split("resource(\"").skip(1) {
            let Some((path, rest)) = chunk.split_once('"') else {
                continue;
            };
            for (marker, method) in [("web::get()", "GET"), ("web::post()", "POST")] {
                if rest.contains(marker) {
                    routes.insert((method.to_string(), path.to_string()));
                }
            }
        }
        // The pages are a table of paths, each served to GET.
        if file.ends_with("pages.rs") {
            for line in text.lines() {
                let line = line.trim();
                if let Some(path) = line
                    .strip_prefix("(\"")
                    .and_then(|l| l.split_once("\", web_file!"))
                    .map(|(p, _)| p)
                {
                    routes.insert(("GET".to_string(), path.to_string()));
                }
            }
        }
    }
    routes
}

fn documented_routes() -> BTreeSet<(String, String)> {
    let doc = contract::document();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_document_names_every_route_and_only_routes() {
    let registered = registered_routes();
    assert!(registered.len() > 30, "{registered:?}");
    // The page routes' `{path}` come from the PAGES table; `resource(path)` is that loop.
    let registered: BTreeSet<_> = registered
        .into_iter()
        .filter(|(_, p)| p != "path")
        .collect();
    let documented = documented_routes();
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[test]
fn the_document_is_served_and_every_operation_is_answered() {
    let h = Harness::new();
    // With the demo API on, its routes answer as routes (off, they are 404 to everyone).
    // With a metrics token, /metrics answers as a route (without one it is 404 to everyone).
    let server = h.serve_with_env(
        &[],
        &[
            ("LEAKTRACE_DEMO_API", "true"),
            ("LEAKTRACE_METRICS_TOKEN", "openapi-test-metrics-token"),
        ],
    );
    let served = get(&server.url("/api/openapi.json"));
    assert_eq!(served.status, 200);
    assert!(served.content_type.starts_with("application/json"));
    assert_eq!(&served.json(), contract::document());
    let doc = contract::document();
    assert_eq!(doc["openapi"], "3.1.0");
    // Each operation, called with placeholder parameters and no credentials, reaches its
    // route (whatever it then refuses), and the answer is one the document lists (checked by
    // the contract on every reply).
    for (method, path) in documented_routes() {
        let concrete: String = path
            .split('/')
            .map(|segment| match segment {
                "{action}" => "disable",
                s if s.starts_with('{') => "placeholder",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/");
        let reply = send(&method, &server.url(&concrete), None, None);
        let code = serde_json::from_str::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
        assert!(
            !matches!(
                (reply.status, code.as_deref()),
                (405, _) | (404, Some("not_found"))
            ) || path.starts_with("/assets/"),
            "{method} {path} is documented but not routed: {} {}",
            reply.status,
            reply.body
        );
    }
}
