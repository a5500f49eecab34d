//! The small state: an entry agent's Q-table and eligibility traces (spec section 2.1), sized
//! so that a 4 KB payload is the common case of a save on every tick.

use persist_core::persist;

/// One Q-table entry (24 bytes archived).
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct QEntry {
    /// Hash of the market state.
    pub state_hash: u64,
    /// The learned value.
    pub q_value: f64,
    /// The action index.
    pub action: u8,
}

/// One eligibility trace (24 bytes archived).
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEntry {
    /// Hash of the market state.
    pub state_hash: u64,
    /// The trace's eligibility.
    pub eligibility: f64,
    /// The action index.
    pub action: u8,
}

/// The entry agent's state.
#[persist(name = "entry_agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct EntryAgentState {
    /// The Q-table.
    pub q_entries: Vec<QEntry>,
    /// The eligibility traces.
    pub traces: Vec<TraceEntry>,
    /// Exploration rate.
    pub epsilon: f64,
    /// Learning rate.
    pub alpha: f64,
    /// Trace decay.
    pub lambda: f64,
    /// Q-value updates performed.
    pub total_updates: u64,
    /// Unique states visited.
    pub state_space_size: u64,
    /// First training timestamp, seconds since the Unix epoch.
    pub training_start: i64,
}

impl EntryAgentState {
    /// A deterministic agent with `q` Q-table entries and `traces` traces.
    pub fn sample(q: usize, traces: usize, total_updates: u64) -> Self {
        let mut rng = crate::replay::XorShift::new(total_updates);
        let q_entries = (0..q)
            .map(|i| QEntry {
                state_hash: rng.next_u64(),
                q_value: rng.unit() * 10.0 - 5.0,
                action: (i % 3) as u8,
            })
            .collect();
        let traces = (0..traces)
            .map(|i| TraceEntry {
                state_hash: rng.next_u64(),
                eligibility: rng.unit(),
                action: (i % 3) as u8,
            })
            .collect();
        EntryAgentState {
            q_entries,
            traces,
            epsilon: 0.15,
            alpha: 0.05,
            lambda: 0.9,
            total_updates,
            state_space_size: q as u64,
            training_start: 1_700_000_000,
        }
    }

    /// The 4 KB state of the benches: 128 Q entries and 40 traces, a 4096-byte payload.
    pub fn four_kb(total_updates: u64) -> Self {
        EntryAgentState::sample(128, 40, total_updates)
    }
}
