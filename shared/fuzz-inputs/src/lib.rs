//! The inputs of the fuzz targets in `fuzz/` as the stable test suites replay them: each
//! target's seeds (`fuzz/corpus/<target>/seed-*`, the files the corpus starts from, kept in
//! git; the rest of a corpus is what a run found and is not) and every input it ever crashed
//! or hung on (`fuzz/regressions/<target>/`, kept by `scripts/fuzz-parsers.sh`).
//!
//! Used by the crates' `fuzz_regressions` tests and by `fuzz/tests/`; not by product code.

use std::panic::{catch_unwind, RefUnwindSafe};
use std::path::{Path, PathBuf};

/// The `fuzz/` folder of the repository.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The seeds of `corpus/<target>` and every file of `regressions/<target>` (but its
/// README.md), sorted.
pub fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (dir, seeds_only) in [("corpus", true), ("regressions", false)] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = if seeds_only {
                name.starts_with("seed-")
            } else {
                !name.starts_with('.') && name != "README.md"
            };
            if wanted && entry.path().is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// Runs every input of `target` through `harness` and fails naming those that panic;
/// returns how many inputs were replayed (a caller checks that its seeds are there).
pub fn replay(target: &str, harness: impl Fn(&[u8]) + RefUnwindSafe) -> usize {
    let files = inputs(target);
    let panicked: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("readable input");
            catch_unwind(|| harness(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(panicked.is_empty(), "inputs that panic: {panicked:#?}");
    files.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds_and_a_regressions_folder_is_optional() {
        for target in [
            "isobmff",
            "multipart",
            "report_check",
            "tokens",
            "device_key",
        ] {
            let files = inputs(target);
            assert!(
                files.iter().any(|f| f
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
                "{target}: no seeds"
            );
        }
        assert!(inputs("no-such-target").is_empty());
    }

    #[test]
    fn a_panicking_harness_fails_the_replay() {
        let outcome = catch_unwind(|| replay("tokens", |_| panic!("always")));
        assert!(outcome.is_err());
        assert!(replay("tokens", |_| ()) >= 1);
    }
}
