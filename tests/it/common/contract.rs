//! The OpenAPI document (docs/openapi.json, served at `/api/openapi.json`) checked against
//! what the server really answers: every reply the suite receives through [`super::reply`]
//! is matched to its documented operation, and its status must be documented there and its
//! JSON body must validate against the documented schema. A route the document lacks, an
//! undocumented status or a body that breaks its schema fails the test that saw it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use jsonschema::{Draft, Registry, Validator};
use serde_json::Value;

/// The document's URI inside the schema registry.
const DOC_URI: &str = "urn:leaktrace:openapi";

/// The document as the server embeds it.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = include_str!("../../../docs/openapi.json");
        serde_json::from_str(text).expect("docs/openapi.json is JSON")
    })
}

fn registry() -> &'static Registry<'static> {
    static REGISTRY: OnceLock<&'static Registry<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Registry::new()
            .add(DOC_URI, document().clone())
            .expect("the document is a resource")
            .prepare()
            .expect("the document's references resolve");
        Box::leak(Box::new(registry))
    })
}

/// The path template of the operation `method` `path` (no query) serves, preferring the
/// template with the most literal segments (`/users/{name}/devices/` over
/// `/users/{name}/{action}/`).
pub fn operation_of(method: &str, path: &str) -> Option<String> {
    let paths = document()["paths"].as_object()?;
    let method = method.to_ascii_lowercase();
    let parts: Vec<&str> = path.split('/').collect();
    paths
        .iter()
        .filter(|(_, item)| item.get(&method).is_some())
        .filter_map(|(template, _)| {
            let shape: Vec<&str> = template.split('/').collect();
            if shape.len() != parts.len() {
                return None;
            }
            let mut literal = 0;
            for (s, p) in shape.iter().zip(&parts) {
                if s.starts_with('{') && s.ends_with('}') {
                    if p.is_empty() {
                        return None;
                    }
                } else if s == p {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.clone()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The response object documented for `status` (or `default`), with a `$ref` to
/// `components/responses` followed; and its JSON pointer.
fn response_of(template: &str, method: &str, status: u16) -> Option<(Value, String)> {
    let op = &document()["paths"][template][method.to_ascii_lowercase()];
    let responses = op.get("responses")?;
    let (key, mut response) = [status.to_string(), "default".to_string()]
        .into_iter()
        .find_map(|k| responses.get(&k).map(|r| (k, r.clone())))?;
    let mut pointer = format!(
        "/paths/{}/{}/responses/{key}",
        escape(template),
        method.to_ascii_lowercase()
    );
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        pointer = reference.trim_start_matches('#').to_string();
        response = document().pointer(&pointer)?.clone();
    }
    Some((response, pointer))
}

fn validator(pointer: &str) -> &'static Validator {
    static VALIDATORS: OnceLock<Mutex<HashMap<String, &'static Validator>>> = OnceLock::new();
    let mut cache = VALIDATORS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache.entry(pointer.to_string()).or_insert_with(|| {
        let schema = serde_json::json!({"$ref": format!("{DOC_URI}#{pointer}")});
        let built = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(registry())
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
        Box::leak(Box::new(built))
    })
}

/// Whether an answer is the server's own refusal of a path no route serves (404 `not_found`,
/// 403 `forbidden_path`) or of a method a path does not take (405): those paths are not
/// operations.
fn unrouted(status: u16, body: &str) -> bool {
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
    matches!(
        (status, code.as_deref()),
        (404, Some("not_found"))
            | (403, Some("forbidden_path"))
            | (405, Some("method_not_allowed"))
    )
}

/// Checks one reply against the document; panics with what is wrong.
pub fn check(method: &str, url: &str, status: u16, content_type: &str, body: &str) {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let Some(template) = operation_of(method, path) else {
        assert!(
            unrouted(status, body),
            "{method} {path} answered {status} but is not in docs/openapi.json: {body}"
        );
        return;
    };
    if status == 405 && unrouted(status, body) {
        return;
    }
    let Some((response, pointer)) = response_of(&template, method, status) else {
        panic!("{method} {template}: status {status} is not documented (answer: {body})");
    };
    if !content_type.starts_with("application/json") {
        return;
    }
    if response["content"]["application/json"]["schema"].is_null() {
        panic!("{method} {template} {status}: a JSON answer is not documented as JSON: {body}");
    }
    let instance: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {body}"));
    let schema = format!("{pointer}/content/application~1json/schema");
    let errors: Vec<String> = validator(&schema)
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} breaks docs/openapi.json:\n  {}\nanswer: {body}",
        errors.join("\n  ")
    );
}
