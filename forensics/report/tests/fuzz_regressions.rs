//! Replays the `report_check` fuzz target's seeds (`fuzz/corpus/report_check/seed-*`) and
//! every input it ever crashed on (`fuzz/regressions/report_check/`, kept by
//! scripts/fuzz-parsers.sh) through the same call as its harness (fuzz/src/lib.rs,
//! `report_check`: `signing::check` against fuzz/fixtures/report_ca.pem, what
//! `POST /api/reports/verify/` runs), on the stable toolchain: no input may panic; errors are
//! fine.
//!
//! `LEAKTRACE_WRITE_FUZZ_SEEDS=1 cargo test -p report --test fuzz_regressions` makes a new
//! report PKI and rewrites the signed report seed and the CA fixture.

use fuzz_inputs::{fuzz_dir, replay};
use report::document::{render, Report};
use report::signing::{check, create_identity, ReportSigner};

/// The harness of fuzz target `report_check` (fuzz/src/lib.rs).
fn harness(data: &[u8], ca_pem: &str) {
    if let Ok(checked) = check(data, ca_pem) {
        let _ = checked.valid();
    }
}

fn ca_pem() -> String {
    std::fs::read_to_string(fuzz_dir().join("fixtures/report_ca.pem"))
        .expect("fuzz/fixtures/report_ca.pem (LEAKTRACE_WRITE_FUZZ_SEEDS=1)")
}

/// A small report, as the seed: one page, a short chart.
fn small_report() -> Report {
    let text = |s: &str| vec![s.to_string()];
    Report {
        case_id: "case-fuzz".into(),
        submitted_by: "user ann".into(),
        submitted_at: "2026-11-28 10:00:00 UTC".into(),
        generated_at: "2026-11-28 11:00:00 UTC".into(),
        time_source: "The server's own claim.".into(),
        summary: "In short.".into(),
        file: vec![("File name".into(), "leak.mp4".into())],
        title: "Title".into(),
        verdict: "identified".into(),
        threshold: 1e-6,
        explanation: text("Because."),
        alignment: Vec::new(),
        units: vec![Some(1.0), None, Some(-0.5), Some(0.25)],
        matched_code: Some(vec![true, false, false, true]),
        candidates: Vec::new(),
        metadata_layer: text("None."),
        session: Vec::new(),
        method: text("Method."),
        software: "leaktrace fuzz seed".into(),
        organisation: "Test Studio".into(),
        audit: vec![["t".into(), "a".into(), "x".into(), "h".into()]],
        audit_head: "0".repeat(64),
    }
}

#[test]
fn report_check_inputs_do_not_panic() {
    let ca = ca_pem();
    assert!(
        replay("report_check", |data| harness(data, &ca)) >= 1,
        "the seed corpus is missing"
    );
}

#[test]
fn the_seed_is_a_valid_report_of_the_fixture_ca() {
    let seed = fuzz_dir().join("corpus/report_check/seed-signed-report.pdf");
    if std::env::var_os("LEAKTRACE_WRITE_FUZZ_SEEDS").is_some() {
        let id = create_identity("fuzz").unwrap();
        let signer =
            ReportSigner::from_pem(&id.signing_cert_pem, &id.signing_key_pem, &id.ca_cert_pem)
                .unwrap();
        let signed = signer
            .sign(&render(&small_report()), "D:20261128110000Z", None)
            .unwrap();
        std::fs::create_dir_all(seed.parent().unwrap()).unwrap();
        std::fs::write(&seed, &signed).unwrap();
        std::fs::create_dir_all(fuzz_dir().join("fixtures")).unwrap();
        std::fs::write(fuzz_dir().join("fixtures/report_ca.pem"), &id.ca_cert_pem).unwrap();
    }
    let pdf = std::fs::read(&seed).expect("the signed report seed (LEAKTRACE_WRITE_FUZZ_SEEDS=1)");
    assert!(pdf.len() < 64 << 10, "a seed of {} bytes", pdf.len());
    let checked = check(&pdf, &ca_pem()).unwrap();
    assert!(checked.valid() && checked.issued_by_ca, "{checked:?}");
}
