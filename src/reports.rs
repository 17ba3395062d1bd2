//! Evidence reports of finished cases: gathered from the case, its matches, the matched
//! session and the audit trail, laid out and signed by the `report` crate, stored in the
//! data dir's `reports/` folder and recorded (`evidence_reports`), each issue audited.
//! The report PKI (a CA and a signing certificate) is the deployment's: recorded in the
//! database on first use (private keys sealed with the master key), so that every instance
//! signs with the same certificate and publishes the same CA; a data dir that already had PKI
//! files (`secrets/report-*.pem|key`, before the PKI was shared) gives its own.

use std::path::Path;

use forensics::media::decode::FrameReader;
use formats::case::{Alignment, CaseResult, CaseStatus, Match, MetadataLayer, Verdict};
use formats::codes::{self, CodeScheme};
use formats::sealing;
use report::document::{self, CandidateRow, Report};
use report::signing::{self, ReportSigner};
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::config::Config;
use shared::db::repo::audit::{self, Verification};
use shared::db::repo::report_pki::{self, ReportPki};
use shared::db::repo::{cases, devices, evidence_reports, sessions, users, videos};
use shared::db::Db;
use shared::secrets::Secrets;

use crate::error::AppError;
use crate::jobs::detail_json;
use crate::timestamping;

const CA_CERT: &str = "report-ca.pem";
const CA_KEY: &str = "report-ca.key";
const SIGNING_CERT: &str = "report-signing.pem";
const SIGNING_KEY: &str = "report-signing.key";

/// What the sealed private keys of the report PKI are bound to.
const CA_KEY_AAD: &[u8] = b"leaktrace report PKI: CA key";
const SIGNING_KEY_AAD: &[u8] = b"leaktrace report PKI: signing key";

/// The report signer: the deployment's PKI, the same on every instance.
pub fn signer(config: &Config, db: &Db, secrets: &Secrets) -> Result<ReportSigner, AppError> {
    let pki = deployment_pki(config, db, secrets)?;
    let signing_key = sealing::open(
        secrets.master_key(),
        SIGNING_KEY_AAD,
        &pki.sealed_signing_key,
    )
    .ok()
    .and_then(|bytes| String::from_utf8(bytes).ok())
    .ok_or_else(|| {
        AppError::Server("the report signing key cannot be opened with this master key".into())
    })?;
    Ok(ReportSigner::from_pem(
        &pem(&pki.signing_cert_pem),
        &pem(&signing_key),
        &pem(&pki.ca_cert_pem),
    )?)
}

/// The CA certificate that issued the report-signing certificate (PEM), created on first use.
pub fn ca_pem(config: &Config, db: &Db, secrets: &Secrets) -> Result<String, AppError> {
    Ok(pem(&deployment_pki(config, db, secrets)?.ca_cert_pem))
}

/// PEM as the parsers want it: exactly one trailing newline.
fn pem(text: &str) -> String {
    format!("{}\n", text.trim_end())
}

/// The deployment's report PKI, recorded in the database on first use so that every
/// instance signs with the same certificate and publishes the same CA: this data dir's PKI
/// files when it has them (made before the PKI was shared), else a new identity named for
/// the deployment. When two instances race, the first recorded is everyone's.
fn deployment_pki(config: &Config, db: &Db, secrets: &Secrets) -> Result<ReportPki, AppError> {
    let mut conn = db.conn()?;
    if let Some(pki) = report_pki::get(&mut conn)? {
        return Ok(pki);
    }
    let dir = config.layout().secrets();
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(AppError::io("read", path))
    };
    let (ca_cert, ca_key, signing_cert, signing_key) = if dir.join(SIGNING_KEY).exists() {
        (
            read(CA_CERT)?,
            read(CA_KEY)?,
            read(SIGNING_CERT)?,
            read(SIGNING_KEY)?,
        )
    } else {
        // The deployment's configured name, never a server path.
        let made = signing::create_identity(config.reports.organisation.trim())?;
        (
            made.ca_cert_pem,
            made.ca_key_pem,
            made.signing_cert_pem,
            made.signing_key_pem,
        )
    };
    let seal = |aad: &[u8], key: &str| {
        sealing::seal(secrets.master_key(), aad, key.as_bytes())
            .map_err(|e| AppError::Server(format!("the report PKI cannot be sealed: {e}")))
    };
    let pki = ReportPki::new(
        ca_cert,
        seal(CA_KEY_AAD, &ca_key)?,
        signing_cert,
        seal(SIGNING_KEY_AAD, &signing_key)?,
    );
    Ok(report_pki::record_first(&mut conn, &pki)?)
}

/// Whose word the report's times are.
fn time_source(config: &Config) -> String {
    let host = config
        .reports
        .tsa_url
        .as_deref()
        .and_then(|u| url::Url::parse(u.trim()).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    match host {
        Some(host) => format!(
            "The signature of this report carries an RFC 3161 timestamp from the timestamp \
             authority at {host}, which attests that the report existed, as signed, at that \
             time. The other times in the report are the server's clock."
        ),
        None => "No timestamp authority countersigned this report: every time in it, the \
                 signing time included, is the issuing server's own claim."
            .to_string(),
    }
}

fn fact(label: &str, value: impl ToString) -> (String, String) {
    (label.to_string(), value.to_string())
}

fn time(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A probability as odds a reader without statistics takes in: "about one in 40 million";
/// "unknown" for a value that is not a probability.
fn odds(p: f64) -> String {
    if !(0.0..=1.0).contains(&p) {
        return "unknown".to_string();
    }
    if p < 1e-12 {
        return "less than one in a trillion".to_string();
    }
    format!("about {}", one_in(p))
}

/// "one in 40 million" for 2.5e-8 (rounded first, so 999,950 is "one in 1 million").
fn one_in(p: f64) -> String {
    let n = 1.0 / p;
    let rounded = |v: f64| {
        if v >= 10.0 {
            v.round()
        } else {
            (v * 10.0).round() / 10.0
        }
    };
    let scales = [
        (1e9, " billion"),
        (1e6, " million"),
        (1e3, " thousand"),
        (1.0, ""),
    ];
    let (shown, word) = scales
        .iter()
        .rev()
        .map(|&(scale, word)| (rounded(n / scale), word))
        .find(|&(shown, word)| shown < 1000.0 || word == " billion")
        .unwrap_or((n, ""));
    let shown = format!("{shown:.1}");
    format!("one in {}{word}", shown.trim_end_matches(".0"))
}

/// The largest of some probabilities; NaN when any is (never hidden by the others).
fn weakest(ps: impl Iterator<Item = f64>) -> f64 {
    ps.fold(0.0, |worst: f64, p| {
        if p.is_nan() || worst.is_nan() {
            f64::NAN
        } else {
            worst.max(p)
        }
    })
}

/// Page 1 for a reader with no technical background: who, what, how sure, in one paragraph.
/// The copy is named by its SHA-256, not by the name it was submitted under (which whoever
/// submitted it chose, and which must not write sentences into a signed report).
fn summary(
    verdict: Verdict,
    file_sha256: &str,
    title: &str,
    accused: &[&Match],
    best: Option<&Match>,
    threshold: f64,
    named: Option<(&str, &str, String)>,
) -> String {
    let copy = format!(
        "The submitted video file (SHA-256 beginning {})",
        file_sha256.get(..16).unwrap_or(file_sha256)
    );
    match verdict {
        Verdict::Identified if accused.len() > 1 => format!(
            "{copy} is a copy of the protected title {title}, pieced together from the \
             streams of {} viewer accounts: {}. Each stream carried its own invisible \
             watermark, and the copy carries pieces of each. For each of these accounts: if \
             the copy held nothing from its stream, the chance of a match this strong would \
             be at most {} (the weakest of them), below the deployment's threshold for naming \
             anyone of {}. The technical evidence follows.",
            accused.len(),
            accused
                .iter()
                .map(|m| format!("\"{}\"", m.user))
                .collect::<Vec<_>>()
                .join(", "),
            odds(weakest(
                accused.iter().map(|m| m.false_positive_probability)
            )),
            one_in(threshold),
        ),
        Verdict::Identified => {
            let p = best.map_or(f64::NAN, |m| m.false_positive_probability);
            let who = match named {
                Some((user, device, started)) => format!(
                    "the viewer account \"{user}\", on device {device}, in a session started \
                     {started}"
                ),
                None => format!(
                    "the viewer account \"{}\"",
                    best.map_or("?", |m| m.user.as_str())
                ),
            };
            format!(
                "{copy} is a copy of the protected title {title}, and it was made from the \
                 stream watched by {who}. Every viewer's stream carries its own invisible \
                 watermark; this copy carries that viewer's. If the copy had not been made \
                 from that stream, the chance of a match this strong would be {} ({p:.1e}), \
                 below the deployment's threshold for naming anyone of {}. The technical \
                 evidence follows.",
                odds(p),
                one_in(threshold),
            )
        }
        Verdict::Inconclusive => format!(
            "{copy} is a copy of the protected title {title}, but its watermark could not be \
             read clearly enough to say whose stream it came from: no viewer is named. The \
             technical detail follows."
        ),
        Verdict::NoWatermark => format!(
            "{copy} does not match any title this deployment protects, so it carries no \
             watermark to read: no viewer is named. The technical detail follows."
        ),
    }
}

/// Plain-language verdict and what the probability means.
fn explanation(
    verdict: Verdict,
    best: Option<&Match>,
    accused: &[&Match],
    threshold: f64,
    candidates: usize,
) -> Vec<String> {
    let p = best.map_or(1.0, |m| m.false_positive_probability);
    let mut out = vec![match verdict {
        Verdict::Identified if accused.len() > 1 => format!(
            "The copy was mixed from the copies of {} sessions: {}. Each is named on its own \
             evidence: the probability that a copy not made with that session would match it \
             this well is at most the figure given, below the decision threshold of \
             {threshold:.0e}. Sessions of pass 1 were found over the whole copy; those of later \
             passes either over the units the sessions found before could not have supplied \
             (the copy shows a variant none of them received) or by how well each session \
             completes a coalition with them (their variants known at every unit).",
            accused.len(),
            accused
                .iter()
                .map(|m| format!(
                    "session {} (user {}, {:.2e})",
                    m.session_id, m.user, m.false_positive_probability
                ))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Verdict::Identified => format!(
            "The copy carries the forensic watermark code of session {} (user {}). The \
             probability that a copy not made from that session would match it this well is \
             at most {p:.2e}, below the decision threshold of {threshold:.0e}.",
            best.map_or("?", |m| m.session_id.as_str()),
            best.map_or("?", |m| m.user.as_str()),
        ),
        Verdict::Inconclusive => format!(
            "The copy shows a packaged title, but no session's code matches it strongly enough: \
             the best match's false-positive probability ({p:.2e}) is not below the decision \
             threshold of {threshold:.0e}. No session is named."
        ),
        Verdict::NoWatermark => "The copy matches no packaged title: there is no watermark to \
                                 read. No session is named."
            .to_string(),
    }];
    out.push(format!(
        "What the probability means: each session's code is a sequence of independent random \
         bits; the probability is the chance that any of the {candidates} sessions compared, \
         had it not leaked the copy, would score at least as high (an upper bound, corrected \
         for the number of sessions compared and for every accusation pass). It does not say \
         who handled the copy after it left that session (recording, sharing, re-encoding). \
         A copy mixed from several sessions names those whose evidence suffices; others may \
         have taken part without being named."
    ));
    out
}

/// The alignment facts of a report.
fn alignment_facts(a: &Alignment, units_observed: u32) -> Vec<(String, String)> {
    // The time map, piece by piece (the first few of a long one).
    const PIECES_SHOWN: usize = 8;
    let mut pieces: Vec<String> = a
        .time_map
        .iter()
        .take(PIECES_SHOWN)
        .map(|p| {
            format!(
                "copy {:.1}-{:.1} s -> title {:.1}-{:.1} s",
                p.suspect_seconds[0], p.suspect_seconds[1], p.title_seconds[0], p.title_seconds[1]
            )
        })
        .collect();
    if a.time_map.len() > PIECES_SHOWN {
        pieces.push(format!("and {} more", a.time_map.len() - PIECES_SHOWN));
    }
    let mut facts = vec![
        fact(
            "Time offset",
            format!(
                "{:.2} s (title time = offset + speed x copy time)",
                a.offset_seconds
            ),
        ),
        fact(
            "Speed",
            format!("{:.4} (title seconds per second of the copy)", a.speed),
        ),
        fact("Time match score", format!("{:.3}", a.time_score)),
        fact(
            "Units covered",
            format!(
                "{} to {} ({units_observed} observed)",
                a.first_unit, a.last_unit
            ),
        ),
        fact(
            "Copy frames",
            format!(
                "{} at {:.3} fps, {}x{}",
                a.suspect_frames, a.suspect_fps, a.suspect_size[0], a.suspect_size[1]
            ),
        ),
        fact("Picture area in copy", rect(a.active_area)),
        fact("Part of title frame", rect(a.reference_crop)),
    ];
    if a.time_map.len() > 1 {
        facts.push(fact(
            "Time map (cuts, inserted material)",
            pieces.join("; "),
        ));
    }
    facts
}

/// A rectangle of fractions as the extract JSON writes it.
fn rect(r: [f64; 4]) -> String {
    serde_json::to_string(&r).unwrap_or_default()
}

/// What the metadata layer says, in a sentence.
fn metadata_finding(layer: Option<&MetadataLayer>) -> String {
    let unknown = || "?".to_string();
    match layer {
        None => "No session marker box was found in the copy (it is removed by any re-encoding \
                 or remux; its absence says nothing about the watermark)."
            .to_string(),
        Some(m) if m.valid => format!(
            "The copy carries a session marker box with a valid signature naming session {} \
             (title {}, issued {}). This is an exact, independent attribution.",
            m.session_id.clone().unwrap_or_else(unknown),
            m.video_id.clone().unwrap_or_else(unknown),
            m.issued_at.map_or_else(unknown, |t| t.to_string()),
        ),
        Some(m) => format!(
            "The copy carries a session marker box whose signature does not verify ({}): it is \
             not relied on.",
            m.reason.as_deref().unwrap_or("invalid")
        ),
    }
}

/// The detail of a `report_issued` audit entry.
#[derive(Serialize)]
struct IssuedDetail<'a> {
    report_id: &'a str,
    sha256: &'a str,
}

/// The case's latest stored report, or a new one issued (and published to the bucket) when
/// it has none or its file is gone.
pub fn stored_or_issue(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    storage: &storage::Storage,
    case_id: &str,
    actor: &str,
) -> Result<(evidence_reports::ReportRow, Vec<u8>), AppError> {
    let stored = evidence_reports::latest_for_case(&mut *db.conn()?, case_id)?
        .and_then(|r| stored_bytes(storage, &r.path).map(|b| (r, b)));
    match stored {
        Some(found) => Ok(found),
        None => {
            let issued = issue(config, db, secrets, case_id, actor)?;
            publish(storage, &issued.0.path)?;
            Ok(issued)
        }
    }
}

/// The bytes of a stored report: from this machine's data dir, or (with a bucket, when
/// another instance issued it) fetched by its key `reports/<file name>`. `None` when neither
/// has it.
pub fn stored_bytes(storage: &storage::Storage, path: &str) -> Option<Vec<u8>> {
    let here = storage
        .stored_here(std::path::Path::new(path), "reports")
        .ok()?;
    std::fs::read(here).ok()
}

/// Publishes an issued report to the bucket, when there is one, so that every instance
/// serves the same signed file.
pub fn publish(storage: &storage::Storage, path: &str) -> Result<(), AppError> {
    if let Some(key) = storage.key_of(std::path::Path::new(path)) {
        storage.publish_file(&key)?;
    }
    Ok(())
}

/// Issues (renders, signs, stores, records and audits) a report of a finished case.
pub fn issue(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    case_id: &str,
    actor: &str,
) -> Result<(evidence_reports::ReportRow, Vec<u8>), AppError> {
    let mut conn = db.conn()?;
    let case = cases::get(&mut conn, case_id)?;
    if case.status != CaseStatus::Done {
        return Err(AppError::CaseNotFinished {
            case_id: case_id.to_string(),
            status: case.status.to_string(),
        });
    }
    let result: CaseResult = case
        .result()
        .ok_or_else(|| AppError::DamagedCase(case_id.into()))?;
    let best = result.best();

    // The suspect file, as received (probed again when it is still there).
    let mut file = vec![
        fact("File name", &case.file_name),
        fact("Size", format!("{} bytes", case.file_size)),
        fact("SHA-256", &case.file_sha256),
    ];
    let limits = crate::cases::analysis::limits(config);
    if let Ok(reader) = FrameReader::open(Path::new(&case.stored_path), &limits) {
        let info = reader.info();
        file.push(fact("Container", &info.container));
        file.push(fact("Video codec", &info.video_codec));
        file.push(fact(
            "Resolution",
            format!("{}x{}", info.source_width, info.source_height),
        ));
        file.push(fact("Duration", format!("{:.2} s", info.duration_seconds)));
        file.push(fact("Frame rate", format!("{:.3} fps", info.fps())));
    }

    let (title, plain_title, units, video_secret) = match result.video_id.as_deref() {
        Some(id) => {
            let v = videos::get(&mut conn, id)?;
            let secret =
                sealing::open_video_secret(secrets.master_key(), id, &v.sealed_secret).ok();
            (
                format!("{} ({id})", v.title),
                format!("\"{}\"", v.title),
                v.unit_count,
                secret,
            )
        }
        None => ("none".to_string(), String::new(), 0, None),
    };
    let alignment = result
        .alignment
        .as_ref()
        .map(|a| alignment_facts(a, result.units_observed))
        .unwrap_or_default();
    let matched_code = match (best, video_secret) {
        (Some(m), Some(secret)) => Some(codes::session_code(
            &secret,
            result.code,
            &m.session_id,
            units as u32,
        )),
        _ => None,
    };

    let mut session = Vec::new();
    let mut named = None;
    if let Some(matched) = result.identified() {
        let s = sessions::get(&mut conn, &matched.session_id)?;
        let user = users::get(&mut conn, &s.user_id)?;
        let device = devices::get(&mut conn, &s.device_id)?;
        named = Some((user.username.clone(), device.id.clone(), time(s.created_at)));
        session = vec![
            fact("Session", &s.id),
            fact("User", format!("{} ({})", user.username, user.id)),
            fact("Device", &device.id),
            fact(
                "Fingerprint SHA-256",
                hex::encode(Sha256::digest(device.fingerprint.as_bytes())),
            ),
            fact("Session requested", time(s.created_at)),
            fact("Key exchange", s.keyed_at.map_or("-".into(), time)),
            fact("Last activity", time(s.last_activity_at)),
            fact("Segments served", s.segments_served),
            fact(
                "Client address",
                s.client_address.clone().unwrap_or_else(|| "-".into()),
            ),
            fact("Session state", s.state),
        ];
    }

    let audit_entries = audit::for_case(&mut conn, case_id)?;
    let head = match audit::verify(&mut conn)? {
        Verification::Intact { head, .. } => head,
        Verification::Broken { seq, reason } => format!("BROKEN at entry {seq}: {reason}"),
    };
    let threshold = config.analysis.false_positive_threshold;
    let report = Report {
        case_id: case.id.clone(),
        submitted_by: format!(
            "{} {}",
            case.submitter_kind,
            case.submitter_id.clone().unwrap_or_default()
        ),
        submitted_at: time(case.created_at),
        generated_at: time(shared::db::now()),
        time_source: time_source(config),
        summary: summary(
            result.verdict,
            &case.file_sha256,
            &plain_title,
            &result.accused(),
            best,
            threshold,
            named
                .as_ref()
                .map(|(u, d, t)| (u.as_str(), d.as_str(), t.clone())),
        ),
        file,
        title,
        verdict: result.verdict.to_string(),
        threshold,
        explanation: explanation(
            result.verdict,
            best,
            &result.accused(),
            threshold,
            result.sessions_scored(),
        ),
        alignment,
        units: result.unit_values.clone().unwrap_or_default(),
        matched_code,
        candidates: result
            .matches
            .iter()
            .map(|m| CandidateRow {
                session_id: m.session_id.clone(),
                user: m.user.clone(),
                score: m.score,
                false_positive_probability: m.false_positive_probability,
                unit_agreement: m.unit_agreement,
            })
            .collect(),
        metadata_layer: vec![metadata_finding(result.metadata_layer.as_ref())],
        session,
        method: vec![
            "Packaging embedded an invisible watermark in two variants (A and B) of every unit of the title; each session received its own sequence of variants, its code, derived from a secret key and the session id.".into(),
            "The copy was aligned with the title in time (thumbnail correlation) and space (bars and crop search); for every unit, the copy was compared with both variants after a brightness and contrast fit, giving a signed value (B positive, A negative).".into(),
            match result.code {
                CodeScheme::Uniform => "The title's codes are unbiased random bits (uniform-v1). Every session that streamed the title was scored by the normalised correlation of its code with those values; the false-positive probability is the exact tail of that score for a random code (normal approximation beyond 256 units), times the number of sessions, over the share of the decision budget of the pass that found it (for a session named in a later pass by how well it completes a coalition with those named before, a Chernoff bound of that score's tail instead).".into(),
                CodeScheme::Tardos => "The title's codes are biased random bits (tardos-v2, a code designed against colluders: each unit has its own bias, the same for every session). Every session that streamed the title was scored by the symmetric score of its code against those values (mean 0 and variance 1 for a session that did not leak), and by the likelihood ratio of being one of a coalition of 2, 3 or 4 sessions whose strategy was estimated from the copy alone (which variant, or a blend of both, such a coalition shows depending on how many of its members hold each; a unit showing a blend says that the coalition held both variants there); the false-positive probability is a Chernoff bound of the score's tail for a random code, times the number of sessions, over that score's share of the decision budget.".into(),
            },
            "When a session is named, every other session is scored again, to name others who took part: over the units the named sessions' codes cannot explain (the copy shows a variant none of them received), and by the likelihood ratio of being one of a coalition of 2, 3 or 4 with the named sessions, whose variants are then known at every unit. Such a pass has its own share of the budget, so that the chance of naming any innocent session in any pass stays below the threshold.".into(),
        ],
        software: format!("leaktrace {}", env!("CARGO_PKG_VERSION")),
        organisation: config.reports.organisation.trim().to_string(),
        audit: audit_entries
            .iter()
            .map(|e| [time(e.created_at), e.actor.clone(), e.action.clone(), e.entry_hash.chars().take(16).collect()])
            .collect(),
        audit_head: head,
    };
    let unsigned = document::render(&report);
    let signer = signer(config, db, secrets)?;
    let date = chrono::Utc::now().format("D:%Y%m%d%H%M%SZ").to_string();
    let tsa = timestamping::configured(config)?;
    let signed = signer.sign(&unsigned, &date, timestamping::as_authority(&tsa))?;
    let sha256 = hex::encode(Sha256::digest(&signed));
    let dir = config.layout().reports();
    std::fs::create_dir_all(&dir).map_err(AppError::io("create", &dir))?;
    let path = config.layout().report(case_id, &sha256[..12]);
    std::fs::write(&path, &signed).map_err(AppError::io("write", &path))?;
    let row = evidence_reports::create(
        &mut conn,
        case_id,
        &path.to_string_lossy(),
        &sha256,
        &signer.certificate_sha256(),
    )?;
    let detail = detail_json(&IssuedDetail {
        report_id: &row.id,
        sha256: &sha256,
    });
    audit::append(&mut conn, Some(case_id), actor, "report_issued", &detail)?;
    Ok((row, signed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::TestDatabase;

    fn config_at(data: &Path) -> Config {
        Config {
            data_dir: data.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn probabilities_read_as_odds() {
        assert_eq!(odds(1e-13), "less than one in a trillion");
        assert_eq!(odds(0.0), "less than one in a trillion");
        assert_eq!(odds(f64::NAN), "unknown");
        assert_eq!(odds(-1.0), "unknown");
        assert_eq!(odds(1.0 / 999_950.0), "about one in 1 million");
        assert_eq!(weakest([1e-9, f64::NAN].into_iter()).to_string(), "NaN");
        assert_eq!(weakest([1e-9, 3e-8].into_iter()), 3e-8);
        assert_eq!(odds(2.5e-8), "about one in 40 million");
        assert_eq!(odds(1.0 / 3.0e9), "about one in 3 billion");
        assert_eq!(odds(4e-5), "about one in 25 thousand");
        assert_eq!(odds(0.5), "about one in 2");
    }

    #[test]
    fn the_summary_names_who_and_says_how_sure_in_plain_words() {
        let m = |user: &str, p: f64| Match {
            session_id: format!("s-{user}"),
            user: user.into(),
            device_id: "d".into(),
            score: 9.0,
            false_positive_probability: p,
            unit_agreement: 0.9,
            accused: true,
            pass: 1,
            reference: None,
        };
        let (val, vic) = (m("val", 2e-10), m("vic", 3e-8));
        let one = summary(
            Verdict::Identified,
            "0123456789abcdef0123",
            "\"Film\"",
            &[&val],
            Some(&val),
            1e-6,
            Some(("val", "dev-1", "2026-12-04 10:00:00 UTC".into())),
        );
        assert!(one.starts_with("The submitted video file (SHA-256 beginning 0123456789abcdef) is a copy of the protected title \"Film\", and it was made from the stream watched by the viewer account \"val\", on device dev-1"), "{one}");
        assert!(one.contains("If the copy had not been made from that stream, the chance of a match this strong would be about one in 5 billion"), "{one}");
        assert!(one.contains("about one in 5 billion"), "{one}");
        assert!(
            one.contains("threshold for naming anyone of one in 1 million"),
            "{one}"
        );
        let two = summary(
            Verdict::Identified,
            "0123456789abcdef0123",
            "\"Film\"",
            &[&val, &vic],
            Some(&val),
            1e-6,
            None,
        );
        assert!(two.contains("2 viewer accounts: \"val\", \"vic\""), "{two}");
        assert!(
            two.contains("about one in 33 million"),
            "the weakest: {two}"
        );
        let none = summary(
            Verdict::Inconclusive,
            "0123456789abcdef0123",
            "\"Film\"",
            &[],
            Some(&vic),
            1e-6,
            None,
        );
        assert!(none.contains("no viewer is named"), "{none}");
        let unknown = summary(
            Verdict::NoWatermark,
            "0123456789abcdef0123",
            "",
            &[],
            None,
            1e-6,
            None,
        );
        assert!(unknown.contains("does not match any title"), "{unknown}");
    }

    #[test]
    fn a_data_dir_that_had_pki_files_gives_them_to_the_deployment_once() {
        let t = TestDatabase::new();
        let db = t.open();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Machine a made its PKI files before the PKI was shared.
        let made = signing::create_identity("Studio").unwrap();
        let dir = a.path().join("secrets");
        shared::secrets::create_dir_private(&dir).unwrap();
        for (name, text) in [
            (CA_CERT, &made.ca_cert_pem),
            (CA_KEY, &made.ca_key_pem),
            (SIGNING_CERT, &made.signing_cert_pem),
            (SIGNING_KEY, &made.signing_key_pem),
        ] {
            shared::secrets::write_new_private(&dir.join(name), text.as_bytes()).unwrap();
        }
        let overrides = shared::config::SecretOverrides {
            master_key: Some(shared::config::SecretString::new("ab".repeat(32))),
            jwt_secret: Some(shared::config::SecretString::new("cd".repeat(32))),
        };
        let secrets_a = Secrets::load_or_create(a.path(), &overrides).unwrap();
        let secrets_b = Secrets::load_or_create(b.path(), &overrides).unwrap();
        let ca_a = ca_pem(&config_at(a.path()), &db, &secrets_a).unwrap();
        assert_eq!(
            ca_a,
            pem(&made.ca_cert_pem),
            "its files are the deployment's PKI"
        );
        // Machine b, with no files of its own, gets the same; nothing new is made.
        let ca_b = ca_pem(&config_at(b.path()), &db, &secrets_b).unwrap();
        assert_eq!(ca_a, ca_b);
        assert!(!b.path().join("secrets").join(SIGNING_KEY).exists());
        let signer_b = signer(&config_at(b.path()), &db, &secrets_b).unwrap();
        assert_eq!(
            signer_b.certificate_sha256(),
            ReportSigner::from_pem(
                &pem(&made.signing_cert_pem),
                &pem(&made.signing_key_pem),
                &pem(&made.ca_cert_pem)
            )
            .unwrap()
            .certificate_sha256()
        );
        // The private keys are stored sealed, not as PEM.
        let row = report_pki::get(&mut db.conn().unwrap()).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&row.sealed_signing_key).contains("PRIVATE KEY"));
        // Another master key cannot open them.
        let other = shared::config::SecretOverrides {
            master_key: Some(shared::config::SecretString::new("ef".repeat(32))),
            jwt_secret: Some(shared::config::SecretString::new("cd".repeat(32))),
        };
        let secrets_c = Secrets::load_or_create(b.path(), &other).unwrap();
        assert!(signer(&config_at(b.path()), &db, &secrets_c).is_err());
    }
}
