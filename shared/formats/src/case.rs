//! A case's result as stored and served: the extract JSON of `leaktrace extract --json` and
//! of `GET /api/cases/{id}/` (`result`). Written once by the analysis, read back by the
//! evidence report, the HTTP routes, the CLI and the tests; `docs/PROTOCOL.md` ("Extract
//! JSON") documents every field.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// What an analysis concludes.
    pub enum Verdict {
        /// The best match's false-positive probability is below the threshold: a session is
        /// named.
        Identified = "identified",
        /// The copy shows a packaged title but no session matches strongly enough.
        Inconclusive = "inconclusive",
        /// The copy matches no packaged title.
        NoWatermark = "no_watermark",
    }
}

crate::named_enum! {
    /// Where a case is.
    pub enum CaseStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

impl CaseStatus {
    /// Done or failed: nothing more happens to the case.
    pub fn is_finished(self) -> bool {
        matches!(self, CaseStatus::Done | CaseStatus::Failed)
    }
}

crate::named_enum! {
    /// Who submitted a suspect.
    pub enum SubmitterKind {
        /// A crawler, with its API key's id.
        ApiKey = "api_key",
        /// A signed-in analyst or admin, with the user's id.
        User = "user",
        /// `leaktrace extract` on the server itself.
        Cli = "cli",
    }
}

/// One candidate session, scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub session_id: String,
    pub user: String,
    pub device_id: String,
    /// z = sum_k s_k (2 b_k - 1) / sqrt(sum_k s_k^2) over the observed units.
    pub score: f64,
    /// The one-sided tail of `score` times the number of candidates, at most 1.
    pub false_positive_probability: f64,
    /// Share of observed units whose soft value has the sign of this session's bit.
    pub unit_agreement: f64,
}

/// How the suspect was mapped onto the title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    /// Title time = suspect time + offset.
    pub offset_seconds: f64,
    /// Mean correlation of matched thumbnails (1 = same pictures).
    pub time_score: f64,
    pub suspect_fps: f64,
    pub suspect_frames: u64,
    pub suspect_size: [u32; 2],
    /// The suspect's picture area without bars, as fractions of its frame.
    pub active_area: [f64; 4],
    /// The part of the title's frame the picture shows, as fractions of the title's frame.
    pub reference_crop: [f64; 4],
    /// The first and last unit the suspect covers.
    pub first_unit: u32,
    pub last_unit: u32,
}

/// The metadata layer: a session marker box found at the start of the suspect file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataLayer {
    /// Always true: an absent box is no metadata layer at all (`null`).
    pub present: bool,
    /// The signature verifies with this deployment's marker key.
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_id: Option<String>,
    /// Unix seconds when the marked init segment was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
    /// Why an invalid box is not relied on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The session an invalid box claims, when its payload is readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_session_id: Option<String>,
}

impl MetadataLayer {
    /// A box whose signature verifies, naming `session_id`.
    pub fn valid(session_id: String, video_id: String, issued_at: i64) -> Self {
        MetadataLayer {
            present: true,
            valid: true,
            session_id: Some(session_id),
            video_id: Some(video_id),
            issued_at: Some(issued_at),
            reason: None,
            claimed_session_id: None,
        }
    }

    /// A box that is there but not relied on.
    pub fn invalid(reason: String, claimed_session_id: Option<String>) -> Self {
        MetadataLayer {
            present: true,
            valid: false,
            session_id: None,
            video_id: None,
            issued_at: None,
            reason: Some(reason),
            claimed_session_id,
        }
    }
}

/// The submitter's expected code hash against the best match's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedHash {
    pub expected: String,
    pub best_match_code_hash: Option<String>,
    pub equal: bool,
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case_id: String,
    pub verdict: Verdict,
    /// The title the suspect shows, `None` for `no_watermark`.
    pub video_id: Option<String>,
    pub units_observed: u32,
    pub alignment: Option<Alignment>,
    pub metadata_layer: Option<MetadataLayer>,
    /// The best candidates, best first (at most five).
    pub matches: Vec<Match>,
    /// Per unit of the title: > 0 looks like variant B, < 0 like A, `None` when not observed.
    pub unit_values: Option<Vec<Option<f64>>>,
    /// Sessions scored (the Bonferroni factor).
    pub sessions_compared: usize,
    /// Upload API only: the submitter's expectation checked.
    pub expected_watermark_hash: Option<ExpectedHash>,
}

impl CaseResult {
    /// The best match, when there is one.
    pub fn best(&self) -> Option<&Match> {
        self.matches.first()
    }

    /// The matched session, when the verdict names one.
    pub fn identified(&self) -> Option<&Match> {
        self.best().filter(|_| self.verdict == Verdict::Identified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_json_shape_round_trips() {
        let result = CaseResult {
            case_id: "c1".into(),
            verdict: Verdict::Identified,
            video_id: Some("v1".into()),
            units_observed: 2,
            alignment: Some(Alignment {
                offset_seconds: 1.5,
                time_score: 0.98,
                suspect_fps: 25.0,
                suspect_frames: 50,
                suspect_size: [640, 360],
                active_area: [0.0, 0.0, 1.0, 1.0],
                reference_crop: [0.0, 0.0, 1.0, 1.0],
                first_unit: 2,
                last_unit: 3,
            }),
            metadata_layer: Some(MetadataLayer::invalid("altered".into(), None)),
            matches: vec![Match {
                session_id: "s1".into(),
                user: "u".into(),
                device_id: "d".into(),
                score: 9.0,
                false_positive_probability: 1e-12,
                unit_agreement: 1.0,
            }],
            unit_values: Some(vec![None, Some(0.5), Some(-0.25)]),
            sessions_compared: 3,
            expected_watermark_hash: None,
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["verdict"], "identified");
        assert_eq!(json["unit_values"], serde_json::json!([null, 0.5, -0.25]));
        assert_eq!(
            json["metadata_layer"],
            serde_json::json!({"present": true, "valid": false, "reason": "altered"})
        );
        assert!(json["expected_watermark_hash"].is_null());
        assert_eq!(
            json["alignment"]["suspect_size"],
            serde_json::json!([640, 360])
        );
        let back: CaseResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, result);
        assert_eq!(back.identified().map(|m| m.session_id.as_str()), Some("s1"));
        assert_eq!(Verdict::NoWatermark.as_str(), "no_watermark");
        assert!(CaseStatus::Failed.is_finished() && !CaseStatus::Running.is_finished());
    }
}
