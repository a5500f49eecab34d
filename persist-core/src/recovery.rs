//! Recovery: the walk from the newest generation back to the first one a load can use.

use crate::backend::{Backend, BackendError};
use crate::envelope;
use crate::error::LoadError;
use crate::generation::{GenerationInfo, Listing};
use crate::reject::{RejectKind, RejectReason, Rejection, WalkPast};

/// The generation a walk back accepted, with what `try_one` made of it and the newer ones it
/// passed over.
pub(crate) struct Accepted<R> {
    /// What `try_one` returned for it.
    pub(crate) value: R,
    /// The generation.
    pub(crate) generation: GenerationInfo,
    /// Every newer generation rejected, newest first.
    pub(crate) rejected: Vec<Rejection>,
}

/// How many times one walk re-lists after a generation vanished under it.
const MAX_RELISTS: usize = 64;

/// Walks the generations of `name` in `backend` from the newest back and returns the first one
/// `try_one` accepts: the whole of recovery, shared by [`crate::Store::load`],
/// [`crate::Store::open`] and [`crate::Store::newest_valid`].
///
/// - A corrupt generation (and any kind `walk_past` allows) is logged, listed with its reason,
///   and walked past.
/// - Any other kind stops the walk with [`LoadError::Blocked`]: an authentic generation this
///   program cannot use must not be silently replaced by an older one.
/// - A generation that vanished between listing and reading (`NotFound`) was deleted by a
///   writer's retention, so a newer one exists: the walk lists again and goes on, without
///   reporting it.
///
/// `NoGeneration` when there is none at all, `AllInvalid` (with every reason) when all are
/// corrupt: a fresh start and a disaster are different errors.
pub(crate) fn walk_back<R>(
    backend: &dyn Backend,
    name: &str,
    walk_past: WalkPast,
    mut try_one: impl FnMut(&GenerationInfo) -> Result<R, RejectReason>,
) -> Result<Accepted<R>, LoadError> {
    envelope::validate_name(name).map_err(LoadError::InvalidName)?;
    let mut rejected: Vec<Rejection> = Vec::new();
    let mut tried = std::collections::BTreeSet::new();
    let mut relists = 0;
    let mut vanished = 0;
    'listing: loop {
        let listing = Listing::of(backend, name)?;
        if relists == 0 {
            rejected.extend(listing.beyond.iter().map(|key| Rejection {
                sequence: 0,
                key: key.clone(),
                reason: RejectReason::SequenceOutOfRange,
            }));
        }
        for generation in listing.generations.into_iter().rev() {
            if !tried.insert(generation.sequence) {
                continue;
            }
            let reason = match try_one(&generation) {
                Ok(value) => {
                    return Ok(Accepted {
                        value,
                        generation,
                        rejected,
                    });
                }
                Err(RejectReason::Read(BackendError::NotFound { .. })) => {
                    tracing::debug!(
                        name,
                        sequence = generation.sequence,
                        "generation vanished (superseded)"
                    );
                    vanished += 1;
                    if relists < MAX_RELISTS {
                        relists += 1;
                        continue 'listing;
                    }
                    continue;
                }
                Err(reason) => reason,
            };
            let rejection = Rejection {
                sequence: generation.sequence,
                key: generation.key,
                reason,
            };
            let kind = rejection.kind();
            if kind == RejectKind::Corrupt {
                tracing::warn!(name, rejection = %rejection, "generation rejected");
            } else if walk_past.allows(kind) {
                tracing::error!(name, rejection = %rejection, "walking past a generation that is not corrupt (StoreConfig::walk_past)");
            } else {
                return Err(LoadError::Blocked {
                    name: name.to_string(),
                    location: backend.location(),
                    kind,
                    generation: Box::new(rejection),
                    rejected,
                });
            }
            rejected.push(rejection);
        }
        break;
    }
    if tried.len() == vanished {
        return Err(LoadError::NoGeneration {
            name: name.to_string(),
            location: backend.location(),
        });
    }
    Err(LoadError::AllInvalid {
        name: name.to_string(),
        location: backend.location(),
        rejected,
    })
}
