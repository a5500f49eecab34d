//! `persist demo --schemas`: the users' nine states (`persist-schemas`) at production sizes,
//! saved next to the agent's own state. Each run first loads the newest generation of each
//! (migrating it if an older version wrote it), then saves a freshly generated one.

use std::io::Write;
use std::time::Instant;

use persist_core::{LoadError, Persist, Store};
use persist_schemas::{
    EntryAgentState, ExitAgentState, LearningMetricsState, MdpEsState, PortfolioRiskState,
    PositionState, ReplayBufferState, RiskAdversaryState, ShadowAgentsState,
};

use crate::error::CliError;
use crate::outln;

/// Loads then saves every state of the users' schemas, with sizes from the specification
/// (10 000 Q-table states, 10 000 replay experiences, a 64-128-64-1 risk network, …).
/// `fresh` saves a state anew even when its generations exist but cannot be loaded.
pub fn save_all(
    store: &Store,
    seed: u64,
    fresh: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    outln!(out, "users' states (persist-schemas):")?;
    one(store, EntryAgentState::generate(10_000, seed), fresh, out)?;
    one(store, ExitAgentState::generate(10_000, seed), fresh, out)?;
    one(store, ReplayBufferState::generate(10_000, seed), fresh, out)?;
    one(
        store,
        RiskAdversaryState::generate_network(&[64, 128, 64, 1], 10_000, seed),
        fresh,
        out,
    )?;
    one(
        store,
        LearningMetricsState::generate(1_000, seed),
        fresh,
        out,
    )?;
    one(
        store,
        PortfolioRiskState::generate(20, 1_000, seed),
        fresh,
        out,
    )?;
    one(
        store,
        ShadowAgentsState::generate(5, 2_000, seed),
        fresh,
        out,
    )?;
    one(store, PositionState::generate(seed), fresh, out)?;
    one(
        store,
        MdpEsState::generate(1_000, 50, 100, 1_000, seed),
        fresh,
        out,
    )
}

fn one<T: Persist>(
    store: &Store,
    value: T,
    fresh: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let loaded = match store.load::<T>() {
        Ok(l) => {
            let r = &l.report;
            let migrated = if r.migrations.is_empty() {
                String::new()
            } else {
                format!(", migrated v{} -> v{}", r.schema_version, T::VERSION)
            };
            format!("loaded v{}{migrated}", r.schema_version)
        }
        Err(LoadError::NoGeneration { .. }) => "none yet".to_string(),
        Err(err) if fresh => format!("not loaded, saving anew (--fresh): {err}"),
        Err(err) => return Err(CliError::Load(err)),
    };
    let started = Instant::now();
    let receipt = store.save(&value).map_err(CliError::Save)?;
    outln!(
        out,
        "  {:<17} v{}: {loaded}; saved generation {}, {} bytes in {} µs",
        T::NAME,
        T::VERSION,
        receipt.sequence,
        receipt.bytes,
        started.elapsed().as_micros()
    )
}

#[cfg(test)]
mod tests {
    use persist_core::{Key, Keyring, StoreConfig};
    use persist_fs::FsBackend;

    use super::*;

    #[test]
    fn saves_every_state_then_loads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FsBackend::open(dir.path()).unwrap();
        let store = Store::new(
            Box::new(backend),
            Keyring::new(Key::generate().unwrap()),
            StoreConfig::default(),
        );
        let mut out = Vec::new();
        save_all(&store, 7, false, &mut out).unwrap();
        save_all(&store, 7, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("none yet").count(), 9, "{text}");
        assert_eq!(text.matches("loaded v").count(), 9, "{text}");
        assert_eq!(store.names().unwrap().len(), 9);
        let replay = store.load::<ReplayBufferState>().unwrap().value;
        assert_eq!(replay, ReplayBufferState::generate(10_000, 7));
    }
}
