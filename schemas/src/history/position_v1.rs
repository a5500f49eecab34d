//! `position` version 1, frozen: `f32` prices, `entry`, `saved_at` in seconds.

use persist_core::persist;

use crate::common::Regime;
use crate::rng::Rng;

/// The open position, version 1 (frozen).
#[persist(name = "position", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct PositionStateV1 {
    /// The broker's ticket.
    pub ticket: u64,
    /// The entry price.
    pub entry: f32,
    /// Maximum favourable excursion so far.
    pub mfe: f32,
    /// Maximum adverse excursion so far.
    pub mae: f32,
    /// Bars since entry.
    pub bars_held: u32,
    /// The regime when the position was opened.
    pub regime_at_entry: Regime,
    /// When this state was saved (Unix seconds).
    pub saved_at: i64,
}

impl PositionStateV1 {
    /// A deterministic version-1 position.
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        PositionStateV1 {
            ticket: 10_000_000 + rng.below(1_000_000),
            entry: rng.range(1.05, 1.15) as f32,
            mfe: rng.range(0.0, 0.01) as f32,
            mae: rng.range(0.0, 0.005) as f32,
            bars_held: rng.below(500) as u32,
            regime_at_entry: rng.pick(&Regime::ALL),
            saved_at: 1_767_571_200 + rng.below(86_400) as i64,
        }
    }
}
