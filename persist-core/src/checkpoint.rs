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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::encoded::Encoded;
use crate::error::SaveError;
use crate::persist::{CodecError, Persist};
use crate::save::SaveReceipt;
use crate::store::Store;

/// When a state is saved by [`Checkpointer::record`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SavePolicy {
    /// Save after this many recorded events since the last save.
    pub every_events: Option<u64>,
    /// Save when the last save is at least this old (checked when an event is recorded).
    pub every: Option<Duration>,
    /// A low-priority state: skip its policy saves (with a warning) while the backend's free
    /// space is below this many bytes plus the payload. Critical states leave it `None`.
    pub skip_below_free: Option<u64>,
}

impl SavePolicy {
    /// Save every `n` events.
    ///
    /// ```
    /// let p = persist_core::SavePolicy::every_events(10).or_every(std::time::Duration::from_secs(3600));
    /// assert_eq!(p.every_events, Some(10));
    /// ```
    pub fn every_events(n: u64) -> Self {
        SavePolicy {
            every_events: Some(n.max(1)),
            ..SavePolicy::default()
        }
    }

    /// Also save when the last save is older than `interval`.
    pub fn or_every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// Marks the state low-priority: skipped while free space is below `bytes` plus the payload.
    pub fn low_priority(mut self, bytes: u64) -> Self {
        self.skip_below_free = Some(bytes);
        self
    }
}

/// What went wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A background save of this state failed (reported on the next call for the state).
    #[error("background save of {name} failed: {source}")]
    Save {
        /// The state.
        name: &'static str,
        /// The store's error.
        #[source]
        source: SaveError,
    },
    /// The value could not be serialised.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The queue did not drain in time.
    #[error("timed out after {waited:?} with saves still pending: {pending:?}")]
    Timeout {
        /// How long it waited.
        waited: Duration,
        /// The states still queued or being written.
        pending: Vec<&'static str>,
    },
}

/// A snapshot of the writer's queue, for monitoring.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CheckpointStatus {
    /// States queued or being written.
    pending: Vec<&'static str>,
    /// Queued saves replaced by a newer value before they were written.
    pub superseded: u64,
    /// Saves written by the background writer.
    pub written: u64,
}

impl CheckpointStatus {
    /// States queued or being written.
    pub fn pending(&self) -> &[&'static str] {
        &self.pending
    }
}

#[derive(Default)]
struct Queue {
    pending: HashMap<&'static str, (u64, Encoded)>,
    order: VecDeque<&'static str>,
    in_flight: Option<&'static str>,
    next_ticket: u64,
    /// The save a `save_now` caller waits for: (state, ticket).
    awaited: Option<(&'static str, u64)>,
    /// Its result, handed over by the writer.
    done: Option<Result<SaveReceipt, SaveError>>,
    unreported: HashMap<&'static str, SaveError>,
    superseded: u64,
    written: u64,
    stop: bool,
}

struct Shared {
    store: Arc<Store>,
    queue: Mutex<Queue>,
    work: Condvar,
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
struct Tally {
    events: u64,
    last_save: Option<Instant>,
}

/// Policy-driven, asynchronous saves over a [`Store`]. See the module docs.
pub struct Checkpointer {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    default_policy: SavePolicy,
    policies: HashMap<&'static str, SavePolicy>,
    tallies: HashMap<&'static str, Tally>,
    drop_timeout: Duration,
}

impl Checkpointer {
    /// Starts the background writer over `store`; `policy` applies to every state without its
    /// own (see [`Checkpointer::with_policy`]).
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
                .spawn(move || writer(&shared))
                .expect("spawning the writer thread")
        };
        Checkpointer {
            shared,
            worker: Some(worker),
            default_policy: policy,
            policies: HashMap::new(),
            tallies: HashMap::new(),
            drop_timeout: Duration::from_secs(10),
        }
    }

    /// Gives state `T` its own policy.
    pub fn with_policy<T: Persist>(mut self, policy: SavePolicy) -> Self {
        self.policies.insert(T::NAME, policy);
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
        let policy = self.policies.get(T::NAME).unwrap_or(&self.default_policy);
        let tally = self.tallies.entry(T::NAME).or_default();
        tally.events += 1;
        let by_count = policy.every_events.is_some_and(|n| tally.events >= n);
        let by_time = policy
            .every
            .is_some_and(|every| tally.last_save.is_none_or(|last| last.elapsed() >= every));
        if !(by_count || by_time) {
            return Ok(false);
        }
        let skip_below = policy.skip_below_free;
        let encoded = Encoded::new(value)?;
        if let Some(reserve) = skip_below
            && self.short_of_space(reserve, encoded.payload_len() as u64)
        {
            tracing::warn!(name = T::NAME, "low free space: low-priority save skipped");
            return Ok(false);
        }
        let tally = self.tallies.entry(T::NAME).or_default();
        tally.events = 0;
        tally.last_save = Some(Instant::now());
        self.enqueue(encoded);
        Ok(true)
    }

    fn short_of_space(&self, reserve: u64, payload: u64) -> bool {
        match self.shared.store.backend().free_space() {
            Ok(Some(free)) => free < reserve.saturating_add(payload),
            _ => false,
        }
    }

    /// Queues a save of `value` now, whatever the policy; returns at once.
    pub fn save_async<T: Persist>(&mut self, value: &T) -> Result<(), CheckpointError> {
        self.take_error(T::NAME)?;
        let encoded = Encoded::new(value)?;
        let tally = self.tallies.entry(T::NAME).or_default();
        tally.events = 0;
        tally.last_save = Some(Instant::now());
        self.enqueue(encoded);
        Ok(())
    }

    /// Saves `value` ahead of other queued states and waits until it is durable (for priority
    /// events). Earlier queued values of `T` are superseded by this one.
    pub fn save_now<T: Persist>(&mut self, value: &T) -> Result<SaveReceipt, CheckpointError> {
        self.take_error(T::NAME)?;
        let encoded = Encoded::new(value)?;
        let tally = self.tallies.entry(T::NAME).or_default();
        tally.events = 0;
        tally.last_save = Some(Instant::now());
        let mut q = self.shared.lock();
        let ticket = push(&mut q, encoded, true);
        q.awaited = Some((T::NAME, ticket));
        q.done = None;
        self.shared.work.notify_one();
        loop {
            if let Some(result) = q.done.take() {
                q.awaited = None;
                return result.map_err(|source| CheckpointError::Save {
                    name: T::NAME,
                    source,
                });
            }
            q = self
                .shared
                .progress
                .wait(q)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn enqueue(&self, encoded: Encoded) {
        let mut q = self.shared.lock();
        push(&mut q, encoded, false);
        self.shared.work.notify_one();
    }

    fn take_error(&self, name: &'static str) -> Result<(), CheckpointError> {
        match self.shared.lock().unreported.remove(name) {
            Some(source) => Err(CheckpointError::Save { name, source }),
            None => Ok(()),
        }
    }

    /// The writer's queue and counters.
    pub fn status(&self) -> CheckpointStatus {
        let q = self.shared.lock();
        let mut pending: Vec<&'static str> = q.order.iter().copied().collect();
        pending.extend(q.in_flight);
        CheckpointStatus {
            pending,
            superseded: q.superseded,
            written: q.written,
        }
    }

    /// Waits until every queued save is written, up to `timeout`. Returns the first unreported
    /// background failure, if any.
    pub fn flush(&self, timeout: Duration) -> Result<(), CheckpointError> {
        let start = Instant::now();
        let mut q = self.shared.lock();
        while !q.order.is_empty() || q.in_flight.is_some() {
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited) else {
                let mut pending: Vec<&'static str> = q.order.iter().copied().collect();
                pending.extend(q.in_flight);
                return Err(CheckpointError::Timeout { waited, pending });
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
            Some(name) => {
                let source = q.unreported.remove(name).expect("key just seen");
                Err(CheckpointError::Save { name, source })
            }
            None => Ok(()),
        }
    }

    /// Writes everything queued (waiting at most `timeout`) and stops the writer: the clean
    /// shutdown path.
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), CheckpointError> {
        let flushed = self.flush(timeout);
        self.stop_worker();
        flushed
    }

    fn stop_worker(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Checkpointer {
    /// Flushes (bounded by ten seconds) and stops the writer. Call
    /// [`Checkpointer::shutdown`] to choose the timeout and see the result.
    fn drop(&mut self) {
        if self.worker.is_some() {
            if let Err(e) = self.flush(self.drop_timeout) {
                tracing::error!(error = %e, "checkpointer dropped with unsaved state");
            }
            self.stop_worker();
        }
    }
}

fn push(q: &mut Queue, encoded: Encoded, front: bool) -> u64 {
    q.next_ticket += 1;
    let ticket = q.next_ticket;
    let name = encoded.name();
    if q.pending.insert(name, (ticket, encoded)).is_some() {
        q.superseded += 1;
        q.order.retain(|n| *n != name);
    }
    if front {
        q.order.push_front(name);
    } else {
        q.order.push_back(name);
    }
    ticket
}

fn writer(shared: &Shared) {
    let mut q = shared.lock();
    loop {
        let Some(name) = q.order.pop_front() else {
            if q.stop {
                return;
            }
            q = shared.work.wait(q).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let (ticket, encoded) = q.pending.remove(name).expect("queued names are pending");
        q.in_flight = Some(name);
        drop(q);
        let result = shared.store.save_encoded(&encoded);
        q = shared.lock();
        q.in_flight = None;
        q.written += 1;
        let awaited = q.awaited.is_some_and(|(n, t)| n == name && ticket >= t);
        match result {
            _ if awaited => q.done = Some(result),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(name, error = %e, "background save failed");
                q.unreported.insert(name, e);
            }
        }
        shared.progress.notify_all();
    }
}
