//! Incremental generations: a save that writes only the chunks that changed since the last
//! generation of its state (a *delta*), and the reader that rebuilds and verifies a chain of them.
//!
//! - [`DeltaPolicy`] says when a store writes deltas and when it closes a chain with a full
//!   generation.
//! - [`diff`] compares a new payload with the last one the store wrote (kept in memory, exact
//!   byte comparison) and plans which chunks to carry.
//! - [`write`] seals and writes a chunked generation (envelope format 3, `docs/FORMAT.md`).
//! - [`chain`] reads a delta's chain back to its full generation, verifies every link and
//!   rebuilds the payload into one aligned buffer.
//!
//! Invariants: a delta is written only against a generation this store wrote or verified itself
//! (its exact tag is in the delta's signed header); a chain never grows beyond
//! [`DeltaPolicy::max_chain`] (and no reader follows one beyond [`format::MAX_DEPTH`]);
//! correctness never depends on the chunking, which only decides how much is written.
//!
//! [`format::MAX_DEPTH`]: crate::format::MAX_DEPTH

pub(crate) mod chain;
pub(crate) mod diff;
pub(crate) mod write;

use crate::envelope::chunked::MAX_DEPTH;

/// When a store writes a state's generations as deltas (`StoreConfig::deltas`).
///
/// ```
/// let policy = persist_core::DeltaPolicy::default().with_max_chain(8);
/// assert_eq!(policy.max_chain, 8);
/// let config = persist_core::StoreConfig::default().with_deltas(policy);
/// assert!(config.deltas.is_some());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeltaPolicy {
    /// The most deltas between two full generations (default 16, at most 64): a load reads at
    /// most this many deltas and one full generation.
    pub max_chain: u32,
    /// A full generation is written once the deltas since the last one add up to this many
    /// percent of it (default 50): past that point a chain costs more to read than it saves.
    pub max_chain_percent: u32,
    /// Payloads shorter than this are always written whole, as format 2 (default 1 MiB): below
    /// it a chunk table costs more than it saves.
    pub min_payload: usize,
    /// A delta that would carry more than this many percent of the payload is written as a
    /// full generation instead (default 50): it would save little and lengthen the chain.
    pub max_delta_percent: u32,
    /// Content-defined chunking: the smallest, average and largest chunk (default 16, 64 and
    /// 256 KiB; see docs/ARCHITECTURE.md for the measurements behind them).
    pub chunk_sizes: ChunkSizes,
}

/// The sizes of content-defined chunks (FastCDC 2020).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSizes {
    /// The smallest chunk (at least 64 bytes).
    pub min: u32,
    /// The average chunk (at least 256 bytes).
    pub avg: u32,
    /// The largest chunk (at most 16 MiB).
    pub max: u32,
}

impl ChunkSizes {
    /// The default: 16 KiB, 64 KiB, 256 KiB.
    pub const DEFAULT: ChunkSizes = ChunkSizes {
        min: 16 << 10,
        avg: 64 << 10,
        max: 256 << 10,
    };

    /// Chunks of about `avg` bytes: a quarter of it at least, four times it at most.
    ///
    /// ```
    /// let sizes = persist_core::ChunkSizes::around(1 << 20);
    /// assert_eq!((sizes.min, sizes.max), (1 << 18, 1 << 22));
    /// ```
    pub fn around(avg: u32) -> ChunkSizes {
        let avg = avg.clamp(1 << 10, 4 << 20).next_power_of_two();
        ChunkSizes {
            min: avg / 4,
            avg,
            max: (avg * 4).min(16 << 20),
        }
    }

    /// The sizes FastCDC accepts: each within its bounds and `min <= avg <= max`.
    pub(crate) fn clamped(self) -> ChunkSizes {
        let min = self.min.clamp(64, 1 << 20);
        let avg = self.avg.clamp(256.max(min), 4 << 20);
        let max = self.max.clamp(1024.max(avg), 16 << 20);
        ChunkSizes { min, avg, max }
    }
}

impl Default for DeltaPolicy {
    fn default() -> Self {
        DeltaPolicy {
            max_chain: 16,
            max_chain_percent: 50,
            min_payload: 1 << 20,
            max_delta_percent: 50,
            chunk_sizes: ChunkSizes::DEFAULT,
        }
    }
}

impl DeltaPolicy {
    /// At most `n` deltas between full generations (clamped to 1..=64).
    #[must_use]
    pub fn with_max_chain(mut self, n: u32) -> Self {
        self.max_chain = n.clamp(1, MAX_DEPTH);
        self
    }

    /// A full generation once the chain's deltas add up to `percent` of it.
    #[must_use]
    pub fn with_max_chain_percent(mut self, percent: u32) -> Self {
        self.max_chain_percent = percent;
        self
    }

    /// Deltas carrying more than `percent` of the payload are written as full generations.
    #[must_use]
    pub fn with_max_delta_percent(mut self, percent: u32) -> Self {
        self.max_delta_percent = percent;
        self
    }

    /// Payloads shorter than `bytes` are written whole.
    #[must_use]
    pub fn with_min_payload(mut self, bytes: usize) -> Self {
        self.min_payload = bytes;
        self
    }

    /// Content-defined chunks of these sizes.
    #[must_use]
    pub fn with_chunk_sizes(mut self, sizes: ChunkSizes) -> Self {
        self.chunk_sizes = sizes;
        self
    }

    /// Whether the next generation after `previous` must be full.
    pub(crate) fn full_due(&self, previous: &diff::Previous) -> bool {
        let max_chain = self.max_chain.clamp(1, MAX_DEPTH);
        let limit = previous.full_bytes / 100 * u64::from(self.max_chain_percent);
        previous.depth >= max_chain || previous.chain_bytes > limit
    }
}
