//! Types shared by several states: Q-table entries, eligibility traces, actions, regimes.

use persist_core::persist;

use crate::rng::Rng;

/// A trading action of the agents.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradingAction {
    /// Stay flat or keep the position.
    Hold,
    /// Open or add to a long position.
    Buy,
    /// Open or add to a short position.
    Sell,
    /// Close the position.
    Close,
}

impl TradingAction {
    /// Every action, in discriminant order.
    pub const ALL: [TradingAction; 4] = [Self::Hold, Self::Buy, Self::Sell, Self::Close];
}

/// The market regime a decision was taken in.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// A persistent trend.
    Trending,
    /// Prices oscillate around a mean.
    MeanReverting,
    /// Large moves in both directions.
    Volatile,
    /// Low volatility, low volume.
    Quiet,
    /// A crash or a liquidity crisis.
    Crisis,
}

impl Regime {
    /// Every regime, in discriminant order.
    pub const ALL: [Regime; 5] = [
        Self::Trending,
        Self::MeanReverting,
        Self::Volatile,
        Self::Quiet,
        Self::Crisis,
    ];
}

/// One Q-table entry: the value of taking `action` in the state hashed to `state_hash`.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QEntry {
    /// The hash of the discretised market state.
    pub state_hash: u64,
    /// The action.
    pub action: TradingAction,
    /// Its estimated value.
    pub q_value: f64,
}

/// One eligibility trace of TD(λ).
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceEntry {
    /// The hash of the discretised market state.
    pub state_hash: u64,
    /// The action.
    pub action: TradingAction,
    /// The trace's current eligibility (decays by γλ each step).
    pub eligibility: f64,
}

/// A Q-table of `n_states` distinct states, every action of each.
pub fn q_table(rng: &mut Rng, n_states: usize) -> Vec<QEntry> {
    let mut out = Vec::with_capacity(n_states * TradingAction::ALL.len());
    for _ in 0..n_states {
        let state_hash = rng.next_u64();
        for action in TradingAction::ALL {
            out.push(QEntry {
                state_hash,
                action,
                q_value: rng.range(-1.0, 1.0),
            });
        }
    }
    out
}

/// Eligibility traces for `n` recently visited state–action pairs of `table`.
pub fn traces(rng: &mut Rng, table: &[QEntry], n: usize) -> Vec<TraceEntry> {
    (0..n.min(table.len()))
        .map(|_| {
            let e = table[rng.below(table.len() as u64) as usize];
            TraceEntry {
                state_hash: e.state_hash,
                action: e.action,
                eligibility: rng.range(0.0, 1.0),
            }
        })
        .collect()
}

/// `n` values drawn uniformly from `[lo, hi)`.
pub fn series(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.range(lo, hi)).collect()
}
