//! [`Replicator`]: copies every new local generation, byte for byte and under the same key, to
//! an off-site backend on a background thread.
//!
//! Saves never wait for it: the store writes locally as always, and the replicator finds new
//! generations by listing the local backend (every poll interval, or at once after
//! [`Replicator::notify`]). A failed upload is retried with exponential backoff; after an
//! outage the next successful pass re-lists the off-site backend and pushes every generation
//! that still exists locally and is missing off-site (a generation that local retention deleted
//! meanwhile is gone and cannot be pushed). Copies are verbatim, so an off-site generation
//! carries the local signature and is verified at restore like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use persist_core::format::{MANIFEST_PREFIX, parse_generation_key};
use persist_core::{Backend, BackendError};

use crate::retention::Pruner;

use crate::ThreadPriority;

/// How a [`Replicator`] paces itself.
#[derive(Clone, Debug)]
pub struct ReplicatorConfig {
    /// How often the local backend is listed for new generations (default 1 s).
    pub poll_interval: Duration,
    /// The first retry delay after a failure (default 200 ms); doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest retry delay (default 30 s).
    pub max_backoff: Duration,
    /// The off-site listing is refreshed at least this often even without failures, so a
    /// bucket emptied behind the replicator's back is refilled (default 60 s). Between
    /// refreshes, and after every failure, the replicator trusts what it listed and uploaded.
    pub resync_interval: Duration,
    /// The CPU priority of the replicator's thread (default [`ThreadPriority::Idle`]), so that
    /// listing, mapping and copying generations for the upload never takes a core from the
    /// program's own threads. Build the off-site backend with
    /// [`S3BackendBuilder::thread_priority`](crate::S3BackendBuilder::thread_priority) too, so
    /// its network threads yield as well.
    pub priority: ThreadPriority,
    /// Off-site retention applied by the replicator itself, after a pass that left nothing
    /// pending, at most once per [`AutoPrune::every`] (default `None`: prune with
    /// `persist prune` or [`crate::retention`] instead).
    pub retention: Option<AutoPrune>,
}

/// Off-site retention run by a [`Replicator`] (see [`crate::retention`] for the rules).
#[derive(Clone, Debug)]
pub struct AutoPrune {
    /// The keys that verify the off-site generations (a generation that does not verify is
    /// never counted as the newest valid one).
    pub keyring: persist_core::Keyring,
    /// What to keep.
    pub policy: crate::retention::RetentionPolicy,
    /// The least time between two prunes (a prune verifies what is new off-site).
    pub every: Duration,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        ReplicatorConfig {
            poll_interval: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            resync_interval: Duration::from_secs(60),
            priority: ThreadPriority::Idle,
            retention: None,
        }
    }
}

/// What the replicator has done and how far behind it is.
#[derive(Clone, Debug, Default)]
pub struct ReplicationStatus {
    /// Local generations not yet off-site.
    pub pending_generations: usize,
    /// Seconds since the oldest pending generation was first seen locally (0 when none is
    /// pending): how much newer the local state is than the off-site copy, at most.
    pub seconds_behind: f64,
    /// The last failure, if the last attempt failed (cleared by a successful pass).
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Generations uploaded since start.
    pub uploaded_generations: u64,
    /// Bytes uploaded since start.
    pub uploaded_bytes: u64,
    /// Completed passes (each one listed, uploaded what was missing, or failed).
    pub passes: u64,
    /// When the last pass that left nothing pending finished.
    pub last_caught_up: Option<SystemTime>,
    /// The newest generation off-site per state name.
    pub newest_off_site: BTreeMap<String, u64>,
    /// Off-site generations deleted by [`ReplicatorConfig::retention`] since start.
    pub pruned_generations: u64,
    /// When the last prune finished (with or without errors).
    pub last_prune: Option<SystemTime>,
    /// What went wrong in the last prune (a plan that could not be made, or deletes that
    /// failed); `None` if it succeeded. Replication goes on either way.
    pub last_prune_error: Option<String>,
}

impl ReplicationStatus {
    /// True when nothing is pending and the last pass succeeded.
    pub fn is_caught_up(&self) -> bool {
        self.pending_generations == 0 && self.last_error.is_none() && self.passes > 0
    }
}

/// The outcome of one synchronous pass ([`replicate_once`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Keys uploaded, in order.
    pub uploaded: Vec<String>,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Keys already off-site (nothing to do).
    pub already_present: usize,
    /// Keys that vanished locally (local retention) before they could be read.
    pub vanished: Vec<String>,
}

struct Shared {
    status: Mutex<ReplicationStatus>,
    /// Set by `notify`, consumed by the worker's sleep; with `unpark`, so that `notify` never
    /// waits for a lock the low-priority worker might hold.
    wake: AtomicBool,
    stop: AtomicBool,
}

/// Replicates a local backend to an off-site one in the background until dropped.
///
/// Off-site writing must never slow the program down: saves never wait for the replicator
/// (it shares no lock with the store; it only lists and maps the local files), and with
/// the default [`ReplicatorConfig::priority`] and an off-site backend built with
/// [`S3BackendBuilder::thread_priority`](crate::S3BackendBuilder::thread_priority)`(Idle)`, all
/// of its CPU work runs at idle priority, so a saving thread always wins the CPU.
///
/// Here both sides are in memory; in a program the local side is the store's directory
/// (`FsBackend::open_read_only`) and the off-site side an [`crate::S3Backend`]:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use persist_core::{Backend, MemoryBackend};
/// use persist_core::format::generation_key;
/// use persist_s3::{Replicator, ReplicatorConfig};
///
/// let local = MemoryBackend::new();
/// let off_site = Arc::new(MemoryBackend::new());
/// let replicator = Replicator::start(
///     Box::new(local.clone()),
///     Arc::clone(&off_site) as Arc<dyn Backend>,
///     ReplicatorConfig::default(),
/// );
/// // … store.save(…) as usual (here: a generation planted by hand), then optionally:
/// local.insert_raw(&generation_key("agent", 1), b"a generation").unwrap();
/// replicator.notify();
/// let status = replicator.wait_caught_up(Duration::from_secs(10));
/// println!("{} generations / {:.1} s behind", status.pending_generations, status.seconds_behind);
/// assert!(status.is_caught_up(), "{status:?}");
/// assert_eq!(&*off_site.get(&generation_key("agent", 1)).unwrap(), b"a generation");
/// replicator.stop();
/// ```
pub struct Replicator {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Replicator {
    /// Starts replicating `local` (typically a read-only handle on the store's directory) to
    /// `off_site`.
    pub fn start(
        local: Box<dyn Backend>,
        off_site: Arc<dyn Backend>,
        config: ReplicatorConfig,
    ) -> Self {
        let shared = Arc::new(Shared {
            status: Mutex::new(ReplicationStatus::default()),
            wake: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let worker = Worker {
            local,
            off_site,
            config: config.clone(),
            shared: Arc::clone(&shared),
            known_off_site: None,
            needs_listing: true,
            first_seen: BTreeMap::new(),
            last_listing: Instant::now(),
            pruner: config
                .retention
                .as_ref()
                .map(|r| Pruner::new(r.keyring.clone(), r.policy.clone())),
            last_prune: None,
            pruned: BTreeSet::new(),
        };
        let priority = worker.config.priority;
        let thread = std::thread::Builder::new()
            .name("persist-replicator".into())
            .spawn(move || {
                priority.apply_to_current_thread();
                worker.run()
            })
            .expect("spawn the replicator thread");
        Replicator {
            shared,
            thread: Some(thread),
        }
    }

    /// Wakes the replicator now (call after a save to skip the poll delay). Never blocks: it
    /// takes no lock and never waits on the network.
    pub fn notify(&self) {
        self.shared.wake.store(true, Ordering::SeqCst);
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// A snapshot of the replicator's status.
    pub fn status(&self) -> ReplicationStatus {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until a pass that started after this call left nothing pending, or `timeout`.
    /// Returns the status either way.
    pub fn wait_caught_up(&self, timeout: Duration) -> ReplicationStatus {
        let start_passes = self.status().passes;
        let deadline = Instant::now() + timeout;
        self.notify();
        loop {
            let status = self.status();
            if status.passes > start_passes + 1 && status.is_caught_up() {
                return status;
            }
            if Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the background thread after its current pass.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.notify();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    local: Box<dyn Backend>,
    off_site: Arc<dyn Backend>,
    config: ReplicatorConfig,
    shared: Arc<Shared>,
    /// Keys known to be off-site (as of the last listing and uploads since).
    known_off_site: Option<BTreeSet<String>>,
    /// Set after a failure: the off-site listing may be stale (a server restarted empty).
    needs_listing: bool,
    /// When each pending key was first seen locally.
    first_seen: BTreeMap<String, Instant>,
    last_listing: Instant,
    /// Present when the replicator prunes (remembers what it verified).
    pruner: Option<Pruner>,
    last_prune: Option<Instant>,
    /// Keys off-site retention deleted that still exist locally: not pending.
    pruned: BTreeSet<String>,
}

impl Worker {
    fn run(mut self) {
        let mut backoff = self.config.initial_backoff;
        while !self.shared.stop.load(Ordering::SeqCst) {
            let delay = match self.pass() {
                Ok(()) => {
                    backoff = self.config.initial_backoff;
                    self.config.poll_interval
                }
                Err(e) => {
                    let lag = self
                        .shared
                        .status
                        .lock()
                        .map(|s| (s.pending_generations, s.seconds_behind));
                    let (pending, seconds_behind) = lag.unwrap_or_default();
                    tracing::warn!(
                        error = %e,
                        retry_in = ?backoff,
                        pending,
                        seconds_behind,
                        "off-site replication failed; local saves go on"
                    );
                    let this = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    self.needs_listing = true;
                    self.update(|s| {
                        s.last_error = Some(e.to_string());
                        s.consecutive_failures += 1;
                        s.passes += 1;
                    });
                    this
                }
            };
            self.sleep(delay);
        }
    }

    /// Sleeps for `delay`, or until notified or stopped.
    fn sleep(&self, delay: Duration) {
        let deadline = Instant::now() + delay;
        while !self.shared.wake.swap(false, Ordering::SeqCst)
            && !self.shared.stop.load(Ordering::SeqCst)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left);
        }
    }

    fn update(&self, f: impl FnOnce(&mut ReplicationStatus)) {
        f(&mut self.shared.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn pass(&mut self) -> Result<(), BackendError> {
        let local = generation_keys(self.local.as_ref())?;
        let now = Instant::now();
        self.first_seen.retain(|k, _| local.contains(k));
        self.pruned.retain(|k| local.contains(k));
        let stale = self.last_listing.elapsed() >= self.config.resync_interval;
        let mut pending = self.pending(&local, now);
        // Lag as far as we know, published before any network call that may fail.
        self.publish_lag(&pending);
        // New local generations need no listing: they are uploaded create-only, and one found
        // already off-site counts as replicated. A listing per new generation would cost the
        // server a LIST of the whole prefix per save.
        if self.needs_listing || stale || self.known_off_site.is_none() {
            self.known_off_site = Some(generation_keys(self.off_site.as_ref())?);
            self.needs_listing = false;
            self.last_listing = now;
            pending = self.pending(&local, now);
            self.publish_lag(&pending);
        }
        for key in pending {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let outcome = copy_one(self.local.as_ref(), self.off_site.as_ref(), &key)?;
            let known = self.known_off_site.as_mut().expect("listed above");
            known.insert(key.clone());
            self.first_seen.remove(&key);
            if let Copied::Uploaded(bytes) = outcome {
                tracing::debug!(%key, bytes, "generation replicated off-site");
                self.update(|s| {
                    s.uploaded_generations += 1;
                    s.uploaded_bytes += bytes;
                });
            }
            let left: Vec<String> = self.first_seen.keys().cloned().collect();
            self.publish_lag(&left);
        }
        let newest = newest_per_state(self.known_off_site.as_ref().expect("listed above"));
        let was_failing = self
            .shared
            .status
            .lock()
            .map(|s| s.consecutive_failures)
            .unwrap_or(0);
        if was_failing > 0 {
            tracing::info!(failures = was_failing, "off-site replication caught up");
        }
        self.update(|s| {
            s.pending_generations = 0;
            s.seconds_behind = 0.0;
            s.last_error = None;
            s.consecutive_failures = 0;
            s.passes += 1;
            s.last_caught_up = Some(SystemTime::now());
            s.newest_off_site = newest;
        });
        self.prune_if_due();
        Ok(())
    }

    /// Applies [`ReplicatorConfig::retention`] if it is time. Its errors are reported in the
    /// status and logged; they never stop replication.
    fn prune_if_due(&mut self) {
        let (Some(pruner), Some(every)) = (
            self.pruner.as_mut(),
            self.config.retention.as_ref().map(|r| r.every),
        ) else {
            return;
        };
        if self.last_prune.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let (deleted, error) = match pruner.prune(Arc::clone(&self.off_site), SystemTime::now()) {
            Ok((_, report)) => {
                let failed: Vec<String> = report
                    .failed
                    .iter()
                    .map(|(key, e)| format!("{key}: {e}"))
                    .collect();
                let error = (!failed.is_empty())
                    .then(|| format!("{} delete(s) failed: {}", failed.len(), failed.join("; ")));
                (report.deleted, error)
            }
            Err(e) => (Vec::new(), Some(format!("no retention plan: {e}"))),
        };
        // Never upload again what retention removed while local retention still holds it.
        self.pruned.extend(deleted.iter().cloned());
        match &error {
            Some(e) => tracing::error!(error = %e, "off-site retention failed"),
            None if !deleted.is_empty() => {
                tracing::info!(deleted = deleted.len(), "off-site retention pruned")
            }
            None => {}
        }
        self.update(|s| {
            s.pruned_generations += deleted.len() as u64;
            s.last_prune = Some(SystemTime::now());
            s.last_prune_error = error;
        });
    }

    /// The local keys not known off-site, in upload order ([`upload_order`]), each noted as
    /// first seen `now` if new.
    fn pending(&mut self, local: &BTreeSet<String>, now: Instant) -> Vec<String> {
        let known = self.known_off_site.as_ref();
        let pending: Vec<String> = upload_order(
            local
                .iter()
                .filter(|k| {
                    !known.is_some_and(|known| known.contains(*k)) && !self.pruned.contains(*k)
                })
                .cloned(),
        );
        for key in &pending {
            self.first_seen.entry(key.clone()).or_insert(now);
        }
        pending
    }

    fn publish_lag(&self, pending: &[String]) {
        let behind = pending
            .iter()
            .filter_map(|k| self.first_seen.get(k))
            .min()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        if !pending.is_empty() {
            tracing::debug!(
                pending = pending.len(),
                seconds_behind = behind,
                "off-site replication lag"
            );
        }
        self.update(|s| {
            s.pending_generations = pending.len();
            s.seconds_behind = behind;
        });
    }
}

enum Copied {
    Uploaded(u64),
    AlreadyThere,
    Vanished,
}

fn copy_one(
    local: &dyn Backend,
    off_site: &dyn Backend,
    key: &str,
) -> Result<Copied, BackendError> {
    copy_generation(local, off_site, key, |_| {})
}

/// Bytes handed to the off-site backend per `write` call (and per progress report).
const COPY_CHUNK: usize = 8 << 20;

/// Copies one generation verbatim, calling `progress(bytes so far)` as it goes. The local
/// copy is memory-mapped where the backend can (the filesystem backend does), so the bytes
/// are read once, straight into the upload's parts, and never held twice.
fn copy_generation(
    local: &dyn Backend,
    off_site: &dyn Backend,
    key: &str,
    mut progress: impl FnMut(u64),
) -> Result<Copied, BackendError> {
    let bytes = match local.get_mapped(key) {
        Ok(b) => b,
        // Deleted by local retention since the listing: nothing left to push.
        Err(BackendError::NotFound { .. }) => return Ok(Copied::Vanished),
        Err(e) => return Err(e),
    };
    let mut obj = off_site.begin_put(key)?;
    let mut sent = 0u64;
    for chunk in bytes.chunks(COPY_CHUNK) {
        obj.write(chunk)?;
        sent += chunk.len() as u64;
        progress(sent);
    }
    match obj.commit() {
        Ok(()) => Ok(Copied::Uploaded(bytes.len() as u64)),
        // Generations are immutable and keys unique: the same key off-site is this generation.
        Err(BackendError::AlreadyExists { .. }) => Ok(Copied::AlreadyThere),
        Err(e) => Err(e),
    }
}

/// One synchronous pass without a thread: pushes every local generation missing off-site,
/// oldest first. `progress(key, size, sent)` is called as each upload proceeds (`sent` from 0
/// to `size`). For `persist push`.
pub fn replicate_once(
    local: &dyn Backend,
    off_site: &dyn Backend,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<PassReport, BackendError> {
    let mut local_sizes: Vec<(String, u64)> = local
        .list("")?
        .into_iter()
        .filter(|m| parse_generation_key(&m.key).is_some())
        .map(|m| (m.key, m.size))
        .collect();
    // Members before manifests (see `upload_order`).
    local_sizes.sort_by(|a, b| {
        let manifest = |key: &str| key.starts_with(MANIFEST_PREFIX);
        (manifest(&a.0), &a.0).cmp(&(manifest(&b.0), &b.0))
    });
    let known = generation_keys(off_site)?;
    let mut report = PassReport::default();
    for (key, size) in local_sizes {
        if known.contains(&key) {
            report.already_present += 1;
            continue;
        }
        progress(&key, size, 0);
        match copy_generation(local, off_site, &key, |sent| progress(&key, size, sent))? {
            Copied::Uploaded(bytes) => {
                report.bytes += bytes;
                report.uploaded.push(key);
            }
            Copied::AlreadyThere => report.already_present += 1,
            Copied::Vanished => report.vanished.push(key),
        }
    }
    Ok(report)
}

/// `keys` with every snapshot manifest after every other generation: a pass uploads a
/// snapshot's members before its manifest, so an off-site snapshot is never partial (a pass
/// that fails midway stops before the manifests). Otherwise sorted by state then sequence.
fn upload_order(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let is_manifest = |key: &str| key.starts_with(MANIFEST_PREFIX);
    let mut keys: Vec<String> = keys.into_iter().collect();
    keys.sort_by(|a, b| (is_manifest(a), a).cmp(&(is_manifest(b), b)));
    keys
}

/// Every generation key in a backend, sorted by state then sequence.
fn generation_keys(backend: &dyn Backend) -> Result<BTreeSet<String>, BackendError> {
    Ok(backend
        .list("")?
        .into_iter()
        .filter(|m| parse_generation_key(&m.key).is_some())
        .map(|m| m.key)
        .collect())
}

fn newest_per_state(keys: &BTreeSet<String>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for key in keys {
        if let Some((name, seq)) = parse_generation_key(key) {
            let e = out.entry(name.to_string()).or_insert(seq);
            *e = (*e).max(seq);
        }
    }
    out
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use persist_core::BackendError;

    use super::*;
    use crate::priority::{BACKGROUND_NICE, current_thread_nice, current_thread_policy};

    /// A backend that is always empty and records the priority of the thread listing it.
    #[derive(Debug, Default)]
    struct NiceProbe(std::sync::Mutex<Vec<(i32, i32)>>);

    impl persist_core::Backend for NiceProbe {
        fn location(&self) -> String {
            "nice probe".into()
        }
        fn begin_put(
            &self,
            key: &str,
        ) -> Result<Box<dyn persist_core::NewObject + '_>, BackendError> {
            Err(self.missing(key))
        }
        fn get(&self, key: &str) -> Result<persist_core::ObjectBytes, BackendError> {
            Err(self.missing(key))
        }
        fn list(&self, _: &str) -> Result<Vec<persist_core::ObjectMeta>, BackendError> {
            let policy = current_thread_policy();
            self.0.lock().unwrap().push((current_thread_nice(), policy));
            Ok(Vec::new())
        }
        fn delete(&self, key: &str) -> Result<(), BackendError> {
            Err(self.missing(key))
        }
    }

    impl NiceProbe {
        fn missing(&self, key: &str) -> BackendError {
            BackendError::NotFound {
                location: "nice probe".into(),
                key: key.into(),
            }
        }
    }

    fn replicator_thread_priority(priority: ThreadPriority) -> (i32, i32) {
        let probe = Arc::new(NiceProbe::default());
        let replicator = Replicator::start(
            Box::new(Arc::clone(&probe)),
            Arc::new(NiceProbe::default()),
            ReplicatorConfig {
                priority,
                ..ReplicatorConfig::default()
            },
        );
        let status = replicator.wait_caught_up(Duration::from_secs(10));
        assert!(status.is_caught_up(), "{status:?}");
        replicator.stop();
        let seen = probe.0.lock().unwrap();
        assert!(!seen.is_empty(), "the replicator listed the local backend");
        seen[0]
    }

    #[test]
    fn the_replicator_thread_runs_at_idle_priority_unless_configured_otherwise() {
        assert_eq!(
            replicator_thread_priority(ReplicatorConfig::default().priority),
            (BACKGROUND_NICE, libc::SCHED_IDLE)
        );
        assert_eq!(
            replicator_thread_priority(ThreadPriority::Normal),
            (current_thread_nice(), libc::SCHED_OTHER)
        );
    }
}
