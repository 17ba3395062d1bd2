//! The leak analysis of one recorded case: the pipeline behind `leaktrace extract` and the
//! `analyse_case` jobs. Media work is `forensics::extract`, scoring `forensics::matching`;
//! this module brings the titles, sessions and secrets from the database and writes the
//! case's typed result.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use forensics::extract::{self, Extraction, Progress, ReferenceTitle};
use forensics::matching;
use forensics::media::decode::Limits;
use formats::case::{CaseResult, ExpectedHash, Match, MetadataLayer, Verdict};
use formats::codes;
use formats::marker::{self, MarkerSigner};
use formats::sealing;
use serde::Serialize;
use shared::config::Config;
use shared::db::repo::cases::{self, CaseRow};
use shared::db::repo::security_events::{self, NewEvent, Severity};
use shared::db::repo::{audit, sessions, users, videos};
use shared::db::{Db, DbConnection, DbError};
use shared::secrets::Secrets;

use crate::error::AppError;
use crate::jobs::detail_json;

/// Bytes of the suspect's start searched for the session marker box.
const MARKER_SCAN_BYTES: u64 = 8 << 20;
/// Matches kept in the result (at least the best five, as the extract JSON promises).
const MATCHES_KEPT: usize = 5;

/// The media limits of an analysis.
pub fn limits(config: &Config) -> Limits {
    Limits {
        max_input_bytes: config.limits.max_input_bytes,
        max_duration_seconds: config.limits.max_media_seconds,
        max_wall_time: Duration::from_secs(config.limits.max_processing_seconds),
    }
}

/// The metadata layer: a session marker box at the start of the file, verified.
fn metadata_layer(path: &Path, signer: &MarkerSigner) -> Option<MetadataLayer> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MARKER_SCAN_BYTES).read_to_end(&mut head))
        .ok()?;
    match marker::find_marker(&head) {
        Ok(Some(found)) => Some(match found.verify(&signer.verifying_key()) {
            Ok(p) => MetadataLayer::valid(p.session_id, p.video_id, p.issued_at),
            Err(e) => MetadataLayer::invalid(e.to_string(), found.claimed().map(|p| p.session_id)),
        }),
        Ok(None) => None,
        Err(e) => Some(MetadataLayer::invalid(e.to_string(), None)),
    }
}

/// The titles to compare the suspect with: the one named, or every packaged title.
fn reference_titles(
    config: &Config,
    db: &Db,
    storage: &storage::Storage,
    video: Option<&str>,
) -> Result<Vec<ReferenceTitle>, AppError> {
    let rows = match video {
        Some(id) => vec![videos::get(&mut *db.conn()?, id).map_err(|e| match e {
            DbError::NotFound(_) => AppError::UnknownTitle(id.to_string()),
            other => other.into(),
        })?],
        None => videos::list(&mut *db.conn()?)?,
    };
    rows.iter()
        .map(|v| {
            // With a bucket: the title's files (its reference store with them) fetched here.
            storage.materialize(&v.storage_dir, crate::packaging::TITLE_LOCAL_ONLY)?;
            Ok(ReferenceTitle::load(
                &v.id,
                config.layout().title(&v.storage_dir),
            )?)
        })
        .collect()
}

/// Candidates read from the database per batch.
const CANDIDATE_BATCH: i64 = 50_000;

/// Every session keyed for the title scored against `soft`, read in batches of ids (memory
/// stays one batch of codes, whatever the title's audience), in as many accusation passes as
/// the copy needs (see `forensics::matching::accuse`); the accused and the best others named
/// (user, device). Returns them with the number of sessions scored and the title's code key.
fn score_sessions(
    db: &Db,
    secrets: &Secrets,
    extraction: &Extraction,
    threshold: f64,
) -> Result<(Vec<Match>, usize, codes::CodeKey), AppError> {
    let video_id = extraction.video_id.as_str();
    let row = videos::get(&mut *db.conn()?, video_id)?;
    let secret = sealing::open_video_secret(secrets.master_key(), video_id, &row.sealed_secret)
        .map_err(|source| AppError::TitleSecret {
            video_id: video_id.to_string(),
            source,
        })?;
    let key = codes::CodeKey::new(&secret, extraction.code);
    // The units' strengths are not used: on re-encoded real copies, scaling the reading's
    // levels by them named colluders of every strategy but averaging later than leaving them
    // out (BENCHMARKS, "Collusion on real video"); the attack weakens a unit's mark by more
    // than its strength says.
    let found = matching::accuse(
        forensics::coalition::Readings::uniform(&extraction.soft),
        &key,
        threshold,
        MATCHES_KEPT,
        |ranking| -> Result<(), AppError> {
            let mut after: Option<String> = None;
            loop {
                let batch = sessions::keyed_ids_for_video(
                    &mut *db.conn()?,
                    video_id,
                    after.as_deref(),
                    CANDIDATE_BATCH,
                )?;
                let Some(last) = batch.last().cloned() else {
                    return Ok(());
                };
                ranking.add(&batch);
                after = Some(last);
            }
        },
    )?;
    let mut conn = db.conn()?;
    let mut matches = Vec::new();
    for (i, finding) in found.findings.into_iter().enumerate() {
        let session = sessions::get(&mut conn, &finding.scored.session_id)?;
        let user = users::get(&mut conn, &session.user_id)?;
        matches.push(Match {
            session_id: finding.scored.session_id,
            user: user.username,
            device_id: session.device_id,
            score: finding.scored.score,
            false_positive_probability: finding.false_positive_probability,
            unit_agreement: finding.scored.unit_agreement,
            accused: i < found.accused,
            pass: finding.pass,
            reference: None,
        });
    }
    Ok((matches, found.sessions, key))
}

/// Whether the code of the best match hashes to what the submitter expected.
fn expected_hash_finding(
    expected: Option<&str>,
    best: Option<&Match>,
    key: Option<&codes::CodeKey>,
    units: u32,
) -> Option<ExpectedHash> {
    let expected = expected?;
    let found = best
        .zip(key)
        .map(|(m, k)| codes::code_hash(&k.code(&m.session_id, units)));
    Some(ExpectedHash {
        expected: expected.to_string(),
        equal: found
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(expected.trim())),
        best_match_code_hash: found,
    })
}

/// The detail of an `analysis_failed` audit entry.
#[derive(Serialize)]
struct FailedDetail<'a> {
    code: &'a str,
    reason: String,
}

/// The detail of an `analysis_finished` audit entry.
#[derive(Serialize)]
struct FinishedDetail<'a> {
    verdict: Verdict,
    video_id: Option<&'a str>,
    best_match: Option<BestMatch<'a>>,
}

#[derive(Serialize)]
struct BestMatch<'a> {
    session_id: &'a str,
    score: f64,
    false_positive_probability: f64,
}

/// The detail of a `piracy_detected` security event.
#[derive(Serialize)]
struct DetectionDetail<'a> {
    case_id: &'a str,
    score: f64,
    false_positive_probability: f64,
}

/// Per unit of the title: the soft value, `None` where the unit was not observed (0).
fn unit_values(soft: &[f64]) -> Vec<Option<f64>> {
    soft.iter().map(|&v| (v != 0.0).then_some(v)).collect()
}

/// Checks that the suspect at `path` is the file received for `case` (its SHA-256 as recorded
/// at upload): a file changed in the data dir or swapped in the bucket since is not evidence.
/// A mismatch is audited with both hashes and refused.
fn suspect_unchanged(db: &Db, case: &CaseRow, path: &Path, actor: &str) -> Result<(), AppError> {
    let (_, found) = formats::digest::sha256_file(path).map_err(|source| AppError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    if found.eq_ignore_ascii_case(&case.file_sha256) {
        return Ok(());
    }
    let changed = AppError::SuspectChanged {
        expected: case.file_sha256.clone(),
        found,
    };
    let detail = FailedDetail {
        code: changed.code(),
        reason: changed.to_string(),
    };
    audit::append(
        &mut *db.conn()?,
        Some(&case.id),
        actor,
        "suspect_changed",
        &detail_json(&detail),
    )?;
    Err(changed)
}

/// Analyses the suspect of `case`, finishes the case (or marks it failed) and returns its
/// result. An `identified` verdict raises a `piracy_detected` security event tied to the
/// session, its user and device.
pub fn run_case(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    storage: &storage::Storage,
    case: &CaseRow,
    actor: &str,
    progress: Progress,
) -> Result<CaseResult, AppError> {
    // Received by another machine: fetched from the bucket (suspects are stored in the
    // receiving machine's uploads folder).
    let suspect = &storage.stored_here(Path::new(&case.stored_path), "uploads")?;
    suspect_unchanged(db, case, suspect, actor)?;
    let titles = reference_titles(config, db, storage, case.video_id.as_deref())?;
    audit::append(
        &mut *db.conn()?,
        Some(&case.id),
        actor,
        "analysis_started",
        "{}",
    )?;
    // A folder per run: should a lapsed lease let a second worker start the same case, the
    // two runs never share (or remove) each other's files.
    let work = config
        .layout()
        .work(&format!("{}-{}", case.id, shared::db::new_id()));
    let outcome = extract::extract(suspect, &titles, &work, &limits(config), progress);
    let _ = std::fs::remove_dir_all(&work);
    let extraction = match outcome {
        Ok(e) => e,
        Err(e) => {
            let mut conn = db.conn()?;
            // The case's error is shown to its submitter: no server folders in it (the audit
            // entry below keeps the full reason).
            // The data folder by its absolute name only (a relative "data" would rewrite
            // every word "data" of the message).
            let root = std::fs::canonicalize(&config.layout().root).unwrap_or_default();
            let public = crate::uploads::without_paths(
                &e.to_string(),
                &[
                    (suspect, "the suspect file"),
                    (&work, "the work folder"),
                    (&root, "the data folder"),
                ],
            );
            let _ = cases::fail(&mut conn, &case.id, &public);
            let detail = FailedDetail {
                code: e.code(),
                reason: e.to_string(),
            };
            let _ = audit::append(
                &mut conn,
                Some(&case.id),
                actor,
                "analysis_failed",
                &detail_json(&detail),
            );
            return Err(e.into());
        }
    };
    let metadata = metadata_layer(
        suspect,
        &MarkerSigner::from_master_key(secrets.master_key()),
    );
    let (matches, verdict, key, compared) = match &extraction {
        None => (Vec::new(), Verdict::NoWatermark, None, 0),
        Some(e) => {
            let threshold = config.analysis.false_positive_threshold;
            let (ranked, count, key) = score_sessions(db, secrets, e, threshold)?;
            let verdict = matching::verdict(&ranked, threshold);
            (ranked, verdict, Some(key), count)
        }
    };
    let units = extraction.as_ref().map_or(0, |e| e.soft.len() as u32);
    let expected_watermark_hash = expected_hash_finding(
        case.expected_watermark_hash.as_deref(),
        matches.first(),
        key.as_ref(),
        units,
    );
    let result = CaseResult {
        case_id: case.id.clone(),
        verdict,
        video_id: extraction.as_ref().map(|e| e.video_id.clone()),
        units_observed: extraction.as_ref().map_or(0, |e| e.units_observed),
        code: extraction.as_ref().map(|e| e.code).unwrap_or_default(),
        alignment: extraction.as_ref().map(|e| e.alignment.clone()),
        metadata_layer: metadata,
        matches,
        unit_values: extraction
            .as_ref()
            .map(|e: &Extraction| unit_values(&e.soft)),
        sessions_compared: compared,
        expected_watermark_hash,
    };
    let mut conn = db.conn()?;
    cases::finish(&mut conn, &result)?;
    let summary = FinishedDetail {
        verdict,
        video_id: result.video_id.as_deref(),
        best_match: result.best().map(|m| BestMatch {
            session_id: &m.session_id,
            score: m.score,
            false_positive_probability: m.false_positive_probability,
        }),
    };
    audit::append(
        &mut conn,
        Some(&case.id),
        actor,
        "analysis_finished",
        &detail_json(&summary),
    )?;
    if let Some(best) = result.identified() {
        raise_detection(&mut conn, &case.id, best)?;
    }
    Ok(result)
}

/// The piracy detection event of an identified case.
fn raise_detection(conn: &mut DbConnection, case_id: &str, best: &Match) -> Result<(), AppError> {
    let session = sessions::get(conn, &best.session_id)?;
    let detail = detail_json(&DetectionDetail {
        case_id,
        score: best.score,
        false_positive_probability: best.false_positive_probability,
    });
    security_events::record(
        conn,
        Severity::Critical,
        &NewEvent {
            kind: "piracy_detected",
            session_id: Some(&session.id),
            user_id: Some(&session.user_id),
            device_id: Some(&session.device_id),
            address: None,
            detail: &detail,
            account: None,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best(session: &str) -> Match {
        Match {
            session_id: session.into(),
            user: "u".into(),
            device_id: "d".into(),
            score: 9.0,
            false_positive_probability: 1e-12,
            unit_agreement: 1.0,
            accused: true,
            pass: 1,
            reference: None,
        }
    }

    #[test]
    fn the_expected_hash_is_compared_with_the_best_matchs_code() {
        let key = codes::CodeKey::new(&[3u8; 32], codes::CodeScheme::Uniform);
        let right = codes::code_hash(&key.code("s1", 40));
        let m = best("s1");
        let found =
            expected_hash_finding(Some(&right.to_uppercase()), Some(&m), Some(&key), 40).unwrap();
        assert!(found.equal);
        assert_eq!(found.best_match_code_hash.as_deref(), Some(right.as_str()));
        let other = expected_hash_finding(Some(&"0".repeat(64)), Some(&m), Some(&key), 40).unwrap();
        assert!(!other.equal);
        let none = expected_hash_finding(Some(&right), None, Some(&key), 40).unwrap();
        assert!(!none.equal);
        assert!(none.best_match_code_hash.is_none());
        assert!(expected_hash_finding(None, Some(&m), Some(&key), 40).is_none());
    }

    #[test]
    fn unobserved_units_have_no_value() {
        assert_eq!(
            unit_values(&[0.0, 1.5, -0.5]),
            vec![None, Some(1.5), Some(-0.5)]
        );
    }
}
