//! Leak identification end to end: a title packaged for real, sessions streamed through the
//! real protocol, a leaked copy attacked with the `ffmpeg` CLI, then `leaktrace extract`.

use std::path::{Path, PathBuf};

use crate::common::leaks::{leak, leak_mixed, packaged, packaged_with, Title};
use crate::common::media::ffmpeg;
use crate::common::Harness;
use forensics::statistics;
use formats::case::{CaseResult, CaseStatus, Verdict};
use formats::layout::{Layout, SegmentVariant};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use shared::db::repo::cases;

/// `leaktrace extract --json` as the documented JSON.
fn extract_json(h: &Harness, suspect: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["extract", suspect.to_str().unwrap(), "--json"];
    args.extend(extra);
    let out = h.run(&args, None);
    out.success();
    serde_json::from_str(out.stdout().trim()).unwrap()
}

/// `leaktrace extract --json` read as the typed result every reader shares.
fn extract(h: &Harness, suspect: &Path, extra: &[&str]) -> CaseResult {
    serde_json::from_value(extract_json(h, suspect, extra)).unwrap()
}

/// The best match's session, `""` when nothing matched.
fn best_session(r: &CaseResult) -> &str {
    r.best().map_or("", |m| m.session_id.as_str())
}

/// One line per attack: what was found and by how much, so a failure in CI says which attack
/// and how close it came without pages of unit values.
fn summarise(name: &str, r: &CaseResult) -> String {
    let mut line = format!(
        "{name}: {:?}, {} units observed, alignment {:?}",
        r.verdict,
        r.units_observed,
        r.alignment
            .as_ref()
            .map(|a| (a.offset_seconds, a.speed, a.time_score, a.reference_crop)),
    );
    for m in &r.matches {
        line.push_str(&format!(
            "; {} score {:.2} fpp {:.1e} agreement {:.3}",
            m.user, m.score, m.false_positive_probability, m.unit_agreement
        ));
    }
    line
}

fn attack(input: &Path, out: PathBuf, args: &[&str]) -> PathBuf {
    let mut all = vec!["-i", input.to_str().unwrap()];
    all.extend(args);
    all.push(out.to_str().unwrap());
    ffmpeg(&all);
    out
}

/// Waits for the server's worker to build the title's reference store after packaging;
/// returns the store's folder.
fn wait_for_store(t: &Title) -> PathBuf {
    let layout = Layout::new(t.h.data_dir.join("videos").join(&t.video_id));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !layout.reference_unit(1).is_file() {
        assert!(std::time::Instant::now() < deadline, "no reference store");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    layout.reference_store()
}

/// Every unit's soft value, 0 for a unit not read.
fn unit_values(r: &CaseResult) -> Vec<f64> {
    let units = r.unit_values.as_deref().unwrap_or_default();
    units.iter().map(|x| x.unwrap_or(0.0)).collect()
}

/// The reference store (the variants' template, read instead of decoding both variants) and
/// the decoding path read the same copy alike: the same unit values within a hair, the same
/// best score within 2 %.
fn assert_same_evidence(with_store: &CaseResult, decoded: &CaseResult) {
    let (a, b) = (unit_values(with_store), unit_values(decoded));
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let cosine = dot / (norm(&a) * norm(&b));
    assert!(cosine > 0.999, "unit values differ: cosine {cosine}");
    let z = |v: &CaseResult| v.matches[0].score;
    assert!(
        (z(with_store) / z(decoded) - 1.0).abs() < 0.02,
        "z {} with the store, {} decoding",
        z(with_store),
        z(decoded)
    );
}

#[test]
fn a_leaked_and_re_encoded_copy_names_its_session() {
    let t = packaged(40.0);
    let server = t.h.serve(&[]);
    let d = t.dir.path();
    let leaker = leak(&server, "val", &"1".repeat(64), &t, &d.join("val.mp4"));
    let innocent = leak(&server, "vic", &"2".repeat(64), &t, &d.join("vic.mp4"));
    leak(&server, "vera", &"3".repeat(64), &t, &d.join("vera.mp4"));
    let store = wait_for_store(&t);
    drop(server);

    // The raw leak: identified, and the marker box (metadata layer) names the same session
    // (checked on the JSON as documented; the other checks read the typed result).
    let raw = extract_json(&t.h, &d.join("val.mp4"), &[]);
    assert_eq!(raw["verdict"], "identified", "{raw:#}");
    assert_eq!(raw["video_id"], t.video_id.as_str());
    assert_eq!(raw["matches"][0]["session_id"], leaker.as_str(), "{raw:#}");
    assert_eq!(raw["matches"][0]["user"], "val");
    assert_eq!(raw["metadata_layer"]["valid"], true);
    assert_eq!(raw["metadata_layer"]["session_id"], leaker.as_str());
    assert_eq!(raw["units_observed"], t.units);

    // Re-encoded at CRF 28 and scaled to 2/3: the marker is gone, the watermark is not.
    let attacked = attack(
        &d.join("val.mp4"),
        d.join("attacked.mp4"),
        &["-vf", "scale=320:180", "-c:v", "libx264", "-crf", "28"],
    );
    let r = extract(&t.h, &attacked, &[]);
    assert_eq!(r.verdict, Verdict::Identified, "{r:#?}");
    assert_eq!(best_session(&r), leaker.as_str(), "{r:#?}");
    assert!(r.metadata_layer.is_none());
    assert!(r.matches[0].false_positive_probability < 1e-6);
    for m in r.matches.iter().skip(1) {
        assert!(m.false_positive_probability > 1e-3, "{r:#?}");
    }
    let _ = innocent;

    // The reference store (the variants' template, read instead of decoding both variants)
    // and the decoding path agree: same session, same evidence within a hair. (Where the
    // files live does not change that: with a bucket, the store set aside here would be
    // fetched again, so the comparison runs on the data dir alone.)
    assert!(store.join(format!("{}.lts", t.units)).is_file());
    if !crate::common::bucket_run() {
        std::fs::rename(&store, d.join("units-aside")).unwrap();
        let decoded = extract(&t.h, &attacked, &[]);
        std::fs::rename(d.join("units-aside"), &store).unwrap();
        assert_eq!(decoded.verdict, Verdict::Identified, "{decoded:#?}");
        assert_eq!(best_session(&decoded), leaker.as_str());
        assert_same_evidence(&r, &decoded);
    }

    // Calibration: 100,000 random codes against these real soft values. The claimed tail
    // probability at 1e-3 must hold within a factor of 2.
    let soft = unit_values(&r);
    assert_eq!(soft.len(), t.units as usize);
    let tail = statistics::NullTail::new(&soft);
    let z_star = (0..100_000)
        .map(|i| i as f64 * 1e-4)
        .find(|&z| tail.upper_tail(z) <= 1e-3)
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let trials = 100_000;
    let above = (0..trials)
        .filter(|_| {
            let code: Vec<bool> = (0..soft.len()).map(|_| rng.gen()).collect();
            statistics::score(&soft, &code) >= z_star
        })
        .count();
    let rate = above as f64 / trials as f64;
    assert!(
        (0.5e-3..=2e-3).contains(&rate),
        "empirical tail {rate} at the claimed 1e-3 (z = {z_star:.3})"
    );

    // The case is recorded with its verdict and ranked matches.
    let case_id = r.case_id.as_str();
    let db = t.h.db();
    let row = cases::get(&mut db.conn().unwrap(), case_id).unwrap();
    assert_eq!(row.status, CaseStatus::Done);
    assert_eq!(row.verdict, Some(Verdict::Identified));
    assert_eq!(
        cases::matched_sessions(&mut db.conn().unwrap(), case_id).unwrap()[0],
        leaker
    );
}

#[test]
fn unrelated_files_and_bad_input_are_never_accusations() {
    let t = packaged(12.0);
    let d = t.dir.path();
    // A different picture altogether: no title matches.
    let other = d.join("other.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=320x180:rate=25",
        "-t",
        "6",
        "-c:v",
        "libx264",
        other.to_str().unwrap(),
    ]);
    let r = extract(&t.h, &other, &[]);
    assert_eq!(r.verdict, Verdict::NoWatermark, "{r:#?}");
    assert!(r.matches.is_empty() && r.alignment.is_none() && r.unit_values.is_none());

    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    t.h.run(&["extract", empty.to_str().unwrap()], None)
        .fails_with(2, "empty");
    let text = d.join("notes.mp4");
    std::fs::write(&text, b"not a video at all").unwrap();
    t.h.run(&["extract", text.to_str().unwrap()], None)
        .fails_with(2, "not a video");
    t.h.run(
        &[
            "extract",
            other.to_str().unwrap(),
            "--video",
            "no-such-title",
        ],
        None,
    )
    .fails_with(2, "no packaged title");
}

/// The reduced robustness suite: each attack of the ffmpeg CLI on one leaked copy.
#[test]
fn the_leaker_survives_the_reduced_attack_suite() {
    let t = packaged(40.0);
    let server = t.h.serve(&[]);
    let d = t.dir.path();
    let leaker = leak(&server, "vera", &"4".repeat(64), &t, &d.join("vera.mp4"));
    leak(&server, "vic", &"5".repeat(64), &t, &d.join("vic.mp4"));
    drop(server);
    let leaked = d.join("vera.mp4");
    // The title's keys and the sessions' codes are new each run, so a unit read on the edge
    // fails one run in several: over ten runs (2026-12-05) two attacks lost units that way,
    // the turned and mirrored copy (placed too tall, see
    // `turned_copies_are_placed_at_their_corners`) and the slowed copy with a cut (the frames
    // just past the cut read as the unit before it, see `timing::settle`). Both read every
    // unit now; the bound leaves room for chance, not for either fault.
    let attacks: [(&str, &[&str]); 10] = [
        (
            "crop 5% per side, rescaled, CRF 23",
            &[
                "-vf",
                "crop=iw*0.9:ih*0.9,scale=480:270",
                "-c:v",
                "libx264",
                "-crf",
                "23",
            ],
        ),
        (
            "30 fps, CRF 23",
            &["-vf", "fps=30", "-c:v", "libx264", "-crf", "23"],
        ),
        (
            "excerpt of 25 s from 10 s",
            &["-ss", "10", "-t", "25", "-c:v", "libx264", "-crf", "23"],
        ),
        (
            "letterboxed",
            &[
                "-vf",
                "scale=480:200,pad=480:270:0:35",
                "-c:v",
                "libx264",
                "-crf",
                "23",
            ],
        ),
        (
            "sped up 5 %, re-timed to 25 fps, CRF 23",
            &[
                "-vf",
                "setpts=PTS/1.05,fps=25",
                "-c:v",
                "libx264",
                "-crf",
                "23",
            ],
        ),
        (
            "slowed down 7 % with a cut of 6 s, CRF 23",
            &[
                "-vf",
                "select='not(between(t,14,20))',setpts=N/25/TB*1.07,fps=25",
                "-c:v",
                "libx264",
                "-crf",
                "23",
            ],
        ),
        (
            "mirrored, turned 3 degrees and cropped, CRF 23",
            &[
                "-vf",
                "hflip,rotate=3*PI/180,crop=iw*0.88:ih*0.88,scale=480:270",
                "-c:v",
                "libx264",
                "-crf",
                "23",
            ],
        ),
        (
            "upside down, CRF 23",
            &["-vf", "vflip", "-c:v", "libx264", "-crf", "23"],
        ),
        (
            "cut from the top-left corner to 82 %, rescaled, CRF 23",
            &[
                "-vf",
                "crop=iw*0.82:ih*0.82:0:0,scale=480:270",
                "-c:v",
                "libx264",
                "-crf",
                "23",
            ],
        ),
        (
            "brightness, contrast, gamma",
            &[
                "-vf",
                "eq=brightness=0.05:contrast=1.15:gamma=1.1",
                "-c:v",
                "libx264",
                "-crf",
                "23",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (i, (name, args)) in attacks.iter().enumerate() {
        let copy = attack(&leaked, d.join(format!("attack{i}.mp4")), args);
        let r = extract(&t.h, &copy, &["--video", &t.video_id]);
        let innocent_ok = r
            .matches
            .iter()
            .skip(1)
            .all(|m| m.false_positive_probability > 1e-3);
        // 40 units at 270 lines after CRF 23: at most two may be read wrong.
        let agreement = r.best().map_or(0.0, |m| m.unit_agreement);
        let summary = summarise(name, &r);
        eprintln!("{summary}");
        if r.verdict != Verdict::Identified
            || best_session(&r) != leaker.as_str()
            || !innocent_ok
            || agreement < 0.95
        {
            failures.push(summary);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Where the corners of a copy turned by `degrees` (clockwise, ffmpeg's `rotate`), cut to
/// `keep` of the turned frame around its centre and perhaps mirrored first, fall in a
/// `width` x `height` title's frame, as fractions (in no particular order).
fn turned_corners(
    width: f64,
    height: f64,
    degrees: f64,
    keep: [f64; 2],
    mirrored: bool,
) -> Vec<[f64; 2]> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (half_w, half_h) = (
        (width * keep[0]).floor() / 2.0,
        (height * keep[1]).floor() / 2.0,
    );
    [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)]
        .iter()
        .map(|&(sx, sy)| {
            let (x, y) = (sx * half_w, sy * half_h);
            // The point of the frame before the turn that the corner shows.
            let (bx, by) = (x * cos + y * sin, -x * sin + y * cos);
            let u = (width / 2.0 + bx) / width;
            [
                if mirrored { 1.0 - u } else { u },
                (height / 2.0 + by) / height,
            ]
        })
        .collect()
}

/// A turned copy is placed where it was cut from: each corner of the picture within a
/// fraction of a pixel's width of where the turn put it. Read on copies of the title's
/// source (no session's mark: the placement is what is checked, not the verdict). A copy
/// mirrored and turned 3 degrees at CRF 20 was once placed about 5 pixels too tall (two
/// corners of a 480x270 frame 0.017 off), which cost its leaker a unit or two in three runs
/// of ten of the reduced suite; the corner search now moves edges and the whole quad too.
#[test]
fn turned_copies_are_placed_at_their_corners() {
    let t = packaged(40.0);
    let source = t.dir.path().join("title.mp4");
    let cases: [(&str, f64, f64, bool, &str); 3] = [
        ("mirrored, turned 3 degrees, CRF 20", 3.0, 0.88, true, "20"),
        ("mirrored, turned 3 degrees, CRF 24", 3.0, 0.88, true, "24"),
        ("turned -4 degrees, CRF 20", -4.0, 0.86, false, "20"),
    ];
    let mut failures = Vec::new();
    for (i, (name, degrees, keep, mirrored, crf)) in cases.iter().enumerate() {
        let vf = format!(
            "{}rotate={degrees}*PI/180,crop=iw*{keep}:ih*{keep},scale=480:270",
            if *mirrored { "hflip," } else { "" }
        );
        let copy = attack(
            &source,
            t.dir.path().join(format!("turned{i}.mp4")),
            &["-vf", &vf, "-c:v", "libx264", "-crf", crf],
        );
        let r = extract(&t.h, &copy, &["--video", &t.video_id]);
        let found = r
            .alignment
            .as_ref()
            .and_then(|a| a.reference_corners)
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let truth = turned_corners(480.0, 270.0, *degrees, [*keep, *keep], *mirrored);
        // The wrong placement was 0.017 off; ffmpeg's own pixel centres put the right one
        // up to 0.004 from this model.
        let placed = found.len() == 4
            && truth.iter().all(|t| {
                found
                    .iter()
                    .any(|f| (f[0] - t[0]).abs() < 0.008 && (f[1] - t[1]).abs() < 0.008)
            });
        if !placed {
            failures.push(format!(
                "{name}: found {found:?}, the turn put them at {truth:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A title packaged with the collusion-resistant code: a single leaker is named as under the
/// unbiased code; two viewers who mix their copies unit by unit (each unit from one of them,
/// as a keyed coin decides) and re-encode are the two best matches, every session the verdict
/// names is one of them, and the innocent stays unremarkable (a loose bound: 180 half-second
/// units are fewer than collusion needs for 1e-6; each colluder's expected score is about 5,
/// so the bounds below fail by chance less than once in a thousand runs).
#[test]
fn colluders_mixing_their_copies_are_the_best_matches_under_the_tardos_code() {
    // Half-second units, two per one-second segment: four variants of every segment.
    let t = packaged_with(
        90.0,
        &[
            "--code",
            "tardos-v2",
            "--unit-seconds",
            "0.5",
            "--segment-units",
            "2",
        ],
    );
    assert_eq!(t.segments, t.units.div_ceil(2));
    let layout = Layout::new(t.h.data_dir.join("videos").join(&t.video_id));
    let package = formats::package::PackageManifest::read(&layout).unwrap();
    assert_eq!(
        (package.video.segment_units, package.video.segment_frames()),
        (2, 26)
    );
    for k in [1, t.segments / 2, t.segments] {
        let variants: Vec<Vec<u8>> = SegmentVariant::all(2)
            .map(|v| std::fs::read(layout.video_unit(v, k)).unwrap())
            .collect();
        for (i, a) in variants.iter().enumerate() {
            for b in &variants[i + 1..] {
                assert_ne!(a, b, "segment {k}: every variant is its own encode");
            }
        }
    }
    // Leaking is faster than real time: no ripping limit for this test.
    let server =
        t.h.serve_with_env(&[], &[("LEAKTRACE_RIPPING_BURST_SECONDS", "1e12")]);
    let d = t.dir.path();
    let leaker = leak(&server, "vera", &"7".repeat(64), &t, &d.join("vera.mp4"));
    let pick = |unit: u32| (unit.wrapping_mul(2_654_435_761) >> 16 & 1) as usize;
    let colluders = leak_mixed(
        &server,
        &[("vic", &"8".repeat(64)), ("val", &"9".repeat(64))],
        &t,
        &d.join("mixed.mp4"),
        pick,
    );
    // No segment past the last (the title has fewer segments than units).
    let probe = crate::common::viewer::Client::start(&server, "vera", &"7".repeat(64), &t.video_id);
    assert_eq!(probe.raw_segment(&(t.segments + 1).to_string()).0, 404);
    assert_eq!(probe.raw_segment(&t.segments.to_string()).0, 200);
    wait_for_store(&t);
    drop(server);
    // What the leaker received: segment k in the variant of its code's bits 2k-1 and 2k.
    let db = t.h.db();
    let row = shared::db::repo::videos::get(&mut db.conn().unwrap(), &t.video_id).unwrap();
    let secret: [u8; 32] = formats::sealing::open(
        &t.h.master_key(),
        &formats::sealing::video_secret_aad(&t.video_id),
        &row.sealed_secret,
    )
    .unwrap()
    .try_into()
    .unwrap();
    let code = formats::codes::session_code(
        &secret,
        formats::codes::CodeScheme::Tardos,
        &leaker,
        t.units,
    );
    let mut expected = Vec::new();
    for k in 1..=t.segments {
        let variant = formats::codes::segment_variant(&code, k, 2).unwrap();
        expected.extend(std::fs::read(layout.video_unit(variant, k)).unwrap());
    }
    assert!(std::fs::read(d.join("vera.mp4"))
        .unwrap()
        .ends_with(&expected));
    assert_eq!(
        formats::codes::segment_variant(&code, t.segments + 1, 2),
        None
    );

    let single = extract(&t.h, &d.join("vera.mp4"), &["--video", &t.video_id]);
    assert_eq!(single.code, formats::codes::CodeScheme::Tardos);
    assert_eq!(single.verdict, Verdict::Identified, "{single:#?}");
    assert_eq!(
        single.units_observed, t.units,
        "every unit read, two per segment"
    );
    // Read from the reference store and from the segments decoded (all-A and all-B, each
    // unit cut out of its segment): the same evidence.
    if !crate::common::bucket_run() {
        let (store, aside) = (layout.reference_store(), d.join("units-aside"));
        std::fs::rename(&store, &aside).unwrap();
        let decoded = extract(&t.h, &d.join("vera.mp4"), &["--video", &t.video_id]);
        std::fs::rename(&aside, &store).unwrap();
        assert_eq!(best_session(&decoded), leaker.as_str(), "{decoded:#?}");
        assert_same_evidence(&single, &decoded);
    }
    assert_eq!(best_session(&single), leaker.as_str());
    assert_eq!(single.accused().len(), 1, "{single:#?}");

    let copy = attack(
        &d.join("mixed.mp4"),
        d.join("mixed-crf23.mp4"),
        &["-c:v", "libx264", "-crf", "23", "-preset", "fast"],
    );
    let r = extract(&t.h, &copy, &["--video", &t.video_id]);
    let mut best_two: Vec<&str> = r.matches[..2]
        .iter()
        .map(|m| m.session_id.as_str())
        .collect();
    best_two.sort();
    let mut expected: Vec<&str> = colluders.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(best_two, expected, "{r:#?}");
    assert!(r.matches[0].false_positive_probability < 0.05, "{r:#?}");
    assert!(
        r.accused()
            .iter()
            .all(|m| colluders.contains(&m.session_id)),
        "{r:#?}"
    );
    assert!(
        r.matches[2..]
            .iter()
            .all(|m| m.false_positive_probability > 1e-3),
        "{r:#?}"
    );
}
