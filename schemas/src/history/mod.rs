//! Frozen older versions of the states. Never edit a type here: its layout is pinned by a
//! committed snapshot and golden file (`cargo xtask schema check` reports any change).

mod exit_agent_v1;
mod position_v1;
mod replay_buffer_v1;

pub use exit_agent_v1::{ExitAgentStateV1, JourneyRewardStateV1};
pub use position_v1::PositionStateV1;
pub use replay_buffer_v1::ReplayBufferStateV1;
