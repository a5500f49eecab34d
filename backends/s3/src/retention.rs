//! Off-site retention: richer than the local "keep the newest N", and separate from it. The
//! rules are [`persist_core::plan_retention`]'s (shared with local snapshot retention), plus:
//! every generation a kept snapshot manifest lists is kept ([`Reason::Referenced`]), and the
//! chain of every kept delta ([`Reason::Base`]).
//!
//! For each state, generations are verified (tag, header, name, sequence) and ranked newest
//! first by their signed creation time. A generation is kept if it is
//!
//! 1. the newest valid generation (always, whatever the policy says);
//! 2. among the newest `keep_last` valid ones;
//! 3. the newest valid one of its clock hour, for hours within `hourly_for` (default 24 h);
//! 4. the newest valid one of its UTC day, for days within `daily_for` (default 7 d);
//! 5. invalid but newer than every valid one (kept for inspection, never silently removed);
//! 6. not corrupt but unverifiable here: signed with a key the ring lacks, or of an envelope or
//!    rkyv format this build does not read (kept always: it may be another key's or a newer
//!    release's newest state).
//!
//! Everything else is deleted, with the reason. [`plan`] is the dry run: it lists every
//! generation with its decision and reason, and [`apply`] executes exactly that plan, reporting
//! each delete that failed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use persist_core::format::{MANIFEST_PREFIX, parse_generation_key, snapshot_members};
use persist_core::{
    Backend, BackendError, GenerationInfo, Header, Keyring, Store, StoreConfig, keep_bases,
    plan_retention,
};
pub use persist_core::{PlanEntry, RetentionPolicy, RetentionReason as Reason};

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// Keys deleted.
    pub deleted: Vec<String>,
    /// Keys whose delete failed, with the error: reported, never ignored.
    pub failed: Vec<(String, BackendError)>,
}

/// Computes which off-site generations to keep and delete at time `now` (the dry run).
/// Entries are grouped by state, newest first.
///
/// Every generation is read and verified. One that cannot be read (a network error, not a
/// failed check) fails the whole plan with that error: a generation is marked for deletion as
/// invalid only when it was read and found invalid.
pub fn plan(
    backend: Arc<dyn Backend>,
    keyring: &Keyring,
    policy: &RetentionPolicy,
    now: SystemTime,
) -> Result<Vec<PlanEntry>, BackendError> {
    Pruner::new(keyring.clone(), policy.clone()).plan(backend, now)
}

/// Off-site retention run again and again (by a [`crate::Replicator`]): [`plan`] and [`apply`]
/// with a memory of the generations already verified, so each run downloads only what is new.
///
/// The memory is keyed by key and size and used only below the newest valid generation of a
/// state: the generations from the newest down to the first valid one are verified afresh on
/// every run, so the newest valid generation, which is never deleted, is always known for
/// certain. An older generation corrupted in place after it was verified (same key, same
/// size) can still count as valid towards `keep_last` until the memory is dropped; a restore
/// verifies everything it reads regardless.
#[derive(Debug)]
pub struct Pruner {
    keyring: Keyring,
    policy: RetentionPolicy,
    verified: HashMap<(String, u64), Header>,
}

impl Pruner {
    /// A pruner with an empty memory.
    pub fn new(keyring: Keyring, policy: RetentionPolicy) -> Self {
        Pruner {
            keyring,
            policy,
            verified: HashMap::new(),
        }
    }

    /// The plan at time `now`, as [`plan`] makes it.
    pub fn plan(
        &mut self,
        backend: Arc<dyn Backend>,
        now: SystemTime,
    ) -> Result<Vec<PlanEntry>, BackendError> {
        let store = Store::new(
            Box::new(backend),
            self.keyring.clone(),
            StoreConfig::default().with_space_reserve(0),
        );
        let mut out = Vec::new();
        let mut listed = HashSet::new();
        for name in store.names()? {
            let mut generations = store.generations(&name)?;
            generations.reverse();
            listed.extend(generations.iter().map(|g| (g.key.clone(), g.size)));
            let verified = &mut self.verified;
            let mut verify = |g: &GenerationInfo, fresh: bool| {
                let id = (g.key.clone(), g.size);
                if !fresh && let Some(header) = verified.get(&id) {
                    return Ok(header.clone());
                }
                let header = store.verify_generation(&name, g)?;
                verified.insert(id, header.clone());
                Ok(header)
            };
            out.extend(plan_retention(
                &name,
                &generations,
                &self.policy,
                now,
                &mut verify,
            )?);
        }
        self.verified.retain(|id, _| listed.contains(id));
        keep_referenced(store.backend(), &mut out)?;
        // After the snapshots' members: a referenced delta keeps its chain too.
        keep_bases(store.backend(), &mut out)?;
        Ok(out)
    }

    /// Plans at time `now` and applies the plan.
    pub fn prune(
        &mut self,
        backend: Arc<dyn Backend>,
        now: SystemTime,
    ) -> Result<(Vec<PlanEntry>, PruneReport), BackendError> {
        let plan = self.plan(Arc::clone(&backend), now)?;
        let report = apply(backend.as_ref(), &plan);
        Ok((plan, report))
    }
}
/// Keeps every generation that a kept snapshot manifest lists (read without verification: it
/// can only keep more). A manifest that cannot be read fails the plan, as any unread generation.
fn keep_referenced(backend: &dyn Backend, plan: &mut [PlanEntry]) -> Result<(), BackendError> {
    let mut referenced: HashMap<(String, u64), String> = HashMap::new();
    for entry in plan
        .iter()
        .filter(|e| e.keep && e.name.starts_with(MANIFEST_PREFIX))
    {
        let bytes = match backend.get(&entry.key) {
            Ok(bytes) => bytes,
            Err(BackendError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        for member in snapshot_members(&bytes).unwrap_or_default() {
            referenced
                .entry(member)
                .or_insert_with(|| entry.key.clone());
        }
    }
    for entry in plan.iter_mut().filter(|e| !e.keep) {
        if let Some(snapshot) = referenced.get(&(entry.name.clone(), entry.sequence)) {
            entry.keep = true;
            entry.reason = Reason::Referenced {
                snapshot: snapshot.clone(),
            };
        }
    }
    Ok(())
}

/// Deletes what `plan` marked for deletion, snapshot manifests first (so an interrupted prune
/// never leaves a manifest whose member is gone). Every failed delete is in the report.
pub fn apply(backend: &dyn Backend, plan: &[PlanEntry]) -> PruneReport {
    let mut report = PruneReport::default();
    let manifests_first = plan
        .iter()
        .filter(|e| e.name.starts_with(MANIFEST_PREFIX))
        .chain(plan.iter().filter(|e| !e.name.starts_with(MANIFEST_PREFIX)));
    for entry in manifests_first.filter(|e| !e.keep) {
        debug_assert!(parse_generation_key(&entry.key).is_some());
        match backend.delete(&entry.key) {
            Ok(()) => report.deleted.push(entry.key.clone()),
            Err(e) => {
                tracing::error!(key = %entry.key, error = %e, "off-site retention delete failed");
                report.failed.push((entry.key.clone(), e));
            }
        }
    }
    report
}
