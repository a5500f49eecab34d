//! The MDP planner and evolution-strategy optimiser.

use persist_core::persist;

use crate::common::series;
use crate::rng::Rng;

/// One step of the bounded MDP history.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MdpTransition {
    /// The discrete state index.
    pub state: u32,
    /// The reward received.
    pub reward: f64,
}

/// One individual of the evolution strategy's population.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct EsIndividual {
    /// Its parameter vector.
    pub params: Vec<f64>,
    /// Its last measured fitness.
    pub fitness: f64,
}

/// Evolution-strategy progress metrics.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EsMetrics {
    /// Mean fitness of the last generation.
    pub mean_fitness: f64,
    /// Its standard deviation.
    pub fitness_std: f64,
    /// Fitness evaluations so far.
    pub evaluations: u64,
    /// Share of generations that improved the best fitness.
    pub improvement_rate: f64,
}

/// The MDP and evolution-strategy state.
#[persist(name = "mdp_es", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct MdpEsState {
    /// Discrete states of the MDP.
    pub n_states: u32,
    /// Actions per state.
    pub n_actions: u32,
    /// The Q-values, `n_states × n_actions`, row-major.
    pub q_values: Vec<f64>,
    /// The bound of `history`.
    pub history_capacity: u32,
    /// Recent transitions, oldest first, at most `history_capacity`.
    pub history: Vec<MdpTransition>,
    /// The population.
    pub population: Vec<EsIndividual>,
    /// The mutation step size.
    pub sigma: f64,
    /// Generations evolved.
    pub generation: u64,
    /// The best fitness seen.
    pub best_fitness: f64,
    /// The parameters that reached it.
    pub best_params: Vec<f64>,
    /// Progress metrics.
    pub metrics: EsMetrics,
}

impl MdpEsState {
    /// A deterministic state: `n_states` MDP states, a population of `population` individuals
    /// of `n_params` parameters, and a full history of `history` steps.
    pub fn generate(
        n_states: usize,
        population: usize,
        n_params: usize,
        history: usize,
        seed: u64,
    ) -> Self {
        const ACTIONS: usize = 4;
        let mut rng = Rng::new(seed);
        let population: Vec<EsIndividual> = (0..population)
            .map(|_| EsIndividual {
                params: series(&mut rng, n_params, -1.0, 1.0),
                fitness: rng.range(-1.0, 2.0),
            })
            .collect();
        let best = population
            .iter()
            .max_by(|a, b| a.fitness.total_cmp(&b.fitness))
            .cloned();
        MdpEsState {
            n_states: n_states as u32,
            n_actions: ACTIONS as u32,
            q_values: series(&mut rng, n_states * ACTIONS, -1.0, 1.0),
            history_capacity: history as u32,
            history: (0..history)
                .map(|_| MdpTransition {
                    state: rng.below(n_states as u64) as u32,
                    reward: rng.range(-1.0, 1.0),
                })
                .collect(),
            sigma: rng.range(0.01, 0.3),
            generation: rng.below(10_000),
            best_fitness: best.as_ref().map_or(0.0, |b| b.fitness),
            best_params: best.map(|b| b.params).unwrap_or_default(),
            population,
            metrics: EsMetrics {
                mean_fitness: rng.range(-0.5, 1.0),
                fitness_std: rng.range(0.0, 0.5),
                evaluations: rng.below(1_000_000),
                improvement_rate: rng.range(0.0, 0.3),
            },
        }
    }
}
