//! What a snapshot restore found: the snapshot used, and per member the generation, its age
//! (the data-loss window), the migrations applied and every generation rejected on the way.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::envelope::Header;
use crate::persist::MigrationStep;
use crate::reject::Rejection;

/// The report of a snapshot restore ([`crate::Store::load_snapshot`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct SnapshotReport {
    /// The set's name.
    pub set: String,
    /// Where it was restored from (the backend's location).
    pub source: String,
    /// The id of the whole snapshot restored; `None` when each member was restored from its own
    /// newest valid generation ([`crate::Store::load_snapshot_mixed`]).
    pub snapshot: Option<u64>,
    /// When that snapshot was committed.
    pub created_at: Option<SystemTime>,
    /// Every member, in dependency order.
    pub members: Vec<MemberReport>,
    /// Newer snapshots that were not whole, newest first, each with the reason (naming the
    /// member that failed).
    pub rejected: Vec<Rejection>,
}

/// One member of a restore.
#[derive(Debug)]
#[non_exhaustive]
pub struct MemberReport {
    /// The state's name.
    pub name: String,
    /// Restored, or why not.
    pub outcome: MemberOutcome,
    /// Generations of this member walked past (when restored on its own), newest first.
    pub rejected: Vec<Rejection>,
}

/// What became of one member.
#[derive(Debug)]
#[non_exhaustive]
pub enum MemberOutcome {
    /// Restored from this generation.
    Restored {
        /// The generation used.
        sequence: u64,
        /// The snapshot it came from (the newest one listing it), if any.
        snapshot: Option<u64>,
        /// Its schema version (before migration).
        schema_version: u32,
        /// When it was sealed.
        created_at: SystemTime,
        /// Its age now: this member's data-loss window.
        age: Duration,
        /// Migration steps applied, oldest first.
        migrations: Vec<MigrationStep>,
    },
    /// Not restored: no valid generation, not in the snapshot, or a dependency not restored.
    NotRestored {
        /// Why.
        reason: String,
    },
}

impl MemberOutcome {
    pub(crate) fn restored(
        sequence: u64,
        snapshot: Option<u64>,
        header: &Header,
        migrations: Vec<MigrationStep>,
    ) -> Self {
        let created_at = header.created_at();
        MemberOutcome::Restored {
            sequence,
            snapshot,
            schema_version: header.schema_version,
            created_at,
            age: SystemTime::now()
                .duration_since(created_at)
                .unwrap_or_default(),
            migrations,
        }
    }
}

impl SnapshotReport {
    /// True when every member was restored.
    pub fn is_complete(&self) -> bool {
        self.members
            .iter()
            .all(|m| matches!(m.outcome, MemberOutcome::Restored { .. }))
    }

    /// The members that were not restored.
    pub fn not_restored(&self) -> impl Iterator<Item = &MemberReport> {
        self.members
            .iter()
            .filter(|m| matches!(m.outcome, MemberOutcome::NotRestored { .. }))
    }

    /// The largest data-loss window among the restored members.
    pub fn max_age(&self) -> Option<Duration> {
        self.members
            .iter()
            .filter_map(|m| match &m.outcome {
                MemberOutcome::Restored { age, .. } => Some(*age),
                MemberOutcome::NotRestored { .. } => None,
            })
            .max()
    }
}

impl fmt::Display for SnapshotReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.snapshot {
            Some(id) => write!(
                f,
                "restored snapshot {id} of {} from {}",
                self.set, self.source
            )?,
            None => write!(
                f,
                "restored {} member by member (not one snapshot) from {}",
                self.set, self.source
            )?,
        }
        for m in &self.members {
            match &m.outcome {
                MemberOutcome::Restored {
                    sequence,
                    snapshot,
                    schema_version,
                    age,
                    migrations,
                    ..
                } => {
                    write!(
                        f,
                        "\n  {}: generation {sequence} (v{schema_version}), age {:.3} s",
                        m.name,
                        age.as_secs_f64()
                    )?;
                    match snapshot {
                        Some(id) if self.snapshot.is_none() => write!(f, ", from snapshot {id}")?,
                        None => write!(f, ", in no snapshot")?,
                        _ => {}
                    }
                    for step in migrations {
                        write!(f, ", migrated v{} -> v{}", step.from, step.to)?;
                    }
                }
                MemberOutcome::NotRestored { reason } => {
                    write!(f, "\n  {}: NOT restored: {reason}", m.name)?;
                }
            }
            for r in &m.rejected {
                write!(f, "\n    rejected {r}")?;
            }
        }
        for r in &self.rejected {
            write!(f, "\n  rejected snapshot {r}")?;
        }
        Ok(())
    }
}
