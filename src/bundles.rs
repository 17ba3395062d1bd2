//! Evidence bundles ([`formats::bundle`]): made for a finished case
//! (`GET /api/cases/{id}/bundle.zip`, `leaktrace bundle`) and checked offline, with nothing
//! but the bundle and, ideally, the deployment's CA certificate obtained elsewhere
//! (`leaktrace verify-bundle`).

use std::io::{Read, Seek, Write};
use std::path::Path;

use formats::bundle::{
    self, AuditExport, AuditRecord, ChainState, FileEntry, Manifest, SuspectFacts,
};
use formats::digest::HashingWriter;
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::config::Config;
use shared::db::repo::audit::{self, AuditEntry, Verification};
use shared::db::repo::cases;
use shared::db::Db;
use shared::secrets::Secrets;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::error::AppError;
use crate::jobs::detail_json;
use crate::timestamping;

/// Largest manifest, signature, CA certificate and audit export read by the verifier (the
/// report and the suspect are hashed as they are read, never held).
const MAX_SMALL_FILE: u64 = 16 << 20;

/// The detail of a `bundle_created` audit entry.
#[derive(Serialize)]
struct CreatedDetail<'a> {
    report_id: &'a str,
    manifest_sha256: &'a str,
    suspect_included: bool,
}

/// What [`make`] wrote.
pub struct Made {
    pub manifest: Manifest,
}

fn zip_failed(e: impl std::fmt::Display) -> AppError {
    AppError::Server(format!("cannot write the evidence bundle: {e}"))
}

/// A name for the suspect inside the bundle: its received name reduced to safe characters.
fn suspect_entry_name(received: &str) -> String {
    let base = received.rsplit(['/', '\\']).next().unwrap_or_default();
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let safe = safe.trim_start_matches('.');
    format!(
        "{}{}",
        bundle::SUSPECT_DIR,
        if safe.is_empty() { "suspect" } else { safe }
    )
}

/// Writes the evidence bundle of finished case `case_id` into `out` (the latest stored
/// report, or one issued now), and audits it (`bundle_created`).
pub fn make(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    storage: &storage::Storage,
    case_id: &str,
    actor: &str,
    out: &mut (impl Write + Seek),
) -> Result<Made, AppError> {
    let (report_row, report) =
        crate::reports::stored_or_issue(config, db, secrets, storage, case_id, actor)?;
    let case = cases::get(&mut *db.conn()?, case_id)?;
    let ca = crate::reports::ca_pem(config, db, secrets)?;
    let signer = crate::reports::signer(config, db, secrets)?;

    let mut conn = db.conn()?;
    let entries = audit::for_case(&mut conn, case_id)?;
    let chain = match audit::verify(&mut conn)? {
        Verification::Intact { entries, head } => ChainState {
            intact: true,
            entries,
            head,
            broken: None,
        },
        Verification::Broken { seq, reason } => ChainState {
            intact: false,
            entries: 0,
            head: String::new(),
            broken: Some(format!("entry {seq}: {reason}")),
        },
    };
    drop(conn);
    let export = AuditExport {
        chain,
        entries: entries
            .iter()
            .map(|e| AuditRecord {
                seq: e.seq,
                case_id: e.case_id.clone(),
                actor: e.actor.clone(),
                action: e.action.clone(),
                detail: e.detail.clone(),
                time: e.created_at.format(bundle::AUDIT_TIME_FORMAT).to_string(),
                prev_hash: e.prev_hash.clone(),
                entry_hash: e.entry_hash.clone(),
            })
            .collect(),
    };
    let audit_json = serde_json::to_vec_pretty(&export).map_err(zip_failed)?;

    let mut zip = ZipWriter::new(out);
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let mut files = Vec::new();
    let mut add = |zip: &mut ZipWriter<_>, name: &str, bytes: &[u8], options| {
        zip.start_file(name, options).map_err(zip_failed)?;
        zip.write_all(bytes).map_err(zip_failed)?;
        files.push(FileEntry {
            name: name.to_string(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        });
        Ok::<_, AppError>(())
    };
    add(&mut zip, bundle::REPORT, &report, stored)?;
    add(&mut zip, bundle::CA, ca.as_bytes(), deflated)?;
    add(&mut zip, bundle::AUDIT, &audit_json, deflated)?;

    // The suspect, as received, when policy allows; hashed as it is copied, and refused if it
    // no longer is what was received.
    let omitted = |why: &str| (false, Some(why.to_string()));
    let (included, omitted_because) = if !config.reports.bundle_suspect {
        omitted(
            "the deployment's policy (reports.bundle_suspect) keeps suspect files out of bundles",
        )
    } else {
        match storage.stored_here(Path::new(&case.stored_path), "uploads") {
            Ok(path) if path.is_file() => {
                let name = suspect_entry_name(&case.file_name);
                let mut file =
                    std::fs::File::open(&path).map_err(|source| AppError::Unreadable {
                        path: path.clone(),
                        source,
                    })?;
                let options = stored.large_file(case.file_size >= i64::from(u32::MAX));
                zip.start_file(name.as_str(), options).map_err(zip_failed)?;
                let mut hashing = HashingWriter::new(&mut zip);
                std::io::copy(&mut file, &mut hashing).map_err(zip_failed)?;
                let (_, bytes, sha256) = hashing.finish().map_err(zip_failed)?;
                if !sha256.eq_ignore_ascii_case(&case.file_sha256) {
                    return Err(AppError::SuspectChanged {
                        expected: case.file_sha256.clone(),
                        found: sha256,
                    });
                }
                files.push(FileEntry {
                    name,
                    bytes,
                    sha256,
                });
                (true, None)
            }
            _ => omitted("the stored suspect file is no longer available"),
        }
    };

    let manifest = Manifest {
        format: bundle::FORMAT.to_string(),
        case_id: case.id.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        organisation: config.reports.organisation.trim().to_string(),
        software: format!("leaktrace {}", env!("CARGO_PKG_VERSION")),
        suspect: SuspectFacts {
            file_name: case.file_name.clone(),
            bytes: u64::try_from(case.file_size).unwrap_or(0),
            sha256: case.file_sha256.clone(),
            included,
            omitted_because,
        },
        report_id: report_row.id.clone(),
        audit_head: export.chain.head.clone(),
        files,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(zip_failed)?;
    let tsa = timestamping::configured(config)?;
    let signature = signer.sign_detached(&manifest_json, timestamping::as_authority(&tsa))?;
    zip.start_file(bundle::MANIFEST, deflated)
        .map_err(zip_failed)?;
    zip.write_all(&manifest_json).map_err(zip_failed)?;
    zip.start_file(bundle::MANIFEST_SIGNATURE, stored)
        .map_err(zip_failed)?;
    zip.write_all(&signature).map_err(zip_failed)?;
    zip.finish().map_err(zip_failed)?;

    let manifest_sha256 = hex::encode(Sha256::digest(&manifest_json));
    audit::append(
        &mut *db.conn()?,
        Some(case_id),
        actor,
        "bundle_created",
        &detail_json(&CreatedDetail {
            report_id: &report_row.id,
            manifest_sha256: &manifest_sha256,
            suspect_included: included,
        }),
    )?;
    Ok(Made { manifest })
}

/// One check of a bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Everything [`verify`] checked.
#[derive(Debug, Clone, Serialize)]
pub struct BundleCheck {
    pub case_id: Option<String>,
    /// SHA-256 of the CA certificate the signatures were checked against.
    pub ca_sha256: Option<String>,
    /// The CA came from the caller (`--ca`), not from the bundle itself.
    pub ca_pinned: bool,
    pub checks: Vec<Check>,
}

impl BundleCheck {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    fn record(&mut self, check: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            check,
            ok,
            detail: detail.into(),
        });
        ok
    }
}

/// Reads a small member of the archive whole (at most [`MAX_SMALL_FILE`] bytes).
fn small_member<R: Read + Seek>(archive: &mut ZipArchive<R>, name: &str) -> Option<Vec<u8>> {
    let member = archive.by_name(name).ok()?;
    let mut bytes = Vec::new();
    member
        .take(MAX_SMALL_FILE + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_SMALL_FILE).then_some(bytes)
}

/// The archive is one plain zip: nothing before its first entry, entries back to back up
/// to the central directory (data descriptors allowed), exactly as many entries recorded as
/// there are distinct names (a name given twice is one a reader could take either copy of),
/// and nothing after the end record. Why not, when it is not.
fn plain_zip<R: Read + Seek>(archive: &mut ZipArchive<R>, file: &Path) -> Result<(), String> {
    if archive.offset() != 0 {
        return Err("data precedes the archive".into());
    }
    let mut spans = Vec::new();
    for i in 0..archive.len() {
        let member = archive.by_index_raw(i).map_err(|e| e.to_string())?;
        spans.push((
            member.header_start(),
            member.data_start(),
            member.compressed_size(),
        ));
    }
    spans.sort_unstable();
    let mut expected = 0u64;
    for (header, data, size) in spans {
        // After the previous entry's data: nothing, or its data descriptor.
        if !matches!(header.checked_sub(expected), Some(0 | 12 | 16 | 20 | 24)) {
            return Err("the archive holds bytes outside its listed entries".into());
        }
        expected = data.saturating_add(size);
    }
    if !matches!(
        archive.central_directory_start().checked_sub(expected),
        Some(0 | 12 | 16 | 20 | 24)
    ) {
        return Err("the archive holds bytes outside its listed entries".into());
    }
    let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
    let recorded = recorded_entries(&bytes).ok_or("the archive's end record is unreadable")?;
    if recorded != archive.len() as u64 {
        return Err(format!(
            "the archive records {recorded} entries for {} distinct names",
            archive.len()
        ));
    }
    Ok(())
}

/// The number of entries a zip's end of central directory record states (zip64 included),
/// when the record ends the file exactly (its comment included).
fn recorded_entries(zip: &[u8]) -> Option<u64> {
    let u16_at = |at: usize| {
        zip.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let tail = zip.len().checked_sub(22)?;
    let end = (tail.saturating_sub(0xFFFF)..=tail)
        .rev()
        .find(|&at| zip[at..].starts_with(b"PK\x05\x06"))?;
    if end + 22 + usize::from(u16_at(end + 20)?) != zip.len() {
        return None;
    }
    let count = u16_at(end + 10)?;
    if count != 0xFFFF {
        return Some(u64::from(count));
    }
    let locator = end.checked_sub(20)?;
    if !zip[locator..].starts_with(b"PK\x06\x07") {
        return None;
    }
    let u64_at = |at: usize| {
        zip.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let record = usize::try_from(u64_at(locator + 8)?).ok()?;
    zip.get(record..)?
        .starts_with(b"PK\x06\x06")
        .then(|| u64_at(record + 32))
        .flatten()
}

/// Checks a bundle offline: its manifest's signature (against `pinned_ca` when given, else
/// the CA certificate the bundle carries), that its files are exactly those the manifest
/// names with their sizes and SHA-256, the report's signature and timestamp, every audit
/// entry's hash and links, and that the trail recorded this report and this suspect.
pub fn verify(
    path: &Path,
    pinned_ca: Option<&str>,
    tsa_anchors: Option<&[Vec<u8>]>,
) -> Result<BundleCheck, AppError> {
    let file = std::fs::File::open(path).map_err(|source| AppError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| AppError::Usage(format!("not an evidence bundle (zip): {e}")))?;
    let mut out = BundleCheck {
        case_id: None,
        ca_sha256: None,
        ca_pinned: false,
        checks: Vec::new(),
    };
    let plain = plain_zip(&mut archive, path);
    let structure_ok = out.record(
        "archive",
        plain.is_ok(),
        plain
            .err()
            .unwrap_or_else(|| "one plain zip archive, every byte in a listed entry".into()),
    );
    if !structure_ok {
        return Ok(out);
    }

    // The CA: the caller's (which the bundle's must be), else the bundle's own; either way
    // exactly one certificate, fingerprinted as parsed.
    let bundled_ca = small_member(&mut archive, bundle::CA)
        .map(|bytes| report::signing::single_certificate(&String::from_utf8_lossy(&bytes)));
    let ca = match (pinned_ca, bundled_ca) {
        (Some(pinned), bundled) => {
            let (pem, sha256) = report::signing::single_certificate(pinned)
                .map_err(|e| AppError::Usage(format!("--ca: {e}")))?;
            let same = matches!(&bundled, Some(Ok((_, b))) if *b == sha256);
            out.ca_pinned = true;
            out.record(
                "ca",
                same,
                if same {
                    "the bundle's CA certificate is the one given"
                } else {
                    "the bundle's CA certificate is not the one given"
                },
            );
            out.ca_sha256 = Some(sha256);
            pem
        }
        (None, Some(Ok((pem, sha256)))) => {
            out.record(
                "ca",
                true,
                "checked against the CA certificate in the bundle only: compare its SHA-256 \
                 with the deployment's published one, or pass --ca",
            );
            out.ca_sha256 = Some(sha256);
            pem
        }
        (None, Some(Err(e))) => {
            out.record("ca", false, e.to_string());
            return Ok(out);
        }
        (None, None) => {
            out.record("ca", false, "the bundle has no CA certificate");
            return Ok(out);
        }
    };

    // The manifest and its signature.
    let (Some(manifest_json), Some(signature)) = (
        small_member(&mut archive, bundle::MANIFEST),
        small_member(&mut archive, bundle::MANIFEST_SIGNATURE),
    ) else {
        out.record(
            "manifest",
            false,
            "the manifest or its signature is missing",
        );
        return Ok(out);
    };
    let signed = match report::signing::check_detached(&manifest_json, &signature, &ca) {
        Ok(c) => {
            let (stamp_ok, stamp) = stamp_note(c.timestamp.as_ref(), tsa_anchors, "");
            let ok = c.valid() && c.issued_by_ca && stamp_ok;
            out.record(
                "manifest_signature",
                ok,
                format!(
                    "signed by {}{}{}",
                    c.signer,
                    if c.issued_by_ca {
                        ""
                    } else {
                        ", NOT issued by the CA"
                    },
                    stamp
                ),
            )
        }
        Err(e) => out.record("manifest_signature", false, e.to_string()),
    };
    if !signed {
        // Nothing an unsigned manifest says is worth reading the archive for.
        return Ok(out);
    }
    let manifest: Manifest = match serde_json::from_slice(&manifest_json) {
        Ok(m) => m,
        Err(e) => {
            out.record("manifest", false, format!("unreadable: {e}"));
            return Ok(out);
        }
    };
    out.case_id = Some(manifest.case_id.clone());
    out.record(
        "manifest_format",
        manifest.format == bundle::FORMAT,
        manifest.format.clone(),
    );

    // Exactly the files named, each with its size and SHA-256.
    let mut listed: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    listed.extend([bundle::MANIFEST, bundle::MANIFEST_SIGNATURE]);
    listed.sort_unstable();
    let mut present: Vec<String> = archive.file_names().map(str::to_string).collect();
    present.sort_unstable();
    // (A name given twice in the archive is refused too: only one copy could be checked.)
    let same_set = archive.len() == present.len()
        && present
            .iter()
            .map(String::as_str)
            .eq(listed.iter().copied());
    let listed_ok = out.record(
        "files_listed",
        same_set,
        if same_set {
            format!("{} files, as the manifest lists", present.len())
        } else {
            format!("the bundle holds {present:?}, the manifest lists {listed:?}")
        },
    );
    if !listed_ok {
        return Ok(out);
    }
    for entry in &manifest.files {
        let found = archive.by_name(&entry.name).ok().map(|member| {
            let cap = member.size().min(entry.bytes).saturating_add(1);
            let mut hashing = HashingWriter::new(std::io::sink());
            let copied = std::io::copy(&mut member.take(cap), &mut hashing);
            copied.ok().and_then(|_| hashing.finish().ok())
        });
        let (ok, detail) = match found.flatten() {
            Some((_, bytes, sha256)) if bytes == entry.bytes && sha256 == entry.sha256 => (
                true,
                format!("{} ({bytes} bytes, SHA-256 {sha256})", entry.name),
            ),
            Some((_, bytes, sha256)) => (
                false,
                format!(
                    "{}: {bytes} bytes, SHA-256 {sha256}; the manifest says {} bytes, {}",
                    entry.name, entry.bytes, entry.sha256
                ),
            ),
            None => (false, format!("{}: missing or unreadable", entry.name)),
        };
        out.record("file_hash", ok, detail);
    }

    // The report: its own signature, and the trail's record of it.
    let report_sha256 = manifest
        .files
        .iter()
        .find(|f| f.name == bundle::REPORT)
        .map(|f| f.sha256.clone());
    match archive.by_name(bundle::REPORT).ok().and_then(|m| {
        let mut bytes = Vec::new();
        m.take(MAX_SMALL_FILE * 4)
            .read_to_end(&mut bytes)
            .ok()
            .map(|_| bytes)
    }) {
        Some(pdf) => match report::signing::check(&pdf, &ca) {
            Ok(c) => {
                let (stamp_ok, stamp) = stamp_note(
                    c.timestamp.as_ref(),
                    tsa_anchors,
                    "; no timestamp (its times are the server's claim)",
                );
                out.record(
                    "report_signature",
                    c.valid() && c.issued_by_ca && stamp_ok,
                    format!("signed by {}{stamp}", c.signer),
                );
            }
            Err(e) => {
                out.record("report_signature", false, e.to_string());
            }
        },
        None => {
            out.record("report_signature", false, "the bundle has no report");
        }
    }

    // The audit entries: each one's hash, the links between consecutive ones, and what
    // they recorded about this report and this suspect.
    let export: Option<AuditExport> = small_member(&mut archive, bundle::AUDIT)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let Some(export) = export else {
        out.record("audit", false, "the audit export is missing or unreadable");
        return Ok(out);
    };
    let mut bad = Vec::new();
    for (i, r) in export.entries.iter().enumerate() {
        let time = chrono::NaiveDateTime::parse_from_str(&r.time, bundle::AUDIT_TIME_FORMAT);
        let entry = time.map(|created_at| AuditEntry {
            seq: r.seq,
            case_id: r.case_id.clone(),
            actor: r.actor.clone(),
            action: r.action.clone(),
            detail: r.detail.clone(),
            prev_hash: r.prev_hash.clone(),
            entry_hash: r.entry_hash.clone(),
            created_at,
        });
        if !entry.is_ok_and(|e| e.expected_hash() == r.entry_hash) {
            bad.push(format!(
                "entry {}: its content does not match its hash",
                r.seq
            ));
        }
        if r.case_id.as_deref() != Some(manifest.case_id.as_str()) {
            bad.push(format!("entry {}: of another case", r.seq));
        }
        if let Some(next) = export.entries.get(i + 1) {
            if next.seq <= r.seq {
                bad.push(format!("entry {}: out of order", next.seq));
            } else if next.seq == r.seq + 1 && next.prev_hash != r.entry_hash {
                bad.push(format!(
                    "entry {}: does not follow entry {}",
                    next.seq, r.seq
                ));
            }
        }
    }
    out.record(
        "audit_entries",
        bad.is_empty() && !export.entries.is_empty(),
        if bad.is_empty() {
            format!(
                "{} entries of the case, each matching its hash; chain head when bundled {}",
                export.entries.len(),
                if export.chain.intact {
                    export.chain.head.clone()
                } else {
                    format!(
                        "BROKEN ({})",
                        export.chain.broken.clone().unwrap_or_default()
                    )
                }
            )
        } else {
            bad.join("; ")
        },
    );
    out.record(
        "audit_chain",
        export.chain.intact && export.chain.head == manifest.audit_head,
        if export.chain.intact {
            "attested by the deployment (not checkable offline): its whole chain was intact \
             when the bundle was made; `leaktrace audit verify` there, or a head hash kept \
             elsewhere, confirms it, and only the whole chain shows an entry removed"
        } else {
            "the deployment's chain was broken when the bundle was made"
        },
    );
    let details = |action: &str| -> Vec<serde_json::Value> {
        export
            .entries
            .iter()
            .filter(|e| e.action == action)
            .filter_map(|e| serde_json::from_str(&e.detail).ok())
            .collect()
    };
    let report_recorded = report_sha256.as_deref().is_some_and(|sha| {
        details("report_issued")
            .iter()
            .any(|d| d["sha256"].as_str() == Some(sha))
    });
    out.record(
        "report_recorded",
        report_recorded,
        if report_recorded {
            "the trail records this report's issue"
        } else {
            "no report_issued entry names this report's SHA-256"
        },
    );
    let suspect_recorded = details("suspect_submitted")
        .iter()
        .any(|d| d["sha256"].as_str() == Some(manifest.suspect.sha256.as_str()));
    out.record(
        "suspect_recorded",
        suspect_recorded,
        format!(
            "{} ({} bytes, SHA-256 {}){}; {}",
            manifest.suspect.file_name,
            manifest.suspect.bytes,
            manifest.suspect.sha256,
            if suspect_recorded {
                ", as recorded at submission"
            } else {
                ", which no suspect_submitted entry records"
            },
            if manifest.suspect.included {
                "the file is in the bundle".to_string()
            } else {
                format!(
                    "the file is not in the bundle: {}",
                    manifest.suspect.omitted_because.clone().unwrap_or_default()
                )
            }
        ),
    );
    if manifest.suspect.included {
        let carried = manifest.files.iter().any(|f| {
            f.name.starts_with(bundle::SUSPECT_DIR) && f.sha256 == manifest.suspect.sha256
        });
        out.record(
            "suspect_file",
            carried,
            if carried {
                "the bundled suspect file has the recorded SHA-256"
            } else {
                "the bundled suspect file does not have the recorded SHA-256"
            },
        );
    }
    Ok(out)
}

/// What a signature's timestamp adds to its check: whether it holds, and how to say it. With
/// the authority's certificate given (`anchors`), a timestamp must be signed under it;
/// without, its authority is shown by fingerprint, not checked.
fn stamp_note(
    stamp: Option<&report::timestamp::Stamp>,
    anchors: Option<&[Vec<u8>]>,
    none: &str,
) -> (bool, String) {
    let Some(s) = stamp else {
        return (true, none.to_string());
    };
    if !s.valid() {
        return (
            false,
            format!("; its timestamp is INVALID ({})", s.authority),
        );
    }
    match anchors {
        Some(anchors) if s.trusted_by(anchors) => (
            true,
            format!(
                "; timestamped {} by {} (the authority given)",
                s.time, s.authority
            ),
        ),
        Some(_) => (
            false,
            format!(
                "; timestamped by {} (certificate SHA-256 {}), NOT the authority given",
                s.authority, s.authority_sha256
            ),
        ),
        None => (
            true,
            format!(
                "; timestamped {} by {}, authority not checked (certificate SHA-256 {}): \
                 pass --tsa-cert",
                s.time, s.authority, s.authority_sha256
            ),
        ),
    }
}

/// The checks as text, one line each, and the outcome.
pub fn render(c: &BundleCheck) -> String {
    let mut out = String::new();
    if let Some(case) = &c.case_id {
        out.push_str(&format!("evidence bundle of case {case}\n"));
    }
    if let Some(sha) = &c.ca_sha256 {
        out.push_str(&format!(
            "CA certificate SHA-256 {sha} ({})\n",
            if c.ca_pinned {
                "given with --ca"
            } else {
                "from the bundle"
            }
        ));
    }
    for check in &c.checks {
        out.push_str(&format!(
            "{} {:<18} {}\n",
            if check.ok { "ok  " } else { "FAIL" },
            check.check,
            check.detail
        ));
    }
    out.push_str(if c.passed() {
        "the bundle is intact and signed\n"
    } else {
        "the bundle does NOT verify\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspect_names_stay_inside_the_suspect_folder() {
        assert_eq!(suspect_entry_name("leak.mp4"), "suspect/leak.mp4");
        assert_eq!(suspect_entry_name("../../etc/passwd"), "suspect/passwd");
        assert_eq!(suspect_entry_name("C:\\x\\..\\y z.mkv"), "suspect/y_z.mkv");
        assert_eq!(suspect_entry_name(".."), "suspect/suspect");
        assert_eq!(suspect_entry_name(""), "suspect/suspect");
        assert_eq!(suspect_entry_name(&"a".repeat(300)).len(), 8 + 100);
    }
}
