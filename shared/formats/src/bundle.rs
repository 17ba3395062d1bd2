//! The evidence bundle of a case: a zip archive that a court or an opposing expert can check
//! offline, with no access to the deployment. It holds the signed report, the case's audit
//! entries, the deployment's CA certificate, optionally the suspect file, and a manifest that
//! names every other file with its size and SHA-256, signed (detached CMS, the report-signing
//! certificate) so that nothing in the bundle can be changed, added or removed unnoticed.

use serde::{Deserialize, Serialize};

/// The manifest's `format`.
pub const FORMAT: &str = "leaktrace-evidence-bundle/1";
/// The manifest, and its detached CMS signature (DER).
pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_SIGNATURE: &str = "manifest.json.p7s";
/// The signed PDF report.
pub const REPORT: &str = "report.pdf";
/// The CA certificate (PEM) that issued the signing certificate.
pub const CA: &str = "ca.pem";
/// The case's audit entries ([`AuditExport`]).
pub const AUDIT: &str = "audit.json";
/// Folder of the suspect file, when the bundle carries it.
pub const SUSPECT_DIR: &str = "suspect/";
/// How times are written in [`AuditRecord::time`] (what the entry hash covers).
pub const AUDIT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub case_id: String,
    /// When the bundle was made (RFC 3339, UTC; the server's clock).
    pub created_at: String,
    /// The deployment that made it (`reports.organisation`).
    pub organisation: String,
    pub software: String,
    pub suspect: SuspectFacts,
    /// The report in the bundle: its id and SHA-256 as the deployment stored it.
    pub report_id: String,
    /// The audit trail's head hash when the bundle was made.
    pub audit_head: String,
    /// Every file of the bundle but the manifest and its signature.
    pub files: Vec<FileEntry>,
}

/// The suspect file as it was received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspectFacts {
    pub file_name: String,
    pub bytes: u64,
    pub sha256: String,
    /// The file itself is in the bundle (under [`SUSPECT_DIR`]).
    pub included: bool,
    /// Why it is not, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_because: Option<String>,
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `audit.json`: the case's entries of the hash-chained audit trail, and the state of the
/// whole chain when the bundle was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExport {
    pub chain: ChainState,
    pub entries: Vec<AuditRecord>,
}

/// The whole chain as the deployment checked it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainState {
    pub intact: bool,
    /// Entries in the chain (when intact).
    pub entries: u64,
    /// The last entry's hash (when intact).
    pub head: String,
    /// Where it breaks, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

/// One audit entry, with every field its hash covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: i64,
    pub case_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub detail: String,
    /// UTC, [`AUDIT_TIME_FORMAT`].
    pub time: String,
    pub prev_hash: String,
    pub entry_hash: String,
}
