//! Which generations snapshot manifests reference, so that per-state retention never deletes
//! one (a snapshot whose member is gone is no longer whole).
//!
//! The index is read from the backend the first time a store applies retention: every manifest
//! of every set (`snapshot.*`) is parsed *without* verifying its tag. That is deliberate: a pin
//! only ever keeps a generation, so trusting an unverified manifest can keep too much, never
//! delete too much, and a manifest signed by a key this program lacks still protects its
//! members. A manifest that cannot be parsed pins nothing (it is not a snapshot anyone can load).

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::{Backend, BackendError};
use crate::codec;
use crate::envelope::{HEADER_LEN, TAG_LEN};
use crate::generation::parse_generation_key;
use crate::store::Store;

use super::MANIFEST_PREFIX;
use super::manifest::Manifest;

/// Manifest key → the (member, sequence) pairs it references.
#[derive(Debug, Default)]
pub(crate) struct PinIndex {
    manifests: BTreeMap<String, Vec<(String, u64)>>,
}

impl PinIndex {
    /// Reads every manifest in `backend`.
    fn scan(backend: &dyn Backend) -> Result<PinIndex, BackendError> {
        let mut index = PinIndex::default();
        for meta in backend.list("")? {
            let Some((name, _)) = parse_generation_key(&meta.key) else {
                continue;
            };
            if !name.starts_with(MANIFEST_PREFIX) {
                continue;
            }
            let bytes = match backend.get(&meta.key) {
                Ok(bytes) => bytes,
                Err(BackendError::NotFound { .. } | BackendError::NotAnObject { .. }) => continue,
                Err(e) => return Err(e),
            };
            if let Some(manifest) = parse_unverified(&bytes) {
                index.insert(meta.key.clone(), &manifest);
            }
        }
        Ok(index)
    }

    pub(crate) fn insert(&mut self, manifest_key: String, manifest: &Manifest) {
        let members = manifest
            .members
            .iter()
            .map(|m| (m.name.clone(), m.sequence))
            .collect();
        self.manifests.insert(manifest_key, members);
    }

    /// Forgets a deleted manifest; returns what it listed.
    pub(crate) fn remove(&mut self, manifest_key: &str) -> Option<Vec<(String, u64)>> {
        self.manifests.remove(manifest_key)
    }

    /// Whether some manifest references generation `sequence` of state `name`.
    pub(crate) fn pins(&self, name: &str, sequence: u64) -> bool {
        self.manifests
            .values()
            .flatten()
            .any(|(member, seq)| *seq == sequence && member == name)
    }

    /// The generations of state `name` some manifest references.
    fn of(&self, name: &str) -> BTreeSet<u64> {
        self.manifests
            .values()
            .flatten()
            .filter(|(member, _)| member == name)
            .map(|&(_, sequence)| sequence)
            .collect()
    }

    /// The newest manifest key of `set_manifest` (a `snapshot.<set>` name) that references
    /// generation `sequence` of `member`.
    pub(crate) fn newest_referencing(
        &self,
        set_manifest: &str,
        member: &str,
        sequence: u64,
    ) -> Option<u64> {
        self.manifests
            .iter()
            .filter(|(_, members)| members.iter().any(|(n, s)| n == member && *s == sequence))
            .filter_map(|(key, _)| parse_generation_key(key))
            .filter(|(name, _)| *name == set_manifest)
            .map(|(_, seq)| seq)
            .max()
    }
}

/// A manifest parsed from a stored generation *without* verifying its tag: for pins only.
fn parse_unverified(generation: &[u8]) -> Option<Manifest> {
    let payload = generation.get(HEADER_LEN..generation.len().saturating_sub(TAG_LEN))?;
    codec::decode::<Manifest>(payload).ok()
}

/// The (member, sequence) pairs a stored snapshot manifest lists, parsed *without* verifying
/// it: for retention elsewhere (off-site) that must keep what snapshots reference. Trusting an
/// unverified manifest can only keep too much, never delete too much; never restore from it.
/// `None` if the bytes are not a manifest.
pub fn snapshot_members(generation: &[u8]) -> Option<Vec<(String, u64)>> {
    parse_unverified(generation).map(|m| {
        m.members
            .into_iter()
            .map(|member| (member.name, member.sequence))
            .collect()
    })
}

impl Store {
    /// Runs `f` on the pin index, reading it from the backend first if this store has not yet.
    pub(crate) fn with_pins<R>(
        &self,
        f: impl FnOnce(&mut PinIndex) -> R,
    ) -> Result<R, BackendError> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        if pins.is_none() {
            *pins = Some(PinIndex::scan(self.backend.as_ref())?);
        }
        Ok(f(pins.as_mut().expect("just filled")))
    }

    /// The generations of state `name` that snapshot manifests reference.
    pub(crate) fn pinned(&self, name: &str) -> Result<BTreeSet<u64>, BackendError> {
        self.with_pins(|pins| pins.of(name))
    }
}
