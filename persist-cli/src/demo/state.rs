//! The demo agent's whole state, saved as one generation: a `#[persist(...)]` state whose
//! decoder runs [`DemoState::validate`] on every value it loads.

use persist_core::persist;

use super::market::Market;
use super::space::{N_ACTIONS, N_STATES};

/// One remembered transition of the replay buffer.
#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Experience {
    /// The state index before the action.
    pub state: u16,
    /// The action taken.
    pub action: u8,
    /// The reward received, in basis points.
    pub reward: f32,
    /// The state index after the action.
    pub next_state: u16,
}

/// A circular buffer of recent transitions, replayed to speed up learning.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBuffer {
    /// The most transitions kept.
    pub capacity: u32,
    /// Where the next transition goes once the buffer is full.
    pub next_index: u32,
    /// The transitions (at most `capacity`).
    pub items: Vec<Experience>,
}

/// The demo agent: a tabular Q-learner, its exploration state, its statistics, and the market
/// it trades, so that a resumed run continues exactly where the saved one stopped.
#[persist(name = "demo_agent", version = 1, validate = Self::validate)]
#[derive(Clone, Debug, PartialEq)]
pub struct DemoState {
    /// The seed the run started from.
    pub seed: u64,
    /// Learning steps taken (one per bar).
    pub step: u64,
    /// The Q-table, `N_STATES` rows of `N_ACTIONS` values (basis points).
    pub q: Vec<f64>,
    /// How often each state-action pair was taken.
    pub visits: Vec<u32>,
    /// The exploration rate.
    pub epsilon: f64,
    /// The learning rate.
    pub alpha: f64,
    /// The discount factor.
    pub gamma: f64,
    /// The current position as an action index (0 flat, 1 long, 2 short).
    pub position: u8,
    /// The sum of all rewards, in basis points.
    pub cumulative_reward: f64,
    /// An exponential moving average of the reward per step (about 1,000 steps).
    pub reward_ewma: f64,
    /// Position changes made.
    pub trades: u64,
    /// The agent's own generator (exploration and replay sampling).
    pub agent_rng: u64,
    /// The market.
    pub market: Market,
    /// Recent transitions.
    pub replay: ReplayBuffer,
}

impl DemoState {
    /// Checks every invariant the learning loop indexes by, so that a decoded state can never
    /// make it panic. The generated decoder calls it on every value it loads (`validate = ...`).
    pub fn validate(&self) -> Result<(), String> {
        let cells = N_STATES * N_ACTIONS;
        if self.q.len() != cells || self.visits.len() != cells {
            return Err(format!(
                "Q-table has {} values and {} visit counts, expected {cells}",
                self.q.len(),
                self.visits.len()
            ));
        }
        if !self.q.iter().all(|q| q.is_finite())
            || !self.cumulative_reward.is_finite()
            || !self.reward_ewma.is_finite()
        {
            return Err("non-finite Q-value or reward".into());
        }
        let in_range = (0.0..=1.0).contains(&self.epsilon)
            && self.alpha > 0.0
            && self.alpha <= 1.0
            && (0.0..1.0).contains(&self.gamma);
        if !in_range {
            return Err(format!(
                "learning parameters out of range (epsilon {}, alpha {}, gamma {})",
                self.epsilon, self.alpha, self.gamma
            ));
        }
        if usize::from(self.position) >= N_ACTIONS {
            return Err(format!("position {} out of range", self.position));
        }
        self.market.validate()?;
        let r = &self.replay;
        if r.capacity == 0 || r.items.len() > r.capacity as usize || r.next_index >= r.capacity {
            return Err("replay buffer indices out of range".into());
        }
        let bad = r.items.iter().any(|e| {
            usize::from(e.state) >= N_STATES
                || usize::from(e.next_state) >= N_STATES
                || usize::from(e.action) >= N_ACTIONS
                || !e.reward.is_finite()
        });
        if bad {
            return Err("replay buffer holds an invalid transition".into());
        }
        Ok(())
    }

    /// An FNV-1a checksum of the Q-table's bits: equal checksums mean an identical table
    /// (for comparing a resumed run with an uninterrupted one).
    pub fn q_checksum(&self) -> u64 {
        self.q
            .iter()
            .flat_map(|q| q.to_bits().to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    }
}

#[cfg(test)]
mod tests {
    use persist_core::{CodecError, Persist};

    use super::*;

    #[test]
    fn round_trips_through_persist() {
        let mut state = DemoState::new(3);
        state.run(5_000);
        let bytes = state.encode().unwrap();
        let back = DemoState::decode(1, &bytes).unwrap().value;
        assert_eq!(back, state);
        assert_eq!(back.q_checksum(), state.q_checksum());
    }

    #[test]
    fn rejects_an_invalid_state_instead_of_panicking_later() {
        let mut state = DemoState::new(3);
        state.q.pop();
        let bytes = state.encode().unwrap();
        let err = DemoState::decode(1, &bytes).unwrap_err();
        assert!(
            matches!(err, CodecError::Invalid { ref error } if error.to_string().contains("Q-table")),
            "{err:?}"
        );

        let mut state = DemoState::new(3);
        state.replay.items.push(Experience {
            state: u16::MAX,
            action: 0,
            reward: 0.0,
            next_state: 0,
        });
        assert!(DemoState::decode(1, &state.encode().unwrap()).is_err());
        assert!(DemoState::decode(2, &DemoState::new(3).encode().unwrap()).is_err());
        assert!(DemoState::decode(1, b"not an archive at all, just bytes").is_err());
    }
}
