//! Retention of a store's own generations, run after every save.
//!
//! Invariants:
//!
//! - It runs only after the new generation is durable, so the newest loadable generation (the
//!   one just written) is always kept, and nothing newer than it exists to be deleted.
//! - It keeps the newest [`crate::StoreConfig::retain`] generations that are *loadable*: checked
//!   exactly as a load of the type would check them (tag, fingerprint, validation, migration).
//! - Below the last one kept it deletes loadable and corrupt generations only. A generation that
//!   is foreign, too new, undecodable or unreadable is never deleted: it may be the newest
//!   authentic state of another key, a newer release or a migration still to be fixed.
//! - A generation that a snapshot manifest references (`pinned`) is never deleted (it counts
//!   among the kept ones when loadable): snapshot retention decides when it goes.
//! - What is known of a generation is cached (generations are immutable), except "unreadable",
//!   which may be passing.

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::{Backend, BackendError};
use crate::generation::{GenerationInfo, Listing};
use crate::reject::{RejectKind, RejectReason};

/// What retention knows of one generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// A load of the type would use it; a delta names its base, which is kept as long as it is.
    Loadable {
        /// A delta's base generation.
        base: Option<u64>,
    },
    /// Corrupt: may be deleted once older than the generations kept.
    Corrupt,
    /// Authentic (or unknown) and unusable by this program: never deleted.
    Keep(RejectKind),
    /// Not an object the store wrote (a directory or special file at a generation's name):
    /// neither counted nor deleted.
    NotOurs,
}

/// Applies retention to the generations of state `name` (`check` checks one as a load would)
/// and returns the sequence numbers deleted, and
/// the first failure if any (a failed delete does not stop the others). `known` caches what
/// earlier checks found (generations are immutable, so an entry never goes stale); it is
/// updated here.
pub(crate) fn apply(
    backend: &dyn Backend,
    name: &str,
    retain: usize,
    pinned: &BTreeSet<u64>,
    known: &mut BTreeMap<u64, Class>,
    check: &mut dyn FnMut(&GenerationInfo) -> Result<Option<u64>, RejectReason>,
) -> (Vec<u64>, Option<BackendError>) {
    let mut kept = 0usize;
    // Bases of generations kept: kept too.
    let mut needed: BTreeSet<u64> = BTreeSet::new();
    let mut deleted = Vec::new();
    let mut failure = None;
    let listing = match Listing::of(backend, name) {
        Ok(listing) => listing,
        Err(e) => return (deleted, Some(e)),
    };
    for generation in listing.generations.iter().rev() {
        let class = match known.get(&generation.sequence) {
            Some(&class) => class,
            None => match classify(check, generation) {
                Some(class) => {
                    if class != Class::Keep(RejectKind::Unreadable) {
                        known.insert(generation.sequence, class);
                    }
                    class
                }
                None => continue, // vanished: deleted by someone else meanwhile
            },
        };
        let keeps_base = |needed: &mut BTreeSet<u64>| match class {
            Class::Loadable { base } => needed.extend(base),
            Class::Keep(_) => needed.extend(claimed_base(backend, generation)),
            Class::Corrupt | Class::NotOurs => {}
        };
        if needed.contains(&generation.sequence) {
            // A kept delta's chain runs through it: kept (and counted when loadable).
            if matches!(class, Class::Loadable { .. }) {
                kept += 1;
            }
            keeps_base(&mut needed);
            tracing::debug!(
                name,
                sequence = generation.sequence,
                "retention keeps the base of a kept delta"
            );
            continue;
        }
        if pinned.contains(&generation.sequence) {
            // A snapshot references it: kept (and counted when loadable) whatever its age.
            if matches!(class, Class::Loadable { .. }) {
                kept += 1;
            }
            keeps_base(&mut needed);
            tracing::debug!(
                name,
                sequence = generation.sequence,
                "retention keeps a generation a snapshot references"
            );
            continue;
        }
        match class {
            Class::Loadable { .. } if kept < retain => {
                kept += 1;
                keeps_base(&mut needed);
            }
            Class::Keep(kind) => {
                keeps_base(&mut needed);
                tracing::debug!(name, sequence = generation.sequence, %kind, "retention keeps a generation it cannot load");
            }
            Class::Corrupt if kept < retain => {}
            Class::NotOurs => {}
            Class::Loadable { .. } | Class::Corrupt => {
                match backend.delete(&generation.key) {
                    Ok(()) | Err(BackendError::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(name, sequence = generation.sequence, error = %e, "retention could not delete a generation");
                        failure.get_or_insert(e);
                        continue;
                    }
                }
                known.remove(&generation.sequence);
                tracing::debug!(
                    name,
                    sequence = generation.sequence,
                    ?class,
                    "retention deleted"
                );
                deleted.push(generation.sequence);
            }
        }
    }
    (deleted, failure)
}

/// The base a generation's (unverified) header names, for a delta kept without being
/// loadable: keeping a base too many is harmless, orphaning a delta is not.
fn claimed_base(backend: &dyn Backend, generation: &GenerationInfo) -> Option<u64> {
    let head = backend
        .get_head(&generation.key, crate::envelope::HEAD_LEN)
        .ok()?;
    if !crate::envelope::is_delta_unverified(&head.bytes) {
        return None;
    }
    crate::envelope::chunked::ChunkHeader::decode_unverified(&head.bytes).map(|c| c.base_sequence)
}

/// Checks one generation as a load would; `None` if it vanished.
fn classify(
    check: &mut dyn FnMut(&GenerationInfo) -> Result<Option<u64>, RejectReason>,
    generation: &GenerationInfo,
) -> Option<Class> {
    match check(generation) {
        Ok(base) => Some(Class::Loadable { base }),
        Err(RejectReason::Read(BackendError::NotFound { .. })) => None,
        Err(RejectReason::Read(BackendError::NotAnObject { .. })) => Some(Class::NotOurs),
        Err(reason) => Some(match reason.kind() {
            RejectKind::Corrupt => Class::Corrupt,
            kind => Class::Keep(kind),
        }),
    }
}
