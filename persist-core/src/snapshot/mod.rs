//! Snapshot sets: many states saved as one consistent set and restored as a whole, in
//! dependency order.
//!
//! Commit protocol ([`crate::Store::snapshot`]): every member generation is made durable first
//! (a member whose payload did not change since the set's last commit is referenced, not
//! rewritten); then one signed manifest, a generation of its own (state `snapshot.<set>`,
//! create-only like every generation), lists each member's name, sequence, schema version,
//! fingerprint and tag. The snapshot exists once its manifest is durable, never before: a crash
//! at any point leaves the previous snapshot complete. A snapshot's id is its manifest's
//! sequence number.
//!
//! Invariants:
//!
//! - A member generation that any manifest references is never deleted by the state's own
//!   retention ([`PinIndex`]); it goes only after every manifest referencing it is gone.
//! - Snapshot retention ([`crate::StoreConfig::snapshot_retention`]: a count plus hourly and
//!   daily buckets) counts only *whole* snapshots (manifest and every member check as a load
//!   would), so the newest whole one is never deleted; it deletes only whole or corrupt ones
//!   older than those kept, and has a dry run with a reason for each decision.
//! - Loading restores the newest whole snapshot. A snapshot with a corrupt manifest or member is
//!   walked past to an older whole one; one whose manifest or member is authentic but unusable
//!   here (another key, a newer release, a failing migration) stops the load, as for a single
//!   state ([`crate::LoadError::Blocked`]).

mod commit;
mod error;
mod list;
mod manifest;
mod pins;
mod report;
mod restore;
mod retention;
mod spec;
mod typed;

pub use commit::{MemberReceipt, SnapshotReceipt, SnapshotWriter};
pub use error::SnapshotError;
pub use list::{SnapshotInfo, SnapshotMember};
pub(crate) use pins::PinIndex;
pub use pins::snapshot_members;
pub use report::{MemberOutcome, MemberReport, SnapshotReport};
pub use restore::RestoredSnapshot;
pub use spec::{SnapshotSpec, SnapshotSpecBuilder, SpecError};
pub use typed::Snapshot;
pub use typed::take_member;

/// The prefix of every manifest's state name (`snapshot.<set>`), reserved: no state of a user
/// can be saved under it.
pub const MANIFEST_PREFIX: &str = "snapshot.";
