//! Why a checkpoint failed.

use std::time::Duration;

use crate::error::SaveError;
use crate::persist::CodecError;
use crate::snapshot::SnapshotError;

/// What went wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A background save of this state failed (reported on the next call for the state).
    #[error("background save of {name} failed: {source}")]
    Save {
        /// The state.
        name: &'static str,
        /// The store's error.
        #[source]
        source: SaveError,
    },
    /// A background snapshot of this set failed (reported on the next call for the set).
    #[error("background snapshot of {set} failed: {source}")]
    Snapshot {
        /// The set.
        set: &'static str,
        /// The store's error.
        #[source]
        source: SnapshotError,
    },
    /// The value could not be serialised.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The deadline passed with saves not durable: exactly those are named (queued ones were
    /// abandoned; one being written was left to finish on its own).
    #[error("timed out after {waited:?}; not durable: {unsaved:?}")]
    Timeout {
        /// How long it waited.
        waited: Duration,
        /// The states (and `snapshot.<set>` manifests) not durable when it returned.
        unsaved: Vec<&'static str>,
    },
}
