//! Shared fixtures of the workspace's integration tests, benchmarks and torture binary.
//!
//! The `#[derive(Persist)]` macro is a later issue, so [`AgentState`] implements
//! [`Persist`] by hand, exactly as the derive will.

pub mod sandbox;
pub mod torture;

use persist_core::rkyv::util::AlignedVec;
use persist_core::{CodecError, Decoded, Fingerprint, Key, Keyring, Persist, codec, rkyv};

/// One Q-table entry.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
#[rkyv(crate = persist_core::rkyv)]
pub struct QEntry {
    /// Hash of the market state.
    pub state_hash: u64,
    /// The action index.
    pub action: u8,
    /// The learned value.
    pub q_value: f64,
}

/// A small learning agent's state.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
#[rkyv(crate = persist_core::rkyv)]
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

impl Persist for AgentState {
    const NAME: &'static str = "agent";
    const VERSION: u32 = 1;

    fn fingerprint() -> Fingerprint {
        Fingerprint::of_descriptor(
            "AgentState{q:Vec<QEntry{state_hash:u64,action:u8,q_value:f64}>,epsilon:f64,\
             total_updates:u64,note:String}",
        )
    }

    fn encode(&self) -> Result<AlignedVec, CodecError> {
        codec::encode(self)
    }

    fn decode(version: u32, payload: &[u8]) -> Result<Decoded<Self>, CodecError> {
        codec::decode_current::<Self>(version, payload)
    }
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
