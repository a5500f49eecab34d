//! Listing snapshots without the members' types: for tools (`persist snapshots`, `verify`) and
//! for the replicator, which must copy a snapshot's members before its manifest.

use std::time::SystemTime;

use crate::backend::BackendError;
use crate::codec;
use crate::envelope::{self, Expect, HEADER_LEN, TAG_LEN};
use crate::generation::{GenerationInfo, Listing, fetch, parse_generation_key};
use crate::persist::Persist;
use crate::reject::{RejectReason, Rejection};
use crate::schema::Fingerprint;
use crate::store::Store;

use super::MANIFEST_PREFIX;
use super::manifest::Manifest;
use super::restore::fetch_member;
use crate::delta::chain::Resolved;

/// One snapshot as its manifest lists it, checked as far as envelopes go (no member is
/// decoded: that needs its type; [`Store::load_snapshot_at`] does it).
#[derive(Debug)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The set's name.
    pub set: String,
    /// The snapshot's id (its manifest's sequence number).
    pub id: u64,
    /// When it was committed (from the manifest's header; `None` if it does not verify).
    pub created_at: Option<SystemTime>,
    /// Its members, in dependency order (empty if the manifest does not verify).
    pub members: Vec<SnapshotMember>,
    /// Why it is not whole, if it is not: the manifest fails, or a member is missing, is not
    /// the generation listed, or fails its envelope.
    pub problem: Option<Rejection>,
}

/// One member as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotMember {
    /// The state's name.
    pub name: String,
    /// The generation.
    pub sequence: u64,
    /// Its schema version.
    pub schema_version: u32,
    /// Its layout fingerprint.
    pub fingerprint: Fingerprint,
    /// The members it depends on.
    pub depends_on: Vec<String>,
}

impl Store {
    /// The names of the snapshot sets in this store, sorted.
    pub fn snapshot_sets(&self) -> Result<Vec<String>, BackendError> {
        let mut sets: Vec<String> = self
            .backend
            .list("")?
            .iter()
            .filter_map(|m| parse_generation_key(&m.key))
            .filter_map(|(name, _)| name.strip_prefix(MANIFEST_PREFIX))
            .map(str::to_string)
            .collect();
        sets.dedup();
        sets.sort();
        sets.dedup();
        Ok(sets)
    }

    /// Every snapshot of set `set`, oldest first, each checked as far as envelopes go.
    pub fn snapshots(&self, set: &str) -> Result<Vec<SnapshotInfo>, BackendError> {
        let manifest_name = format!("{MANIFEST_PREFIX}{set}");
        let listing = Listing::of(self.backend.as_ref(), &manifest_name)?;
        let mut out = Vec::new();
        for generation in listing.generations {
            let id = generation.sequence;
            let key = generation.key.clone();
            let rejection = |reason| Rejection {
                sequence: id,
                key: key.clone(),
                reason,
            };
            let (created_at, manifest) =
                match self.open_manifest_unchecked(&manifest_name, &generation) {
                    Ok(found) => found,
                    Err(RejectReason::Read(BackendError::NotFound { .. })) => continue,
                    Err(reason) => {
                        out.push(SnapshotInfo {
                            set: set.to_string(),
                            id,
                            created_at: None,
                            members: Vec::new(),
                            problem: Some(rejection(reason)),
                        });
                        continue;
                    }
                };
            let problem = manifest
                .members
                .iter()
                .find_map(|listed| {
                    let expect = Expect::generation(&listed.name, listed.sequence);
                    let bytes = match fetch_member(self, &expect, listed) {
                        Ok(Resolved::Whole(bytes)) => bytes,
                        Ok(Resolved::Rebuilt(_)) => return None,
                        Err(reason) => return Some(reason),
                    };
                    envelope::open(&self.keyring, &bytes, &expect)
                        .err()
                        .map(|e| RejectReason::Member {
                            name: listed.name.clone(),
                            sequence: listed.sequence,
                            reason: Box::new(RejectReason::Envelope(e)),
                        })
                })
                .map(rejection);
            out.push(SnapshotInfo {
                set: set.to_string(),
                id,
                created_at: Some(created_at),
                members: manifest
                    .members
                    .iter()
                    .map(|m| SnapshotMember {
                        name: m.name.clone(),
                        sequence: m.sequence,
                        schema_version: m.schema_version,
                        fingerprint: m.fingerprint(),
                        depends_on: m.depends_on.clone(),
                    })
                    .collect(),
                problem,
            });
        }
        Ok(out)
    }

    /// Opens a manifest knowing only its set's name (tag, name, sequence, version, fingerprint).
    fn open_manifest_unchecked(
        &self,
        manifest_name: &str,
        generation: &GenerationInfo,
    ) -> Result<(SystemTime, Manifest), RejectReason> {
        let bytes = fetch(self.backend.as_ref(), generation, false)?;
        let expect = Expect {
            min_version: Some(Manifest::VERSION),
            max_version: Some(Manifest::VERSION),
            ..Expect::generation(manifest_name, generation.sequence)
        };
        let opened = envelope::open(&self.keyring, &bytes, &expect)?;
        let expected = Manifest::fingerprint();
        if opened.header.fingerprint != expected {
            return Err(RejectReason::FingerprintMismatch {
                name: manifest_name.to_string(),
                version: opened.header.schema_version,
                expected,
                found: opened.header.fingerprint,
            });
        }
        let payload = &bytes[HEADER_LEN..bytes.len() - TAG_LEN];
        let manifest = codec::decode::<Manifest>(payload)?;
        Ok((opened.header.created_at(), manifest))
    }
}
