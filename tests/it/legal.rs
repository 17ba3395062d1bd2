//! What legal teams get: evidence reports whose signature carries an RFC 3161 timestamp
//! from the configured timestamp authority (PAdES B-T), checked with tools other than
//! leaktrace (pdfsig for the signature, OpenSSL for the timestamp); no report is issued
//! without its timestamp when an authority is configured.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::common::evidence::{analysed, get_bytes, pdfsig, post_raw, Auth};
use crate::common::leaks::{leak, packaged, Title};
use crate::common::loopback::timestamp_authority;
use crate::common::viewer::{user_token, PASSWORD};
use crate::common::Server;

/// A title, a leak of it by val, and the analyst's finished case naming val; the
/// server is stopped (each test starts its own with the settings it tests).
fn finished_case() -> (Title, String) {
    let t = packaged(30.0);
    t.h.add_user("ann", "analyst", PASSWORD);
    t.h.add_user("lee", "legal", PASSWORD);
    let server = t.h.serve(&[]);
    let copy = t.dir.path().join("val.mp4");
    leak(&server, "val", &"1".repeat(64), &t, &copy);
    let analyst = user_token(&server, "ann", PASSWORD);
    let (case_id, done) = analysed(
        &server,
        Auth::Bearer(&analyst),
        "found.mp4",
        &std::fs::read(&copy).unwrap(),
        &t.video_id,
    );
    assert_eq!(done["status"], "done", "{done:#}");
    assert_eq!(done["result"]["verdict"], "identified", "{done:#}");
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

    let (tsa, tsa_certificate) = timestamp_authority();
    let tsa_pem = d.join("tsa.pem");
    std::fs::write(&tsa_pem, &tsa_certificate).unwrap();
    let with_tsa = |url: &str, certificate: &Path| {
        t.h.serve_with_env(
            &[],
            &[
                ("LEAKTRACE_REPORTS_TSA_URL", url),
                (
                    "LEAKTRACE_REPORTS_TSA_CERTIFICATE",
                    certificate.to_str().unwrap(),
                ),
            ],
        )
    };
    let refused = |server: &Server, legal: &str| {
        let (status, _, body) = get_bytes(server, Auth::Bearer(legal), &path);
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["error"]["code"], "timestamp_unavailable", "{error}");
        error["error"]["message"].as_str().unwrap().to_string()
    };

    // The authority is down: no report (503, the documented error), nothing issued.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/tsa?token=s3cret", closed.local_addr().unwrap());
    drop(closed);
    let server = with_tsa(&down, &tsa_pem);
    let legal = user_token(&server, "lee", PASSWORD);
    let message = refused(&server, &legal);
    assert!(
        !message.contains("s3cret"),
        "the URL's query stays private: {message}"
    );
    assert_eq!(reports_issued(), 0);
    drop(server);

    // A working authority that is not the configured one: refused too.
    let other_tsa = d.join("other-tsa.pem");
    std::fs::write(
        &other_tsa,
        report::timestamp::testing::OpenSslTsa::new(false)
            .unwrap()
            .certificate_pem(),
    )
    .unwrap();
    let url = tsa.url("/tsa");
    let server = with_tsa(&url, &other_tsa);
    let message = refused(&server, &legal);
    assert!(
        message.contains("not the configured authority"),
        "{message}"
    );
    assert_eq!(reports_issued(), 0);
    drop(server);
    tsa.got.lock().unwrap().clear();

    // With the configured authority: one timestamp request, in RFC 3161's HTTP transport.
    let server = with_tsa(&url, &tsa_pem);
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
    assert_eq!(v["timestamp"]["authority_trusted"], true, "{v}");
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
    // Page 1 says it plainly before the technical detail: who, what, how sure.
    let page_one = Command::new("pdftotext")
        .args(["-f", "1", "-l", "1"])
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    let page_one = String::from_utf8_lossy(&page_one.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        page_one.contains("is a copy of the protected title \"Leakable\", and it was made from the stream watched by the viewer account \"val\""),
        "{page_one}"
    );
    assert!(
        page_one.contains("The submitted video file (SHA-256 beginning"),
        "named by its hash, not the name its submitter chose: {page_one}"
    );
    assert!(page_one.contains("the chance of a match this strong would be"));

    // The case's bundle: its manifest is timestamped too; verify-bundle holds the timestamps
    // to the authority given with --tsa-cert, and refuses them under another.
    let (status, _, zip) = get_bytes(
        &server,
        Auth::Bearer(&legal),
        &format!("/api/cases/{case_id}/bundle.zip"),
    );
    assert_eq!(status, 200);
    let bundle = d.join("stamped.zip");
    std::fs::write(&bundle, zip).unwrap();
    let (_, _, ca) = get_bytes(&server, Auth::None, "/api/reports/ca.pem");
    std::fs::write(d.join("ca.pem"), ca).unwrap();
    let check = |tsa_cert: &Path| {
        t.h.run(
            &[
                "verify-bundle",
                bundle.to_str().unwrap(),
                "--ca",
                d.join("ca.pem").to_str().unwrap(),
                "--tsa-cert",
                tsa_cert.to_str().unwrap(),
            ],
            None,
        )
    };
    let ok = check(&tsa_pem);
    ok.success();
    assert_eq!(
        ok.stdout().matches("(the authority given)").count(),
        2,
        "{}",
        ok.stdout()
    );
    let wrong = check(&other_tsa);
    assert_eq!(wrong.code(), 1, "{}", wrong.stdout());
    assert!(
        wrong.stdout().contains("NOT the authority given"),
        "{}",
        wrong.stdout()
    );
}

/// Members of a zip archive, in order, as (name, bytes).
type Members = Vec<(String, Vec<u8>)>;

/// The members of a zip archive.
fn unzip(bytes: &[u8]) -> Members {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut member = archive.by_index(i).unwrap();
            let mut content = Vec::new();
            member.read_to_end(&mut content).unwrap();
            (member.name().to_string(), content)
        })
        .collect()
}

/// A zip archive of `members`.
fn rezip(members: &Members) -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in members {
        out.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(content).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn an_evidence_bundle_checks_offline_and_any_change_to_it_is_caught() {
    let (t, case_id) = finished_case();
    let d = t.dir.path();
    let server =
        t.h.serve_with_env(&[], &[("LEAKTRACE_REPORTS_BUNDLE_SUSPECT", "true")]);
    let legal = user_token(&server, "lee", PASSWORD);
    let path = format!("/api/cases/{case_id}/bundle.zip");

    // Legal downloads it; viewers, crawlers and strangers cannot; no such case is a 404.
    let (status, content_type, zip) = get_bytes(&server, Auth::Bearer(&legal), &path);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    assert_eq!(content_type, "application/zip");
    let viewer = user_token(&server, "vic", PASSWORD);
    let key = crate::common::evidence::api_key(&t.h, "crawler");
    for who in [Auth::Bearer(&viewer), Auth::ApiKey(&key)] {
        assert_eq!(get_bytes(&server, who, &path).0, 403);
    }
    assert_eq!(get_bytes(&server, Auth::None, &path).0, 401);
    let (status, _, body) = get_bytes(
        &server,
        Auth::Bearer(&legal),
        "/api/cases/no-such-case/bundle.zip",
    );
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));

    // What it holds: the report, the CA, the audit entries, the suspect (policy allows), and
    // the manifest with its signature.
    let members = unzip(&zip);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "report.pdf",
            "ca.pem",
            "audit.json",
            "suspect/found.mp4",
            "manifest.json",
            "manifest.json.p7s"
        ]
    );
    let member = |name: &str| &members.iter().find(|(n, _)| n == name).unwrap().1;
    let manifest: serde_json::Value = serde_json::from_slice(member("manifest.json")).unwrap();
    assert_eq!(manifest["case_id"], case_id.as_str());
    assert_eq!(manifest["suspect"]["included"], true, "{manifest:#}");
    let suspect_sha = hex::encode(Sha256::digest(member("suspect/found.mp4")));
    assert_eq!(manifest["suspect"]["sha256"], suspect_sha.as_str());
    let (_, _, ca) = get_bytes(&server, Auth::None, "/api/reports/ca.pem");
    assert_eq!(member("ca.pem"), &ca, "the deployment's published CA");
    assert!(pdfsig_valid(d, member("report.pdf")));

    // OpenSSL checks the manifest's detached CMS signature against the published CA.
    for (name, content) in [
        ("manifest.json", member("manifest.json").clone()),
        ("manifest.json.p7s", member("manifest.json.p7s").clone()),
        ("ca.pem", ca.clone()),
    ] {
        std::fs::write(d.join(name), content).unwrap();
    }
    let openssl = Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER"])
        .args(["-in", "manifest.json.p7s", "-content", "manifest.json"])
        .args(["-CAfile", "ca.pem", "-purpose", "any", "-out", "/dev/null"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stderr)
    );

    // leaktrace verify-bundle, offline: every check passes, with the CA pinned or not.
    let bundle = d.join("bundle.zip");
    std::fs::write(&bundle, &zip).unwrap();
    let verify = |file: &Path, ca: Option<&Path>| {
        let mut args = vec!["verify-bundle", file.to_str().unwrap()];
        if let Some(ca) = ca {
            args.extend(["--ca", ca.to_str().unwrap()]);
        }
        t.h.run(&args, None)
    };
    let ok = verify(&bundle, Some(&d.join("ca.pem")));
    ok.success();
    let text = ok.stdout();
    assert!(text.contains("the bundle is intact and signed"), "{text}");
    for check in [
        "manifest_signature",
        "report_signature",
        "audit_entries",
        "suspect_file",
    ] {
        assert!(text.contains(check), "{check}: {text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    // Without --ca every check passes against the CA inside the bundle, which anyone could
    // have made: a distinct exit status says so.
    let unpinned = verify(&bundle, None);
    assert_eq!(
        unpinned.code(),
        3,
        "{}{}",
        unpinned.stdout(),
        unpinned.stderr()
    );
    assert!(unpinned.stderr().contains("--ca"), "{}", unpinned.stderr());

    // Any change is caught: a member changed under the same manifest, a member added, the
    // manifest itself changed, a CA other than the deployment's.
    let tampered = |change: &dyn Fn(&mut Members), name: &str| {
        let mut changed = members.clone();
        change(&mut changed);
        let file = d.join(name);
        std::fs::write(&file, rezip(&changed)).unwrap();
        let run = verify(&file, Some(&d.join("ca.pem")));
        assert_eq!(run.code(), 1, "{name}: {}{}", run.stdout(), run.stderr());
        run.stdout()
    };
    let out = tampered(
        &|m| {
            let audit = &mut m.iter_mut().find(|(n, _)| n == "audit.json").unwrap().1;
            let text = String::from_utf8(audit.clone()).unwrap();
            let edited = text.replacen("suspect_submitted", "suspect_withdrawn", 1);
            assert_ne!(edited, text);
            *audit = edited.into_bytes();
        },
        "audit-changed.zip",
    );
    assert!(out.contains("FAIL file_hash"), "{out}");
    assert!(out.contains("FAIL audit_entries"), "{out}");
    let out = tampered(
        &|m| m.push(("extra.txt".into(), b"planted".to_vec())),
        "extra.zip",
    );
    assert!(out.contains("FAIL files_listed"), "{out}");
    // A second report under the same name (a zip reader may show either copy), data before
    // the archive, and a CA file whose text hides a second certificate are refused.
    // (Zip writers refuse a name twice: the second one is renamed in the bytes.)
    let mut twice = members.clone();
    twice.push(("report.pdX".into(), b"%PDF forged".to_vec()));
    let mut bytes = rezip(&twice);
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(10).position(|w| w == b"report.pdX") {
        bytes[at + i + 9] = b'f';
        at += i + 10;
    }
    std::fs::write(d.join("twice.zip"), &bytes).unwrap();
    let run = verify(&d.join("twice.zip"), Some(&d.join("ca.pem")));
    assert_eq!(run.code(), 1, "{}{}", run.stdout(), run.stderr());
    assert!(run.stdout().contains("FAIL archive"), "{}", run.stdout());
    let prepended = d.join("prepended.zip");
    std::fs::write(&prepended, [b"MZ-stub".as_slice(), &zip].concat()).unwrap();
    let run = verify(&prepended, Some(&d.join("ca.pem")));
    assert_eq!(run.code(), 1, "{}", run.stdout());
    assert!(run.stdout().contains("FAIL archive"), "{}", run.stdout());
    let out = tampered(
        &|m| {
            let ca = &mut m.iter_mut().find(|(n, _)| n == "ca.pem").unwrap().1;
            let mut two = b"x".to_vec();
            two.extend_from_slice(ca);
            two.extend_from_slice(ca);
            *ca = two;
        },
        "two-cas.zip",
    );
    assert!(out.contains("FAIL"), "{out}");
    let out = tampered(
        &|m| {
            let manifest = &mut m.iter_mut().find(|(n, _)| n == "manifest.json").unwrap().1;
            let text = String::from_utf8(manifest.clone()).unwrap();
            *manifest = text.replace(&suspect_sha, &"0".repeat(64)).into_bytes();
        },
        "manifest-changed.zip",
    );
    assert!(out.contains("FAIL manifest_signature"), "{out}");
    let other_ca = report::signing::create_identity("other")
        .unwrap()
        .ca_cert_pem;
    std::fs::write(d.join("other-ca.pem"), other_ca).unwrap();
    let run = verify(&bundle, Some(&d.join("other-ca.pem")));
    assert_eq!(run.code(), 1, "{}", run.stdout());
    assert!(run.stdout().contains("FAIL ca"), "{}", run.stdout());
    let not_zip = d.join("not-a-bundle.zip");
    std::fs::write(&not_zip, b"PK but not really").unwrap();
    verify(&not_zip, None).fails_with(2, "not an evidence bundle");

    // The CLI makes one too; the default policy leaves the suspect out and says why.
    drop(server);
    let out = d.join("cli-bundle.zip");
    t.h.run(&["bundle", &case_id, "--out", out.to_str().unwrap()], None)
        .success();
    let cli = unzip(&std::fs::read(&out).unwrap());
    assert!(!cli.iter().any(|(n, _)| n.starts_with("suspect/")));
    let manifest: serde_json::Value =
        serde_json::from_slice(&cli.iter().find(|(n, _)| n == "manifest.json").unwrap().1).unwrap();
    assert_eq!(manifest["suspect"]["included"], false);
    assert!(manifest["suspect"]["omitted_because"]
        .as_str()
        .unwrap()
        .contains("reports.bundle_suspect"));
    verify(&out, Some(&d.join("ca.pem"))).success();

    // Each bundle is an audit entry.
    let made = shared::db::repo::audit::for_case(&mut t.h.db().conn().unwrap(), &case_id)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "bundle_created")
        .count();
    assert_eq!(made, 2);
}

/// pdfsig finds the signature of `pdf` valid.
fn pdfsig_valid(dir: &Path, pdf: &[u8]) -> bool {
    let file = dir.join("bundled-report.pdf");
    std::fs::write(&file, pdf).unwrap();
    pdfsig(&file, None).contains("Signature is Valid")
}
