//! The small per-tick position state (spec 6.2).

use persist_core::persist;

use crate::common::Regime;
use crate::history::PositionStateV1;
use crate::rng::{EPOCH_NANOS, MINUTE_NANOS, Rng};

/// The open position, version 2 (current): prices widened from `f32` to `f64`, `entry`
/// renamed `entry_price`, and `saved_at` in nanoseconds instead of seconds.
#[persist(name = "position", version = 2, from = PositionStateV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct PositionState {
    /// The broker's ticket.
    pub ticket: u64,
    /// The entry price.
    pub entry_price: f64,
    /// Maximum favourable excursion so far, in price units.
    pub mfe: f64,
    /// Maximum adverse excursion so far, in price units.
    pub mae: f64,
    /// Bars since entry.
    pub bars_held: u32,
    /// The regime when the position was opened.
    pub regime_at_entry: Regime,
    /// When this state was saved (Unix nanoseconds).
    pub saved_at_nanos: i64,
}

impl From<PositionStateV1> for PositionState {
    fn from(old: PositionStateV1) -> Self {
        PositionState {
            ticket: old.ticket,
            entry_price: f64::from(old.entry),
            mfe: f64::from(old.mfe),
            mae: f64::from(old.mae),
            bars_held: old.bars_held,
            regime_at_entry: old.regime_at_entry,
            saved_at_nanos: old.saved_at.saturating_mul(1_000_000_000),
        }
    }
}

impl PositionState {
    /// A deterministic open position.
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let entry_price = rng.range(1.05, 1.15);
        let bars_held = rng.below(500) as u32;
        PositionState {
            ticket: 10_000_000 + rng.below(1_000_000),
            entry_price,
            mfe: rng.range(0.0, 0.01),
            mae: rng.range(0.0, 0.005),
            bars_held,
            regime_at_entry: rng.pick(&Regime::ALL),
            saved_at_nanos: EPOCH_NANOS + i64::from(bars_held) * MINUTE_NANOS,
        }
    }
}
