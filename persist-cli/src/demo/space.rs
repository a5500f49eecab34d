//! The agent's state and action spaces: the sizes the learning rule ([`super::agent`]) indexes by
//! and the saved state ([`super::state`]) is validated against, defined once for both.

/// The number of actions: flat, long, short.
pub const N_ACTIONS: usize = 3;
/// The momentum bins' edges.
pub const MOMENTUM_BINS: [f64; 2] = [-0.5, 0.5];
/// The volatility bins' edges.
pub const VOLATILITY_BINS: [f64; 2] = [0.0065, 0.013];
/// The trend bins' edges.
pub const TREND_BINS: [f64; 4] = [-1.5, -0.5, 0.5, 1.5];
/// The number of discrete states: momentum × volatility × trend × position.
pub const N_STATES: usize =
    (MOMENTUM_BINS.len() + 1) * (VOLATILITY_BINS.len() + 1) * (TREND_BINS.len() + 1) * N_ACTIONS;
const _: () = assert!(N_STATES == 135);

/// The action names, by index.
pub const ACTION_NAMES: [&str; N_ACTIONS] = ["flat", "long", "short"];
