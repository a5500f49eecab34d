//! The risk adversary (spec 2.4) and the portfolio risk state (spec 2.6).

use persist_core::persist;

use crate::common::{QEntry, Regime, q_table, series};
use crate::rng::{EPOCH_NANOS, MINUTE_NANOS, Rng};

/// One dense layer of the adversary's network: `rows × cols` weights (row-major) and `rows`
/// biases.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Output size.
    pub rows: u32,
    /// Input size.
    pub cols: u32,
    /// The weight matrix, row-major.
    pub weights: Vec<f32>,
    /// The bias vector.
    pub biases: Vec<f32>,
}

/// The adversary's model: a neural network or a Q-table.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub enum RiskModel {
    /// A dense network, input layer first.
    Network {
        /// The layers.
        layers: Vec<LayerWeights>,
    },
    /// A tabular learner.
    Tabular {
        /// The Q-table.
        q_table: Vec<QEntry>,
    },
}

/// One prediction and its outcome, for online calibration.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictionRecord {
    /// The predicted danger, 0 to 1.
    pub danger_score: f64,
    /// Whether a crash followed within five bars.
    pub crash_occurred: bool,
    /// When the prediction was made (Unix nanoseconds).
    pub prediction_time: i64,
    /// The market regime.
    pub regime: Regime,
}

/// The risk adversary (spec 2.4).
#[persist(name = "risk_adversary", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct RiskAdversaryState {
    /// The model.
    pub model: RiskModel,
    /// Recent predictions and outcomes.
    pub history: Vec<PredictionRecord>,
    /// Classification F1 score.
    pub f1_score: f64,
    /// Calibration error (Brier score).
    pub calibration_error: f64,
    /// True positive rate.
    pub true_positive_rate: f64,
    /// False positive rate.
    pub false_positive_rate: f64,
    /// Predictions made.
    pub total_predictions: u64,
    /// Predictions that were right.
    pub correct_predictions: u64,
    /// When the model was last calibrated (Unix nanoseconds).
    pub last_calibration: i64,
}

impl RiskAdversaryState {
    /// A deterministic adversary with a network of the given layer sizes (input first, e.g.
    /// `[64, 128, 64, 1]`) and `n_history` predictions.
    pub fn generate_network(sizes: &[usize], n_history: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let layers = sizes
            .windows(2)
            .map(|w| LayerWeights {
                rows: w[1] as u32,
                cols: w[0] as u32,
                weights: (0..w[0] * w[1])
                    .map(|_| rng.range(-0.5, 0.5) as f32)
                    .collect(),
                biases: (0..w[1]).map(|_| rng.range(-0.1, 0.1) as f32).collect(),
            })
            .collect();
        Self::with_model(RiskModel::Network { layers }, n_history, &mut rng)
    }

    /// A deterministic tabular adversary of `n_states` states and `n_history` predictions.
    pub fn generate_tabular(n_states: usize, n_history: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let model = RiskModel::Tabular {
            q_table: q_table(&mut rng, n_states),
        };
        Self::with_model(model, n_history, &mut rng)
    }

    fn with_model(model: RiskModel, n_history: usize, rng: &mut Rng) -> Self {
        let history: Vec<PredictionRecord> = (0..n_history)
            .map(|i| {
                let danger_score = rng.unit();
                PredictionRecord {
                    danger_score,
                    crash_occurred: rng.chance(danger_score * 0.3),
                    prediction_time: EPOCH_NANOS + i as i64 * MINUTE_NANOS,
                    regime: rng.pick(&Regime::ALL),
                }
            })
            .collect();
        let total = n_history as u64 * 20;
        RiskAdversaryState {
            model,
            history,
            f1_score: rng.range(0.4, 0.9),
            calibration_error: rng.range(0.05, 0.25),
            true_positive_rate: rng.range(0.5, 0.95),
            false_positive_rate: rng.range(0.01, 0.2),
            total_predictions: total,
            correct_predictions: total * 7 / 10,
            last_calibration: EPOCH_NANOS,
        }
    }
}

/// The portfolio circuit breaker's level, from normal trading to a full halt.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitBreakerLevel {
    /// Normal trading (DEFCON 5).
    Normal,
    /// Tighter limits (DEFCON 4).
    Elevated,
    /// New positions reduced (DEFCON 3).
    High,
    /// Only risk-reducing trades (DEFCON 2).
    Severe,
    /// Trading halted until released (DEFCON 1).
    Halt,
}

/// An asset class of the portfolio.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetClass {
    /// Currency pairs.
    Forex,
    /// Equity indices.
    Indices,
    /// Metals, energy, agriculture.
    Commodities,
    /// Crypto-currencies.
    Crypto,
    /// Government and corporate bonds.
    Bonds,
}

/// One sample of the system's entropy.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntropyRecord {
    /// When it was measured (Unix nanoseconds).
    pub timestamp: i64,
    /// The portfolio-wide entropy.
    pub system_entropy: f64,
    /// The correlation energy.
    pub correlation_energy: f64,
    /// The market regime.
    pub regime: Regime,
}

/// The risk taken in one asset class.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AssetClassExposure {
    /// The class.
    pub asset_class: AssetClass,
    /// Total exposure in US dollars.
    pub total_exposure_usd: f64,
    /// Open positions.
    pub num_positions: u32,
    /// Average pairwise correlation inside the class.
    pub avg_correlation: f64,
    /// Volatility estimate.
    pub volatility_estimate: f64,
}

/// The three-level risk cache.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct RiskCache {
    /// Per-symbol danger.
    pub micro_danger_scores: Vec<f64>,
    /// Per-asset-class crystallisation.
    pub meso_correlation_energy: Vec<f64>,
    /// Portfolio-wide entropy.
    pub macro_system_entropy: f64,
}

/// The portfolio risk state (spec 2.6).
#[persist(name = "portfolio_risk", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct PortfolioRiskState {
    /// The symbols traded.
    pub symbols: Vec<String>,
    /// Their correlation matrix, `symbols.len()²`, row-major.
    pub correlation_matrix: Vec<f64>,
    /// When the matrix was computed (Unix nanoseconds).
    pub correlation_updated: i64,
    /// Entropy samples, oldest first.
    pub entropy_history: Vec<EntropyRecord>,
    /// Exposure per asset class.
    pub exposures: Vec<AssetClassExposure>,
    /// The circuit breaker's level.
    pub circuit_breaker: CircuitBreakerLevel,
    /// Release codes active for the current level.
    pub release_codes: Vec<String>,
    /// When the level last changed (Unix nanoseconds).
    pub level_changed: i64,
    /// Limit violations in a row.
    pub consecutive_violations: u32,
    /// The three-level risk cache.
    pub risk_cache: RiskCache,
}

impl PortfolioRiskState {
    /// A deterministic portfolio of `n_symbols` and `n_entropy` entropy samples.
    pub fn generate(n_symbols: usize, n_entropy: usize, seed: u64) -> Self {
        const CLASSES: [AssetClass; 5] = [
            AssetClass::Forex,
            AssetClass::Indices,
            AssetClass::Commodities,
            AssetClass::Crypto,
            AssetClass::Bonds,
        ];
        let mut rng = Rng::new(seed);
        let symbols: Vec<String> = (0..n_symbols).map(|i| format!("SYM{i:03}")).collect();
        let mut correlation_matrix = vec![0.0; n_symbols * n_symbols];
        for i in 0..n_symbols {
            correlation_matrix[i * n_symbols + i] = 1.0;
            for j in 0..i {
                let c = rng.range(-0.6, 0.9);
                correlation_matrix[i * n_symbols + j] = c;
                correlation_matrix[j * n_symbols + i] = c;
            }
        }
        let entropy_history = (0..n_entropy)
            .map(|i| EntropyRecord {
                timestamp: EPOCH_NANOS + i as i64 * 60 * MINUTE_NANOS,
                system_entropy: rng.range(0.5, 3.0),
                correlation_energy: rng.range(0.0, 1.0),
                regime: rng.pick(&Regime::ALL),
            })
            .collect();
        let exposures = CLASSES
            .iter()
            .map(|&asset_class| AssetClassExposure {
                asset_class,
                total_exposure_usd: rng.range(0.0, 250_000.0),
                num_positions: rng.below(12) as u32,
                avg_correlation: rng.range(-0.2, 0.8),
                volatility_estimate: rng.range(0.05, 0.6),
            })
            .collect();
        let circuit_breaker = rng.pick(&[
            CircuitBreakerLevel::Normal,
            CircuitBreakerLevel::Elevated,
            CircuitBreakerLevel::High,
            CircuitBreakerLevel::Severe,
            CircuitBreakerLevel::Halt,
        ]);
        PortfolioRiskState {
            symbols,
            correlation_matrix,
            correlation_updated: EPOCH_NANOS,
            entropy_history,
            exposures,
            circuit_breaker,
            release_codes: (0..rng.below(3))
                .map(|i| format!("REL-{:04}-{i}", rng.below(10_000)))
                .collect(),
            level_changed: EPOCH_NANOS - 30 * MINUTE_NANOS,
            consecutive_violations: rng.below(4) as u32,
            risk_cache: RiskCache {
                micro_danger_scores: series(&mut rng, n_symbols, 0.0, 1.0),
                meso_correlation_energy: series(&mut rng, CLASSES.len(), 0.0, 1.0),
                macro_system_entropy: rng.range(0.5, 3.0),
            },
        }
    }
}
