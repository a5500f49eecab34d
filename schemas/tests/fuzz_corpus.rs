//! Replays the committed corpus of the `states` fuzz target (`fuzz/corpus/states/`, and
//! `fuzz/regressions/states/` if present) through the same logic cargo-fuzz runs, on stable.
//! See `docs/FUZZING.md`.

#[path = "../../fuzz/logic/states.rs"]
mod logic;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn states_corpus() {
    let mut failures = Vec::new();
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join("states")) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("readable").path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file()) {
            let bytes = std::fs::read(&path).expect("readable corpus file");
            count += 1;
            if std::panic::catch_unwind(|| logic::states(&bytes)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "states: inputs failed: {failures:#?}");
    assert!(count > 0, "no corpus found");
}

#[test]
fn seeds_decode() {
    for (name, bytes) in logic::seeds() {
        // Valid payloads (not the edge cases) must decode, not merely not panic.
        logic::states(&bytes);
        let entry = &logic::ENTRIES[usize::from(bytes[0])];
        if !name.starts_with("seed-empty") && !name.starts_with("seed-zeros") {
            let payload = &bytes[1..];
            let mut aligned = persist_core::rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(payload);
            assert!(decodes(entry.name, entry.version, &aligned), "{name}");
        }
    }
}

fn decodes(name: &str, version: u32, payload: &[u8]) -> bool {
    use persist_core::Persist;
    use persist_schemas::*;
    match name {
        "entry_agent" => EntryAgentState::decode(version, payload).is_ok(),
        "exit_agent" => ExitAgentState::decode(version, payload).is_ok(),
        "replay_buffer" => ReplayBufferState::decode(version, payload).is_ok(),
        "risk_adversary" => RiskAdversaryState::decode(version, payload).is_ok(),
        "learning_metrics" => LearningMetricsState::decode(version, payload).is_ok(),
        "portfolio_risk" => PortfolioRiskState::decode(version, payload).is_ok(),
        "shadow_agents" => ShadowAgentsState::decode(version, payload).is_ok(),
        "position" => PositionState::decode(version, payload).is_ok(),
        "mdp_es" => MdpEsState::decode(version, payload).is_ok(),
        other => panic!("unknown state {other}"),
    }
}

#[test]
fn entries_match_the_registry() {
    let registry: Vec<(String, u32)> = persist_schemas::all()
        .iter()
        .map(|e| (e.name.to_string(), e.version))
        .collect();
    let entries: Vec<(String, u32)> = logic::ENTRIES
        .iter()
        .map(|e| (e.name.to_string(), e.version))
        .collect();
    assert_eq!(entries, registry);
}

#[test]
#[ignore = "writes fuzz/corpus/states/seed-*: run explicitly to regenerate the seeds"]
fn write_seed_corpus() {
    let dir = fuzz_dir().join("corpus").join("states");
    std::fs::create_dir_all(&dir).expect("creates the corpus directory");
    for (name, bytes) in logic::seeds() {
        std::fs::write(dir.join(name), bytes).expect("writes a seed");
    }
}
