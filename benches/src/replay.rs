//! The large state: an experience replay buffer (spec section 2.3). Each experience is 96 bytes
//! archived and has an 8-byte priority, so two million experiences make a 208 MB payload.

use persist_core::persist;

/// The experiences of the 200 MB buffer of the benches.
pub const LARGE_EXPERIENCES: usize = 2_000_000;
/// The experiences of the spec's large-buffer stress test (section 8.2).
pub const SPEC_EXPERIENCES: usize = 10_000;

/// A multi-component reward (64 bytes archived).
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct JourneyReward {
    /// Realised profit and loss.
    pub realized_pnl: f64,
    /// Maximum favourable excursion.
    pub mfe: f64,
    /// Maximum adverse excursion.
    pub mae: f64,
    /// Cost of holding the position.
    pub holding_cost: f64,
    /// Penalty for risk taken.
    pub risk_penalty: f64,
    /// Shaping term.
    pub shaped: f64,
    /// The total reward.
    pub total: f64,
    /// Drawdown during the trade.
    pub drawdown: f32,
    /// Decay with holding time.
    pub time_decay: f32,
}

/// One state-action-reward-state tuple (96 bytes archived: the wide fields first, so the three
/// one-byte fields share the last word).
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Experience {
    /// Entry state hash.
    pub state_hash: u64,
    /// Exit state hash.
    pub next_state_hash: u64,
    /// Experience timestamp, seconds since the Unix epoch.
    pub timestamp: i64,
    /// The reward.
    pub reward: JourneyReward,
    /// The action taken.
    pub action: u8,
    /// Whether the episode ended.
    pub is_terminal: bool,
    /// The market regime.
    pub regime: u8,
}

/// A prioritised replay buffer.
#[persist(name = "replay_buffer", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBuffer {
    /// Maximum number of experiences.
    pub capacity: u32,
    /// Circular buffer position.
    pub next_index: u32,
    /// The experiences.
    pub experiences: Vec<Experience>,
    /// TD-error based priorities, one per experience.
    pub priorities: Vec<f64>,
    /// Sum of the priorities.
    pub sum_priorities: f64,
    /// Replay samples taken.
    pub total_samples_taken: u64,
}

impl ReplayBuffer {
    /// A deterministic full buffer of `len` experiences.
    pub fn sample(len: usize, seed: u64) -> Self {
        let mut rng = XorShift::new(seed);
        let experiences: Vec<Experience> = (0..len)
            .map(|i| Experience::random(&mut rng, i, 1_700_000_000))
            .collect();
        let priorities: Vec<f64> = (0..len).map(|_| rng.unit()).collect();
        ReplayBuffer {
            capacity: u32::try_from(len).unwrap_or(u32::MAX),
            next_index: 0,
            sum_priorities: priorities.iter().sum(),
            experiences,
            priorities,
            total_samples_taken: seed,
        }
    }
}

impl Experience {
    /// A random experience, the `i`th of a buffer whose timestamps start at `epoch` seconds.
    pub fn random(rng: &mut XorShift, i: usize, epoch: i64) -> Self {
        let pnl = rng.unit() * 200.0 - 100.0;
        Experience {
            state_hash: rng.next_u64(),
            next_state_hash: rng.next_u64(),
            timestamp: epoch + i as i64,
            reward: JourneyReward {
                realized_pnl: pnl,
                mfe: pnl.abs() * 1.5,
                mae: -pnl.abs() * 0.5,
                holding_cost: rng.unit(),
                risk_penalty: rng.unit(),
                shaped: rng.unit() - 0.5,
                total: pnl * 0.01,
                drawdown: rng.unit() as f32,
                time_decay: 0.99,
            },
            action: (i % 3) as u8,
            is_terminal: i.is_multiple_of(17),
            regime: (i % 5) as u8,
        }
    }
}

/// A tiny deterministic generator (xorshift64), so the fixtures need no `rand`.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        XorShift(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
