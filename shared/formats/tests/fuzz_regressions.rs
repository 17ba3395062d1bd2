//! Replays the `isobmff` fuzz target's seeds (`fuzz/corpus/isobmff/seed-*`) and every input
//! it ever crashed on (`fuzz/regressions/isobmff/`, kept by scripts/fuzz-parsers.sh) through
//! the same calls as its harness (fuzz/src/lib.rs, `isobmff`), on the stable toolchain: no
//! input may panic; errors and `None` are fine.
//!
//! `LEAKTRACE_WRITE_FUZZ_SEEDS=1 cargo test -p formats --test fuzz_regressions` rewrites the
//! seed made here (an init segment carrying a session marker).

use formats::isobmff;
use formats::marker::{self, MarkerPayload, MarkerSigner};
use fuzz_inputs::{fuzz_dir, replay};

/// As `MARKER_MASTER_KEY` in fuzz/src/lib.rs.
const MARKER_MASTER_KEY: [u8; 32] = [7u8; 32];

/// The harness of fuzz target `isobmff` (fuzz/src/lib.rs).
fn harness(data: &[u8]) {
    fn walk(data: &[u8], depth: u32) {
        for b in isobmff::boxes(data) {
            assert!(
                b.whole.len() >= b.body.len() + 8,
                "a box shorter than its header"
            );
            assert!(b.whole.ends_with(b.body), "a box body outside its box");
            if depth < 16 {
                walk(b.body, depth + 1);
            }
        }
    }
    walk(data, 0);
    let _ = isobmff::find(data, &[b"moof", b"traf", b"trun"]);
    let _ = isobmff::media_timescale(data);
    let _ = isobmff::first_presentation_time(data);
    if let Ok(Some(found)) = marker::find_marker(data) {
        let key = MarkerSigner::from_master_key(&MARKER_MASTER_KEY).verifying_key();
        let _ = found.verify(&key);
        let _ = found.claimed();
    }
}

fn init_with_marker() -> Vec<u8> {
    let init = std::fs::read(fuzz_dir().join("corpus/isobmff/seed-init.mp4")).expect("init seed");
    let signer = MarkerSigner::from_master_key(&MARKER_MASTER_KEY);
    let payload = MarkerPayload {
        session_id: "5b0c9d0e-0000-4000-8000-000000000001".into(),
        video_id: "v-fuzz".into(),
        issued_at: 1_790_000_000,
    };
    [init, signer.marker_box(&payload)].concat()
}

#[test]
fn isobmff_inputs_do_not_panic() {
    // Includes `overflow-tfdt-near-i64-max`: a tfdt decode time near i64::MAX plus a trun
    // composition offset overflowed in `first_presentation_time` (now `None`).
    let replayed = replay("isobmff", harness);
    assert!(
        replayed >= 3,
        "the seed corpus is missing ({replayed} inputs)"
    );
}

#[test]
fn the_seeds_reach_what_they_are_for() {
    let dir = fuzz_dir().join("corpus/isobmff");
    let init = std::fs::read(dir.join("seed-init.mp4")).unwrap();
    let media = std::fs::read(dir.join("seed-media.m4s")).unwrap();
    assert!(isobmff::media_timescale(&init).is_some());
    assert!(isobmff::first_presentation_time(&media).is_some());
    let marked = init_with_marker();
    let key = MarkerSigner::from_master_key(&MARKER_MASTER_KEY).verifying_key();
    let found = marker::find_marker(&marked).unwrap().expect("a marker");
    assert!(found.verify(&key).is_ok());
    harness(&marked);
    let seed = dir.join("seed-init-marker.mp4");
    if std::env::var_os("LEAKTRACE_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::write(&seed, &marked).unwrap();
    }
    let stored = std::fs::read(&seed).expect("the marker seed (LEAKTRACE_WRITE_FUZZ_SEEDS=1)");
    assert!(marker::find_marker(&stored)
        .unwrap()
        .unwrap()
        .verify(&key)
        .is_ok());
}
