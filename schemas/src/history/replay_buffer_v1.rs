//! `replay_buffer` version 1, frozen: no `cdf` (recomputed from the priorities on migration).

use persist_core::persist;

use crate::replay::{Experience, experiences};
use crate::rng::Rng;

/// The replay buffer, version 1 (frozen).
#[persist(name = "replay_buffer", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBufferStateV1 {
    /// The maximum number of experiences.
    pub capacity: u32,
    /// The number of experiences held.
    pub current_size: u32,
    /// Where the next experience goes.
    pub next_index: u32,
    /// The experiences.
    pub experiences: Vec<Experience>,
    /// TD-error based priorities, one per experience.
    pub priorities: Vec<f64>,
    /// The sum of the priorities.
    pub sum_priorities: f64,
    /// Experiences sampled so far.
    pub total_samples_taken: u64,
}

impl ReplayBufferStateV1 {
    /// A deterministic version-1 buffer of `n_experiences`.
    pub fn generate(n_experiences: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let (experiences, priorities) = experiences(&mut rng, n_experiences);
        ReplayBufferStateV1 {
            capacity: n_experiences as u32,
            current_size: n_experiences as u32,
            next_index: rng.below(n_experiences as u64) as u32,
            sum_priorities: priorities.iter().sum(),
            priorities,
            experiences,
            total_samples_taken: n_experiences as u64 * 12,
        }
    }
}
