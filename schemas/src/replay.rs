//! The prioritised experience replay buffer (spec 2.3).

use persist_core::persist;

use crate::common::{Regime, TradingAction};
use crate::history::ReplayBufferStateV1;
use crate::rng::{EPOCH_NANOS, MINUTE_NANOS, Rng};

/// The multi-component reward of one trade journey.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JourneyReward {
    /// Realised profit or loss, in account currency.
    pub pnl: f64,
    /// Share of the maximum favourable excursion captured.
    pub mfe_capture: f64,
    /// Smoothness of the price path while in the position.
    pub path_smoothness: f64,
    /// Penalty for giving back open profit.
    pub giveback_penalty: f64,
    /// Penalty for the risk taken.
    pub risk_penalty: f64,
    /// The combined reward the learner sees.
    pub total: f64,
}

/// One state–action–reward–next-state tuple.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Experience {
    /// The entry state's hash.
    pub state_hash: u64,
    /// The action taken.
    pub action: TradingAction,
    /// The reward received.
    pub reward: JourneyReward,
    /// The exit state's hash.
    pub next_state_hash: u64,
    /// Whether the episode ended.
    pub is_terminal: bool,
    /// When it happened (Unix nanoseconds).
    pub timestamp: i64,
    /// The market regime.
    pub regime: Regime,
}

/// The replay buffer, version 2 (current): keeps the sampling CDF.
#[persist(name = "replay_buffer", version = 2, from = ReplayBufferStateV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBufferState {
    /// The maximum number of experiences.
    pub capacity: u32,
    /// The number of experiences held.
    pub current_size: u32,
    /// Where the next experience goes (the circular buffer's position).
    pub next_index: u32,
    /// The experiences, `current_size` of them.
    pub experiences: Vec<Experience>,
    /// TD-error based priorities, one per experience.
    pub priorities: Vec<f64>,
    /// The cumulative distribution of the priorities, for sampling (added in version 2).
    pub cdf: Vec<f64>,
    /// The sum of the priorities.
    pub sum_priorities: f64,
    /// Experiences sampled so far.
    pub total_samples_taken: u64,
}

/// The normalised cumulative distribution of `priorities` (the last entry is 1 unless all are 0).
pub fn compute_cdf(priorities: &[f64]) -> Vec<f64> {
    let sum: f64 = priorities.iter().sum();
    let mut acc = 0.0;
    priorities
        .iter()
        .map(|p| {
            acc += p;
            if sum > 0.0 { acc / sum } else { 0.0 }
        })
        .collect()
}

impl From<ReplayBufferStateV1> for ReplayBufferState {
    fn from(old: ReplayBufferStateV1) -> Self {
        ReplayBufferState {
            cdf: compute_cdf(&old.priorities),
            capacity: old.capacity,
            current_size: old.current_size,
            next_index: old.next_index,
            experiences: old.experiences,
            priorities: old.priorities,
            sum_priorities: old.sum_priorities,
            total_samples_taken: old.total_samples_taken,
        }
    }
}

/// `n` deterministic experiences and their priorities.
pub(crate) fn experiences(rng: &mut Rng, n: usize) -> (Vec<Experience>, Vec<f64>) {
    let experiences = (0..n)
        .map(|i| {
            let pnl = rng.range(-250.0, 400.0);
            let mfe_capture = rng.range(0.0, 1.0);
            let path_smoothness = rng.range(0.0, 1.0);
            let giveback_penalty = rng.range(0.0, 0.5);
            let risk_penalty = rng.range(0.0, 0.3);
            Experience {
                state_hash: rng.next_u64(),
                action: rng.pick(&TradingAction::ALL),
                reward: JourneyReward {
                    pnl,
                    mfe_capture,
                    path_smoothness,
                    giveback_penalty,
                    risk_penalty,
                    total: pnl / 100.0 + mfe_capture + path_smoothness
                        - giveback_penalty
                        - risk_penalty,
                },
                next_state_hash: rng.next_u64(),
                is_terminal: rng.chance(0.1),
                timestamp: EPOCH_NANOS + i as i64 * 5 * MINUTE_NANOS,
                regime: rng.pick(&Regime::ALL),
            }
        })
        .collect();
    let priorities = (0..n).map(|_| rng.range(0.01, 2.0)).collect();
    (experiences, priorities)
}

impl ReplayBufferState {
    /// A deterministic full buffer of `n_experiences` (its capacity), wrapped around once.
    pub fn generate(n_experiences: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let (experiences, priorities) = experiences(&mut rng, n_experiences);
        ReplayBufferState {
            capacity: n_experiences as u32,
            current_size: n_experiences as u32,
            next_index: rng.below(n_experiences as u64) as u32,
            cdf: compute_cdf(&priorities),
            sum_priorities: priorities.iter().sum(),
            priorities,
            experiences,
            total_samples_taken: n_experiences as u64 * 12,
        }
    }
}
