//! The golden files' sample values: small, deterministic instances of every version.

use persist_compat::Sample;

use crate::history::{ExitAgentStateV1, PositionStateV1, ReplayBufferStateV1};
use crate::{
    EntryAgentState, ExitAgentState, LearningMetricsState, MdpEsState, PortfolioRiskState,
    PositionState, ReplayBufferState, RiskAdversaryState, ShadowAgentsState,
};

const SEED: u64 = 2026;

macro_rules! samples {
    ($($t:ty => $e:expr;)*) => {$(
        impl Sample for $t {
            fn sample() -> Self {
                $e
            }
        }
    )*};
}

samples! {
    EntryAgentState => EntryAgentState::generate(8, SEED);
    ExitAgentStateV1 => ExitAgentStateV1::generate(8, SEED);
    ExitAgentState => ExitAgentState::generate(8, SEED);
    ReplayBufferStateV1 => ReplayBufferStateV1::generate(16, SEED);
    ReplayBufferState => ReplayBufferState::generate(16, SEED);
    RiskAdversaryState => RiskAdversaryState::generate_network(&[6, 4, 1], 8, SEED);
    LearningMetricsState => LearningMetricsState::generate(10, SEED);
    PortfolioRiskState => PortfolioRiskState::generate(4, 6, SEED);
    ShadowAgentsState => ShadowAgentsState::generate(2, 4, SEED);
    PositionStateV1 => PositionStateV1::generate(SEED);
    PositionState => PositionState::generate(SEED);
    MdpEsState => MdpEsState::generate(6, 4, 3, 8, SEED);
}
