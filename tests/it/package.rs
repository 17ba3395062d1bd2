//! `leaktrace package` end to end: real FFmpeg decode and libx264 encodes, real database.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::media::{clip, count_frames, decode_errors, ffmpeg, ClipSpec};
use crate::common::Harness;
use formats::layout::{Layout, SegmentVariant, Variant};
use formats::package::PackageManifest;
use formats::sealing;
use rand::{Rng, SeedableRng};
use shared::db::repo::jobs::{self, JobKind};
use shared::db::repo::videos;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/bigbuckbunny.mp4");

fn manifest(h: &Harness, video_id: &str) -> (Layout, PackageManifest) {
    let layout = Layout::new(h.data_dir.join("videos").join(video_id));
    let text = std::fs::read(layout.manifest()).expect("package.json");
    (
        layout,
        serde_json::from_slice(&text).expect("manifest JSON"),
    )
}

/// Writes init + the chosen variant of every segment into one file.
fn assemble<V: Into<SegmentVariant>>(
    layout: &Layout,
    segments: u32,
    choose: impl Fn(u32) -> V,
    out: &Path,
) {
    let mut bytes = std::fs::read(layout.video_init()).unwrap();
    for k in 1..=segments {
        bytes.extend(std::fs::read(layout.video_unit(choose(k), k)).unwrap());
    }
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn sample_packages_and_random_ab_mixes_decode_exactly() {
    let h = Harness::new();
    let out = h.package(Path::new(SAMPLE), "Big Buck Bunny", &[]);
    let id = out["video_id"].as_str().unwrap().to_string();
    assert_eq!(out["title"], "Big Buck Bunny");
    assert_eq!(out["units"], 6);
    assert_eq!(out["frames"], 132);
    assert_eq!(
        (out["width"].as_i64(), out["height"].as_i64()),
        (Some(1280), Some(720))
    );

    let db = h.db();
    let row = videos::get(&mut db.conn().unwrap(), &id).unwrap();
    assert_eq!(row.title, "Big Buck Bunny");
    assert_eq!(row.unit_count, 6);
    assert_eq!(row.storage_dir, format!("videos/{id}"));
    assert_eq!(
        row.source_sha256,
        "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd"
    );
    // The per-video secret is stored sealed under the master key, bound to this video.
    let master = h.master_key();
    let secret = sealing::open(&master, &sealing::video_secret_aad(&id), &row.sealed_secret)
        .expect("secret opens with the master key");
    assert_eq!(secret.len(), 32);
    assert!(sealing::open(
        &master,
        &sealing::video_secret_aad("other"),
        &row.sealed_secret
    )
    .is_err());

    let (layout, m) = manifest(&h, &id);
    assert_eq!(m.video.unit_frames, 25);
    assert_eq!(m.video.codec, out["codec"].as_str().unwrap());
    assert!(m.video.codec.starts_with("avc1."));
    assert_eq!(
        std::fs::read(layout.source_dir().join("original.mp4")).unwrap(),
        std::fs::read(SAMPLE).unwrap()
    );
    // The audio track: unmarked AAC in its own segments, decoding cleanly when joined.
    let audio = m.audio.as_ref().expect("the sample has audio");
    assert_eq!(
        (audio.codec.as_str(), audio.sample_rate, audio.channels),
        ("mp4a.40.2", 48000, 2)
    );
    assert!(
        (5..=7).contains(&audio.segment_count),
        "{}",
        audio.segment_count
    );
    let mut joined = std::fs::read(layout.audio_init()).unwrap();
    for k in 1..=audio.segment_count {
        joined.extend(std::fs::read(layout.audio_unit(k)).unwrap());
    }
    let audio_file = tempfile::NamedTempFile::with_suffix(".mp4").unwrap();
    std::fs::write(audio_file.path(), joined).unwrap();
    assert_eq!(decode_errors(audio_file.path()), "");
    assert_eq!(out["has_audio"], true);

    let thumbs =
        forensics::fingerprint::parse(&std::fs::read(layout.thumbnails()).unwrap()).unwrap();
    assert_eq!(thumbs.frames.dim().0, 132);

    // A and B differ in every unit (the watermark is there) but share the init segment.
    for k in 1..=6 {
        let a = std::fs::read(layout.video_unit(Variant::A, k)).unwrap();
        let b = std::fs::read(layout.video_unit(Variant::B, k)).unwrap();
        assert_ne!(a, b, "unit {k}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut mixes: Vec<Vec<Variant>> = vec![vec![Variant::A; 6], vec![Variant::B; 6]];
    for _ in 0..3 {
        mixes.push(
            (0..6)
                .map(|_| if rng.gen() { Variant::A } else { Variant::B })
                .collect(),
        );
    }
    for (i, mix) in mixes.iter().enumerate() {
        let file = dir.path().join(format!("mix{i}.mp4"));
        assemble(&layout, 6, |k| mix[k as usize - 1], &file);
        assert_eq!(decode_errors(&file), "", "mix {mix:?} decodes cleanly");
        assert_eq!(count_frames(&file), 132, "mix {mix:?} has every frame");
    }
}

#[test]
fn two_units_per_segment_come_in_four_variants_that_mix_freely() {
    let h = Harness::new();
    let out = h.package(
        Path::new(SAMPLE),
        "Two units a segment",
        &["--unit-seconds", "0.5", "--segment-units", "2"],
    );
    // 132 frames at 25 fps: units of 13 frames (11, the last of 2), segments of 26 (6, the
    // last holding only unit 11).
    assert_eq!(
        (
            out["units"].as_u64(),
            out["segments"].as_u64(),
            out["segment_units"].as_u64()
        ),
        (Some(11), Some(6), Some(2))
    );
    let id = out["video_id"].as_str().unwrap();
    let (layout, m) = manifest(&h, id);
    assert_eq!((m.video.unit_frames, m.video.segment_frames()), (13, 26));
    assert_eq!(m.audio.as_ref().map(|a| a.segment_seconds), Some(1.04));
    let variants: Vec<SegmentVariant> = SegmentVariant::all(2).collect();
    for v in &variants {
        let files = std::fs::read_dir(layout.variant_dir(*v)).unwrap().count();
        assert_eq!(files, 6, "variant {}", v.folder());
    }
    assert!(!layout.variant_dir(Variant::A).exists());
    // Any variant of any segment after the one init segment: a clean stream of every frame.
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..3 {
        let mix: Vec<SegmentVariant> = (0..6)
            .map(|_| variants[rng.gen_range(0..variants.len())])
            .collect();
        let file = dir.path().join(format!("mix{i}.mp4"));
        assemble(&layout, 6, |k| mix[k as usize - 1], &file);
        assert_eq!(decode_errors(&file), "", "mix {i} decodes cleanly");
        assert_eq!(count_frames(&file), 132, "mix {i} has every frame");
    }
}

struct Shape {
    name: &'static str,
    spec: ClipSpec<'static>,
    expect_size: (i64, i64),
    /// 0 for variable frame rate sources.
    expect_rate: f64,
}

const fn spec(
    size: &'static str,
    rate: &'static str,
    audio: bool,
    vf: Option<&'static str>,
    codec: &'static [&'static str],
) -> ClipSpec<'static> {
    ClipSpec {
        size,
        rate,
        seconds: 2.0,
        audio,
        vf,
        codec,
    }
}

#[test]
fn clips_of_many_shapes_rates_and_containers_package() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = [
        Shape {
            name: "a.mp4",
            spec: spec(
                "320x240",
                "24",
                true,
                None,
                &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
            ),
            expect_size: (320, 240),
            expect_rate: 24.0,
        },
        Shape {
            name: "b.mkv",
            spec: spec(
                "321x181",
                "30",
                false,
                None,
                &["-c:v", "libx264", "-pix_fmt", "yuv444p"],
            ),
            expect_size: (320, 180),
            expect_rate: 30.0,
        },
        Shape {
            name: "c.webm",
            spec: spec(
                "256x144",
                "60",
                true,
                None,
                &[
                    "-c:v",
                    "libvpx-vp9",
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                    "-b:v",
                    "300k",
                    "-c:a",
                    "libopus",
                ],
            ),
            expect_size: (256, 144),
            expect_rate: 60.0,
        },
        Shape {
            name: "d.mpg",
            spec: spec(
                "352x288",
                "25",
                true,
                None,
                &["-c:v", "mpeg2video", "-q:v", "4", "-c:a", "mp2"],
            ),
            expect_size: (352, 288),
            expect_rate: 25.0,
        },
        Shape {
            name: "e.mp4",
            spec: spec(
                "320x240",
                "25",
                false,
                Some("setsar=4/3"),
                &["-c:v", "libx264"],
            ),
            expect_size: (320, 240),
            expect_rate: 25.0,
        },
        // Variable frame rate: every third frame dropped, timestamps kept.
        Shape {
            name: "f.mkv",
            spec: spec(
                "320x240",
                "30",
                false,
                Some("select='not(eq(mod(n\\,3)\\,2))'"),
                &["-fps_mode", "vfr", "-c:v", "libx264"],
            ),
            expect_size: (320, 240),
            expect_rate: 0.0,
        },
    ];
    let h = Harness::new();
    for s in &shapes {
        let input = clip(dir.path(), s.name, &s.spec);
        let out = h.package(&input, s.name, &[]);
        let id = out["video_id"].as_str().unwrap();
        assert_eq!(
            (
                out["width"].as_i64().unwrap(),
                out["height"].as_i64().unwrap()
            ),
            s.expect_size,
            "{}",
            s.name
        );
        let (layout, m) = manifest(&h, id);
        let fps = m.video.frame_rate[0] as f64 / m.video.frame_rate[1] as f64;
        if s.expect_rate > 0.0 {
            assert!((fps - s.expect_rate).abs() < 0.01, "{}: {fps}", s.name);
        }
        let expected_frames = (2.0 * fps).round() as i64;
        assert!(
            (m.video.frame_count as i64 - expected_frames).abs() <= 2,
            "{}: {} frames at {fps} fps",
            s.name,
            m.video.frame_count
        );
        assert_eq!(
            m.audio.is_some(),
            s.spec.audio,
            "{}: audio track iff the source has audio",
            s.name
        );
        if s.name == "e.mp4" {
            assert_eq!(m.video.sample_aspect, [4, 3], "non-square pixels kept");
        }
        let joined = dir.path().join(format!("{}.joined.mp4", s.name));
        assemble(
            &layout,
            m.video.unit_count,
            |k| if k % 2 == 0 { Variant::B } else { Variant::A },
            &joined,
        );
        assert_eq!(decode_errors(&joined), "", "{}", s.name);
        assert_eq!(count_frames(&joined), m.video.frame_count, "{}", s.name);
    }
    let db = h.db();
    assert_eq!(
        videos::list(&mut db.conn().unwrap()).unwrap().len(),
        shapes.len()
    );
}

/// Every entry of `data/videos`, so that tests can prove nothing was left behind.
fn video_dir_entries(h: &Harness) -> Vec<PathBuf> {
    match std::fs::read_dir(h.data_dir.join("videos")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn assert_refused(h: &Harness, input: &Path, extra: &[&str], needle: &str) {
    let mut args = vec!["package", input.to_str().unwrap(), "--title", "Refused"];
    args.extend_from_slice(extra);
    h.run(&args, None).fails_with(2, needle);
    assert_eq!(
        video_dir_entries(h),
        Vec::<PathBuf>::new(),
        "nothing left on disk after {needle:?}"
    );
    let db = h.db();
    assert!(videos::find_by_title(&mut db.conn().unwrap(), "Refused")
        .unwrap()
        .is_none());
}

#[test]
fn bad_inputs_are_refused_with_a_reason_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new();
    h.run(&["migrate"], None).success();

    let text = dir.path().join("notes.mp4");
    std::fs::write(
        &text,
        "this is not a video at all, just some text\n".repeat(50),
    )
    .unwrap();
    assert_refused(&h, &text, &[], "is not a video FFmpeg can read");

    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert_refused(&h, &empty, &[], "is empty (zero bytes)");

    assert_refused(
        &h,
        &dir.path().join("missing.mp4"),
        &[],
        "missing.mp4 does not exist",
    );

    let audio = dir.path().join("tone.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:a",
        "aac",
        audio.to_str().unwrap(),
    ]);
    assert_refused(&h, &audio, &[], "has no video stream");

    let huge = dir.path().join("wide.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=size=8208x64:duration=0.1:rate=10",
        "-c:v",
        "ffv1",
        huge.to_str().unwrap(),
    ]);
    assert_refused(&h, &huge, &[], "exceed the 8K limit");

    // Truncated, with the index at the front so that the container still opens.
    let whole = dir.path().join("whole.mp4");
    ffmpeg(&[
        "-i",
        SAMPLE,
        "-an",
        "-c:v",
        "copy",
        "-movflags",
        "+faststart",
        whole.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 5]).unwrap();
    assert_refused(&h, &cut, &[], "truncated or corrupt");
    // Truncated with the index at the end: the container cannot be opened at all.
    let tail_index = std::fs::read(SAMPLE).unwrap();
    let cut2 = dir.path().join("cut2.mp4");
    std::fs::write(&cut2, &tail_index[..tail_index.len() / 2]).unwrap();
    h.run(
        &["package", cut2.to_str().unwrap(), "--title", "Refused"],
        None,
    )
    .fails_with(2, "cut2.mp4");

    // A video stream whose every picture is garbage.
    let mut garbage = bytes.clone();
    let mdat = garbage.windows(4).position(|w| w == b"mdat").unwrap() + 4;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for b in &mut garbage[mdat..] {
        *b = rng.gen();
    }
    let noise = dir.path().join("noise.mp4");
    std::fs::write(&noise, &garbage).unwrap();
    let out = h.run(
        &["package", noise.to_str().unwrap(), "--title", "Refused"],
        None,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(out.stderr().contains("noise.mp4"), "{}", out.stderr());
    assert_eq!(video_dir_entries(&h), Vec::<PathBuf>::new());

    assert_refused(
        &h,
        Path::new(SAMPLE),
        &["--unit-seconds", "5"],
        "unit length",
    );
    assert_refused(
        &h,
        Path::new(SAMPLE),
        &["--preset", "warp"],
        "unknown x264 preset",
    );
    assert_refused(
        &h,
        Path::new(SAMPLE),
        &["--segment-units", "3"],
        "units per segment",
    );
    assert_refused(
        &h,
        Path::new(SAMPLE),
        &["--unit-seconds", "3", "--segment-units", "2"],
        "segments of 6 s",
    );
    h.run(&["package", SAMPLE, "--title", "  "], None)
        .fails_with(2, "invalid title");
}

/// A 160x90 clip of `seconds`, `t.mp4` in `dir`.
fn tiny_clip(dir: &Path, seconds: f64) -> PathBuf {
    clip(
        dir,
        "t.mp4",
        &ClipSpec {
            seconds,
            ..spec("160x90", "25", false, None, &["-c:v", "libx264"])
        },
    )
}

#[test]
fn a_title_that_exists_is_refused_before_any_work() {
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let input = tiny_clip(dir.path(), 1.0);
    h.package(&input, "Only Once", &[]);
    let before = video_dir_entries(&h);
    h.run(
        &["package", input.to_str().unwrap(), "--title", "Only Once"],
        None,
    )
    .fails_with(2, "already exists");
    assert_eq!(video_dir_entries(&h), before);
}

#[test]
fn media_limits_from_the_configuration_are_enforced() {
    let h = Harness::new();
    h.run(&["migrate"], None).success();
    for (key, value, needle) in [
        (
            "LEAKTRACE_MAX_INPUT_BYTES",
            "1000",
            "above the 1000-byte limit",
        ),
        ("LEAKTRACE_MAX_MEDIA_SECONDS", "2", "above the 2 s limit"),
        ("LEAKTRACE_MAX_PROCESSING_SECONDS", "0", "time limit"),
    ] {
        let mut c = h.cmd();
        c.args(["package", SAMPLE, "--title", "Limited"])
            .env(key, value);
        common::run_command(c, None).fails_with(2, needle);
        assert_eq!(video_dir_entries(&h), Vec::<PathBuf>::new(), "{key}");
    }
}

/// Every clip of the repository's `samples/` and of `$LEAKTRACE_MEDIA_DIR` (a folder of more
/// development clips, when set) packages, and its variants decode to the exact frame count.
#[test]
fn every_development_clip_packages() {
    let mut clips: Vec<PathBuf> = Vec::new();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let extra = std::env::var_os("LEAKTRACE_MEDIA_DIR").map(PathBuf::from);
    for folder in std::iter::once(samples).chain(extra) {
        for entry in std::fs::read_dir(&folder).unwrap() {
            clips.push(entry.unwrap().path());
        }
    }
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    for (index, path) in clips.into_iter().enumerate() {
        if path.extension().and_then(|e| e.to_str()) != Some("mp4") {
            continue;
        }
        // The same clip may be in both folders: one title each.
        let name = format!("{index} {}", path.file_name().unwrap().to_string_lossy());
        let out = h.package(&path, &name, &[]);
        let (layout, m) = manifest(&h, out["video_id"].as_str().unwrap());
        let joined = dir.path().join(format!("{name}.b.mp4"));
        assemble(&layout, m.video.unit_count, |_| Variant::B, &joined);
        assert_eq!(decode_errors(&joined), "", "{name}");
        assert_eq!(count_frames(&joined), m.video.frame_count, "{name}");
    }
}

/// With `analysis.reference_store` off, packaging queues no reference store and workers build
/// none; switched back on, the workers queue and build the missing store when they start.
#[test]
fn the_reference_store_can_be_switched_off_and_is_built_once_switched_back_on() {
    const BUILD: JobKind = JobKind::BuildReferenceStore;
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let input = tiny_clip(dir.path(), 2.0);
    let config = dir.path().join("leaktrace.toml");
    std::fs::write(&config, "[analysis]\nreference_store = false\n").unwrap();
    let out = h.package(
        &input,
        "Without store",
        &["--config", config.to_str().unwrap()],
    );
    let id = out["video_id"].as_str().unwrap().to_string();
    let pending = || {
        jobs::pending(&mut h.db().conn().unwrap(), BUILD)
            .unwrap()
            .len()
    };
    assert_eq!(pending(), 0, "no store job queued");

    // Still off: a server's workers leave the title alone.
    let server = h.serve_with_env(&[], &[("LEAKTRACE_REFERENCE_STORE", "false")]);
    assert_eq!(pending(), 0);
    drop(server);
    let store = Layout::new(h.data_dir.join("videos").join(&id));
    assert!(!forensics::refstore::exists(&store));

    // Back on (the default): queued once at start-up, and built.
    let server = h.serve(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !forensics::refstore::exists(&store) {
        assert!(std::time::Instant::now() < deadline, "no reference store");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(server);
    let all = jobs::recent(&mut h.db().conn().unwrap(), BUILD, 10).unwrap();
    assert_eq!(all.len(), 1, "one job");
    // Started again with the store there: nothing more is queued.
    drop(h.serve(&[]));
    assert_eq!(
        jobs::recent(&mut h.db().conn().unwrap(), BUILD, 10)
            .unwrap()
            .len(),
        1
    );
}
