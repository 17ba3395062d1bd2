//! The leak analysis of one suspect file, as a recorded case: the pipeline behind
//! `leaktrace extract` (and the upload API's jobs). Media work is `forensics::extract`;
//! this module brings the titles, sessions and secrets from the database and writes the case.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use forensics::extract::{self, Extraction, Progress, ReferenceTitle};
use forensics::matching::{self, Candidate, CodeBook, Match};
use forensics::media::decode::Limits;
use formats::codes;
use formats::digest;
use formats::marker::{self, MarkerSigner};
use formats::sealing;
use serde_json::{json, Value};
use shared::config::Config;
use shared::db::repo::cases::{self, CaseRow, NewCase, NewMatch};
use shared::db::repo::security_events::{self, NewEvent, Severity};
use shared::db::repo::{audit, sessions, users, videos};
use shared::db::{Db, DbConnection, DbError};
use shared::secrets::Secrets;

use crate::error::CliError;

/// Bytes of the suspect's start searched for the session marker box.
const MARKER_SCAN_BYTES: u64 = 8 << 20;
/// Matches kept in the result (DESIGN: at least the best five).
const MATCHES_KEPT: usize = 5;

/// Who submitted a suspect.
pub struct Submitter<'a> {
    pub kind: &'a str,
    pub id: Option<&'a str>,
}

/// The media limits of an analysis.
pub fn limits(config: &Config) -> Limits {
    Limits {
        max_input_bytes: config.limits.max_input_bytes,
        max_duration_seconds: config.limits.max_media_seconds,
        max_wall_time: Duration::from_secs(config.limits.max_processing_seconds),
    }
}

pub fn sha256_file(path: &Path) -> Result<(u64, String), CliError> {
    digest::sha256_file(path)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))
}

/// The metadata layer: a session marker box at the start of the file, verified.
fn metadata_layer(path: &Path, signer: &MarkerSigner) -> Value {
    let mut head = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MARKER_SCAN_BYTES).read_to_end(&mut head));
    if read.is_err() {
        return Value::Null;
    }
    match marker::find_marker(&head) {
        Ok(Some(found)) => match found.verify(&signer.verifying_key()) {
            Ok(p) => json!({
                "present": true, "valid": true, "session_id": p.session_id,
                "video_id": p.video_id, "issued_at": p.issued_at,
            }),
            Err(e) => json!({
                "present": true, "valid": false, "reason": e.to_string(),
                "claimed_session_id": found.claimed().map(|p| p.session_id),
            }),
        },
        Ok(None) => Value::Null,
        Err(e) => json!({"present": true, "valid": false, "reason": e.to_string()}),
    }
}

/// Refuses a named title that was never packaged.
pub fn check_title(db: &Db, video: Option<&str>) -> Result<(), CliError> {
    if let Some(id) = video {
        videos::get(&mut *db.conn()?, id).map_err(|e| match e {
            DbError::NotFound(_) => CliError::input(format!("no packaged title has id {id}")),
            other => other.into(),
        })?;
    }
    Ok(())
}

/// The titles to compare the suspect with: the one named, or every packaged title.
fn reference_titles(
    config: &Config,
    db: &Db,
    video: Option<&str>,
) -> Result<Vec<ReferenceTitle>, CliError> {
    let rows = match video {
        Some(id) => vec![videos::get(&mut *db.conn()?, id).map_err(|e| match e {
            DbError::NotFound(_) => CliError::input(format!("no packaged title has id {id}")),
            other => other.into(),
        })?],
        None => videos::list(&mut *db.conn()?)?,
    };
    rows.iter()
        .map(|v| {
            ReferenceTitle::load(&v.id, config.layout().title(&v.storage_dir))
                .map_err(|e| CliError::Failure(e.into()))
        })
        .collect()
}

/// The sessions that were keyed for the title, and their codes over the unit indexes `units`.
fn candidates(
    db: &Db,
    secrets: &Secrets,
    video_id: &str,
    units: std::ops::Range<usize>,
) -> Result<(Vec<Candidate>, CodeBook, codes::CodeKey), CliError> {
    let mut conn = db.conn()?;
    let row = videos::get(&mut conn, video_id)?;
    let secret = sealing::open_video_secret(secrets.master_key(), video_id, &row.sealed_secret)
        .map_err(|e| {
            CliError::Failure(anyhow::anyhow!(
                "the secret of title {video_id} cannot be unsealed: {e}"
            ))
        })?;
    let mut names = std::collections::HashMap::new();
    let mut out = Vec::new();
    for s in sessions::list_for_video(&mut conn, video_id)?
        .into_iter()
        .filter(|s| s.keyed_at.is_some())
    {
        if !names.contains_key(&s.user_id) {
            let name = users::get(&mut conn, &s.user_id).map(|u| u.username)?;
            names.insert(s.user_id.clone(), name);
        }
        out.push(Candidate {
            user: names.get(&s.user_id).cloned().unwrap_or_default(),
            session_id: s.id,
            device_id: s.device_id,
        });
    }
    let ids: Vec<&str> = out.iter().map(|c| c.session_id.as_str()).collect();
    let key = codes::CodeKey::new(&secret);
    let book = CodeBook::derive(&key, &ids, units);
    Ok((out, book, key))
}

fn result_json(
    case_id: &str,
    extraction: Option<&Extraction>,
    matches: &[Match],
    verdict: &str,
    metadata: Value,
) -> Value {
    json!({
        "case_id": case_id,
        "verdict": verdict,
        "video_id": extraction.map(|e| e.video_id.clone()),
        "units_observed": extraction.map_or(0, |e| e.units_observed),
        "alignment": extraction.map(|e| serde_json::to_value(&e.alignment).unwrap_or(Value::Null)),
        "metadata_layer": metadata,
        "matches": matches,
        // Per unit of the title: > 0 looks like variant B, < 0 like A, null when not observed.
        "unit_values": extraction.map(|e| {
            e.soft
                .iter()
                .map(|&v| if v == 0.0 { Value::Null } else { json!(v) })
                .collect::<Vec<_>>()
        }),
    })
}

/// A suspect handed in: who, what file (already on disk, hashed), what they expect.
pub struct Submission<'a> {
    pub submitter: Submitter<'a>,
    pub file_name: &'a str,
    pub stored_path: &'a Path,
    pub size: u64,
    pub sha256: &'a str,
    pub video_id: Option<&'a str>,
    pub expected_watermark_hash: Option<&'a str>,
}

/// The audit trail's name for a submitter.
pub fn actor(submitter: &Submitter) -> String {
    format!("{}:{}", submitter.kind, submitter.id.unwrap_or("-"))
}

/// Records a case for a submission, in `status` (`queued` for a job, `running` for the CLI),
/// with its audit entry.
pub fn open_case(db: &Db, submission: &Submission, status: &str) -> Result<CaseRow, CliError> {
    let mut conn = db.conn()?;
    let case = cases::create(
        &mut conn,
        &NewCase {
            submitter_kind: submission.submitter.kind,
            submitter_id: submission.submitter.id,
            file_name: submission.file_name,
            file_size: submission.size as i64,
            file_sha256: submission.sha256,
            stored_path: &submission.stored_path.to_string_lossy(),
            video_id: submission.video_id,
            expected_watermark_hash: submission.expected_watermark_hash,
        },
        status,
    )?;
    let detail = json!({
        "file_name": submission.file_name, "size": submission.size,
        "sha256": submission.sha256, "video_id": submission.video_id,
        "expected_watermark_hash": submission.expected_watermark_hash,
    });
    audit::append(
        &mut conn,
        Some(&case.id),
        &actor(&submission.submitter),
        "suspect_submitted",
        &detail.to_string(),
    )?;
    Ok(case)
}

/// Whether the code of the best match hashes to what the submitter expected.
fn expected_hash_finding(
    expected: Option<&str>,
    best: Option<&Match>,
    key: Option<&codes::CodeKey>,
    units: u32,
) -> Value {
    let Some(expected) = expected else {
        return Value::Null;
    };
    let found = best
        .zip(key)
        .map(|(m, k)| codes::code_hash(&k.code(&m.session_id, units)));
    json!({
        "expected": expected,
        "best_match_code_hash": found,
        "equal": found.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(expected.trim())),
    })
}

/// Analyses the suspect of `case`, finishes the case (or marks it failed) and returns the
/// extract JSON. An `identified` verdict raises a `piracy_detected` security event tied to
/// the session, its user and device.
pub fn run_case(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    case: &CaseRow,
    actor: &str,
    progress: Progress,
) -> Result<Value, CliError> {
    let suspect = Path::new(&case.stored_path);
    let titles = reference_titles(config, db, case.video_id.as_deref())?;
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
            let _ = cases::fail(&mut conn, &case.id, &e.to_string());
            let detail = json!({"code": e.code(), "reason": e.to_string()});
            let _ = audit::append(
                &mut conn,
                Some(&case.id),
                actor,
                "analysis_failed",
                &detail.to_string(),
            );
            return Err(if e.is_input_error() {
                CliError::Input(e.into())
            } else {
                CliError::Failure(e.into())
            });
        }
    };
    let metadata = metadata_layer(
        suspect,
        &MarkerSigner::from_master_key(secrets.master_key()),
    );
    let (matches, verdict, key, compared) = match &extraction {
        None => (Vec::new(), "no_watermark", None, 0),
        Some(e) => {
            // Only the units the suspect shows are derived and scored.
            let observed = e.soft.iter().position(|&v| v != 0.0).unwrap_or(0)
                ..e.soft.iter().rposition(|&v| v != 0.0).map_or(0, |k| k + 1);
            let (cands, book, key) = candidates(db, secrets, &e.video_id, observed)?;
            let ranked = matching::rank(&e.soft, &cands, &book, MATCHES_KEPT);
            let verdict = matching::verdict(&ranked, config.analysis.false_positive_threshold);
            (ranked, verdict, Some(key), cands.len())
        }
    };
    let mut result = result_json(&case.id, extraction.as_ref(), &matches, verdict, metadata);
    result["sessions_compared"] = json!(compared);
    let units = extraction.as_ref().map_or(0, |e| e.soft.len() as u32);
    result["expected_watermark_hash"] = expected_hash_finding(
        case.expected_watermark_hash.as_deref(),
        matches.first(),
        key.as_ref(),
        units,
    );
    let ranked: Vec<NewMatch> = matches
        .iter()
        .map(|m| NewMatch {
            session_id: &m.session_id,
            score: m.score,
            false_positive_probability: m.false_positive_probability,
        })
        .collect();
    let mut conn = db.conn()?;
    cases::finish(
        &mut conn,
        &case.id,
        extraction.as_ref().map(|e| e.video_id.as_str()),
        verdict,
        &result.to_string(),
        &ranked,
    )?;
    let summary = json!({
        "verdict": verdict,
        "video_id": extraction.as_ref().map(|e| e.video_id.clone()),
        "best_match": matches.first().map(|m| json!({
            "session_id": m.session_id, "score": m.score,
            "false_positive_probability": m.false_positive_probability,
        })),
    });
    audit::append(
        &mut conn,
        Some(&case.id),
        actor,
        "analysis_finished",
        &summary.to_string(),
    )?;
    if verdict == "identified" {
        if let Some(best) = matches.first() {
            raise_detection(&mut conn, &case.id, best)?;
        }
    }
    Ok(result)
}

/// The piracy detection event of an identified case.
fn raise_detection(conn: &mut DbConnection, case_id: &str, best: &Match) -> Result<(), CliError> {
    let session = sessions::get(conn, &best.session_id)?;
    let detail = json!({
        "case_id": case_id,
        "score": best.score,
        "false_positive_probability": best.false_positive_probability,
    })
    .to_string();
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
        },
    )?;
    Ok(())
}

/// Analyses `suspect` at once (the CLI): records the case and returns the extract JSON.
pub fn analyse(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    suspect: &Path,
    video: Option<&str>,
    submitter: Submitter,
) -> Result<Value, CliError> {
    let (size, sha256) = sha256_file(suspect)?;
    let file_name = suspect
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stored: PathBuf = std::fs::canonicalize(suspect).unwrap_or_else(|_| suspect.to_path_buf());
    // An unknown title is the submitter's mistake, before any case is recorded.
    check_title(db, video)?;
    let actor = actor(&submitter);
    let case = open_case(
        db,
        &Submission {
            submitter,
            file_name: &file_name,
            stored_path: &stored,
            size,
            sha256: &sha256,
            video_id: video,
            expected_watermark_hash: None,
        },
        "running",
    )?;
    run_case(config, db, secrets, &case, &actor, &|_| {})
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
        }
    }

    #[test]
    fn the_expected_hash_is_compared_with_the_best_matchs_code() {
        let key = codes::CodeKey::new(&[3u8; 32]);
        let right = codes::code_hash(&key.code("s1", 40));
        let m = best("s1");
        let found = expected_hash_finding(Some(&right.to_uppercase()), Some(&m), Some(&key), 40);
        assert_eq!(found["equal"], true);
        assert_eq!(found["best_match_code_hash"], right.as_str());
        let other = expected_hash_finding(Some(&"0".repeat(64)), Some(&m), Some(&key), 40);
        assert_eq!(other["equal"], false);
        let none = expected_hash_finding(Some(&right), None, Some(&key), 40);
        assert_eq!(none["equal"], false);
        assert!(none["best_match_code_hash"].is_null());
        assert!(expected_hash_finding(None, Some(&m), Some(&key), 40).is_null());
    }
}
