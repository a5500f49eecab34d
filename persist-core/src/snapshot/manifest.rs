//! The snapshot manifest: the signed list of a snapshot's members. A manifest is a generation of
//! its own (state `snapshot.<set>`), written only once every member it lists is durable, so a
//! snapshot exists exactly when its manifest does. Its payload is an rkyv [`Manifest`]
//! (`docs/FORMAT.md`).

use crate::check::Schema;
use crate::envelope::TAG_LEN;
use crate::persist;
use crate::schema::Fingerprint;

/// The manifest's payload, version 1.
#[persist(name = "snapshot_manifest", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Manifest {
    /// The set's name.
    pub(crate) set: String,
    /// The members in dependency order.
    pub(crate) members: Vec<ManifestMember>,
}

/// One member as the manifest pins it: exactly one generation, identified by its sequence
/// number and its tag (so a different generation at the same key does not match).
#[persist(nested)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManifestMember {
    /// The state's schema name.
    pub(crate) name: String,
    /// The generation's sequence number.
    pub(crate) sequence: u64,
    /// Its schema version.
    pub(crate) schema_version: u32,
    /// Its layout fingerprint.
    pub(crate) fingerprint: [u8; 32],
    /// Its tag (the generation's last 32 bytes).
    pub(crate) tag: [u8; TAG_LEN],
    /// The members it depends on (restored before it).
    pub(crate) depends_on: Vec<String>,
}

impl ManifestMember {
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint(self.fingerprint)
    }
}

/// The schema of a set's manifests, stored under `name` (`snapshot.<set>`).
pub(crate) fn schema(name: &'static str) -> Schema {
    Schema::of_named::<Manifest>(name)
}
