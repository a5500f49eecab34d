//! A snapshot set as one Rust type: a struct whose fields are the member states, with
//! `#[persist(snapshot = "name")]` (the derive writes this trait's impl).

use super::SnapshotWriter;
use super::commit::SnapshotReceipt;
use super::error::SnapshotError;
use super::report::SnapshotReport;
use super::restore::RestoredSnapshot;
use super::spec::SnapshotSpec;
use crate::store::Store;

/// A struct whose fields are the members of a snapshot set. Write
/// `#[persist(snapshot = "name")]` on it; `#[persist(after = "field")]` on a field makes it
/// restored after that field's state.
///
/// ```
/// use persist_core::{Key, Keyring, MemoryBackend, Store, StoreConfig, persist};
///
/// #[persist(name = "regime", version = 1)]
/// #[derive(Debug, PartialEq)]
/// struct Regime { state: u8 }
/// #[persist(name = "exit_agent", version = 1)]
/// #[derive(Debug, PartialEq)]
/// struct ExitAgent { q: Vec<f32> }
///
/// #[persist(snapshot = "agent_system")]
/// #[derive(Debug, PartialEq)]
/// struct AgentSystem {
///     #[persist(after = "regime")]
///     exit: ExitAgent,
///     regime: Regime,
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Store::new(Box::new(MemoryBackend::new()), Keyring::new(Key::generate()?), StoreConfig::default());
/// let system = AgentSystem { exit: ExitAgent { q: vec![0.5] }, regime: Regime { state: 2 } };
/// let receipt = store.save_snapshot_of(&system)?;
/// let (restored, report) = store.load_snapshot_of::<AgentSystem>()?;
/// assert_eq!(restored, system);
/// assert_eq!(report.snapshot, Some(receipt.id));
/// assert_eq!(report.members[0].name, "regime"); // dependency order
/// # Ok(()) }
/// ```
pub trait Snapshot: Sized {
    /// The set's spec (built once).
    fn spec() -> &'static SnapshotSpec;

    /// Adds every member to `writer`.
    fn add_to(&self, writer: &mut SnapshotWriter<'_>) -> Result<(), SnapshotError>;

    /// Takes every member out of a restore; fails if one was not restored.
    fn from_restored(restored: &mut RestoredSnapshot) -> Result<Self, SnapshotError>;
}

impl Store {
    /// Commits a snapshot of `set` (see [`Store::snapshot`]).
    pub fn save_snapshot_of<S: Snapshot>(&self, set: &S) -> Result<SnapshotReceipt, SnapshotError> {
        let mut writer = self.snapshot(S::spec());
        set.add_to(&mut writer)?;
        writer.commit()
    }

    /// Restores the newest whole snapshot of `S` (see [`Store::load_snapshot`]) as a value.
    pub fn load_snapshot_of<S: Snapshot>(&self) -> Result<(S, SnapshotReport), SnapshotError> {
        let mut restored = self.load_snapshot(S::spec())?;
        let value = S::from_restored(&mut restored)?;
        Ok((value, restored.report))
    }

    /// Restores snapshot `id` of `S` as a value.
    pub fn load_snapshot_of_at<S: Snapshot>(
        &self,
        id: u64,
    ) -> Result<(S, SnapshotReport), SnapshotError> {
        let mut restored = self.load_snapshot_at(S::spec(), id)?;
        let value = S::from_restored(&mut restored)?;
        Ok((value, restored.report))
    }
}

/// For the derive: takes member `T` or says why it cannot.
#[doc(hidden)]
pub fn take_member<T: crate::Persist + 'static>(
    restored: &mut RestoredSnapshot,
) -> Result<T, SnapshotError> {
    restored
        .take::<T>()
        .ok_or_else(|| SnapshotError::NotRestored {
            set: restored.report.set.clone(),
            name: T::NAME.to_string(),
        })
}
