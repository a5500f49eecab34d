//! The demo: a small simulated learning agent whose state is saved through a [`persist_core::Store`].
//!
//! Everything here is deterministic given the seed, and the whole state (market generator
//! included) is saved, so a run resumed from a generation continues exactly as an
//! uninterrupted run would have.

pub mod agent;
pub mod market;
pub mod schemas;
pub mod space;
pub mod state;

pub use space::{ACTION_NAMES, N_ACTIONS, N_STATES};
pub use state::DemoState;
