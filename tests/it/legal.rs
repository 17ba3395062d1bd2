//! What legal teams get: evidence reports whose signature carries an RFC 3161 timestamp
//! from the configured timestamp authority (PAdES B-T), checked with tools other than
//! leaktrace (pdfsig for the signature, OpenSSL for the timestamp); no report is issued
//! without its timestamp when an authority is configured.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::evidence::{get_bytes, pdfsig, post_raw, submit, wait_case, Auth, Part};
use crate::common::leaks::{leak, packaged, Title};
use crate::common::loopback::timestamp_authority;
use crate::common::viewer::{user_token, PASSWORD};
use crate::common::Server;

/// A title, a leak of it by val, and the analyst's finished case about the leak; the
/// server is stopped (each test starts its own with the settings it tests).
fn finished_case() -> (Title, String) {
    let t = packaged(10.0);
    t.h.add_user("ann", "analyst", PASSWORD);
    t.h.add_user("lee", "legal", PASSWORD);
    let server = t.h.serve(&[]);
    let copy = t.dir.path().join("val.mp4");
    leak(&server, "val", &"1".repeat(64), &t, &copy);
    let analyst = user_token(&server, "ann", PASSWORD);
    let r = submit(
        &server,
        Auth::Bearer(&analyst),
        &[
            Part::file("found.mp4", &std::fs::read(&copy).unwrap()),
            Part::text("video_id", &t.video_id),
        ],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let case_id = r.json()["case_id"].as_str().unwrap().to_string();
    let done = wait_case(
        &server,
        Auth::Bearer(&analyst),
        &case_id,
        Duration::from_secs(300),
    );
    assert_eq!(done["status"], "done", "{done:#}");
    (t, case_id)
}

/// `openssl asn1parse` of a DER file: one line per element.
fn asn1_lines(file: &Path) -> Vec<String> {
    let out = Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-i", "-in"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// (offset, header length + length) of an `openssl asn1parse` line.
fn span(line: &str) -> (usize, usize) {
    let number = |key: &str| -> usize {
        let at = line.find(key).unwrap() + key.len();
        line[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let offset = line.split(':').next().unwrap().trim().parse().unwrap();
    (offset, number("hl=") + number(" l="))
}

/// The signature's timestamp token and signature value, read from pdfsig's dump of the
/// CMS signature by OpenSSL's DER parser.
fn token_and_signature_value(pdf: &Path, dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let out = Command::new("pdfsig")
        .arg("-dump")
        .arg(pdf)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let name = format!("{}.sig0", pdf.file_name().unwrap().to_string_lossy());
    let dump = dir.join(name);
    let der = std::fs::read(&dump).unwrap();
    let lines = asn1_lines(&dump);
    let at = lines
        .iter()
        .position(|l| l.contains(":id-smime-aa-timeStampToken"))
        .expect("the signature carries a timestamp token");
    // The attribute's value set, then the token (a ContentInfo) inside it.
    let token_line = lines[at + 1..]
        .iter()
        .find(|l| l.contains("SEQUENCE"))
        .unwrap();
    let (offset, length) = span(token_line);
    let token = der[offset..offset + length].to_vec();
    // The signer's signature value: the last OCTET STRING before the unsigned attributes.
    let value = lines[..at]
        .iter()
        .rev()
        .find(|l| l.contains("OCTET STRING") && l.contains("[HEX DUMP]:"))
        .map(|l| hex::decode(l.split("[HEX DUMP]:").nth(1).unwrap().trim()).unwrap())
        .unwrap();
    (token, value)
}

#[test]
fn a_report_is_timestamped_by_the_configured_authority_and_checks_with_other_tools() {
    let (t, case_id) = finished_case();
    let d = t.dir.path();
    let path = format!("/api/cases/{case_id}/report.pdf");
    let reports_issued = || {
        shared::db::repo::audit::for_case(&mut t.h.db().conn().unwrap(), &case_id)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "report_issued")
            .count()
    };

    // The authority is down: no report (503, the documented error), nothing issued.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/tsa", closed.local_addr().unwrap());
    drop(closed);
    let server: Server =
        t.h.serve_with_env(&[], &[("LEAKTRACE_REPORTS_TSA_URL", &down)]);
    let legal = user_token(&server, "lee", PASSWORD);
    let (status, _, body) = get_bytes(&server, Auth::Bearer(&legal), &path);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "timestamp_unavailable", "{error}");
    assert_eq!(reports_issued(), 0);
    drop(server);

    // With a working authority: one timestamp request, in RFC 3161's HTTP transport.
    let (tsa, tsa_certificate) = timestamp_authority();
    let url = tsa.url("/tsa");
    let server =
        t.h.serve_with_env(&[], &[("LEAKTRACE_REPORTS_TSA_URL", &url)]);
    let (status, _, pdf) = get_bytes(&server, Auth::Bearer(&legal), &path);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(reports_issued(), 1);
    let requests = tsa.received();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].request_line.starts_with("POST /tsa "));
    assert_eq!(
        requests[0].header("content-type"),
        Some("application/timestamp-query")
    );
    let file = d.join("report.pdf");
    std::fs::write(&file, &pdf).unwrap();

    // pdfsig: the signature (with its unsigned timestamp attribute) is valid and covers the
    // whole file.
    let checked = pdfsig(&file, None);
    assert!(checked.contains("Signature is Valid"), "{checked}");
    assert!(checked.contains("Total document signed"), "{checked}");

    // OpenSSL: the token stamps the SHA-256 of this signature's value and is signed by the
    // authority (poppler's pdfsig does not show signature timestamps, so OpenSSL checks it).
    let (token, value) = token_and_signature_value(&file, d);
    std::fs::write(d.join("token.der"), &token).unwrap();
    std::fs::write(d.join("tsa.pem"), &tsa_certificate).unwrap();
    let verify = |digest: &str| {
        Command::new("openssl")
            .args(["ts", "-verify", "-token_in", "-digest", digest])
            .args(["-in", "token.der", "-CAfile", "tsa.pem"])
            .current_dir(d)
            .output()
            .unwrap()
    };
    let ok = verify(&hex::encode(Sha256::digest(&value)));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("Verification: OK"),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let other = verify(&hex::encode(Sha256::digest(b"another signature")));
    assert!(!String::from_utf8_lossy(&other.stdout).contains("Verification: OK"));
    let text = Command::new("openssl")
        .args(["ts", "-reply", "-token_in", "-text", "-in", "token.der"])
        .current_dir(d)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("Time stamp:"), "{text}");

    // leaktrace's own verification shows the timestamp; the report says whose time it is.
    let r = post_raw(
        &server,
        Auth::Bearer(&legal),
        "/api/reports/verify/",
        "application/pdf",
        &pdf,
    );
    let v = r.json();
    assert_eq!(v["signature_valid"], true, "{v}");
    assert_eq!(v["timestamp"]["valid"], true, "{v}");
    assert!(
        v["timestamp"]["authority"]
            .as_str()
            .unwrap()
            .contains("Test TSA"),
        "{v}"
    );
    let page_text = Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    let page_text = String::from_utf8_lossy(&page_text.stdout).replace('\n', " ");
    assert!(
        page_text.contains("RFC 3161 timestamp from the timestamp authority at 127.0.0.1"),
        "{page_text}"
    );
}
