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
    /// The score of the pass that found the session: for an unbiased (`uniform-v1`) code in
    /// the first pass, z = sum_k s_k (2 b_k - 1) / sqrt(sum_k s_k^2) over the observed units;
    /// for a biased one, the symmetric score (mean 0, variance 1 for an innocent session).
    pub score: f64,
    /// The one-sided tail of `score` times the number of candidates, over the pass's share
    /// of the budget; at most 1.
    pub false_positive_probability: f64,
    /// Share of observed units whose soft value has the sign of this session's bit.
    pub unit_agreement: f64,
    /// Below the threshold: the session is named (several are when a copy was mixed from
    /// several sessions). Results stored before several could be named read false.
    #[serde(default)]
    pub accused: bool,
    /// The accusation pass that scored it: 1 over the whole copy, 2 and on over the units the
    /// sessions accused before could not have supplied.
    #[serde(default = "first_pass")]
    pub pass: u32,
    /// The opaque reference an API key is given for this session when it is accused (added
    /// when the case is read; never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

fn first_pass() -> u32 {
    1
}

crate::named_enum! {
    /// How a copy's picture is mirrored relative to the title.
    #[derive(Default)]
    pub enum Flip {
        #[default]
        None = "none",
        /// Left and right swapped.
        Horizontal = "horizontal",
        /// Upside down.
        Vertical = "vertical",
        /// Both (the same as a half turn).
        Both = "both",
    }
}

/// One straight piece of the time map: suspect times map linearly onto title times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimePiece {
    /// Start and end, in seconds of the suspect.
    pub suspect_seconds: [f64; 2],
    /// Where they fall in the title, in seconds.
    pub title_seconds: [f64; 2],
}

fn one() -> f64 {
    1.0
}

/// How the suspect was mapped onto the title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    /// Title time = offset + speed x suspect time, on the longest piece of the time map.
    pub offset_seconds: f64,
    /// Title seconds per suspect second on that piece (1: the copy runs at the title's speed;
    /// results stored before speed was measured read 1).
    #[serde(default = "one")]
    pub speed: f64,
    /// The whole time map, in suspect order: a new piece at each cut or change of speed;
    /// parts of the suspect in no piece are not in the title (inserted material).
    #[serde(default)]
    pub time_map: Vec<TimePiece>,
    /// Mean correlation of matched thumbnails (1 = same pictures).
    pub time_score: f64,
    pub suspect_fps: f64,
    pub suspect_frames: u64,
    pub suspect_size: [u32; 2],
    /// The suspect's picture area without bars, as fractions of its frame.
    pub active_area: [f64; 4],
    /// How that picture is mirrored relative to the title (results stored before mirrored
    /// copies were looked for read `none`).
    #[serde(default)]
    pub flip: Flip,
    /// The part of the title's frame the picture shows, as fractions of the title's frame
    /// (for a turned or off-axis copy, the smallest rectangle holding it).
    pub reference_crop: [f64; 4],
    /// Where the picture's corners fall in the title's frame, as fractions: top-left,
    /// top-right, bottom-left, bottom-right (a turned copy's corners are not a rectangle's).
    /// Results stored before corners were measured read none.
    #[serde(default)]
    pub reference_corners: Option<[[f64; 2]; 4]>,
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
    #[serde(default)]
    pub units_observed: u32,
    /// How the title's session codes are built (results stored before there was a choice
    /// read `uniform-v1`).
    #[serde(default)]
    pub code: crate::codes::CodeScheme,
    pub alignment: Option<Alignment>,
    pub metadata_layer: Option<MetadataLayer>,
    /// The best candidates, best first (at most five).
    #[serde(default)]
    pub matches: Vec<Match>,
    /// Per unit of the title: > 0 looks like variant B, < 0 like A, `None` when not observed.
    pub unit_values: Option<Vec<Option<f64>>>,
    /// Sessions scored (the Bonferroni factor; results stored before it was recorded read 0:
    /// see [`CaseResult::sessions_scored`]).
    #[serde(default)]
    pub sessions_compared: usize,
    /// Upload API only: the submitter's expectation checked.
    pub expected_watermark_hash: Option<ExpectedHash>,
}

/// What an API key (a crawler) is told of a case's result: the verdict and, per accused
/// session, an opaque reference and its false-positive probability. Never the candidates'
/// users or devices, nor anything of the sessions that were not accused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrawlerResult {
    pub case_id: String,
    pub verdict: Verdict,
    pub video_id: Option<String>,
    pub units_observed: u32,
    pub accused: Vec<AccusedReference>,
    /// When identified and the submitter sent `expected_watermark_hash`: whether the best
    /// match's code hashes to it.
    pub expected_watermark_hash_equal: Option<bool>,
}

/// One accused session as an API key sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccusedReference {
    pub reference: String,
    pub false_positive_probability: f64,
}

impl CaseResult {
    /// The result as an API key may see it, `reference` giving each accused session's opaque
    /// reference.
    pub fn for_crawler(&self, reference: impl Fn(&str) -> String) -> CrawlerResult {
        let identified = self.verdict == Verdict::Identified;
        CrawlerResult {
            case_id: self.case_id.clone(),
            verdict: self.verdict,
            video_id: self.video_id.clone(),
            units_observed: self.units_observed,
            accused: self
                .matches
                .iter()
                .filter(|m| m.accused && identified)
                .map(|m| AccusedReference {
                    reference: reference(&m.session_id),
                    false_positive_probability: m.false_positive_probability,
                })
                .collect(),
            expected_watermark_hash_equal: self
                .expected_watermark_hash
                .as_ref()
                .filter(|_| identified)
                .map(|e| e.equal),
        }
    }

    /// Each accused session's reference filled in with `reference` (for the analysts' view).
    pub fn with_references(mut self, reference: impl Fn(&str) -> String) -> CaseResult {
        let identified = self.verdict == Verdict::Identified;
        for m in self.matches.iter_mut().filter(|m| m.accused && identified) {
            m.reference = Some(reference(&m.session_id));
        }
        self
    }

    /// The best match, when there is one.
    pub fn best(&self) -> Option<&Match> {
        self.matches.first()
    }

    /// Sessions scored; for results stored before that was recorded, at least the matches
    /// kept.
    pub fn sessions_scored(&self) -> usize {
        self.sessions_compared.max(self.matches.len())
    }

    /// The matched session, when the verdict names one.
    pub fn identified(&self) -> Option<&Match> {
        self.best().filter(|_| self.verdict == Verdict::Identified)
    }

    /// Every session the verdict names: more than one when the copy was mixed from several
    /// sessions' copies. Results stored before several could be named: the identified one.
    pub fn accused(&self) -> Vec<&Match> {
        let named: Vec<&Match> = self.matches.iter().filter(|m| m.accused).collect();
        if named.is_empty() {
            self.identified().into_iter().collect()
        } else {
            named
        }
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
            code: crate::codes::CodeScheme::Uniform,
            alignment: Some(Alignment {
                offset_seconds: 1.5,
                speed: 1.0,
                time_map: vec![TimePiece {
                    suspect_seconds: [0.0, 2.0],
                    title_seconds: [1.5, 3.5],
                }],
                time_score: 0.98,
                suspect_fps: 25.0,
                suspect_frames: 50,
                suspect_size: [640, 360],
                active_area: [0.0, 0.0, 1.0, 1.0],
                flip: Flip::None,
                reference_crop: [0.0, 0.0, 1.0, 1.0],
                reference_corners: None,
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
                accused: true,
                pass: 1,
                reference: None,
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
        // A result stored before `sessions_compared` (and the time map) existed still reads.
        let mut old = serde_json::to_value(&result).unwrap();
        old.as_object_mut().unwrap().remove("sessions_compared");
        old["alignment"].as_object_mut().unwrap().remove("speed");
        old["alignment"].as_object_mut().unwrap().remove("time_map");
        let old: CaseResult = serde_json::from_value(old).unwrap();
        assert_eq!(old.sessions_scored(), 1);
        assert_eq!(old.alignment.as_ref().map(|a| a.speed), Some(1.0));
        assert_eq!(back, result);
        assert_eq!(back.identified().map(|m| m.session_id.as_str()), Some("s1"));
        assert_eq!(Verdict::NoWatermark.as_str(), "no_watermark");
        assert!(CaseStatus::Failed.is_finished() && !CaseStatus::Running.is_finished());
    }

    #[test]
    fn a_crawler_sees_references_of_the_accused_only_and_nothing_when_inconclusive() {
        let candidate = |id: &str, accused: bool| Match {
            session_id: id.into(),
            user: format!("user-of-{id}"),
            device_id: format!("device-of-{id}"),
            score: 9.0,
            false_positive_probability: if accused { 1e-9 } else { 0.5 },
            unit_agreement: 0.9,
            accused,
            pass: 1,
            reference: None,
        };
        let mut result = CaseResult {
            case_id: "c1".into(),
            verdict: Verdict::Identified,
            video_id: Some("v1".into()),
            units_observed: 40,
            code: crate::codes::CodeScheme::Tardos,
            alignment: None,
            metadata_layer: None,
            matches: vec![
                candidate("s1", true),
                candidate("s2", true),
                candidate("s3", false),
            ],
            unit_values: None,
            sessions_compared: 3,
            expected_watermark_hash: Some(ExpectedHash {
                expected: "ab".repeat(32),
                best_match_code_hash: Some("cd".repeat(32)),
                equal: false,
            }),
        };
        let reference = |s: &str| format!("ref-{s}");
        let seen = result.for_crawler(reference);
        let refs: Vec<&str> = seen.accused.iter().map(|a| a.reference.as_str()).collect();
        assert_eq!(refs, ["ref-s1", "ref-s2"]);
        assert_eq!(seen.expected_watermark_hash_equal, Some(false));
        let json = serde_json::to_string(&seen).unwrap();
        assert!(
            !json.contains("user-of") && !json.contains("device-of"),
            "{json}"
        );
        let full = result.clone().with_references(reference);
        assert_eq!(full.matches[1].reference.as_deref(), Some("ref-s2"));
        assert_eq!(full.matches[2].reference, None);

        result.verdict = Verdict::Inconclusive;
        result.matches.iter_mut().for_each(|m| m.accused = false);
        let seen = result.for_crawler(reference);
        assert!(seen.accused.is_empty());
        assert_eq!(seen.expected_watermark_hash_equal, None);
        let json = serde_json::to_string(&seen).unwrap();
        assert!(!json.contains("s1") && !json.contains("user-of"), "{json}");
    }
}
