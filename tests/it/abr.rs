//! Adaptive streaming: a title packaged with a rendition ladder serves every rendition in
//! the session's own variants (unit k carries the session's bit k in whichever rendition the
//! player fetched it), and a leak made from the lowest rendition, or recorded while the player
//! switched between renditions, still names its viewer.

use std::path::Path;

use formats::layout::{Layout, Variant};
use formats::package::PackageManifest;

use crate::common::evidence::{analysed, Auth};
use crate::common::leaks::{packaged_with, Title};
use crate::common::media::ffmpeg;
use crate::common::viewer::{user_token, Client, PASSWORD};

/// The title's folder and manifest.
fn title_files(t: &Title) -> (Layout, PackageManifest) {
    let db = t.h.db();
    let row = shared::db::repo::videos::get(&mut db.conn().unwrap(), &t.video_id).unwrap();
    let layout = formats::layout::DataLayout::new(&t.h.data_dir).title(&row.storage_dir);
    let manifest = PackageManifest::read(&layout).unwrap();
    (layout, manifest)
}

/// What a player that shows rendition `pick(k)` for unit k records: each unit decoded with
/// its rendition's init segment, scaled to 480x270 (what the screen shows), all encoded again
/// as one file.
fn recorded(client: &Client, segments: u32, dir: &Path, out: &Path, pick: impl Fn(u32) -> u32) {
    let raw = dir.join("screen.yuv");
    let _ = std::fs::remove_file(&raw);
    let mut screen = Vec::new();
    for k in 1..=segments {
        let r = pick(k);
        let prefix = if r == 0 {
            String::new()
        } else {
            format!("r{r}-")
        };
        let mut piece = client.segment(&format!("{prefix}init"));
        piece.extend(client.segment(&format!("{prefix}{k}")));
        let (input, frames) = (dir.join("unit.mp4"), dir.join("unit.yuv"));
        std::fs::write(&input, piece).unwrap();
        ffmpeg(&[
            "-i",
            input.to_str().unwrap(),
            "-vf",
            "scale=480:270:flags=bicubic",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "rawvideo",
            frames.to_str().unwrap(),
        ]);
        screen.extend(std::fs::read(&frames).unwrap());
    }
    std::fs::write(&raw, screen).unwrap();
    ffmpeg(&[
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-s",
        "480x270",
        "-r",
        "25",
        "-i",
        raw.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-crf",
        "23",
        "-preset",
        "veryfast",
        out.to_str().unwrap(),
    ]);
}

#[test]
fn every_rendition_carries_the_sessions_bits_and_a_leak_from_any_mix_names_its_viewer() {
    let t = packaged_with(24.0, &["--ladder", "180,134,1080"]);
    t.h.add_user("ann", "analyst", PASSWORD);
    let d = t.dir.path();

    // Two lower renditions (1080 is above the source and left out), each in both variants,
    // with the units of the top one; the manifest states their sizes and measured rates.
    let (layout, package) = title_files(&t);
    let sizes: Vec<(u32, u32, u32)> = package
        .renditions
        .iter()
        .map(|r| (r.index, r.width, r.height))
        .collect();
    assert_eq!(sizes, [(1, 320, 180), (2, 238, 134)]);
    let top_rate = package.video.bandwidth.unwrap();
    assert!(package.renditions[0].bandwidth < top_rate);
    assert!(package.renditions[1].bandwidth < package.renditions[0].bandwidth);
    for r in &package.renditions {
        for k in 1..=t.segments {
            let a = std::fs::read(layout.rendition_unit(r.index, Variant::A, k)).unwrap();
            let b = std::fs::read(layout.rendition_unit(r.index, Variant::B, k)).unwrap();
            assert_ne!(a, b, "rendition {} unit {k}: the variants differ", r.index);
        }
    }

    let server = t.h.serve(&[]);
    // The MPD lists every rendition, each with its own segment names.
    let vera = Client::start(&server, "vera", &"3".repeat(64), &t.video_id);
    let mpd = vera.manifest();
    assert_eq!(mpd.status, 200);
    for expected in [
        r#"<Representation id="video" "#,
        r#"<Representation id="video-r1" "#,
        r#"width="320" height="180""#,
        r#"<Representation id="video-r2" "#,
        r#"initialization="/api/video/stream/"#,
        r#"/r2-init/" media="/api/video/stream/"#,
        r#"/r2-$Number$/""#,
    ] {
        assert!(mpd.body.contains(expected), "{expected}: {}", mpd.body);
    }
    // Unit k in any rendition is the variant of the session's bit k: the same variant as the
    // top rendition's unit k; a rendition the title lacks is a 404.
    for k in 1..=6 {
        let top = vera.segment(&k.to_string());
        let variant = if top == std::fs::read(layout.video_unit(Variant::A, k)).unwrap() {
            Variant::A
        } else {
            assert_eq!(
                top,
                std::fs::read(layout.video_unit(Variant::B, k)).unwrap()
            );
            Variant::B
        };
        for r in [1, 2] {
            let served = vera.segment(&format!("r{r}-{k}"));
            let expected = std::fs::read(layout.rendition_unit(r, variant, k)).unwrap();
            assert_eq!(served, expected, "unit {k} of rendition {r}");
        }
    }
    let (status, _, _) = vera.raw_segment("r3-1");
    assert_eq!(status, 404);
    let (status, _, _) = vera.raw_segment("r3-init");
    assert_eq!(status, 404);

    // A leak of the lowest rendition, and a recording of a player that switched between all
    // three every few units: each names its viewer.
    let val = Client::start(&server, "val", &"1".repeat(64), &t.video_id);
    let lowest = d.join("lowest.mp4");
    recorded(&val, t.segments, d, &lowest, |_| 2);
    let vic = Client::start(&server, "vic", &"2".repeat(64), &t.video_id);
    let mixed = d.join("mixed.mp4");
    recorded(&vic, t.segments, d, &mixed, |k| (k / 3) % 3);
    let analyst = user_token(&server, "ann", PASSWORD);
    for (file, leaker) in [(&lowest, &val.session_id), (&mixed, &vic.session_id)] {
        let (_, done) = analysed(
            &server,
            Auth::Bearer(&analyst),
            "leak.mp4",
            &std::fs::read(file).unwrap(),
            &t.video_id,
        );
        assert_eq!(
            done["result"]["verdict"],
            "identified",
            "{}: {done:#}",
            file.display()
        );
        assert_eq!(
            done["result"]["matches"][0]["session_id"],
            leaker.as_str(),
            "{}",
            file.display()
        );
    }
}
