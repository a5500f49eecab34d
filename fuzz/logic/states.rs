//! The logic of the `states` fuzz target and its seed generator, shared by
//! `fuzz/fuzz_targets/states.rs` (cargo-fuzz) and `schemas/tests/fuzz_corpus.rs` (stable corpus
//! replay), like `core.rs`.
//!
//! Input: one selector byte choosing a (state, schema version) of the registry
//! (`persist_schemas::all()`: nine states, twelve versions), then the payload, copied into a
//! 16-byte aligned buffer as the store hands it out. `Persist::decode` must return the value or
//! `CodecError::InvalidPayload`, never panic.
//!
//! Older versions are fuzzed too: `decode(old, payload)` validates the old layout with
//! bytecheck before the migration step (`From`) runs, and the steps of these schemas are total
//! functions, so they are safe on any payload that validates. (The store only calls them on
//! authentic data; a user's fallible or panicking step would be outside this contract.)
#![allow(dead_code)]

use persist_core::rkyv::util::AlignedVec;
use persist_core::{CodecError, Persist};
use persist_schemas::history::{ExitAgentStateV1, PositionStateV1, ReplayBufferStateV1};
use persist_schemas::*;

/// A (state, version) the target decodes.
pub struct Entry {
    /// The schema name.
    pub name: &'static str,
    /// The schema version decoded.
    pub version: u32,
    /// Decodes a payload of that version with the current type (migrating) and checks it.
    pub check: fn(u32, &[u8]),
}

macro_rules! entry {
    ($current:ty, $version:expr) => {
        Entry {
            name: <$current as Persist>::NAME,
            version: $version,
            check: check::<$current>,
        }
    };
}

/// Every state and version of the registry, in `persist_schemas::all()` order.
pub const ENTRIES: [Entry; 12] = [
    entry!(EntryAgentState, 1),
    entry!(ExitAgentState, 1),
    entry!(ExitAgentState, 2),
    entry!(ReplayBufferState, 1),
    entry!(ReplayBufferState, 2),
    entry!(RiskAdversaryState, 1),
    entry!(LearningMetricsState, 1),
    entry!(PortfolioRiskState, 1),
    entry!(ShadowAgentsState, 1),
    entry!(PositionState, 1),
    entry!(PositionState, 2),
    entry!(MdpEsState, 1),
];

fn check<T: Persist>(version: u32, payload: &[u8]) {
    match T::decode(version, payload) {
        Ok(decoded) => {
            assert_eq!(decoded.migrations.len() as u32, T::VERSION - version);
            // A decoded value re-encodes, decodes again, and re-encodes to the same bytes.
            let bytes = decoded.value.encode().expect("a decoded value encodes");
            let again = T::decode(T::VERSION, &bytes).expect("a re-encoded value decodes");
            assert!(again.migrations.is_empty());
            let bytes_again = again.value.encode().expect("encodes");
            assert_eq!(bytes.as_slice(), bytes_again.as_slice());
        }
        Err(CodecError::InvalidPayload(message)) => {
            std::hint::black_box(message);
        }
        Err(other) => panic!("{} v{version}: unexpected error {other:?}", T::NAME),
    }
}

/// The `states` target.
pub fn states(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let entry = &ENTRIES[usize::from(selector) % ENTRIES.len()];
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    (entry.check)(entry.version, &aligned);
}

fn seed<T: Persist>(value: &T) -> Vec<u8> {
    let selector = ENTRIES
        .iter()
        .position(|e| e.name == T::NAME && e.version == T::VERSION)
        .expect("registered") as u8;
    let mut out = vec![selector];
    out.extend_from_slice(&value.encode().expect("encodes"));
    out
}

/// The seed corpus of the `states` target: `(file name, bytes)`, every state and version at two
/// or three sizes (each under 64 KiB), and a few edge cases.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| {
        assert!(bytes.len() <= 65536, "{name}: {} bytes", bytes.len());
        out.push((format!("seed-{name}"), bytes));
    };
    for (i, n) in [0usize, 3, 40].into_iter().enumerate() {
        let s = i as u64 + 1;
        add(
            format!("entry_agent-v1-{n}"),
            seed(&EntryAgentState::generate(n, s)),
        );
        add(
            format!("exit_agent-v1-{n}"),
            seed(&ExitAgentStateV1::generate(n, s)),
        );
        add(
            format!("exit_agent-v2-{n}"),
            seed(&ExitAgentState::generate(n, s)),
        );
        add(
            format!("replay_buffer-v1-{n}"),
            seed(&ReplayBufferStateV1::generate(n, s)),
        );
        add(
            format!("replay_buffer-v2-{n}"),
            seed(&ReplayBufferState::generate(n, s)),
        );
        add(
            format!("risk_adversary-tabular-{n}"),
            seed(&RiskAdversaryState::generate_tabular(n, n, s)),
        );
        add(
            format!("risk_adversary-network-{n}"),
            seed(&RiskAdversaryState::generate_network(
                &[n % 5 + 1, 4, 1],
                n,
                s,
            )),
        );
        add(
            format!("learning_metrics-{n}"),
            seed(&LearningMetricsState::generate(n, s)),
        );
        add(
            format!("portfolio_risk-{n}"),
            seed(&PortfolioRiskState::generate(n, n, s)),
        );
        add(
            format!("shadow_agents-{n}"),
            seed(&ShadowAgentsState::generate(n % 4, n, s)),
        );
        add(
            format!("position-v1-{i}"),
            seed(&PositionStateV1::generate(s)),
        );
        add(
            format!("position-v2-{i}"),
            seed(&PositionState::generate(s)),
        );
        add(
            format!("mdp_es-{n}"),
            seed(&MdpEsState::generate(n, n % 5, n % 7, n, s)),
        );
    }
    for (i, _) in ENTRIES.iter().enumerate() {
        add(format!("empty-{i}"), vec![i as u8]);
        add(format!("zeros-{i}"), [&[i as u8][..], &[0; 64]].concat());
    }
    out
}
