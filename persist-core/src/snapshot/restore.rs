//! Restoring a snapshot: the newest whole one (default), one by id, or each member from its own
//! newest valid generation (opt-in), always decoding members in dependency order.

use std::any::Any;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::backend::BackendError;
use crate::check::{self, check_resolved, open_generation};
use crate::codec;
use crate::delta::chain::{self, Resolved};
use crate::delta::diff::Previous;
use crate::envelope::Expect;
use crate::envelope::{Header, TAG_LEN};
use crate::error::LoadError;
use crate::generation::{GenerationInfo, fetch, generation_key};
use crate::persist::{Decoded, Persist};
use crate::recovery::walk_back;
use crate::reject::{RejectReason, Rejection};
use crate::store::{Store, Written};

use super::error::SnapshotError;
use super::manifest::{Manifest, ManifestMember};
use super::report::{MemberOutcome, MemberReport, SnapshotReport};
use super::spec::{MemberSpec, SnapshotSpec};

/// A restored snapshot: the members' values and the report. Take each value out with
/// [`RestoredSnapshot::take`].
#[derive(Debug)]
pub struct RestoredSnapshot {
    /// What was restored from where, member by member.
    pub report: SnapshotReport,
    values: HashMap<&'static str, Box<dyn Any + Send>>,
}

impl RestoredSnapshot {
    /// Takes member `T` out (`None` if it was not restored, or was taken already).
    pub fn take<T: Persist + 'static>(&mut self) -> Option<T> {
        let value = self.values.remove(T::NAME)?;
        value.downcast::<T>().ok().map(|b| *b)
    }

    /// Whether member `name` was restored (and not yet taken).
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// The decoded members of one snapshot, and their reports.
struct Whole {
    header: Header,
    values: HashMap<&'static str, Box<dyn Any + Send>>,
    members: Vec<MemberReport>,
    /// Each restored member's generation with its payload's digest, so the next commit
    /// references a member that did not change since (even after a restart).
    written: Vec<(&'static str, Written)>,
    /// With deltas on, each restored chunked member as the base of its next delta.
    previous: Vec<(&'static str, Previous)>,
}

impl Store {
    /// Restores the newest whole snapshot of `spec`'s set: its manifest and every member check
    /// as a load would (tag, name, sequence, fingerprint, decoding, migrations), and members are
    /// decoded in dependency order. A snapshot with a corrupt manifest or member is walked past
    /// to the newest older whole one (the report lists it with the member that failed); an
    /// authentic manifest or member this program cannot use stops the restore
    /// ([`LoadError::Blocked`], unless [`crate::StoreConfig::walk_past`] allows it).
    ///
    /// A member the snapshot does not list (added to the set later) is reported as not
    /// restored, and so are the members that depend on it.
    pub fn load_snapshot(&self, spec: &SnapshotSpec) -> Result<RestoredSnapshot, SnapshotError> {
        let backend = self.backend.as_ref();
        let accepted = walk_back(backend, spec.manifest_name(), self.config.walk_past, |g| {
            self.restore_whole(spec, g)
        })?;
        Ok(self.restored(
            spec,
            accepted.generation.sequence,
            accepted.value,
            accepted.rejected,
        ))
    }

    /// Restores snapshot `id` of `spec`'s set, and only it (the spec's `restoreSystemState(id)`).
    pub fn load_snapshot_at(
        &self,
        spec: &SnapshotSpec,
        id: u64,
    ) -> Result<RestoredSnapshot, SnapshotError> {
        let generation = GenerationInfo {
            sequence: id,
            key: generation_key(spec.manifest_name(), id),
            size: 0,
        };
        match self.restore_whole(spec, &generation) {
            Ok(whole) => Ok(self.restored(spec, id, whole, Vec::new())),
            Err(RejectReason::Read(BackendError::NotFound { .. })) => {
                Err(SnapshotError::NoSuchSnapshot {
                    set: spec.name().to_string(),
                    id,
                })
            }
            Err(reason) => Err(SnapshotError::Rejected {
                set: spec.name().to_string(),
                rejection: Box::new(Rejection {
                    sequence: id,
                    key: generation.key,
                    reason,
                }),
            }),
        }
    }

    /// Restores each member from its own newest valid generation (as [`Store::load`] would),
    /// in dependency order, whether or not they come from one snapshot: for when no snapshot is
    /// whole and some state is better than none. The report says which snapshot each member
    /// came from. A member that cannot be restored is reported, and so are its dependants,
    /// which are not restored against a stale dependency.
    pub fn load_snapshot_mixed(
        &self,
        spec: &SnapshotSpec,
    ) -> Result<RestoredSnapshot, SnapshotError> {
        let backend = self.backend.as_ref();
        let mut values = HashMap::new();
        let mut members = Vec::new();
        let mut failed: BTreeSet<&str> = BTreeSet::new();
        for member in spec.member_specs() {
            if let Some(dep) = member.depends_on.iter().find(|d| failed.contains(**d)) {
                failed.insert(member.name());
                members.push(not_restored(
                    member,
                    format!("its dependency {dep} was not restored"),
                ));
                continue;
            }
            let walked = walk_back(backend, member.name(), self.config.walk_past, |g| {
                let resolved = check::fetch_for(backend, &self.keyring, &member.schema, g, false)?;
                let (header, payload, _) =
                    open_generation(&self.keyring, &member.schema, g.sequence, &resolved, |_| ())?;
                let decoded = (member.load)(header.schema_version, payload)?;
                Ok((header, decoded))
            });
            match walked {
                Ok(accepted) => {
                    let sequence = accepted.generation.sequence;
                    let (header, Decoded { value, migrations }) = accepted.value;
                    let snapshot = self
                        .with_pins(|p| {
                            p.newest_referencing(spec.manifest_name(), member.name(), sequence)
                        })
                        .ok()
                        .flatten();
                    values.insert(member.name(), value);
                    members.push(MemberReport {
                        name: member.name().to_string(),
                        outcome: MemberOutcome::restored(sequence, snapshot, &header, migrations),
                        rejected: accepted.rejected,
                    });
                }
                Err(e) => {
                    failed.insert(member.name());
                    let reason = e.to_string();
                    let rejected = match e {
                        LoadError::AllInvalid { rejected, .. } => rejected,
                        LoadError::Blocked {
                            generation,
                            mut rejected,
                            ..
                        } => {
                            rejected.push(*generation);
                            rejected
                        }
                        _ => Vec::new(),
                    };
                    members.push(MemberReport {
                        name: member.name().to_string(),
                        outcome: MemberOutcome::NotRestored { reason },
                        rejected,
                    });
                }
            }
        }
        let report = SnapshotReport {
            set: spec.name().to_string(),
            source: backend.location(),
            snapshot: None,
            created_at: None,
            members,
            rejected: Vec::new(),
        };
        if !report.is_complete() {
            tracing::warn!(%report, "snapshot restored member by member, not complete");
        }
        Ok(RestoredSnapshot { report, values })
    }

    fn restored(
        &self,
        spec: &SnapshotSpec,
        id: u64,
        whole: Whole,
        rejected: Vec<Rejection>,
    ) -> RestoredSnapshot {
        let report = SnapshotReport {
            set: spec.name().to_string(),
            source: self.backend.location(),
            snapshot: Some(id),
            created_at: Some(whole.header.created_at()),
            members: whole.members,
            rejected,
        };
        if !report.rejected.is_empty() || !report.is_complete() {
            tracing::warn!(%report, "restored an older or partial snapshot");
        }
        for (name, written) in whole.written {
            let book = self.book(name);
            let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
            book.last_written = Some(written);
        }
        for (name, previous) in whole.previous {
            let book = self.book(name);
            let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
            book.previous = Some(previous);
        }
        RestoredSnapshot {
            report,
            values: whole.values,
        }
    }

    /// Opens snapshot `g` and decodes every member the spec and the manifest share, in
    /// dependency order; any member failing rejects the whole snapshot.
    fn restore_whole(
        &self,
        spec: &SnapshotSpec,
        g: &GenerationInfo,
    ) -> Result<Whole, RejectReason> {
        let (header, manifest) = open_manifest(self, spec, g)?;
        let mut values = HashMap::new();
        let mut members = Vec::new();
        let mut written = Vec::new();
        let mut previous = Vec::new();
        let mut absent: BTreeSet<&str> = BTreeSet::new();
        for member in spec.member_specs() {
            if let Some(dep) = member.depends_on.iter().find(|d| absent.contains(**d)) {
                absent.insert(member.name());
                members.push(not_restored(
                    member,
                    format!("its dependency {dep} was not restored"),
                ));
                continue;
            }
            let Some(listed) = manifest.members.iter().find(|m| m.name == member.name()) else {
                absent.insert(member.name());
                members.push(not_restored(
                    member,
                    format!(
                        "snapshot {} does not list it (added to the set later?)",
                        g.sequence
                    ),
                ));
                continue;
            };
            let bytes = fetch_member(self, &member.schema.expect(listed.sequence), listed)?;
            let wrap = |reason: RejectReason| member_failed(listed, reason);
            let (member_header, payload, _) = open_generation(
                &self.keyring,
                &member.schema,
                listed.sequence,
                &bytes,
                |_| (),
            )
            .map_err(wrap)?;
            if member_header.schema_version != listed.schema_version
                || member_header.fingerprint != listed.fingerprint()
            {
                return Err(RejectReason::MemberMissing {
                    name: listed.name.clone(),
                    sequence: listed.sequence,
                    what: "is not the generation the manifest lists (another version or layout)",
                });
            }
            let decoded = (member.load)(member_header.schema_version, payload)
                .map_err(|e| wrap(RejectReason::Codec(e)))?;
            if decoded.migrations.is_empty() {
                written.push((
                    member.name(),
                    Written {
                        sequence: listed.sequence,
                        schema_version: listed.schema_version,
                        fingerprint: listed.fingerprint(),
                        tag: listed.tag,
                        digest: xxhash_rust::xxh3::xxh3_128(payload),
                    },
                ));
            }
            if self.config.deltas.is_some()
                && let Some(p) = bytes.into_previous(listed.sequence)
            {
                previous.push((member.name(), p));
            }
            values.insert(member.name(), decoded.value);
            members.push(MemberReport {
                name: member.name().to_string(),
                outcome: MemberOutcome::restored(
                    listed.sequence,
                    Some(g.sequence),
                    &member_header,
                    decoded.migrations,
                ),
                rejected: Vec::new(),
            });
        }
        Ok(Whole {
            header,
            values,
            members,
            written,
            previous,
        })
    }
}

fn not_restored(member: &MemberSpec, reason: String) -> MemberReport {
    MemberReport {
        name: member.name().to_string(),
        outcome: MemberOutcome::NotRestored { reason },
        rejected: Vec::new(),
    }
}

fn member_failed(listed: &ManifestMember, reason: RejectReason) -> RejectReason {
    RejectReason::Member {
        name: listed.name.clone(),
        sequence: listed.sequence,
        reason: Box::new(reason),
    }
}

/// Opens and checks manifest generation `g` of the set (tag, name, sequence, version,
/// fingerprint, payload) and decodes it.
pub(crate) fn open_manifest(
    store: &Store,
    spec: &SnapshotSpec,
    g: &GenerationInfo,
) -> Result<(Header, Manifest), RejectReason> {
    let bytes = Resolved::Whole(fetch(store.backend(), g, false)?);
    let (header, payload, _) = open_generation(
        store.keyring(),
        spec.manifest_schema(),
        g.sequence,
        &bytes,
        |_| (),
    )?;
    let manifest = codec::decode::<Manifest>(payload)?;
    Ok((header, manifest))
}

/// Fetches the generation a manifest lists and checks it is that one (same tag): a missing or
/// different generation makes the snapshot not whole. A delta's chain is followed and verified.
pub(crate) fn fetch_member(
    store: &Store,
    expect: &Expect<'_>,
    listed: &ManifestMember,
) -> Result<Resolved, RejectReason> {
    let generation = GenerationInfo {
        sequence: listed.sequence,
        key: generation_key(&listed.name, listed.sequence),
        size: 0,
    };
    let missing = |what| RejectReason::MemberMissing {
        name: listed.name.clone(),
        sequence: listed.sequence,
        what,
    };
    let bytes = match fetch(store.backend(), &generation, false) {
        Ok(bytes) => bytes,
        Err(RejectReason::Read(BackendError::NotFound { .. })) => {
            return Err(missing("is missing"));
        }
        Err(reason) => return Err(member_failed(listed, reason)),
    };
    if bytes.len() < TAG_LEN || bytes[bytes.len() - TAG_LEN..] != listed.tag {
        return Err(missing(
            "is not the generation the manifest lists (another tag)",
        ));
    }
    chain::resolve(
        store.backend(),
        store.keyring(),
        &listed.name,
        expect,
        &generation,
        bytes,
    )
    .map_err(|reason| member_failed(listed, reason))
}

/// Checks that every member the spec and the manifest share is there, is the generation the
/// manifest lists, and checks as a load would. `checked` remembers members already found good.
pub(crate) fn check_members(
    store: &Store,
    spec: &SnapshotSpec,
    manifest: &Manifest,
    checked: &mut HashSet<(String, u64)>,
) -> Result<(), RejectReason> {
    for listed in &manifest.members {
        let Some(member) = spec.member(&listed.name) else {
            continue;
        };
        if checked.contains(&(listed.name.clone(), listed.sequence)) {
            continue;
        }
        let resolved = fetch_member(store, &member.schema.expect(listed.sequence), listed)?;
        check_resolved(store.keyring(), &member.schema, listed.sequence, &resolved)
            .map_err(|reason| member_failed(listed, reason))?;
        checked.insert((listed.name.clone(), listed.sequence));
    }
    Ok(())
}
