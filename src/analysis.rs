//! The leak analysis of one suspect file, as a recorded case: the pipeline behind
//! `leaktrace extract` (and the upload API's jobs). Media work is `forensics::extract`;
//! this module brings the titles, sessions and secrets from the database and writes the case.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use forensics::extract::{self, Extraction, ReferenceTitle};
use forensics::matching::{self, Candidate, CodeBook, Match};
use forensics::media::decode::Limits;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::codes;
use shared::config::Config;
use shared::db::repo::cases::{self, NewCase, NewMatch};
use shared::db::repo::{sessions, users, videos};
use shared::db::{Db, DbError};
use shared::marker::{self, MarkerSigner};
use shared::sealing;
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

fn limits(config: &Config) -> Limits {
    Limits {
        max_input_bytes: config.limits.max_input_bytes,
        max_duration_seconds: config.limits.max_media_seconds,
        max_wall_time: Duration::from_secs(config.limits.max_processing_seconds),
    }
}

fn sha256_file(path: &Path) -> Result<(u64, String), CliError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
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
            ReferenceTitle::load(&v.id, &config.data_dir.join(&v.storage_dir))
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
) -> Result<(Vec<Candidate>, CodeBook), CliError> {
    let mut conn = db.conn()?;
    let row = videos::get(&mut conn, video_id)?;
    let secret: [u8; 32] = sealing::open(
        secrets.master_key(),
        &sealing::video_secret_aad(video_id),
        &row.sealed_secret,
    )
    .ok()
    .and_then(|v| v.try_into().ok())
    .ok_or_else(|| {
        CliError::Failure(anyhow::anyhow!(
            "the secret of title {video_id} cannot be unsealed"
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
    let book = CodeBook::derive(&codes::CodeKey::new(&secret), &ids, units);
    Ok((out, book))
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

/// Analyses `suspect`, records the case and returns the extract JSON.
pub fn analyse(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    suspect: &Path,
    video: Option<&str>,
    submitter: Submitter,
) -> Result<Value, CliError> {
    let (size, sha256) = sha256_file(suspect)?;
    let titles = reference_titles(config, db, video)?;
    let file_name = suspect
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stored: PathBuf = std::fs::canonicalize(suspect).unwrap_or_else(|_| suspect.to_path_buf());
    let case = cases::create(
        &mut *db.conn()?,
        &NewCase {
            submitter_kind: submitter.kind,
            submitter_id: submitter.id,
            file_name: &file_name,
            file_size: size as i64,
            file_sha256: &sha256,
            stored_path: &stored.to_string_lossy(),
            video_id: video,
            expected_watermark_hash: None,
        },
        "running",
    )?;
    let work = config.data_dir.join("work").join(&case.id);
    let outcome = extract::extract(suspect, &titles, &work, &limits(config));
    let _ = std::fs::remove_dir_all(&work);
    let extraction = match outcome {
        Ok(e) => e,
        Err(e) => {
            let _ = cases::fail(&mut *db.conn()?, &case.id, &e.to_string());
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
    let (matches, verdict) = match &extraction {
        None => (Vec::new(), "no_watermark"),
        Some(e) => {
            // Only the units the suspect shows are derived and scored.
            let observed = e.soft.iter().position(|&v| v != 0.0).unwrap_or(0)
                ..e.soft.iter().rposition(|&v| v != 0.0).map_or(0, |k| k + 1);
            let (cands, book) = candidates(db, secrets, &e.video_id, observed)?;
            let ranked = matching::rank(&e.soft, &cands, &book, MATCHES_KEPT);
            let verdict = matching::verdict(&ranked, config.analysis.false_positive_threshold);
            (ranked, verdict)
        }
    };
    let result = result_json(&case.id, extraction.as_ref(), &matches, verdict, metadata);
    let ranked: Vec<NewMatch> = matches
        .iter()
        .map(|m| NewMatch {
            session_id: &m.session_id,
            score: m.score,
            false_positive_probability: m.false_positive_probability,
        })
        .collect();
    cases::finish(
        &mut *db.conn()?,
        &case.id,
        extraction.as_ref().map(|e| e.video_id.as_str()),
        verdict,
        &result.to_string(),
        &ranked,
    )?;
    Ok(result)
}
