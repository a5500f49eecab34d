//! Committing a snapshot: members first, each durable (or referenced when unchanged), then the
//! manifest; then snapshot retention and the members' own retention.

use std::collections::{HashMap, HashSet};

use crate::backend::BackendError;
use crate::codec;
use crate::encoded::Encoded;
use crate::generation::generation_key;
use crate::persist::Persist;
use crate::save::Payload;
use crate::store::{Store, Written};

use super::error::SnapshotError;
use super::manifest::{Manifest, ManifestMember};
use super::spec::SnapshotSpec;

/// Collects the members of one snapshot from borrowed values, then commits them
/// ([`Store::snapshot`]). Each value is serialised when added, so nothing is cloned.
///
/// ```
/// use persist_core::{Key, Keyring, MemoryBackend, SnapshotSpec, Store, StoreConfig, persist};
///
/// #[persist(name = "regime", version = 1)]
/// #[derive(Debug, PartialEq)]
/// struct Regime { state: u8 }
/// #[persist(name = "position", version = 1)]
/// #[derive(Debug, PartialEq)]
/// struct Position { lots: i64 }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let spec = SnapshotSpec::builder("agent").member::<Regime>().member_after::<Position>(&["regime"]).build()?;
/// let store = Store::new(Box::new(MemoryBackend::new()), Keyring::new(Key::generate()?), StoreConfig::default());
/// let (regime, position) = (Regime { state: 2 }, Position { lots: 3 });
/// let first = store.snapshot(&spec).add(&regime)?.add(&position)?.commit()?;
/// // Only the position changed: the regime's generation is referenced, not written again.
/// let second = store.snapshot(&spec).add(&regime)?.add(&Position { lots: 4 })?.commit()?;
/// assert_eq!(second.written().count(), 1);
///
/// let mut restored = store.load_snapshot(&spec)?;
/// assert_eq!(restored.report.snapshot, Some(second.id));
/// assert_eq!(restored.take::<Position>(), Some(Position { lots: 4 }));
/// assert!(first.id < second.id);
/// # Ok(()) }
/// ```
#[must_use = "a snapshot is saved by commit()"]
pub struct SnapshotWriter<'a> {
    store: &'a Store,
    spec: &'a SnapshotSpec,
    /// Each member's serialised value, or `None` for one reused unchanged.
    members: HashMap<&'static str, Option<Encoded>>,
    full: bool,
}

impl std::fmt::Debug for SnapshotWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("set", &self.spec.name())
            .field("added", &self.members.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> SnapshotWriter<'a> {
    /// Serialises `value` as the set's member of type `T`.
    pub fn add<T: Persist>(&mut self, value: &T) -> Result<&mut Self, SnapshotError> {
        let encoded = Encoded::new(value).map_err(SnapshotError::Encode)?;
        self.add_encoded(encoded)
    }

    /// Adds a member serialised earlier (possibly on another thread).
    pub fn add_encoded(&mut self, encoded: Encoded) -> Result<&mut Self, SnapshotError> {
        let name = encoded.name();
        let set = self.spec.name().to_string();
        let Some(member) = self.spec.member(name) else {
            return Err(SnapshotError::NotAMember {
                set,
                name: name.to_string(),
            });
        };
        if member.schema.version() != encoded.schema().version() {
            return Err(SnapshotError::NotAMember {
                set,
                name: format!("{name} v{}", encoded.schema().version()),
            });
        }
        if self.members.insert(name, Some(encoded)).is_some() {
            return Err(SnapshotError::AddedTwice {
                set,
                name: name.to_string(),
            });
        }
        Ok(self)
    }

    /// Lists member `T` as unchanged since the set's last snapshot committed or restored by
    /// this store: the manifest lists that same generation again, and `T` is neither serialised
    /// nor compared. For members the program knows did not change (a model frozen between
    /// training runs); [`SnapshotWriter::add`] finds out by itself, at the cost of serialising
    /// and hashing the value. The commit fails with [`SnapshotError::NothingToReuse`] if this
    /// store has no earlier generation of `T` in a snapshot.
    pub fn reuse<T: Persist>(&mut self) -> Result<&mut Self, SnapshotError> {
        let set = self.spec.name().to_string();
        let name = T::NAME;
        match self.spec.member(name) {
            Some(member) if member.schema.version() == T::VERSION => {}
            _ => {
                return Err(SnapshotError::NotAMember {
                    set,
                    name: name.to_string(),
                });
            }
        }
        if self.members.insert(name, None).is_some() {
            return Err(SnapshotError::AddedTwice {
                set,
                name: name.to_string(),
            });
        }
        Ok(self)
    }

    /// Makes this a full snapshot: every member is written anew, even one that did not change
    /// (the specification's hourly full backup; see [`crate::SavePolicy::full_every`]).
    pub fn full(&mut self) -> &mut Self {
        self.full = true;
        self
    }

    /// Commits the snapshot: returns once every member and the manifest are durable.
    pub fn commit(&mut self) -> Result<SnapshotReceipt, SnapshotError> {
        let members = std::mem::take(&mut self.members);
        self.store.commit_snapshot(self.spec, members, self.full)
    }
}

/// What one committed snapshot holds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SnapshotReceipt {
    /// The snapshot's id: its manifest's sequence number.
    pub id: u64,
    /// Every member, in dependency order.
    pub members: Vec<MemberReceipt>,
    /// Bytes written: new member generations plus the manifest.
    pub bytes_written: u64,
    /// Snapshots (ids) deleted by snapshot retention.
    pub deleted_snapshots: Vec<u64>,
    /// Member generations deleted by the members' own retention, as (state, sequence).
    pub deleted_generations: Vec<(String, u64)>,
    /// Retention failures, if any: the snapshot itself is durable and stands.
    pub retention_errors: Vec<String>,
}

impl SnapshotReceipt {
    /// The members written as new generations by this commit.
    pub fn written(&self) -> impl Iterator<Item = &MemberReceipt> {
        self.members.iter().filter(|m| m.written)
    }
}

/// One member of a committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberReceipt {
    /// The state's name.
    pub name: String,
    /// The generation the manifest lists.
    pub sequence: u64,
    /// True when this commit wrote it; false when it was unchanged and referenced.
    pub written: bool,
    /// The bytes this commit wrote for it (for a delta, the delta's size; 0 when referenced).
    pub bytes: u64,
    /// When it was written as a delta, its base generation.
    pub base: Option<u64>,
}

impl Store {
    /// Starts a snapshot of set `spec`: add every member with [`SnapshotWriter::add`], then
    /// [`SnapshotWriter::commit`].
    pub fn snapshot<'a>(&'a self, spec: &'a SnapshotSpec) -> SnapshotWriter<'a> {
        SnapshotWriter {
            store: self,
            spec,
            members: HashMap::new(),
            full: false,
        }
    }

    /// Commits a snapshot of set `spec` from members serialised earlier (one per member).
    pub fn save_snapshot(
        &self,
        spec: &SnapshotSpec,
        members: Vec<Encoded>,
    ) -> Result<SnapshotReceipt, SnapshotError> {
        let mut writer = self.snapshot(spec);
        for encoded in members {
            writer.add_encoded(encoded)?;
        }
        writer.commit()
    }

    fn commit_snapshot(
        &self,
        spec: &SnapshotSpec,
        mut members: HashMap<&'static str, Option<Encoded>>,
        full: bool,
    ) -> Result<SnapshotReceipt, SnapshotError> {
        if let Some(missing) = spec.members().find(|m| !members.contains_key(m)) {
            return Err(SnapshotError::MissingMember {
                set: spec.name().to_string(),
                name: missing.to_string(),
            });
        }
        // One commit of a set at a time: the manifest's book lock is held throughout.
        let manifest_book = self.book(spec.manifest_name());
        let mut manifest_book = manifest_book.lock().unwrap_or_else(|p| p.into_inner());

        let mut listed = Vec::new();
        let mut receipts = Vec::new();
        let mut bytes_written = 0;
        for member in spec.member_specs() {
            let (written, fresh) = match members.remove(member.name()).expect("checked above") {
                Some(encoded) => self.commit_member(&encoded, full)?,
                None => (self.reused(spec, member.name())?, None),
            };
            let (bytes, base) = fresh.unwrap_or((0, None));
            bytes_written += bytes;
            receipts.push(MemberReceipt {
                name: member.name().to_string(),
                sequence: written.sequence,
                written: fresh.is_some(),
                bytes,
                base,
            });
            listed.push(ManifestMember {
                name: member.name().to_string(),
                sequence: written.sequence,
                schema_version: written.schema_version,
                fingerprint: written.fingerprint.0,
                tag: written.tag,
                depends_on: member.depends_on.iter().map(|d| d.to_string()).collect(),
            });
        }

        let manifest = Manifest {
            set: spec.name().to_string(),
            members: listed,
        };
        let payload = codec::encode(&manifest).map_err(SnapshotError::Encode)?;
        let committed = self.commit_generation(
            &mut manifest_book,
            spec.manifest_name(),
            Manifest::VERSION,
            Manifest::fingerprint(),
            Payload::Borrowed(&payload),
            true,
        )?;
        bytes_written += committed.bytes;
        // Written just now, after every member: whole (snapshot retention need not re-read it).
        manifest_book
            .whole
            .insert(committed.sequence, committed.header.clone());
        let key = generation_key(spec.manifest_name(), committed.sequence);
        // The snapshot is durable: its members are pinned from now on.
        let pinned = self.with_pins(|pins| pins.insert(key, &manifest));
        tracing::debug!(
            set = spec.name(),
            id = committed.sequence,
            bytes_written,
            "snapshot committed"
        );

        let mut receipt = SnapshotReceipt {
            id: committed.sequence,
            members: receipts,
            bytes_written,
            deleted_snapshots: Vec::new(),
            deleted_generations: Vec::new(),
            retention_errors: Vec::new(),
        };
        if let Err(e) = pinned {
            receipt.retention_errors.push(e.to_string());
            return Ok(receipt);
        }
        // Snapshot retention takes the set's book itself.
        drop(manifest_book);
        let mut unpinned = HashSet::new();
        match self.plan_snapshot_retention(spec, std::time::SystemTime::now()) {
            Ok(plan) => {
                let (deleted, failure, members) = self.apply_snapshot_plan(spec, &plan);
                receipt.deleted_snapshots = deleted;
                unpinned = members;
                receipt
                    .retention_errors
                    .extend(failure.map(|e| e.to_string()));
            }
            Err(e) => receipt.retention_errors.push(e.to_string()),
        }
        // A member's own retention can only find work if this commit wrote it or a deleted
        // snapshot unpinned one of its generations.
        let touched: HashSet<&str> = receipt
            .members
            .iter()
            .filter(|m| m.written)
            .map(|m| m.name.as_str())
            .collect();
        for member in spec
            .member_specs()
            .iter()
            .filter(|m| touched.contains(m.name()) || unpinned.contains(m.name()))
        {
            let book = self.book(member.name());
            let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
            let (deleted, error) = self.retain_state(&member.schema, &mut book);
            receipt
                .deleted_generations
                .extend(deleted.into_iter().map(|s| (member.name().to_string(), s)));
            receipt.retention_errors.extend(error);
        }
        Ok(receipt)
    }

    /// The generation of member `name` to list again, unchanged ([`SnapshotWriter::reuse`]).
    fn reused(&self, spec: &SnapshotSpec, name: &'static str) -> Result<Written, SnapshotError> {
        let book = self.book(name);
        let last = book.lock().unwrap_or_else(|p| p.into_inner()).last_written;
        match last {
            Some(written) if self.still_there(name, written.sequence)? => Ok(written),
            _ => Err(SnapshotError::NothingToReuse {
                set: spec.name().to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// Whether generation `sequence` of `name` still exists: certain when a manifest pins it
    /// (retention never deletes those), else asked of the backend.
    fn still_there(&self, name: &str, sequence: u64) -> Result<bool, SnapshotError> {
        if self.pinned(name)?.contains(&sequence) {
            return Ok(true);
        }
        match self.backend.get_head(&generation_key(name, sequence), 0) {
            Ok(_) => Ok(true),
            Err(BackendError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes one member durable: references its last generation when the payload is the same,
    /// else writes a new one. Returns what the manifest lists and, when it was written, the
    /// bytes written and a delta's base.
    #[allow(clippy::type_complexity)]
    fn commit_member(
        &self,
        encoded: &Encoded,
        full: bool,
    ) -> Result<(Written, Option<(u64, Option<u64>)>), SnapshotError> {
        let name = encoded.name();
        let digest = xxhash_rust::xxh3::xxh3_128(&encoded.payload);
        let book = self.book(name);
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        let unchanged = book.last_written.filter(|w| {
            !full
                && w.digest == digest
                && w.schema_version == encoded.schema().version()
                && w.fingerprint == encoded.fingerprint
        });
        if let Some(written) = unchanged
            && self.still_there(name, written.sequence)?
        {
            return Ok((written, None));
        }
        let committed = self.commit_generation(
            &mut book,
            name,
            encoded.schema().version(),
            encoded.fingerprint,
            Payload::Borrowed(&encoded.payload),
            full,
        )?;
        let written = Written {
            sequence: committed.sequence,
            schema_version: encoded.schema().version(),
            fingerprint: encoded.fingerprint,
            tag: committed.tag,
            digest,
        };
        book.last_written = Some(written);
        Ok((written, Some((committed.bytes, committed.base))))
    }
}
