//! Replays the `multipart` fuzz target's seeds (`corpus/multipart/seed-*`) and every input it
//! ever crashed on (`regressions/multipart/`, kept by scripts/fuzz-parsers.sh) on the stable
//! toolchain, through the target itself: the multipart reading is private to the `leaktrace`
//! binary, so only the target compiles it (src/multipart.rs). Run from here:
//! `cargo test --manifest-path fuzz/Cargo.toml`. No input may panic or hang; refused forms
//! are fine.

use std::path::Path;
use std::process::{Command, Output};

use fuzz_inputs::{fuzz_dir, inputs};

/// Runs the target once on `input` (libFuzzer runs the files it is given, without fuzzing).
fn run(input: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_multipart"))
        .arg("-timeout=60")
        .arg(input)
        .envs(env.iter().copied())
        .output()
        .expect("the multipart target runs")
}

/// Replays every input, naming those that fail.
fn replay(env: &[(&str, &str)]) {
    let files = inputs("multipart");
    assert!(files.len() >= 3, "the seed corpus is missing");
    let failed: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let out = run(path, env);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .find(|l| l.contains("panicked") || l.contains("ERROR"))
                .unwrap_or_default()
                .to_string();
            (!out.status.success()).then(|| format!("{}: {why}", path.display()))
        })
        .collect();
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
}

/// Also the bodies cut off inside a part that actix-multipart 0.7.2 never finished reading
/// (fuzz/regressions/multipart/README.md).
#[test]
fn multipart_inputs_do_not_panic_or_hang() {
    replay(&[]);
}

#[test]
fn the_seeds_reach_what_they_are_for() {
    let shown = |name: &str| {
        let out = run(
            &fuzz_dir().join("corpus/multipart").join(name),
            &[("LEAKTRACE_FUZZ_SHOW", "1")],
        );
        assert!(out.status.success(), "{name}");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("multipart "))
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    let upload = shown("seed-suspect-upload");
    assert_eq!(upload.len(), 2, "{upload:?}");
    for line in &upload {
        assert!(
            line.contains("\"video_id\", \"v-1\"") && line.ends_with("Some(300)))"),
            "{line}"
        );
    }
    for line in shown("seed-text-only") {
        assert!(
            line.ends_with(r#"Ok(([("video_file_path", "leak.mp4")], None))"#),
            "{line}"
        );
    }
    for line in shown("seed-refused") {
        assert!(line.ends_with(r#"Err("duplicate_field")"#), "{line}");
    }
}
