//! What a [`super::Checkpointer`] reports for monitoring.

use std::time::{Instant, SystemTime};

/// The writer's queue and counters, and each snapshot set's state, for monitoring.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CheckpointStatus {
    /// States (and `snapshot.<set>` manifests) queued or being written, each once.
    pub(crate) pending: Vec<&'static str>,
    /// Queued saves replaced by a newer value before they were written.
    pub superseded: u64,
    /// Saves and snapshots written by the background writer.
    pub written: u64,
    /// Low-priority saves skipped for lack of space.
    pub skipped: u64,
    /// The last background failure, as text (`None` if the last job of each target succeeded
    /// or none failed yet).
    pub last_error: Option<String>,
    /// One entry per snapshot set this checkpointer has seen.
    pub snapshots: Vec<SetStatus>,
    /// Bytes of every generation in the store (`None` if the backend could not be listed).
    pub bytes_on_disk: Option<u64>,
}

impl CheckpointStatus {
    /// States queued or being written.
    pub fn pending(&self) -> &[&'static str] {
        &self.pending
    }
}

/// One snapshot set's status.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SetStatus {
    /// The set.
    pub set: &'static str,
    /// The newest snapshot this checkpointer committed, and when (`None` before the first).
    pub newest: Option<(u64, SystemTime)>,
    /// When its policy next calls for a snapshot by time (`None`: the policy has no interval).
    pub next_due: Option<Instant>,
    /// Whether a snapshot of it is queued or being written.
    pub pending: bool,
}
