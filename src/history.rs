//! A title's leak history for analysts: its cases over time, who was identified, who leaked
//! more than once, and which copies were mixed by colluders; as JSON or as CSV (one row per
//! accusation). Built from the cases' typed results ([`CaseResult`]), so it says exactly what
//! each case's verdict said.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use formats::case::{CaseResult, CaseStatus, Verdict};
use serde::Serialize;
use shared::db::repo::cases::CaseRow;

/// Cases of one title read for a history at most (the oldest first; beyond, `truncated`).
pub const MAX_CASES: i64 = 20_000;

/// How many cases ended how.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct CaseCounts {
    pub total: usize,
    pub identified: usize,
    pub inconclusive: usize,
    pub no_watermark: usize,
    pub failed: usize,
    /// Queued or running.
    pub open: usize,
}

/// Cases and identifications of one day (UTC).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Day {
    pub day: String,
    pub cases: usize,
    pub identified: usize,
}

/// An account named by at least one case.
#[derive(Debug, Serialize, PartialEq)]
pub struct Leaker {
    pub user: String,
    pub devices: Vec<String>,
    pub sessions: Vec<String>,
    /// The cases that accused it, oldest first.
    pub case_ids: Vec<String>,
    pub first_case_at: String,
    pub last_case_at: String,
    /// Accused with others in at least one case (a mixed copy).
    pub colluded: bool,
}

/// A case whose copy was mixed from several sessions: everyone it accused.
#[derive(Debug, Serialize, PartialEq)]
pub struct Collusion {
    pub case_id: String,
    pub created_at: String,
    pub users: Vec<String>,
    pub sessions: Vec<String>,
}

/// What `GET /api/titles/{id}/leaks/` answers.
#[derive(Debug, Serialize, PartialEq)]
pub struct LeakHistory {
    pub video_id: String,
    pub title: String,
    pub cases: CaseCounts,
    pub by_day: Vec<Day>,
    /// Most cases first.
    pub leakers: Vec<Leaker>,
    /// The users of `leakers` named by two cases or more.
    pub repeat_leakers: Vec<String>,
    pub collusion: Vec<Collusion>,
    /// More than [`MAX_CASES`] cases: only the oldest were read.
    pub truncated: bool,
}

/// One accusation, as a CSV row.
#[derive(Debug, Serialize, PartialEq)]
pub struct Accusation {
    pub case_id: String,
    pub case_created_at: String,
    pub session_id: String,
    pub user: String,
    pub device_id: String,
    pub false_positive_probability: f64,
    /// How many sessions the case accused (more than one: a mixed copy).
    pub accused_in_case: usize,
}

fn time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339()
}

/// The accused matches of a finished case's result (none unless identified).
fn accused(result: &CaseResult) -> Vec<&formats::case::Match> {
    if result.verdict != Verdict::Identified {
        return Vec::new();
    }
    result.matches.iter().filter(|m| m.accused).collect()
}

/// The accusations of `cases` (oldest first), one per accused session.
pub fn accusations(cases: &[CaseRow]) -> Vec<Accusation> {
    let mut rows = Vec::new();
    for case in cases {
        let Some(result) = case.result() else {
            continue;
        };
        let named = accused(&result);
        for m in &named {
            rows.push(Accusation {
                case_id: case.id.clone(),
                case_created_at: time(case.created_at),
                session_id: m.session_id.clone(),
                user: m.user.clone(),
                device_id: m.device_id.clone(),
                false_positive_probability: m.false_positive_probability,
                accused_in_case: named.len(),
            });
        }
    }
    rows
}

/// The history of title `video_id` (`title`) from its cases, oldest first.
pub fn history(video_id: &str, title: &str, cases: &[CaseRow], truncated: bool) -> LeakHistory {
    let mut counts = CaseCounts {
        total: cases.len(),
        ..CaseCounts::default()
    };
    let mut days: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut leakers: BTreeMap<String, Leaker> = BTreeMap::new();
    let mut collusion = Vec::new();
    for case in cases {
        let day = days
            .entry(case.created_at.format("%Y-%m-%d").to_string())
            .or_default();
        day.0 += 1;
        match case.status {
            CaseStatus::Queued | CaseStatus::Running => counts.open += 1,
            CaseStatus::Failed => counts.failed += 1,
            CaseStatus::Done => {}
        }
        let Some(result) = case.result() else {
            continue;
        };
        match result.verdict {
            Verdict::Identified => {
                counts.identified += 1;
                day.1 += 1;
            }
            Verdict::Inconclusive => counts.inconclusive += 1,
            Verdict::NoWatermark => counts.no_watermark += 1,
        }
        let named = accused(&result);
        let mixed = named.len() > 1;
        for m in &named {
            let at = time(case.created_at);
            let leaker = leakers.entry(m.user.clone()).or_insert_with(|| Leaker {
                user: m.user.clone(),
                devices: Vec::new(),
                sessions: Vec::new(),
                case_ids: Vec::new(),
                first_case_at: at.clone(),
                last_case_at: at.clone(),
                colluded: false,
            });
            if !leaker.devices.contains(&m.device_id) {
                leaker.devices.push(m.device_id.clone());
            }
            if !leaker.sessions.contains(&m.session_id) {
                leaker.sessions.push(m.session_id.clone());
            }
            if !leaker.case_ids.contains(&case.id) {
                leaker.case_ids.push(case.id.clone());
            }
            leaker.last_case_at = at;
            leaker.colluded |= mixed;
        }
        if mixed {
            collusion.push(Collusion {
                case_id: case.id.clone(),
                created_at: time(case.created_at),
                users: named.iter().map(|m| m.user.clone()).collect(),
                sessions: named.iter().map(|m| m.session_id.clone()).collect(),
            });
        }
    }
    let mut leakers: Vec<Leaker> = leakers.into_values().collect();
    leakers.sort_by(|a, b| {
        b.case_ids
            .len()
            .cmp(&a.case_ids.len())
            .then(a.user.cmp(&b.user))
    });
    let repeat_leakers = leakers
        .iter()
        .filter(|l| l.case_ids.len() >= 2)
        .map(|l| l.user.clone())
        .collect();
    LeakHistory {
        video_id: video_id.to_string(),
        title: title.to_string(),
        cases: counts,
        by_day: days
            .into_iter()
            .map(|(day, (cases, identified))| Day {
                day,
                cases,
                identified,
            })
            .collect(),
        leakers,
        repeat_leakers,
        collusion,
        truncated,
    }
}

/// `rows` as CSV with a header line.
pub fn to_csv(rows: &[Accusation]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        out.write_record([
            "case_id",
            "case_created_at",
            "session_id",
            "user",
            "device_id",
            "false_positive_probability",
            "accused_in_case",
        ])?;
    }
    for row in rows {
        out.serialize(row)?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::case::Match;

    fn m(session: &str, user: &str, accused: bool) -> Match {
        serde_json::from_value(serde_json::json!({
            "session_id": session, "user": user, "device_id": format!("dev-{user}"),
            "score": 9.0, "false_positive_probability": if accused { 1e-9 } else { 0.5 },
            "unit_agreement": 0.9, "accused": accused, "pass": 1
        }))
        .unwrap()
    }

    fn case(id: &str, day: u32, verdict: Option<Verdict>, matches: Vec<Match>) -> CaseRow {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, day)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        let result = verdict.map(|v| CaseResult {
            case_id: id.into(),
            verdict: v,
            video_id: Some("v1".into()),
            units_observed: 10,
            code: Default::default(),
            alignment: None,
            metadata_layer: None,
            matches,
            unit_values: None,
            sessions_compared: 3,
            expected_watermark_hash: None,
        });
        CaseRow {
            status: if result.is_some() {
                CaseStatus::Done
            } else {
                CaseStatus::Failed
            },
            progress: 1.0,
            video_id: Some("v1".into()),
            verdict,
            result_json: result.map(|r| serde_json::to_string(&r).unwrap()),
            ..crate::cases::sample_row(id, at)
        }
    }

    #[test]
    fn counts_leakers_repeats_and_mixed_copies() {
        let cases = vec![
            case(
                "c1",
                1,
                Some(Verdict::Identified),
                vec![m("s1", "vic", true), m("s9", "eve", false)],
            ),
            case(
                "c2",
                1,
                Some(Verdict::Inconclusive),
                vec![m("s2", "val", false)],
            ),
            case(
                "c3",
                2,
                Some(Verdict::Identified),
                vec![m("s3", "vic", true)],
            ),
            case(
                "c4",
                3,
                Some(Verdict::Identified),
                vec![m("s4", "val", true), m("s5", "vera", true)],
            ),
            case("c5", 3, None, vec![]),
            case("c6", 3, Some(Verdict::NoWatermark), vec![]),
        ];
        let h = history("v1", "Leakable", &cases, false);
        assert_eq!(
            h.cases,
            CaseCounts {
                total: 6,
                identified: 3,
                inconclusive: 1,
                no_watermark: 1,
                failed: 1,
                open: 0
            }
        );
        let days: Vec<_> = h
            .by_day
            .iter()
            .map(|d| (d.day.as_str(), d.cases, d.identified))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-12-01", 2, 1),
                ("2026-12-02", 1, 1),
                ("2026-12-03", 3, 1)
            ]
        );
        let users: Vec<_> = h
            .leakers
            .iter()
            .map(|l| (l.user.as_str(), l.case_ids.len(), l.colluded))
            .collect();
        assert_eq!(
            users,
            [("vic", 2, false), ("val", 1, true), ("vera", 1, true)]
        );
        assert_eq!(h.leakers[0].sessions, ["s1", "s3"]);
        assert_eq!(h.leakers[0].first_case_at, "2026-12-01T10:00:00+00:00");
        assert_eq!(h.leakers[0].last_case_at, "2026-12-02T10:00:00+00:00");
        assert_eq!(h.repeat_leakers, ["vic"]);
        assert_eq!(h.collusion.len(), 1);
        assert_eq!(h.collusion[0].users, ["val", "vera"]);
        // Not accused (eve, val in c2) is not a leaker; the CSV has one row per accusation.
        let rows = accusations(&cases);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3].accused_in_case, 2);
        let csv = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("case_id,case_created_at,session_id,user,device_id,false_positive_probability,accused_in_case")
        );
        assert_eq!(lines.count(), 4);
        let empty = String::from_utf8(to_csv(&[]).unwrap()).unwrap();
        assert_eq!(empty.lines().count(), 1);
    }
}
