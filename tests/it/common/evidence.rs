//! Submitting suspects to the evidence API and following their cases.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Reply, Server};

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    ApiKey(&'a str),
    Bearer(&'a str),
}

/// One field of a multipart form: a file when `file_name` is given.
pub struct Part<'a> {
    pub name: &'a str,
    pub file_name: Option<&'a str>,
    pub content: &'a [u8],
}

impl<'a> Part<'a> {
    pub fn file(file_name: &'a str, content: &'a [u8]) -> Part<'a> {
        Part {
            name: "file",
            file_name: Some(file_name),
            content,
        }
    }

    pub fn text(name: &'a str, value: &'a str) -> Part<'a> {
        Part {
            name,
            file_name: None,
            content: value.as_bytes(),
        }
    }
}

const BOUNDARY: &str = "leaktrace-test-boundary-7d1f";

/// (content type, body) of a multipart/form-data request.
pub fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for p in parts {
        write!(body, "--{BOUNDARY}\r\n").unwrap();
        match p.file_name {
            Some(f) => write!(
                body,
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                p.name
            ),
            None => write!(
                body,
                "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                p.name
            ),
        }
        .unwrap();
        body.extend_from_slice(p.content);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

fn authorised(mut req: ureq::Request, auth: Auth) -> ureq::Request {
    match auth {
        Auth::None => {}
        Auth::ApiKey(k) => req = req.set("X-API-Key", k),
        Auth::Bearer(t) => req = req.set("Authorization", &format!("Bearer {t}")),
    }
    req
}

fn reply(method: &str, result: Result<ureq::Response, ureq::Error>) -> Reply {
    super::reply(method, result).unwrap_or_else(|e| panic!("request failed: {e}"))
}

/// A new API key named `name` (`leaktrace apikey create`), its plaintext.
pub fn api_key(h: &super::Harness, name: &str) -> String {
    let out = h.run(&["apikey", "create", name], None);
    out.success();
    out.stdout().lines().last().unwrap().trim().to_string()
}

/// `POST /api/verify-watermark/` with a multipart form.
pub fn submit(server: &Server, auth: Auth, parts: &[Part]) -> Reply {
    let (content_type, body) = multipart(parts);
    submit_raw(server, auth, &content_type, &body)
}

/// `POST /api/verify-watermark/` with any content type and body.
pub fn submit_raw(server: &Server, auth: Auth, content_type: &str, body: &[u8]) -> Reply {
    post_raw(server, auth, "/api/verify-watermark/", content_type, body)
}

/// A POST of a JSON `body` to `path`.
pub fn post_json(server: &Server, auth: Auth, path: &str, body: &serde_json::Value) -> Reply {
    post_raw(
        server,
        auth,
        path,
        "application/json",
        body.to_string().as_bytes(),
    )
}

/// A POST of `body` as `content_type` to `path`.
pub fn post_raw(server: &Server, auth: Auth, path: &str, content_type: &str, body: &[u8]) -> Reply {
    let req = ureq::post(&server.url(path))
        .timeout(Duration::from_secs(120))
        .set("Content-Type", content_type);
    reply("POST", authorised(req, auth).send_bytes(body))
}

/// `GET /api/cases/{id}/`.
pub fn case(server: &Server, auth: Auth, case_id: &str) -> Reply {
    get_reply(server, auth, &format!("/api/cases/{case_id}/"))
}

/// A GET of `path` (a text body; see [`get_bytes`] for binary ones).
pub fn get_reply(server: &Server, auth: Auth, path: &str) -> Reply {
    let req = ureq::get(&server.url(path)).timeout(Duration::from_secs(30));
    reply("GET", authorised(req, auth).call())
}

/// Polls a case until `done` or `failed`; returns its last status document.
pub fn wait_case(server: &Server, auth: Auth, case_id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let r = case(server, auth, case_id);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "case {case_id} not finished: {v}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Submits `bytes` as the suspect `file_name` about title `video_id` and waits (up to five
/// minutes) for the case to end: its id and last status.
pub fn analysed(
    server: &Server,
    auth: Auth,
    file_name: &str,
    bytes: &[u8],
    video_id: &str,
) -> (String, Value) {
    let r = submit(
        server,
        auth,
        &[
            Part::file(file_name, bytes),
            Part::text("video_id", video_id),
        ],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let case_id = r.json()["case_id"].as_str().unwrap().to_string();
    let done = wait_case(server, auth, &case_id, Duration::from_secs(300));
    (case_id, done)
}

/// Sends raw bytes as an HTTP request and returns the status line's code and the body; for
/// requests a well-behaved client cannot make (a false Content-Length, a body cut off).
pub fn raw_request(server: &Server, head: &str, body: &[u8], close_early: bool) -> (u16, String) {
    let host = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    if close_early {
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

/// Sends a whole request and goes away without reading the answer.
pub fn send_and_leave(server: &Server, head: &str, body: &[u8]) {
    let host = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    drop(stream);
}

/// poppler's `pdfsig` on a file (with an NSS database when given); its standard output.
pub fn pdfsig(pdf: &std::path::Path, nss: Option<&std::path::Path>) -> String {
    let mut c = std::process::Command::new("pdfsig");
    if let Some(dir) = nss {
        c.arg("-nssdir").arg(format!("sql:{}", dir.display()));
    }
    let out = c.arg(pdf).output().expect("run pdfsig (poppler-utils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An NSS database in `dir` that trusts the CA in `ca_pem`.
pub fn nss_trusting(dir: &std::path::Path, ca_pem: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("certutil")
            .args(args)
            .output()
            .expect("run certutil (libnss3-tools)");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let db = format!("sql:{}", dir.display());
    run(&["-N", "-d", &db, "--empty-password"]);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    run(&[
        "-A",
        "-d",
        &db,
        "-n",
        "leaktrace-ca",
        "-t",
        "CT,C,C",
        "-i",
        ca.to_str().unwrap(),
    ]);
}

/// GET with an auth, returning the status and the raw body bytes.
pub fn get_bytes(server: &Server, auth: Auth, path: &str) -> (u16, String, Vec<u8>) {
    let req = ureq::get(&server.url(path)).timeout(Duration::from_secs(120));
    let resp = match authorised(req, auth).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = resp.status();
    let content_type = resp.header("content-type").unwrap_or_default().to_string();
    let url = resp.get_url().to_string();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).expect("body");
    super::contract::check(
        "GET",
        &url,
        status,
        &content_type,
        &String::from_utf8_lossy(&body),
    );
    (status, content_type, body)
}
