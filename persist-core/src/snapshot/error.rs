//! Why a snapshot could not be committed or restored.

use crate::backend::BackendError;
use crate::error::{LoadError, SaveError};
use crate::persist::CodecError;
use crate::reject::Rejection;

/// Why a snapshot could not be committed or restored. A failed commit leaves the previous
/// snapshot complete: a snapshot exists only once its manifest is durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A value whose type is not a member of the set (or of another version) was added.
    #[error("{name} is not a member of snapshot set {set}")]
    NotAMember {
        /// The set.
        set: String,
        /// The state added.
        name: String,
    },
    /// A member was added twice to one snapshot.
    #[error("{name} was added twice to one snapshot of {set}")]
    AddedTwice {
        /// The set.
        set: String,
        /// The member.
        name: String,
    },
    /// [`crate::SnapshotWriter::reuse`] named a member this store has no earlier snapshot
    /// generation of (none committed or restored by it, or that generation is gone).
    #[error("snapshot of {set}: nothing to reuse for {name}: add its value instead")]
    NothingToReuse {
        /// The set.
        set: String,
        /// The member.
        name: String,
    },
    /// A commit lacked a member: a snapshot holds every member or is not written.
    #[error("snapshot of {set} not committed: member {name} was not added")]
    MissingMember {
        /// The set.
        set: String,
        /// The member missing.
        name: String,
    },
    /// A member or the manifest could not be serialised.
    #[error(transparent)]
    Encode(CodecError),
    /// Writing a member or the manifest failed; no snapshot was created.
    #[error(transparent)]
    Save(#[from] SaveError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// No snapshot could be restored: none exists (`NoGeneration`), none is whole
    /// (`AllInvalid`, with every reason), or the newest that is not corrupt is authentic but
    /// unusable here (`Blocked`, which says what to do).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A member was not restored (not in the snapshot, or a dependency of it was not), so the
    /// set cannot be built as one value; [`crate::Store::load_snapshot`] gives what there is.
    #[error("snapshot of {set}: member {name} was not restored (see the report)")]
    NotRestored {
        /// The set.
        set: String,
        /// The member.
        name: String,
    },
    /// No snapshot of the set has this id.
    #[error("snapshot set {set} has no snapshot {id}")]
    NoSuchSnapshot {
        /// The set.
        set: String,
        /// The id asked for.
        id: u64,
    },
    /// The snapshot asked for by id is not whole.
    #[error("snapshot {} of {set} cannot be restored: {}", rejection.sequence, rejection.reason)]
    Rejected {
        /// The set.
        set: String,
        /// Why (its manifest, or the member that failed).
        rejection: Box<Rejection>,
    },
}
