//! The entry and exit agents (spec 2.1, 2.2) and the shadow agents (spec 2.7).

use persist_core::persist;

use crate::common::{QEntry, TraceEntry, q_table, traces};
use crate::history::ExitAgentStateV1;
use crate::rng::{EPOCH_NANOS, MINUTE_NANOS, Rng};

/// The entry agent's TD(λ) learner (spec 2.1). About 10 000 states in production.
#[persist(name = "entry_agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct EntryAgentState {
    /// The Q-table: one entry per visited (state, action).
    pub q_table: Vec<QEntry>,
    /// The live eligibility traces.
    pub traces: Vec<TraceEntry>,
    /// The current exploration rate.
    pub epsilon: f64,
    /// The current learning rate.
    pub alpha: f64,
    /// The eligibility trace decay.
    pub lambda: f64,
    /// Q-value updates performed.
    pub total_updates: u64,
    /// Distinct states visited.
    pub state_space_size: u64,
    /// When training started (Unix nanoseconds).
    pub training_start: i64,
}

impl EntryAgentState {
    /// A deterministic agent that has visited `n_states` states.
    pub fn generate(n_states: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let q_table = q_table(&mut rng, n_states);
        let traces = traces(&mut rng, &q_table, n_states / 10 + 1);
        EntryAgentState {
            q_table,
            traces,
            epsilon: rng.range(0.01, 0.2),
            alpha: rng.range(0.001, 0.1),
            lambda: 0.9,
            total_updates: n_states as u64 * 37,
            state_space_size: n_states as u64,
            training_start: EPOCH_NANOS - rng.below(90 * 24 * 60) as i64 * MINUTE_NANOS,
        }
    }
}

/// The exit agent's journey-reward state (version 2, current).
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JourneyRewardState {
    /// EWMA of the share of the maximum favourable excursion captured at exit.
    pub ewma_capture_ratio: f64,
    /// EWMA of the rate of winners turned into losers.
    pub ewma_flip_rate: f64,
    /// The current scaling of the give-back penalty (added in version 2; 1.0 = neutral).
    pub adaptive_giveback_scale: f64,
}

/// The exit agent's learner (spec 2.2), version 2: adds `adaptive_giveback_scale`.
#[persist(name = "exit_agent", version = 2, from = ExitAgentStateV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ExitAgentState {
    /// The Q-table.
    pub q_table: Vec<QEntry>,
    /// The live eligibility traces.
    pub traces: Vec<TraceEntry>,
    /// The journey reward state.
    pub journey: JourneyRewardState,
    /// Exits taken.
    pub total_exits: u64,
    /// Average share of the maximum favourable excursion captured.
    pub avg_mfe_capture: f64,
    /// Average smoothness of the price path while in a position.
    pub avg_path_smoothness: f64,
}

impl From<ExitAgentStateV1> for ExitAgentState {
    fn from(old: ExitAgentStateV1) -> Self {
        ExitAgentState {
            q_table: old.q_table,
            traces: old.traces,
            journey: JourneyRewardState {
                ewma_capture_ratio: old.journey.ewma_capture_ratio,
                ewma_flip_rate: old.journey.ewma_flip_rate,
                adaptive_giveback_scale: 1.0,
            },
            total_exits: old.total_exits,
            avg_mfe_capture: old.avg_mfe_capture,
            avg_path_smoothness: old.avg_path_smoothness,
        }
    }
}

impl ExitAgentState {
    /// A deterministic exit agent that has visited `n_states` states.
    pub fn generate(n_states: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let q_table = q_table(&mut rng, n_states);
        let traces = traces(&mut rng, &q_table, n_states / 10 + 1);
        ExitAgentState {
            q_table,
            traces,
            journey: JourneyRewardState {
                ewma_capture_ratio: rng.range(0.3, 0.8),
                ewma_flip_rate: rng.range(0.0, 0.3),
                adaptive_giveback_scale: rng.range(0.5, 2.0),
            },
            total_exits: n_states as u64 * 3,
            avg_mfe_capture: rng.range(0.3, 0.8),
            avg_path_smoothness: rng.range(0.0, 1.0),
        }
    }
}

/// One shadow agent: an alternative strategy trained alongside the primary (spec 2.7).
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowAgent {
    /// The shadow's id.
    pub agent_id: u32,
    /// Its strategy ("Aggressive", "Conservative", …).
    pub strategy_name: String,
    /// Its Q-table.
    pub q_table: Vec<QEntry>,
    /// Sharpe ratio of its paper trades.
    pub sharpe_ratio: f64,
    /// Sortino ratio of its paper trades.
    pub sortino_ratio: f64,
    /// Maximum drawdown (a fraction of equity).
    pub max_drawdown: f64,
    /// Paper trades taken.
    pub total_trades: u64,
    /// Share of decisions that differ from the primary's.
    pub action_divergence: f64,
    /// When it last beat the primary (Unix nanoseconds), if ever.
    pub last_outperformed: Option<i64>,
}

/// The shadow agents (spec 2.7).
#[persist(name = "shadow_agents", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowAgentsState {
    /// Every shadow.
    pub shadows: Vec<ShadowAgent>,
}

impl ShadowAgentsState {
    /// `n_shadows` deterministic shadows of `n_states` states each.
    pub fn generate(n_shadows: usize, n_states: usize, seed: u64) -> Self {
        const STRATEGIES: [&str; 4] = ["Aggressive", "Conservative", "Contrarian", "Momentum"];
        let mut rng = Rng::new(seed);
        let shadows = (0..n_shadows)
            .map(|i| ShadowAgent {
                agent_id: i as u32,
                strategy_name: rng.pick(&STRATEGIES).to_string(),
                q_table: q_table(&mut rng, n_states),
                sharpe_ratio: rng.range(-0.5, 2.5),
                sortino_ratio: rng.range(-0.5, 3.5),
                max_drawdown: rng.range(0.02, 0.4),
                total_trades: rng.below(5000),
                action_divergence: rng.range(0.0, 0.6),
                last_outperformed: rng
                    .chance(0.5)
                    .then(|| EPOCH_NANOS + rng.below(100_000) as i64 * MINUTE_NANOS),
            })
            .collect();
        ShadowAgentsState { shadows }
    }
}
