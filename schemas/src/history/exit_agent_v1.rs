//! `exit_agent` version 1, frozen: no `adaptive_giveback_scale`.

use persist_core::persist;

use crate::common::{QEntry, TraceEntry, q_table, traces};
use crate::rng::Rng;

/// The journey reward state of version 1.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JourneyRewardStateV1 {
    /// EWMA of the share of the maximum favourable excursion captured at exit.
    pub ewma_capture_ratio: f64,
    /// EWMA of the rate of winners turned into losers.
    pub ewma_flip_rate: f64,
}

/// The exit agent, version 1 (frozen).
#[persist(name = "exit_agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ExitAgentStateV1 {
    /// The Q-table.
    pub q_table: Vec<QEntry>,
    /// The live eligibility traces.
    pub traces: Vec<TraceEntry>,
    /// The journey reward state.
    pub journey: JourneyRewardStateV1,
    /// Exits taken.
    pub total_exits: u64,
    /// Average share of the maximum favourable excursion captured.
    pub avg_mfe_capture: f64,
    /// Average smoothness of the price path while in a position.
    pub avg_path_smoothness: f64,
}

impl ExitAgentStateV1 {
    /// A deterministic version-1 exit agent of `n_states` states.
    pub fn generate(n_states: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let q_table = q_table(&mut rng, n_states);
        let traces = traces(&mut rng, &q_table, n_states / 10 + 1);
        ExitAgentStateV1 {
            q_table,
            traces,
            journey: JourneyRewardStateV1 {
                ewma_capture_ratio: rng.range(0.3, 0.8),
                ewma_flip_rate: rng.range(0.0, 0.3),
            },
            total_exits: n_states as u64 * 3,
            avg_mfe_capture: rng.range(0.3, 0.8),
            avg_path_smoothness: rng.range(0.0, 1.0),
        }
    }
}
