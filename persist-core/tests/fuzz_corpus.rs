//! Replays the committed fuzz corpora of the persist-core targets (`fuzz/corpus/<target>/`, and
//! `fuzz/regressions/<target>/` if present) through the same logic the cargo-fuzz targets run,
//! so that CI checks every corpus input on stable without cargo-fuzz. See `docs/FUZZING.md`.
//!
//! The seed part of the corpus comes from `write_seed_corpus` below (ignored: run it explicitly
//! to regenerate the seeds).

#[path = "../../fuzz/logic/core.rs"]
mod logic;

use std::path::{Path, PathBuf};

/// A target's name and its logic.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 4] = [
    ("header", logic::header),
    ("envelope", logic::envelope),
    ("store_load", logic::store_load),
    ("store_open", logic::store_open),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of `fuzz/<kind>/<target>/`, sorted.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file through `run`, naming each file that panics.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        for path in files(kind, target) {
            let bytes = std::fs::read(&path).expect("readable corpus file");
            count += 1;
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: inputs failed: {failures:#?}"
    );
    count
}

#[test]
fn header_corpus() {
    assert!(replay("header", logic::header) > 0);
}

#[test]
fn envelope_corpus() {
    assert!(replay("envelope", logic::envelope) > 0);
}

#[test]
fn store_load_corpus() {
    assert!(replay("store_load", logic::store_load) > 0);
}

#[test]
fn store_open_corpus() {
    assert!(replay("store_open", logic::store_open) > 0);
}

#[test]
fn seeds_pass_their_targets() {
    logic::check_seeds_are_valid();
    for (target, name, bytes) in logic::seeds() {
        let run = TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .unwrap_or_else(|| panic!("unknown target {target} of seed {name}"))
            .1;
        run(&bytes);
    }
}

#[test]
#[ignore = "writes fuzz/corpus/<target>/seed-*: run explicitly to regenerate the seeds"]
fn write_seed_corpus() {
    for (target, name, bytes) in logic::seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("creates the corpus directory");
        std::fs::write(dir.join(name), bytes).expect("writes a seed");
    }
}
