//! Why a save or a load failed: [`SaveError`] and [`LoadError`].

use crate::backend::BackendError;
use crate::envelope::EnvelopeError;
use crate::generation::MAX_SEQUENCE;
use crate::persist::CodecError;
use crate::reject::{RejectKind, Rejection};

/// Why a save failed. The previous generations are untouched in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// The type's schema name cannot be used.
    #[error(transparent)]
    InvalidName(EnvelopeError),
    /// The value could not be serialised.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// Not enough free space for the generation plus the configured reserve.
    #[error(
        "insufficient space in {location}: {needed} bytes needed ({} for the generation + \
         {reserve} kept free by StoreConfig::space_reserve; lower that reserve if the disk is \
         meant to fill up), {free} free",
        needed - reserve
    )]
    InsufficientSpace {
        /// The backend's location.
        location: String,
        /// Bytes needed, reserve included.
        needed: u64,
        /// The reserve ([`StoreConfig::space_reserve`](crate::StoreConfig::space_reserve)).
        reserve: u64,
        /// Bytes free.
        free: u64,
    },
    /// Every sequence number up to [`MAX_SEQUENCE`] is used: the state needs a new name (or its
    /// generations moved elsewhere).
    #[error("no sequence number left for {name}: the newest generation has {MAX_SEQUENCE}")]
    SequenceExhausted {
        /// The state's schema name.
        name: String,
    },
    /// The backend failed; the generation was not acknowledged.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a load found nothing to return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The state has never been saved here: not an error to hide, but not corruption either.
    #[error("no generation yet of {name} in {location}")]
    NoGeneration {
        /// The state's schema name.
        name: String,
        /// The backend's location.
        location: String,
    },
    /// Generations exist, and every one is corrupt.
    #[error("all {} generations of {name} in {location} are invalid:{}", rejected.len(), list(rejected))]
    AllInvalid {
        /// The state's schema name.
        name: String,
        /// The backend's location.
        location: String,
        /// Every generation with its reason, newest first.
        rejected: Vec<Rejection>,
    },
    /// The newest generation that is not corrupt cannot be used by this program: it is foreign,
    /// too new, undecodable or unreadable (see [`RejectKind`]). The load stops rather than hand
    /// back an older generation as if it were the newest state; nothing is deleted.
    #[error(
        "cannot load {name} from {location}: generation {} is {kind}, not corrupt, so the load \
         stopped rather than fall back to older state: {}.\n  To fix: {}.\n  (To load an older \
         generation anyway, set StoreConfig::walk_past; the newer one is kept.){}",
        generation.sequence, generation.reason, kind.advice(), list(rejected)
    )]
    Blocked {
        /// The state's schema name.
        name: String,
        /// The backend's location.
        location: String,
        /// What the blocking generation is.
        kind: RejectKind,
        /// The blocking generation and why this program cannot use it.
        generation: Box<Rejection>,
        /// Newer generations walked past before it (corrupt ones), newest first.
        rejected: Vec<Rejection>,
    },
    /// The type's schema name cannot be used.
    #[error(transparent)]
    InvalidName(EnvelopeError),
    /// The generations could not be listed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The local store had no valid generation and the off-site copy's generations were all
    /// invalid or unreadable. (An off-site copy with no generation at all leaves the local
    /// error as it was.)
    #[error("{local}; off-site fallback failed too: {off_site}")]
    OffSiteFailed {
        /// Why the local store had nothing.
        local: Box<LoadError>,
        /// Why the off-site copy had nothing.
        off_site: Box<LoadError>,
    },
}

fn list(rejected: &[Rejection]) -> String {
    rejected.iter().map(|r| format!("\n  {r}")).collect()
}
