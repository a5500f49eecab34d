//! Snapshot retention: which snapshots of a set to keep, by count and by hourly and daily
//! buckets ([`RetentionPolicy`], the rules off-site retention uses too), with a reason for each.
//!
//! A snapshot counts as valid only when it is *whole*: its manifest and every member check as a
//! load would. So the newest whole snapshot is never deleted, and neither is any snapshot whose
//! manifest or member is authentic but unusable here. Deleting a manifest unpins its members;
//! their states' own retention deletes them later unless another manifest lists them.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::backend::BackendError;
use crate::generation::{Listing, generation_key};
use crate::retention_plan::{PlanEntry, plan_retention};
use crate::store::Store;

use super::restore::{check_members, open_manifest};
use super::spec::SnapshotSpec;

impl Store {
    /// The dry run of snapshot retention for `spec`'s set at time `now`, under
    /// [`crate::StoreConfig::snapshot_retention`]: every snapshot, newest first, with its
    /// decision and the reason. [`Store::apply_snapshot_retention`] carries out exactly this.
    pub fn plan_snapshot_retention(
        &self,
        spec: &SnapshotSpec,
        now: SystemTime,
    ) -> Result<Vec<PlanEntry>, BackendError> {
        let book = self.book(spec.manifest_name());
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        let mut newest_first =
            Listing::of(self.backend.as_ref(), spec.manifest_name())?.generations;
        newest_first.reverse();
        let mut members_ok = HashSet::new();
        let whole = &mut book.whole;
        plan_retention(
            spec.manifest_name(),
            &newest_first,
            &self.config.snapshot_retention,
            now,
            // Manifests and members are immutable: a snapshot found whole once (or committed by
            // this store) is not read again.
            &mut |g, _fresh| {
                if let Some(header) = whole.get(&g.sequence) {
                    return Ok(header.clone());
                }
                let (header, manifest) = open_manifest(self, spec, g)?;
                check_members(self, spec, &manifest, &mut members_ok)?;
                whole.insert(g.sequence, header.clone());
                Ok(header)
            },
        )
    }

    /// Deletes the snapshots `plan` marks for deletion (a plan from
    /// [`Store::plan_snapshot_retention`]) and unpins their members. Returns the ids deleted
    /// and the first failure (a failed delete does not stop the others).
    pub fn apply_snapshot_retention(
        &self,
        spec: &SnapshotSpec,
        plan: &[PlanEntry],
    ) -> (Vec<u64>, Option<BackendError>) {
        let (deleted, failure, _) = self.apply_snapshot_plan(spec, plan);
        (deleted, failure)
    }

    /// [`Store::apply_snapshot_retention`], also returning the members of which a deleted
    /// snapshot listed a generation that no other snapshot lists (their own retention may now
    /// delete it; a member listed unchanged by the kept snapshots has nothing new to do).
    pub(crate) fn apply_snapshot_plan(
        &self,
        spec: &SnapshotSpec,
        plan: &[PlanEntry],
    ) -> (Vec<u64>, Option<BackendError>, HashSet<String>) {
        let mut deleted = Vec::new();
        let mut failure = None;
        for entry in plan.iter().filter(|e| !e.keep) {
            match self.backend.delete(&entry.key) {
                Ok(()) | Err(BackendError::NotFound { .. }) => deleted.push(entry.sequence),
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "snapshot retention could not delete");
                    failure.get_or_insert(e);
                }
            }
        }
        let mut members = HashSet::new();
        let unpinned = self.with_pins(|pins| {
            let mut released = Vec::new();
            for id in &deleted {
                let listed = pins.remove(&generation_key(spec.manifest_name(), *id));
                released.extend(listed.into_iter().flatten());
            }
            for (name, sequence) in released {
                if !pins.pins(&name, sequence) {
                    members.insert(name);
                }
            }
        });
        let book = self.book(spec.manifest_name());
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        for id in &deleted {
            book.whole.remove(id);
            book.known.remove(id);
        }
        (deleted, failure.or(unpinned.err()), members)
    }
}
