//! Collusion bench on real video: a long title packaged under the Tardos code, coalitions of
//! 2, 3 and 4 viewers building their copy from the units they received (they see which units
//! differ by comparing bytes: identical bytes are the same variant), the copy re-encoded with
//! x264 at CRF 23 as a pirate uploads it, extracted, and its colluders looked for among
//! 1,000,000 sessions: the minutes of copy after which the first and all colluders are named.
//!
//! Strategies per unit: one colluder's unit at random, the majority or the minority variant,
//! every colluder's frames averaged (ffmpeg `mix`), or each unit by one of these at random.
//! Averaging is done by decoding every colluder's own copy and blending the units where they
//! differ, as a pirate with the copies in an editor would.
//!
//! The false-positive probability of a colluder does not depend on the other sessions' codes
//! (it is its score's tail times the number of sessions), so the colluders are scored with a
//! sample of innocent sessions and the Bonferroni factor is the million; the sample shows
//! that no innocent comes near. Scoring a real million through the database is
//! `scripts/bench-sessions.sh`.
//!
//! `cargo run --release -p forensics --example collusion_video -- TITLE WORK [UNIT_SECONDS]
//! [CASES] [SEGMENT_UNITS]` (run by `scripts/bench-collusion.sh`): packages TITLE into WORK
//! once (kept for later runs), then prints a Markdown table. With two units per segment
//! (SEGMENT_UNITS 2, four variants per segment) a coalition's choice of each unit is taken
//! from the segment variant that has it: as colluders who cut their segments at the unit
//! boundary would have it before their re-encode (they need not have received it). CASES filters the rows (`2`, `3:minority`, …;
//! several separated by commas). What extraction read of each copy is kept in WORK too, so a
//! later run scores the same copies again (with another decoder) in seconds; remove
//! WORK/readings to make and extract them anew. Like the analysis, the scoring leaves out
//! each unit's mark strength; with `COLLUSION_USE_STRENGTH` set it scales the reading by it.

#[path = "support/coalitions.rs"]
mod coalitions;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use coalitions::{Copy, Shown, Strategy};
use forensics::extract::{extract, ReferenceTitle};
use forensics::media::decode::Limits;
use forensics::package::{package, PackageOptions};
use forensics::refstore;
use formats::codes::{CodeKey, CodeScheme};
use formats::layout::{DataLayout, Layout, SegmentVariant, Variant};
use formats::package::VideoTrack;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const INNOCENT_SAMPLE: usize = 300;
/// Minutes of copy made per coalition size: the targets (4, 12 and 25 minutes; 2 colluders
/// get twice theirs, to show where the margin is). A coalition not named within its copy is
/// reported "-": it needs more than its target.
const COPY_MINUTES: [(usize, f64); 4] = [(1, 4.0), (2, 8.0), (3, 12.0), (4, 25.0)];

type Error = Box<dyn std::error::Error>;

/// What extraction read of a copy, kept in WORK between runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    soft: Vec<f64>,
    strength: Vec<f64>,
}

/// The packaged title, kept in WORK between runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Packaged {
    video_id: String,
    secret: String,
    unit_seconds: f64,
    #[serde(default = "formats::package::default_segment_units")]
    segment_units: u32,
}

fn package_once(
    title: &Path,
    work: &Path,
    unit_seconds: f64,
    segment_units: u32,
) -> Result<Packaged, Error> {
    let record = work.join("packaged.json");
    if let Ok(bytes) = std::fs::read(&record) {
        let p: Packaged = serde_json::from_slice(&bytes)?;
        if p.unit_seconds == unit_seconds && p.segment_units == segment_units {
            return Ok(p);
        }
    }
    let data = DataLayout::new(work.join("data"));
    let mut options = PackageOptions::new("collusion bench");
    options.unit_seconds = unit_seconds;
    options.segment_units = segment_units;
    options.code = CodeScheme::Tardos;
    let started = Instant::now();
    let packaged = package(title, &data, &options, &mut |_| {})?;
    let secret = packaged.secret;
    let video_id = packaged.manifest.video_id.clone();
    let manifest = packaged.manifest.clone();
    let dir = packaged.commit()?;
    eprintln!(
        "packaged {video_id} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let scratch = work.join("refstore-work");
    std::fs::create_dir_all(&scratch)?;
    refstore::build_for_title(
        &Layout::new(&dir),
        &manifest,
        &scratch,
        &Limits::default(),
        &mut |_, _| {},
    )?;
    let p = Packaged {
        video_id,
        secret: hex::encode(secret),
        unit_seconds,
        segment_units,
    };
    std::fs::write(&record, serde_json::to_vec(&p)?)?;
    Ok(p)
}

/// Writes the init segment and the segments holding units `1..=units` into `out`, each unit
/// in variant `pick(unit)` (B when true; A past `units`).
fn join(
    layout: &Layout,
    video: &VideoTrack,
    units: u32,
    out: &Path,
    pick: impl Fn(u32) -> bool,
) -> Result<(), Error> {
    let mut bytes = std::fs::read(layout.video_init())?;
    let per = video.units_per_segment();
    for k in 1..=units.div_ceil(per) {
        let choices: Vec<Variant> = (0..per)
            .map(|i| (k - 1) * per + i + 1)
            .map(|u| match u <= units && pick(u) {
                true => Variant::B,
                false => Variant::A,
            })
            .collect();
        let variant = SegmentVariant::of(&choices).ok_or("too many units per segment")?;
        bytes.extend(std::fs::read(layout.video_unit(variant, k))?);
    }
    std::fs::write(out, bytes)?;
    Ok(())
}

fn ffmpeg(args: &[&str]) -> Result<(), Error> {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .status()?;
    if !status.success() {
        return Err(format!("ffmpeg failed: {args:?}").into());
    }
    Ok(())
}

/// The picture of a title: (width, height, frame rate).
struct Picture {
    width: u32,
    height: u32,
    fps: [i32; 2],
}

/// The coalition's copy of the first `units` units, re-encoded at CRF 23.
fn make_copy(
    layout: &Layout,
    codes: &[Vec<bool>],
    shown: &[Shown],
    video: &VideoTrack,
    picture: &Picture,
    work: &Path,
    out: &Path,
) -> Result<(), Error> {
    let units = shown.len() as u32;
    let chosen = work.join("chosen.mp4");
    join(layout, video, units, &chosen, |u| {
        matches!(shown[u as usize - 1], Shown::Variant(true))
    })?;
    let x264 = ["-c:v", "libx264", "-preset", "fast", "-crf", "23", "-an"];
    let out_str = out.to_string_lossy().to_string();
    if !shown.contains(&Shown::Averaged) {
        let chosen = chosen.to_string_lossy().to_string();
        let mut args = vec!["-i", chosen.as_str()];
        args.extend(x264);
        args.push(&out_str);
        return ffmpeg(&args);
    }
    let mut inputs: Vec<String> = vec![chosen.to_string_lossy().to_string()];
    for (i, code) in codes.iter().enumerate() {
        let own = work.join(format!("own-{i}.mp4"));
        join(layout, video, units, &own, |u| code[u as usize - 1])?;
        inputs.push(own.to_string_lossy().to_string());
    }
    // Frames of averaged units come from every colluder's copy blended, through a mask (a
    // tiny Y4M stream, white on the frames of averaged units, scaled up in the graph).
    let mask = work.join("mask.y4m");
    let mut y4m = format!(
        "YUV4MPEG2 W2 H2 F{}:{} Ip A1:1 C420jpeg\n",
        picture.fps[0], picture.fps[1]
    )
    .into_bytes();
    for s in shown {
        let v = if *s == Shown::Averaged { 255u8 } else { 0 };
        for _ in 0..video.unit_frames {
            y4m.extend_from_slice(b"FRAME\n");
            y4m.extend_from_slice(&[v; 6]);
        }
    }
    std::fs::write(&mask, y4m)?;
    inputs.push(mask.to_string_lossy().to_string());
    let colluders: String = (1..=codes.len()).map(|i| format!("[{i}:v]")).collect();
    let graph = format!(
        "{colluders}mix=inputs={c}[avg];[{m}:v]scale={w}:{h}:flags=neighbor,format=yuv420p[mask];\
         [0:v][avg][mask]maskedmerge[out]",
        c = codes.len(),
        m = codes.len() + 1,
        w = picture.width,
        h = picture.height,
    );
    let script = work.join("graph.txt");
    std::fs::write(&script, graph)?;
    let script = script.to_string_lossy().to_string();
    let mut args: Vec<&str> = Vec::new();
    for i in &inputs {
        args.extend(["-i", i.as_str()]);
    }
    args.extend(["-filter_complex_script", script.as_str(), "-map", "[out]"]);
    args.extend(x264);
    args.push(&out_str);
    ffmpeg(&args)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(title), Some(work)) = (args.get(1), args.get(2)) else {
        return Err(
            "usage: collusion_video TITLE WORK [UNIT_SECONDS] [CASES] [SEGMENT_UNITS]".into(),
        );
    };
    let unit_seconds: f64 = args.get(3).map_or(Ok(1.0), |a| a.parse())?;
    let filter = args.get(4).cloned().unwrap_or_default();
    let segment_units: u32 = args.get(5).map_or(Ok(1), |a| a.parse())?;
    // As the analysis does, the units' strengths are left out unless asked for.
    let use_strength = std::env::var_os("COLLUSION_USE_STRENGTH").is_some();
    let work = PathBuf::from(work);
    std::fs::create_dir_all(&work)?;
    let p = package_once(Path::new(title), &work, unit_seconds, segment_units)?;
    let data = DataLayout::new(work.join("data"));
    let layout = Layout::new(data.title_dir(&p.video_id));
    let reference = ReferenceTitle::load(&p.video_id, layout.clone())?;
    let video = reference.package.video.clone();
    // Minutes are counted in the units' real length (0.5 s at 25 fps is 13 frames, 0.52 s).
    let unit_seconds = video.unit_seconds();
    let mut secret = [0u8; 32];
    hex::decode_to_slice(&p.secret, &mut secret)?;
    let key = CodeKey::new(&secret, CodeScheme::Tardos);
    let titles = [reference];
    println!(
        "Title: {:.1} min, {}x{} at {}/{} fps, {} units of {unit_seconds:.2} s ({} per segment), \
         tardos-v2; copies re-encoded with x264 CRF 23 (preset fast); colluders scored with \
         {INNOCENT_SAMPLE} innocent sessions, false-positive probabilities for {} sessions, threshold {:e}{}.",
        video.unit_count as f64 * unit_seconds / 60.0,
        video.width,
        video.height,
        video.frame_rate[0],
        video.frame_rate[1],
        video.unit_count,
        video.units_per_segment(),
        coalitions::POPULATION,
        coalitions::THRESHOLD,
        if use_strength {
            "; the reading scaled by each unit's strength (COLLUSION_USE_STRENGTH)"
        } else {
            ""
        },
    );
    println!();
    println!(
        "| colluders | strategy | copy (min) | first named (min) | all named (min) | \
         lowest innocent FPP | innocents named | extract time |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (c, minutes) in COPY_MINUTES {
        let strategies = if c == 1 {
            &Strategy::ALL[..1]
        } else {
            &Strategy::ALL[..]
        };
        for &strategy in strategies {
            let case = format!("{c}:{strategy:?}").to_lowercase();
            let wanted = filter.to_lowercase();
            if !wanted.split(',').any(|f| case.starts_with(f.trim())) {
                continue;
            }
            let units = ((minutes * 60.0 / unit_seconds) as u32).min(video.unit_count);
            let mut ids: Vec<String> = (0..c).map(|i| format!("colluder-{c}-{i}")).collect();
            let codes: Vec<Vec<bool>> = ids.iter().map(|id| key.code(id, units)).collect();
            ids.extend((0..INNOCENT_SAMPLE).map(|i| format!("innocent-{i}")));
            let mut rng = ChaCha8Rng::seed_from_u64(c as u64 * 31 + strategy as u64);
            let shown: Vec<Shown> = (0..units as usize)
                .map(|k| {
                    let bits: Vec<bool> = codes.iter().map(|code| code[k]).collect();
                    strategy.choose(&bits, &mut rng)
                })
                .collect();
            // What extraction read of this case's copy, kept in WORK: a later run (another
            // decoder) scores it again without making and extracting the copy anew.
            let kept = work.join("readings").join(format!("{case}.json"));
            let (readings, took) = match std::fs::read(&kept) {
                Ok(bytes) => (serde_json::from_slice::<Kept>(&bytes)?, None),
                Err(_) => {
                    let scratch = work.join("copy");
                    std::fs::create_dir_all(&scratch)?;
                    let copy = scratch.join("copy.mp4");
                    let picture = Picture {
                        width: video.width,
                        height: video.height,
                        fps: video.frame_rate,
                    };
                    make_copy(&layout, &codes, &shown, &video, &picture, &scratch, &copy)?;
                    let started = Instant::now();
                    let extracted = extract(
                        &copy,
                        &titles,
                        &scratch.join("extract"),
                        &Limits::default(),
                        &|_| {},
                    )?
                    .ok_or("the copy matched no title")?;
                    let took = started.elapsed().as_secs_f64();
                    let readings = Kept {
                        soft: extracted.soft,
                        strength: extracted.strength,
                    };
                    std::fs::create_dir_all(work.join("readings"))?;
                    std::fs::write(&kept, serde_json::to_vec(&readings)?)?;
                    std::fs::remove_dir_all(&scratch)?;
                    (readings, Some(took))
                }
            };
            let (mut soft, mut strength) = (readings.soft, readings.strength);
            if !use_strength {
                strength.clear();
            }
            soft.truncate(units as usize);
            strength.truncate(units as usize);
            let copy = Copy {
                unit_seconds,
                key: key.clone(),
                ids,
                colluders: c,
                soft,
                strength,
            };
            let whole = copy.accuse_prefix(copy.minutes());
            let show = |m: Option<f64>| m.map_or("-".to_string(), |m| format!("{m:.1}"));
            println!(
                "| {c} | {} | {:.1} | {} | {} | {:.1e} | {} | {} |",
                strategy.name(c),
                copy.minutes(),
                show(copy.minutes_until(|n| n >= 1)),
                show(copy.minutes_until(|n| n >= c)),
                copy.lowest_innocent(),
                copy.named(&whole).1,
                took.map_or("kept".to_string(), |t| format!("{t:.0} s")),
            );
        }
    }
    Ok(())
}
