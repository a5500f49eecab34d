//! Shared fixtures of the workspace's integration tests, benchmarks and torture binary.
//!
//! [`AgentState`] is a `#[persist(...)]` state: its fingerprint follows its fields' types.

pub mod sandbox;
pub mod snapshot;
pub mod torture;

use persist_core::{Key, Keyring, persist};

/// One Q-table entry.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct QEntry {
    /// Hash of the market state.
    pub state_hash: u64,
    /// The action index.
    pub action: u8,
    /// The learned value.
    pub q_value: f64,
}

/// A small learning agent's state.
#[persist(name = "agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct AgentState {
    /// The Q-table.
    pub q: Vec<QEntry>,
    /// Exploration rate.
    pub epsilon: f64,
    /// Updates performed; the torture binary uses it as the save counter.
    pub total_updates: u64,
    /// Free text.
    pub note: String,
}

impl AgentState {
    /// A deterministic agent with `entries` Q-table entries.
    pub fn sample(entries: usize, total_updates: u64) -> Self {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ total_updates;
        let q = (0..entries)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                QEntry {
                    state_hash: x,
                    action: (i % 3) as u8,
                    q_value: (x % 10_000) as f64 / 1000.0 - 5.0,
                }
            })
            .collect();
        AgentState {
            q,
            epsilon: 0.15,
            total_updates,
            note: format!("sample with {entries} entries"),
        }
    }
}

/// The fixed key of the tests (never use a constant key in a program).
pub fn test_keyring() -> Keyring {
    Keyring::new(test_key())
}

/// The tests' signing key.
pub fn test_key() -> Key {
    Key::from_bytes(b"persist test key: 32+ bytes, never for production".to_vec())
        .expect("long enough")
}
