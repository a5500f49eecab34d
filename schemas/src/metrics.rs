//! The learning metrics (spec 2.5).

use persist_core::persist;

use crate::common::series;
use crate::rng::{EPOCH_NANOS, Rng};

/// Rolling histories of how well the physics features predicted what followed.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct PhysicsPredictivePower {
    /// VPIN → crash correlation.
    pub vpin_accuracy_history: Vec<f64>,
    /// Kurtosis → tail event correlation.
    pub kurtosis_pred_history: Vec<f64>,
    /// Fractal dimension → trend accuracy.
    pub fractal_trend_history: Vec<f64>,
}

/// Which self-healing actions are pending.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfHealingFlags {
    /// Re-run the genetic optimiser.
    pub needs_genetic_refresh: bool,
    /// Reset the Q-table.
    pub needs_q_table_reset: bool,
    /// Raise exploration.
    pub needs_exploration_boost: bool,
    /// Rebalance the reward components.
    pub needs_reward_rebalancing: bool,
    /// Recalibrate the physics features.
    pub needs_physics_recalibration: bool,
}

/// The learning metrics (spec 2.5).
#[persist(name = "learning_metrics", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct LearningMetricsState {
    /// The rolling window's length, in trades.
    pub buffer_size: u32,
    /// TD errors, for the convergence trend.
    pub td_error_history: Vec<f64>,
    /// Q-value stability, to detect catastrophic forgetting.
    pub q_stability_history: Vec<f64>,
    /// State-space coverage over time.
    pub coverage_history: Vec<f64>,
    /// Trades seen.
    pub total_trades: u64,
    /// Distinct states visited.
    pub unique_states_visited: u64,
    /// New states in the last 100 trades.
    pub novel_states_last_100: u32,
    /// Physics predictive power.
    pub physics: PhysicsPredictivePower,
    /// Pending self-healing actions.
    pub self_healing: SelfHealingFlags,
    /// When self-healing last ran (Unix nanoseconds), if ever.
    pub last_self_heal: Option<i64>,
}

impl LearningMetricsState {
    /// Deterministic metrics with rolling windows of `window` trades.
    pub fn generate(window: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        LearningMetricsState {
            buffer_size: window as u32,
            td_error_history: series(&mut rng, window, 0.0, 0.5),
            q_stability_history: series(&mut rng, window, 0.8, 1.0),
            coverage_history: series(&mut rng, window, 0.0, 1.0),
            total_trades: window as u64 * 40,
            unique_states_visited: window as u64 * 25,
            novel_states_last_100: rng.below(100) as u32,
            physics: PhysicsPredictivePower {
                vpin_accuracy_history: series(&mut rng, window, -1.0, 1.0),
                kurtosis_pred_history: series(&mut rng, window, -1.0, 1.0),
                fractal_trend_history: series(&mut rng, window, -1.0, 1.0),
            },
            self_healing: SelfHealingFlags {
                needs_genetic_refresh: rng.chance(0.1),
                needs_q_table_reset: rng.chance(0.05),
                needs_exploration_boost: rng.chance(0.2),
                needs_reward_rebalancing: rng.chance(0.1),
                needs_physics_recalibration: rng.chance(0.1),
            },
            last_self_heal: rng.chance(0.5).then_some(EPOCH_NANOS),
        }
    }
}
