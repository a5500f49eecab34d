//! Save policies and asynchronous saves for an application's loop.
//!
//! A [`Checkpointer`] wraps a [`Store`]: the loop calls [`Checkpointer::record`] once per event
//! (a tick, a trade, a training batch) and the policy decides when to save: every N events, every
//! T seconds, or both. Priority events (a circuit breaker trips, a trade closes) call
//! [`Checkpointer::save_now`], which returns once that state is durable.
//!
//! Saves are asynchronous: the value is serialised on the caller's thread (so it cannot change
//! under the writer) and the bytes go to one background writer thread. At most one save per state
//! is queued: a newer value replaces a queued older one of the same state (the older one would be
//! superseded at once anyway). Generations of one state are written in the order they were
//! queued. A failed background save is returned by the next call for that state, never dropped.
//!
//! Snapshot sets get the same treatment ([`Checkpointer::record_snapshot`],
//! [`Checkpointer::snapshot_now`]): the members are serialised on the caller's thread, so the set
//! is consistent as of the call, and the commit runs in the background.
//!
//! Stopping is bounded ([`Checkpointer::shutdown`], and drop): once the deadline passes, queued
//! saves are abandoned and a save still being written is left to finish on its own thread, so a
//! service manager's stop deadline holds. The error then names exactly the states that were not
//! durable when it returned.

mod error;
mod policy;
mod queue;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::encoded::Encoded;
use crate::persist::{CodecError, Persist};
use crate::save::SaveReceipt;
use crate::snapshot::{SnapshotReceipt, SnapshotSpec};
use crate::store::Store;

pub use error::CheckpointError;
pub use policy::SavePolicy;
use policy::Tally;
use queue::{Failure, Job, Outcome, Queue, Shared};
pub use status::{CheckpointStatus, SetStatus};

/// Policy-driven, asynchronous saves over a [`Store`]. See the module docs.
pub struct Checkpointer {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    default_policy: SavePolicy,
    policies: HashMap<&'static str, SavePolicy>,
    tallies: HashMap<&'static str, Tally>,
    newest: Arc<Mutex<HashMap<&'static str, (u64, SystemTime)>>>,
    skipped: u64,
    drop_timeout: Duration,
}

impl Checkpointer {
    /// Starts the background writer over `store`; `policy` applies to every state and snapshot
    /// set without its own (see [`Checkpointer::with_policy`]).
    pub fn new(store: Arc<Store>, policy: SavePolicy) -> Self {
        let shared = Arc::new(Shared {
            store,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("persist-writer".into())
                .spawn(move || queue::writer(&shared))
                .expect("spawning the writer thread")
        };
        Checkpointer {
            shared,
            worker: Some(worker),
            default_policy: policy,
            policies: HashMap::new(),
            tallies: HashMap::new(),
            newest: Arc::default(),
            skipped: 0,
            drop_timeout: Duration::from_secs(10),
        }
    }

    /// Gives state `T` its own policy.
    pub fn with_policy<T: Persist>(mut self, policy: SavePolicy) -> Self {
        self.policies.insert(T::NAME, policy);
        self
    }

    /// Gives snapshot set `spec` its own policy.
    pub fn with_snapshot_policy(mut self, spec: &SnapshotSpec, policy: SavePolicy) -> Self {
        self.policies.insert(spec.manifest_name(), policy);
        self
    }

    /// How long dropping the checkpointer waits for queued saves (default 10 s; see
    /// [`Checkpointer::shutdown`] for what happens at the deadline).
    pub fn with_drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Records one event of state `T` and queues a save if its policy says so. Returns whether
    /// a save was queued, or the error of an earlier background save of `T`.
    pub fn record<T: Persist>(&mut self, value: &T) -> Result<bool, CheckpointError> {
        self.take_error(T::NAME)?;
        let policy = self.policy(T::NAME);
        let tally = self.tallies.entry(T::NAME).or_default();
        tally.events += 1;
        if !tally.due(&policy) {
            return Ok(false);
        }
        if let Some(reserve) = policy.skip_below_free {
            // Judged on the last payload's size first, so a skipped save is not serialised.
            let last_len = tally.last_len;
            if last_len > 0 && self.short_of_space(T::NAME, reserve, last_len) {
                return Ok(false);
            }
        }
        let encoded = Encoded::new(value)?;
        let len = encoded.payload_len() as u64;
        if let Some(reserve) = policy.skip_below_free
            && self.short_of_space(T::NAME, reserve, len)
        {
            return Ok(false);
        }
        // With deltas on, `full_every` starts a new chain on schedule (the spec's hourly full
        // backup between 5-minute incremental ones).
        let tally = self.tallies.entry(T::NAME).or_default();
        let full = tally.full_due(&policy);
        if full {
            tally.last_full = Some(Instant::now());
        }
        self.queued(T::NAME, len);
        self.enqueue(Job::State { encoded, full }, false);
        Ok(true)
    }

    /// Records one event of snapshot set `spec` and, when its policy says so, serialises the
    /// members `fill` adds (on this thread: the set is consistent as of this call) and queues
    /// the snapshot. Returns whether one was queued, or the error of an earlier background
    /// snapshot of the set.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use persist_core::{Checkpointer, Key, Keyring, MemoryBackend, SavePolicy, SnapshotSpec, Store, StoreConfig, persist};
    ///
    /// #[persist(name = "regime", version = 1)]
    /// struct Regime { state: u8 }
    /// #[persist(name = "position", version = 1)]
    /// #[derive(Debug, PartialEq)]
    /// struct Position { lots: i64 }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = SnapshotSpec::builder("agent").member::<Regime>().member::<Position>().build()?;
    /// let store = Arc::new(Store::new(Box::new(MemoryBackend::new()), Keyring::new(Key::generate()?), StoreConfig::default()));
    /// let mut cp = Checkpointer::new(Arc::clone(&store), SavePolicy::every_events(100));
    /// let mut queued = 0;
    /// for tick in 0..250 {
    ///     let (regime, position) = (Regime { state: 1 }, Position { lots: tick });
    ///     let due = cp.record_snapshot(&spec, |batch| {
    ///         batch.add(&regime)?.add(&position)?;
    ///         Ok(())
    ///     })?;
    ///     queued += usize::from(due);
    /// }
    /// cp.shutdown(std::time::Duration::from_secs(10))?;
    /// assert_eq!(queued, 2); // at the 100th and the 200th event
    /// // (A snapshot still queued when the next was due was superseded by it.)
    /// let mut restored = store.load_snapshot(&spec)?;
    /// assert_eq!(restored.take::<Position>(), Some(Position { lots: 199 }));
    /// # Ok(()) }
    /// ```
    pub fn record_snapshot(
        &mut self,
        spec: &SnapshotSpec,
        fill: impl FnOnce(&mut SnapshotBatch) -> Result<(), CodecError>,
    ) -> Result<bool, CheckpointError> {
        let target = spec.manifest_name();
        self.take_error(target)?;
        let policy = self.policy(target);
        let tally = self.tallies.entry(target).or_default();
        tally.events += 1;
        if !tally.due(&policy) {
            return Ok(false);
        }
        let job = self.snapshot_job(spec, fill)?;
        self.enqueue(job, false);
        Ok(true)
    }

    /// Serialises the members `fill` adds, commits the snapshot ahead of other queued saves and
    /// waits until it is durable (for priority events).
    pub fn snapshot_now(
        &mut self,
        spec: &SnapshotSpec,
        fill: impl FnOnce(&mut SnapshotBatch) -> Result<(), CodecError>,
    ) -> Result<SnapshotReceipt, CheckpointError> {
        let target = spec.manifest_name();
        self.take_error(target)?;
        let job = self.snapshot_job(spec, fill)?;
        match self.wait_for(job)? {
            Outcome::Snapshot(result) => result.map_err(|source| CheckpointError::Snapshot {
                set: spec.name(),
                source,
            }),
            Outcome::State(_) => unreachable!("a snapshot job's outcome is a snapshot's"),
        }
    }

    fn snapshot_job(
        &mut self,
        spec: &SnapshotSpec,
        fill: impl FnOnce(&mut SnapshotBatch) -> Result<(), CodecError>,
    ) -> Result<Job, CheckpointError> {
        let mut batch = SnapshotBatch {
            members: Vec::new(),
        };
        fill(&mut batch)?;
        let policy = self.policy(spec.manifest_name());
        let tally = self.tallies.entry(spec.manifest_name()).or_default();
        let full = tally.full_due(&policy);
        if full {
            tally.last_full = Some(Instant::now());
        }
        tally.reset();
        Ok(Job::Snapshot {
            spec: spec.clone(),
            members: batch.members,
            full,
        })
    }

    fn policy(&self, target: &str) -> SavePolicy {
        self.policies
            .get(target)
            .unwrap_or(&self.default_policy)
            .clone()
    }

    /// Notes a queued save of `target`.
    fn queued(&mut self, target: &'static str, len: u64) {
        let tally = self.tallies.entry(target).or_default();
        tally.reset();
        tally.last_len = len;
        if tally.skipping {
            tally.skipping = false;
            tracing::info!(
                name = target,
                "free space recovered: low-priority saves resume"
            );
        }
    }

    /// Whether a low-priority save of `target` must be skipped; if so, counts it, restarts the
    /// policy's count (the next attempt is at the next policy point, not the next event) and
    /// warns once per episode.
    fn short_of_space(&mut self, target: &'static str, reserve: u64, payload: u64) -> bool {
        let short = match self.shared.store.backend().free_space() {
            Ok(Some(free)) => free < reserve.saturating_add(payload),
            _ => false,
        };
        if short {
            self.skipped += 1;
            let tally = self.tallies.entry(target).or_default();
            tally.reset();
            if !tally.skipping {
                tally.skipping = true;
                tracing::warn!(name = target, "low free space: low-priority saves skipped");
            }
        }
        short
    }

    /// Queues a save of `value` now, whatever the policy; returns at once.
    pub fn save_async<T: Persist>(&mut self, value: &T) -> Result<(), CheckpointError> {
        self.take_error(T::NAME)?;
        let encoded = Encoded::new(value)?;
        self.queued(T::NAME, encoded.payload_len() as u64);
        let full = false;
        self.enqueue(Job::State { encoded, full }, false);
        Ok(())
    }

    /// Saves `value` ahead of other queued states and waits until it is durable (for priority
    /// events). Earlier queued values of `T` are superseded by this one.
    pub fn save_now<T: Persist>(&mut self, value: &T) -> Result<SaveReceipt, CheckpointError> {
        self.take_error(T::NAME)?;
        let encoded = Encoded::new(value)?;
        self.queued(T::NAME, encoded.payload_len() as u64);
        let full = false;
        match self.wait_for(Job::State { encoded, full })? {
            Outcome::State(result) => result.map_err(|source| CheckpointError::Save {
                name: T::NAME,
                source,
            }),
            Outcome::Snapshot(_) => unreachable!("a state job's outcome is a state's"),
        }
    }

    /// Queues `job` first and waits for its outcome.
    fn wait_for(&mut self, job: Job) -> Result<Outcome, CheckpointError> {
        let target = job.target();
        let mut q = self.shared.lock();
        let ticket = q.push(job, true);
        q.awaited = Some((target, ticket));
        q.done = None;
        self.shared.work.notify_one();
        loop {
            if let Some(outcome) = q.done.take() {
                q.awaited = None;
                if let Outcome::Snapshot(Ok(receipt)) = &outcome {
                    self.note_snapshot(target, receipt);
                }
                return Ok(outcome);
            }
            q = self
                .shared
                .progress
                .wait(q)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn note_snapshot(&self, target: &'static str, receipt: &SnapshotReceipt) {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        newest.insert(target, (receipt.id, SystemTime::now()));
    }

    fn enqueue(&self, job: Job, front: bool) {
        let mut q = self.shared.lock();
        q.push(job, front);
        self.shared.work.notify_one();
    }

    fn take_error(&self, target: &'static str) -> Result<(), CheckpointError> {
        match self.shared.lock().unreported.remove(target) {
            Some(failure) => Err(error_of(target, failure)),
            None => Ok(()),
        }
    }

    /// The writer's queue and counters, each snapshot set's newest snapshot (committed by this
    /// checkpointer), next due time and pending state, and the bytes on disk (this lists the
    /// backend once). For snapshots of earlier runs, see [`Store::snapshots`]; `persist status`
    /// reads a store from outside.
    pub fn status(&self) -> CheckpointStatus {
        let bytes_on_disk = self
            .shared
            .store
            .backend()
            .list("")
            .ok()
            .map(|objects| objects.iter().map(|o| o.size).sum());
        let q = self.shared.lock();
        let pending = q.pending_targets();
        let newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        let mut snapshots: Vec<SetStatus> = self
            .tallies
            .iter()
            .filter_map(|(target, tally)| {
                let set = target.strip_prefix(crate::snapshot::MANIFEST_PREFIX)?;
                let set: &'static str = &target[target.len() - set.len()..];
                Some(SetStatus {
                    set,
                    newest: newest.get(target).copied(),
                    next_due: tally.next_due(&self.policy(target)),
                    pending: pending.contains(target),
                })
            })
            .collect();
        snapshots.sort_by_key(|s| s.set);
        CheckpointStatus {
            pending,
            superseded: q.superseded,
            written: q.written,
            skipped: self.skipped,
            last_error: q.last_error.clone(),
            snapshots,
            bytes_on_disk,
        }
    }

    /// Waits until every queued save is written, up to `timeout`. Returns the first unreported
    /// background failure, if any.
    pub fn flush(&self, timeout: Duration) -> Result<(), CheckpointError> {
        let start = Instant::now();
        let mut q = self.shared.lock();
        while !q.is_idle() {
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited) else {
                return Err(CheckpointError::Timeout {
                    waited,
                    unsaved: q.pending_targets(),
                });
            };
            q = self
                .shared
                .progress
                .wait_timeout(q, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let failed = q.unreported.keys().next().copied();
        match failed {
            Some(target) => {
                let failure = q.unreported.remove(target).expect("key just seen");
                Err(error_of(target, failure))
            }
            None => Ok(()),
        }
    }

    /// Writes what is queued until `timeout`, then stops the writer and returns, whatever is
    /// left: the clean shutdown path, bounded so a service manager's stop deadline holds.
    /// Saves still queued at the deadline are abandoned; one being written then is left to
    /// finish on its own thread (a save cannot be stopped halfway, and its generation is
    /// create-only, so a late finish is harmless). [`CheckpointError::Timeout`] names exactly
    /// what was not durable when this returned.
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), CheckpointError> {
        self.stop(timeout)
    }

    fn stop(&mut self, timeout: Duration) -> Result<(), CheckpointError> {
        let start = Instant::now();
        let flushed = self.flush(timeout);
        let mut q = self.shared.lock();
        q.stop = true;
        let abandoned: Vec<&'static str> = q.order.drain(..).collect();
        q.pending.clear();
        self.shared.work.notify_all();
        // The save in flight, if any, gets what is left of the deadline.
        while q.in_flight.is_some() {
            let Some(left) = timeout.checked_sub(start.elapsed()) else {
                break;
            };
            q = self
                .shared
                .progress
                .wait_timeout(q, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let in_flight = q.in_flight;
        drop(q);
        match self.worker.take() {
            // Not finished: left to finish on its own (joining would break the deadline).
            Some(_) if in_flight.is_some() => {}
            Some(worker) => {
                let _ = worker.join();
            }
            None => {}
        }
        let mut unsaved: Vec<&'static str> = in_flight.into_iter().collect();
        unsaved.extend(abandoned.iter().filter(|t| Some(**t) != in_flight));
        if !unsaved.is_empty() {
            return Err(CheckpointError::Timeout {
                waited: start.elapsed(),
                unsaved,
            });
        }
        flushed
    }
}

fn error_of(target: &'static str, failure: Failure) -> CheckpointError {
    match failure {
        Failure::State(source) => CheckpointError::Save {
            name: target,
            source,
        },
        Failure::Snapshot(source) => CheckpointError::Snapshot {
            set: target
                .strip_prefix(crate::snapshot::MANIFEST_PREFIX)
                .map_or(target, |set| &target[target.len() - set.len()..]),
            source,
        },
    }
}

impl Drop for Checkpointer {
    /// Writes what is queued for at most [`Checkpointer::with_drop_timeout`] (10 s by default),
    /// then stops as [`Checkpointer::shutdown`] does. Call `shutdown` to see the result.
    fn drop(&mut self) {
        if self.worker.is_some()
            && let Err(e) = self.stop(self.drop_timeout)
        {
            tracing::error!(error = %e, "checkpointer dropped with unsaved state");
        }
    }
}

/// The members of one snapshot, serialised as they are added
/// ([`Checkpointer::record_snapshot`]).
#[derive(Debug)]
pub struct SnapshotBatch {
    members: Vec<Encoded>,
}

impl SnapshotBatch {
    /// Serialises `value` as a member.
    pub fn add<T: Persist>(&mut self, value: &T) -> Result<&mut Self, CodecError> {
        self.members.push(Encoded::new(value)?);
        Ok(self)
    }
}
