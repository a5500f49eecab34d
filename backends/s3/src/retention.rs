//! Off-site retention: richer than the local "keep the newest N", and separate from it.
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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use persist_core::format::{MANIFEST_PREFIX, parse_generation_key, snapshot_members};
use persist_core::{
    Backend, BackendError, GenerationInfo, Header, Keyring, RejectKind, RejectReason, Store,
    StoreConfig,
};

/// How many off-site generations to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The newest valid generations kept unconditionally (at least 1; default 4).
    pub keep_last: usize,
    /// Keep the newest generation of each hour for this long (default 24 h).
    pub hourly_for: Duration,
    /// Keep the newest generation of each UTC day for this long (default 7 days).
    pub daily_for: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 4,
            hourly_for: Duration::from_secs(24 * 3600),
            daily_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a generation is kept or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The newest valid generation: never deleted.
    NewestValid,
    /// Among the newest `keep_last` valid ones (rank 1 is the newest).
    LastN {
        /// Its rank among valid generations.
        rank: usize,
    },
    /// The newest of its hour (hours since the Unix epoch).
    Hourly {
        /// The hour bucket.
        hour: u64,
    },
    /// The newest of its UTC day (days since the Unix epoch).
    Daily {
        /// The day bucket.
        day: u64,
    },
    /// Invalid, but newer than every valid generation: kept for inspection.
    InvalidButNewest {
        /// Why it is invalid.
        why: String,
    },
    /// Valid, but outside every rule.
    Expired {
        /// Its age in seconds.
        age_secs: u64,
    },
    /// Not corrupt, but this program cannot verify it (another key, a newer format): never
    /// deleted.
    NotCorrupt {
        /// What it is (`foreign`, `too new`, …).
        kind: RejectKind,
        /// Why it cannot be verified.
        why: String,
    },
    /// Corrupt and older than a valid generation.
    Invalid {
        /// Why it is invalid.
        why: String,
    },
    /// Would go by the rules above, but a kept snapshot manifest lists it: a snapshot never
    /// loses a member off-site while it is kept.
    Referenced {
        /// The manifest's key.
        snapshot: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NewestValid => write!(f, "newest valid generation (never deleted)"),
            Reason::LastN { rank } => write!(f, "one of the last N (rank {rank})"),
            Reason::Hourly { hour } => write!(f, "newest of hour {}", fmt_time(hour * 3600)),
            Reason::Daily { day } => write!(f, "newest of day {}", fmt_day(*day)),
            Reason::InvalidButNewest { why } => {
                write!(f, "invalid but newer than every valid one, kept: {why}")
            }
            Reason::Expired { age_secs } => {
                write!(
                    f,
                    "expired: {age_secs} s old, not newest of a kept hour/day"
                )
            }
            Reason::NotCorrupt { kind, why } => {
                write!(
                    f,
                    "{kind}, not corrupt: never deleted ({}): {why}",
                    kind.advice()
                )
            }
            Reason::Invalid { why } => write!(f, "corrupt and superseded: {why}"),
            Reason::Referenced { snapshot } => {
                write!(
                    f,
                    "a kept snapshot references it ({snapshot}): kept with it"
                )
            }
        }
    }
}

/// One generation in a retention plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    /// The state's name.
    pub name: String,
    /// The sequence number.
    pub sequence: u64,
    /// The key.
    pub key: String,
    /// Its signed creation time, if it verified.
    pub created_at: Option<SystemTime>,
    /// True to keep, false to delete.
    pub keep: bool,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for PlanEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            if self.keep { "keep  " } else { "delete" },
            self.name,
            self.sequence,
            self.reason
        )
    }
}

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
            out.extend(plan_state(
                &name,
                &generations,
                &self.policy,
                now,
                &mut verify,
            )?);
        }
        self.verified.retain(|id, _| listed.contains(id));
        keep_referenced(store.backend(), &mut out)?;
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

fn plan_state(
    name: &str,
    newest_first: &[GenerationInfo],
    policy: &RetentionPolicy,
    now: SystemTime,
    verify: &mut dyn FnMut(&GenerationInfo, bool) -> Result<Header, RejectReason>,
) -> Result<Vec<PlanEntry>, BackendError> {
    let keep_last = policy.keep_last.max(1);
    let mut valid_rank = 0usize;
    let mut hours = BTreeSet::new();
    let mut days = BTreeSet::new();
    let mut out = Vec::new();
    for g in newest_first {
        let entry = |created_at, keep, reason| PlanEntry {
            name: name.to_string(),
            sequence: g.sequence,
            key: g.key.clone(),
            created_at,
            keep,
            reason,
        };
        // Fresh until the newest valid generation is found (see `Pruner`).
        let header = match verify(g, valid_rank == 0) {
            Ok(h) => h,
            // Deleted since the listing (another prune): nothing to decide.
            Err(RejectReason::Read(BackendError::NotFound { .. })) => continue,
            // A generation that could not be read may be perfectly valid: no plan is made on
            // incomplete knowledge, so a network error never turns into a delete.
            Err(RejectReason::Read(e)) => return Err(e),
            Err(why) if why.kind() != RejectKind::Corrupt => {
                let kind = why.kind();
                out.push(entry(
                    None,
                    true,
                    Reason::NotCorrupt {
                        kind,
                        why: why.to_string(),
                    },
                ));
                continue;
            }
            Err(why) => {
                let why = why.to_string();
                out.push(if valid_rank == 0 {
                    entry(None, true, Reason::InvalidButNewest { why })
                } else {
                    entry(None, false, Reason::Invalid { why })
                });
                continue;
            }
        };
        valid_rank += 1;
        let created = header.created_at();
        let secs = created
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let age = now.duration_since(created).unwrap_or_default();
        // The newest generation of a bucket claims it, whatever keeps it.
        let newest_of_hour = hours.insert(secs / 3600);
        let newest_of_day = days.insert(secs / 86_400);
        let (keep, reason) = if valid_rank == 1 {
            (true, Reason::NewestValid)
        } else if valid_rank <= keep_last {
            (true, Reason::LastN { rank: valid_rank })
        } else if newest_of_hour && age < policy.hourly_for {
            (true, Reason::Hourly { hour: secs / 3600 })
        } else if newest_of_day && age < policy.daily_for {
            (true, Reason::Daily { day: secs / 86_400 })
        } else {
            (
                false,
                Reason::Expired {
                    age_secs: age.as_secs(),
                },
            )
        };
        out.push(entry(Some(created), keep, reason));
    }
    Ok(out)
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

fn fmt_time(secs: u64) -> String {
    let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    // `YYYY-MM-DDTHH:MM:SSZ`
    format!("{} {}:00 UTC", &at[..10], &at[11..13])
}

/// A day number since the epoch as `YYYY-MM-DD` (UTC).
fn fmt_day(day: u64) -> String {
    fmt_time(day.saturating_mul(86_400))[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use persist_core::EnvelopeError;
    use persist_core::{Fingerprint, KeyId, RkyvFormat};

    /// Off-site retention deletes a superseded corrupt generation but never one that is only
    /// foreign (another key's) or too new, however old: they may be authentic state.
    #[test]
    fn only_corrupt_generations_are_deleted_off_site() {
        let info = |sequence| GenerationInfo {
            sequence,
            key: persist_core::format::generation_key("s", sequence),
            size: 0,
        };
        let newest_first: Vec<GenerationInfo> = (1..=5).rev().map(info).collect();
        let header = |sequence| Header {
            key_id: KeyId([1; 8]),
            name: "s".into(),
            schema_version: 1,
            fingerprint: Fingerprint([0; 32]),
            rkyv_format: RkyvFormat::CURRENT,
            sequence,
            created_at_nanos: 0,
            payload_len: 0,
        };
        let mut verify = |g: &GenerationInfo, _fresh: bool| match g.sequence {
            5 | 4 => Ok(header(g.sequence)),
            3 => Err(RejectReason::Envelope(EnvelopeError::UnknownKey(KeyId(
                [9; 8],
            )))),
            2 => Err(RejectReason::Envelope(EnvelopeError::FutureVersion {
                found: 9,
                newest_known: 1,
            })),
            _ => Err(RejectReason::Envelope(EnvelopeError::BadTag)),
        };
        let policy = RetentionPolicy {
            keep_last: 1,
            hourly_for: Duration::ZERO,
            daily_for: Duration::ZERO,
        };
        let plan = plan_state("s", &newest_first, &policy, UNIX_EPOCH, &mut verify).unwrap();
        let decision = |seq: u64| {
            let e = plan.iter().find(|e| e.sequence == seq).expect("planned");
            (e.keep, e.reason.clone())
        };
        assert_eq!(decision(5), (true, Reason::NewestValid));
        assert!(matches!(decision(4), (false, Reason::Expired { .. })));
        assert!(matches!(
            decision(3),
            (
                true,
                Reason::NotCorrupt {
                    kind: RejectKind::Foreign,
                    ..
                }
            )
        ));
        assert!(matches!(
            decision(2),
            (
                true,
                Reason::NotCorrupt {
                    kind: RejectKind::TooNew,
                    ..
                }
            )
        ));
        assert!(matches!(decision(1), (false, Reason::Invalid { .. })));
    }

    #[test]
    fn days_format_as_dates() {
        assert_eq!(fmt_day(0), "1970-01-01");
        assert_eq!(fmt_day(19_723), "2024-01-01");
        assert_eq!(fmt_day(11_016), "2000-02-29");
    }
}
