//! The writer's queue and thread. At most one job per target (a state, or a snapshot set) is
//! queued: a newer one replaces it. Jobs of one target are written in the order queued.
//!
//! Stopping is bounded: once `stop` is set the writer takes no new job; the one in flight
//! finishes (a save cannot be interrupted halfway), and whoever stops it waits for that only
//! until its deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::encoded::Encoded;
use crate::error::SaveError;
use crate::save::SaveReceipt;
use crate::snapshot::{SnapshotError, SnapshotReceipt, SnapshotSpec};
use crate::store::Store;

/// One save for the writer.
pub(crate) enum Job {
    /// A state's generation; `full` forbids a delta (a new chain starts).
    State { encoded: Encoded, full: bool },
    /// A snapshot of a set: its members, serialised; `full` rewrites every member.
    Snapshot {
        spec: SnapshotSpec,
        members: Vec<Encoded>,
        full: bool,
    },
}

impl Job {
    /// The target: the state's name, or the set's manifest name.
    pub(crate) fn target(&self) -> &'static str {
        match self {
            Job::State { encoded, .. } => encoded.name(),
            Job::Snapshot { spec, .. } => spec.manifest_name(),
        }
    }

    fn run(self, store: &Store) -> Outcome {
        match self {
            Job::State { encoded, full } => Outcome::State(store.save_encoded_owned(encoded, full)),
            Job::Snapshot {
                spec,
                members,
                full,
            } => {
                let mut writer = store.snapshot(&spec);
                if full {
                    writer.full();
                }
                let added = members
                    .into_iter()
                    .try_for_each(|m| writer.add_encoded(m).map(drop));
                Outcome::Snapshot(added.and_then(|()| writer.commit()))
            }
        }
    }
}

/// What a job came to.
pub(crate) enum Outcome {
    State(Result<SaveReceipt, SaveError>),
    Snapshot(Result<SnapshotReceipt, SnapshotError>),
}

/// A failed background job, kept until reported.
pub(crate) enum Failure {
    State(SaveError),
    Snapshot(SnapshotError),
}

#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) pending: HashMap<&'static str, (u64, Job)>,
    pub(crate) order: VecDeque<&'static str>,
    pub(crate) in_flight: Option<&'static str>,
    next_ticket: u64,
    /// The job a `save_now`/`snapshot_now` caller waits for: (target, ticket).
    pub(crate) awaited: Option<(&'static str, u64)>,
    /// Its outcome, handed over by the writer.
    pub(crate) done: Option<Outcome>,
    pub(crate) unreported: HashMap<&'static str, Failure>,
    pub(crate) superseded: u64,
    pub(crate) written: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) stop: bool,
}

impl Queue {
    /// Queues `job` (at the front for a priority save), replacing a queued one of its target.
    pub(crate) fn push(&mut self, mut job: Job, front: bool) -> u64 {
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let target = job.target();
        // A full save the new job replaces is not lost: the new one is full instead.
        if let Some((_, Job::State { full: true, .. } | Job::Snapshot { full: true, .. })) =
            self.pending.get(target)
        {
            match &mut job {
                Job::State { full, .. } | Job::Snapshot { full, .. } => *full = true,
            }
        }
        if self.pending.insert(target, (ticket, job)).is_some() {
            self.superseded += 1;
            self.order.retain(|n| *n != target);
        }
        if front {
            self.order.push_front(target);
        } else {
            self.order.push_back(target);
        }
        ticket
    }

    /// Targets queued or being written, each once.
    pub(crate) fn pending_targets(&self) -> Vec<&'static str> {
        let mut pending: Vec<&'static str> = self.in_flight.into_iter().collect();
        pending.extend(self.order.iter().filter(|t| Some(**t) != self.in_flight));
        pending
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.order.is_empty() && self.in_flight.is_none()
    }
}

pub(crate) struct Shared {
    pub(crate) store: std::sync::Arc<Store>,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) work: Condvar,
    pub(crate) progress: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer thread: takes jobs in order until stopped.
pub(crate) fn writer(shared: &Shared) {
    let mut q = shared.lock();
    loop {
        if q.stop {
            return;
        }
        let Some(target) = q.order.pop_front() else {
            q = shared.work.wait(q).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let (ticket, job) = q
            .pending
            .remove(target)
            .expect("queued targets are pending");
        q.in_flight = Some(target);
        drop(q);
        let outcome = job.run(&shared.store);
        q = shared.lock();
        q.in_flight = None;
        q.written += 1;
        let awaited = q.awaited.is_some_and(|(n, t)| n == target && ticket >= t);
        let failure = match &outcome {
            Outcome::State(Err(e)) => Some(e.to_string()),
            Outcome::Snapshot(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(message) = &failure {
            q.last_error = Some(format!("{target}: {message}"));
        }
        match outcome {
            outcome if awaited => q.done = Some(outcome),
            Outcome::State(Err(e)) => {
                tracing::error!(target, error = %e, "background save failed");
                q.unreported.insert(target, Failure::State(e));
            }
            Outcome::Snapshot(Err(e)) => {
                tracing::error!(target, error = %e, "background snapshot failed");
                q.unreported.insert(target, Failure::Snapshot(e));
            }
            Outcome::State(Ok(_)) | Outcome::Snapshot(Ok(_)) => {}
        }
        shared.progress.notify_all();
    }
}
