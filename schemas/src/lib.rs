//! Our users' state schemas: the nine states of the trading-agent persistence specification
//! (spec section 2), with their version histories, deterministic data generators and the
//! registry the compatibility checker reads.
//!
//! | state | name | version | history |
//! |---|---|---|---|
//! | [`EntryAgentState`] | `entry_agent` | 1 | |
//! | [`ExitAgentState`] | `exit_agent` | 2 | v1 had no `adaptive_giveback_scale` (default 1.0) |
//! | [`ReplayBufferState`] | `replay_buffer` | 2 | v1 had no `cdf` (recomputed from the priorities) |
//! | [`RiskAdversaryState`] | `risk_adversary` | 1 | |
//! | [`LearningMetricsState`] | `learning_metrics` | 1 | |
//! | [`PortfolioRiskState`] | `portfolio_risk` | 1 | |
//! | [`ShadowAgentsState`] | `shadow_agents` | 1 | |
//! | [`PositionState`] | `position` | 2 | v1: `entry: f32` renamed `entry_price: f64`, `f32` excursions, `saved_at` in seconds |
//! | [`MdpEsState`] | `mdp_es` | 1 | |
//!
//! Older versions are frozen in [`history`]. Each state has a `generate(size…, seed)` function
//! producing deterministic, realistic data of a given size, for tests, benchmarks and the demo.
//!
//! # Discovery: one registry function, [`all`]
//!
//! The checker (`persist_compat`) gets its list of states and versions from [`all`], not
//! from a list of its own. We chose one plain function over link-time registration (the
//! `inventory`/`linkme` crates, which the derive would fill): it needs no platform-specific
//! linker sections nor life-before-main, it is obvious to read, and a downstream crate's xtask
//! calls it the same way. Its risk, forgetting a type, is contained: a version missing from it
//! while the chain or the snapshots know it is reported as `VERSION_GAP_OR_DUPLICATE` or
//! `MISSING_MIGRATION` by the checker, and a new *state* is added here in the same change that
//! defines it (the test `registry_lists_every_state` pins the list).
//!
//! Frozen versions share nested types with the current one where those did not change
//! (`QEntry`, `Experience`, …). Changing such a shared type changes every version that uses it,
//! which the checker reports against each committed snapshot: freeze a copy in [`history`]
//! first.

#![forbid(unsafe_code)]

pub mod agents;
pub mod common;
pub mod history;
pub mod mdp_es;
pub mod metrics;
pub mod position;
pub mod replay;
pub mod risk;
pub mod rng;
#[cfg(feature = "compat")]
mod samples;

pub use agents::{
    EntryAgentState, ExitAgentState, JourneyRewardState, ShadowAgent, ShadowAgentsState,
};
pub use common::{QEntry, Regime, TraceEntry, TradingAction};
pub use mdp_es::MdpEsState;
pub use metrics::LearningMetricsState;
pub use position::PositionState;
pub use replay::{Experience, JourneyReward, ReplayBufferState, compute_cdf};
pub use risk::{CircuitBreakerLevel, PortfolioRiskState, RiskAdversaryState, RiskModel};

/// The current type of every state, as a store checks them ([`persist_core::Schema`]): what the
/// `persist` tool's `verify` decodes.
pub fn schemas() -> Vec<persist_core::Schema> {
    use persist_core::Schema;
    vec![
        Schema::of::<EntryAgentState>(),
        Schema::of::<ExitAgentState>(),
        Schema::of::<ReplayBufferState>(),
        Schema::of::<RiskAdversaryState>(),
        Schema::of::<LearningMetricsState>(),
        Schema::of::<PortfolioRiskState>(),
        Schema::of::<ShadowAgentsState>(),
        Schema::of::<PositionState>(),
        Schema::of::<MdpEsState>(),
    ]
}

#[cfg(feature = "compat")]
use persist_compat::SchemaEntry;

/// Every state and every version of it, oldest first, as the compatibility checker needs them
/// (with the default feature `compat`).
#[cfg(feature = "compat")]
pub fn all() -> Vec<SchemaEntry> {
    use SchemaEntry as E;
    use history::{ExitAgentStateV1, PositionStateV1, ReplayBufferStateV1};
    vec![
        E::of::<EntryAgentState, EntryAgentState>(),
        E::of::<ExitAgentStateV1, ExitAgentState>(),
        E::of::<ExitAgentState, ExitAgentState>(),
        E::of::<ReplayBufferStateV1, ReplayBufferState>(),
        E::of::<ReplayBufferState, ReplayBufferState>(),
        E::of::<RiskAdversaryState, RiskAdversaryState>(),
        E::of::<LearningMetricsState, LearningMetricsState>(),
        E::of::<PortfolioRiskState, PortfolioRiskState>(),
        E::of::<ShadowAgentsState, ShadowAgentsState>(),
        E::of::<PositionStateV1, PositionState>(),
        E::of::<PositionState, PositionState>(),
        E::of::<MdpEsState, MdpEsState>(),
    ]
}
