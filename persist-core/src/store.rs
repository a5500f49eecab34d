//! The [`Store`]: immutable numbered generations of each state over a [`Backend`].
//!
//! Invariants:
//!
//! - A generation is written once, under a sequence number above every generation present
//!   (valid or not), and never modified or renamed afterwards. Its schema name and sequence number
//!   are also inside its signed header, so a copied or renamed file is rejected.
//! - A save is acknowledged (returns `Ok`) only after the backend made it durable.
//! - Retention runs only after the new generation is durable, keeps the newest `retain` valid
//!   generations, and so can never delete the newest valid one (the one just written).
//! - Loading never trusts an unverified byte: the tag, the header and the payload are checked
//!   before a value is returned, and a failed generation is reported, not hidden.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, BackendError};
use crate::delta::DeltaPolicy;
use crate::delta::diff::Previous;
use crate::generation::{self, GenerationInfo, Listing};
use crate::key::Keyring;
use crate::reject::WalkPast;
use crate::retention::Class;
use crate::retention_plan::RetentionPolicy;
use crate::snapshot::PinIndex;

/// How a store keeps and writes generations.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// How many valid generations of each state to keep (at least 1; default 4: the current one
    /// and three backups).
    pub retain: usize,
    /// Free space that must remain after a save, in bytes (default 100 MiB). A save that would
    /// cut into it fails with [`SaveError::InsufficientSpace`](crate::SaveError::InsufficientSpace) before writing anything.
    pub space_reserve: u64,
    /// Payloads at least this large are signed on a second thread while they are written
    /// (default 1 MiB).
    pub parallel_sign_threshold: usize,
    /// An off-site copy of this store (e.g. an S3 backend a replicator fills). When set,
    /// [`Store::load`] falls back to it if the local backend has no generation or only corrupt
    /// ones (never when an authentic one blocks the load), verifies the generation completely,
    /// and writes it back locally (default `None`: no fallback).
    pub off_site: Option<Arc<dyn Backend>>,
    /// Which authentic generations a load may walk past to an older one (default: none, so a
    /// foreign, too new, undecodable or unreadable newest generation stops the load with
    /// [`LoadError::Blocked`](crate::LoadError::Blocked)). Corrupt generations are always walked past.
    pub walk_past: WalkPast,
    /// Which snapshots of each set to keep: the newest `keep_last` whole ones (default 8) plus
    /// the newest of each hour for `hourly_for` and of each day for `daily_for` (default: no
    /// buckets; the specification's "7 days of hourly backups" is `hourly_for` = 7 days). Every
    /// generation a kept snapshot references is kept with it.
    pub snapshot_retention: RetentionPolicy,
    /// Incremental generations (default `None`: every generation is whole). With a policy, a
    /// save of a payload of at least [`DeltaPolicy::min_payload`] writes only the chunks that
    /// changed since the last generation this store wrote of the state (a delta), and a full
    /// generation when the chain reaches the policy's limits. The store keeps that last payload
    /// in memory (one copy per state) to compare with.
    pub deltas: Option<DeltaPolicy>,
    /// Record every load's outcome in the backend's recovery log (default `false`): what
    /// [`Store::load`] and [`Store::open`] recovered, walked past or failed on, readable with
    /// [`Backend::read_log`] and `persist log`. See [`crate::recovery_log`].
    pub recovery_log: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retain: 4,
            space_reserve: 100 * 1024 * 1024,
            parallel_sign_threshold: 1 << 20,
            off_site: None,
            walk_past: WalkPast::default(),
            snapshot_retention: RetentionPolicy {
                keep_last: 8,
                hourly_for: std::time::Duration::ZERO,
                daily_for: std::time::Duration::ZERO,
            },
            deltas: None,
            recovery_log: false,
        }
    }
}

impl StoreConfig {
    /// Keeps `n` valid generations of each state (at least 1).
    ///
    /// ```
    /// let config = persist_core::StoreConfig::default().with_retain(2).with_space_reserve(0);
    /// assert_eq!((config.retain, config.space_reserve), (2, 0));
    /// ```
    #[must_use]
    pub fn with_retain(mut self, n: usize) -> Self {
        self.retain = n.max(1);
        self
    }

    /// Keeps `bytes` free after every save ([`StoreConfig::space_reserve`]).
    #[must_use]
    pub fn with_space_reserve(mut self, bytes: u64) -> Self {
        self.space_reserve = bytes;
        self
    }

    /// Signs payloads of at least `bytes` on a second thread while they are written.
    #[must_use]
    pub fn with_parallel_sign_threshold(mut self, bytes: usize) -> Self {
        self.parallel_sign_threshold = bytes;
        self
    }

    /// Falls back to `backend` when the local store has nothing valid
    /// ([`StoreConfig::off_site`]).
    #[must_use]
    pub fn with_off_site(mut self, backend: Arc<dyn Backend>) -> Self {
        self.off_site = Some(backend);
        self
    }

    /// Keeps the newest `n` whole snapshots of each set (at least 1), plus the buckets of
    /// [`StoreConfig::snapshot_retention`].
    #[must_use]
    pub fn with_retain_snapshots(mut self, n: usize) -> Self {
        self.snapshot_retention.keep_last = n.max(1);
        self
    }

    /// Snapshot retention by count and buckets ([`StoreConfig::snapshot_retention`]).
    #[must_use]
    pub fn with_snapshot_retention(mut self, policy: RetentionPolicy) -> Self {
        self.snapshot_retention = policy;
        self
    }

    /// Writes incremental generations under `policy` ([`StoreConfig::deltas`]).
    #[must_use]
    pub fn with_deltas(mut self, policy: DeltaPolicy) -> Self {
        self.deltas = Some(policy);
        self
    }

    /// Records every load in the backend's recovery log ([`StoreConfig::recovery_log`]).
    ///
    /// ```
    /// use persist_core::{Backend, MemoryBackend, Store, StoreConfig, Keyring, Key, persist};
    /// # #[persist(name = "q", version = 1)]
    /// # #[derive(Debug)]
    /// # struct Q { v: u64 }
    /// let backend = std::sync::Arc::new(MemoryBackend::new());
    /// let config = StoreConfig::default().with_recovery_log(true);
    /// let store = Store::new(Box::new(backend.clone()), Keyring::new(Key::generate().unwrap()), config);
    /// store.save(&Q { v: 1 }).unwrap();
    /// store.load::<Q>().unwrap();
    /// let log = backend.read_log(Some("q"), 10).unwrap();
    /// assert_eq!(log.records.len(), 1);
    /// ```
    #[must_use]
    pub fn with_recovery_log(mut self, on: bool) -> Self {
        self.recovery_log = on;
        self
    }

    /// Which authentic generations a load may walk past ([`StoreConfig::walk_past`]).
    #[must_use]
    pub fn with_walk_past(mut self, walk_past: WalkPast) -> Self {
        self.walk_past = walk_past;
        self
    }
}

/// Per-state bookkeeping: the next sequence number and what is known of generations already
/// checked (generations are immutable, so a result never goes stale).
#[derive(Default)]
pub(crate) struct StateBook {
    pub(crate) next_sequence: Option<u64>,
    pub(crate) known: BTreeMap<u64, Class>,
    /// The last generation a snapshot commit wrote or referenced for this state, with its
    /// payload's digest; cleared by every other save (see `snapshot::commit`).
    pub(crate) last_written: Option<Written>,
    /// Snapshot manifests of this set found whole, with their headers (for snapshot retention;
    /// manifests and their members are immutable, so an entry never goes stale).
    pub(crate) whole: BTreeMap<u64, crate::envelope::Header>,
    /// The last chunked generation this store wrote of the state, with its payload: the base of
    /// the next delta. `None` after any other save.
    pub(crate) previous: Option<Previous>,
    /// A payload buffer to encode the next value into (the one before `previous`'s), so a
    /// large encode reuses pages instead of faulting fresh ones in.
    pub(crate) scratch: Option<rkyv::util::AlignedVec>,
}

/// A generation as a snapshot manifest lists it, with its payload's digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) sequence: u64,
    pub(crate) schema_version: u32,
    pub(crate) fingerprint: crate::schema::Fingerprint,
    pub(crate) tag: [u8; crate::envelope::TAG_LEN],
    /// XXH3-128 of the payload: change detection of our own values, not authentication (the
    /// generation's tag does that).
    pub(crate) digest: u128,
}

/// Immutable, numbered, signed generations of any number of states over one backend.
///
/// ```
/// use persist_core::{Key, Keyring, MemoryBackend, Store, StoreConfig, persist};
///
/// #[persist(name = "counter", version = 1)]
/// #[derive(Debug, PartialEq)]
/// struct Counter {
///     ticks: u64,
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // `persist_fs::FsBackend::open(dir)?` on a real disk; memory here.
/// let store = Store::new(
///     Box::new(MemoryBackend::new()),
///     Keyring::new(Key::generate()?),
///     StoreConfig::default(),
/// );
/// store.save(&Counter { ticks: 1 })?;
/// store.save(&Counter { ticks: 2 })?;
/// let loaded = store.load::<Counter>()?;
/// assert_eq!(loaded.value, Counter { ticks: 2 });
/// assert_eq!(loaded.report.sequence, 2);
/// println!("{}", loaded.report);
/// # Ok(()) }
/// ```
pub struct Store {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) keyring: Keyring,
    pub(crate) config: StoreConfig,
    /// One book per state, each behind its own lock: saves of different states never wait on
    /// each other.
    books: Mutex<HashMap<String, Arc<Mutex<StateBook>>>>,
    /// Which generations snapshot manifests reference (read from the backend on first use).
    pub(crate) pins: Mutex<Option<PinIndex>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `backend`, signing with the ring's current key.
    pub fn new(backend: Box<dyn Backend>, keyring: Keyring, mut config: StoreConfig) -> Self {
        config.retain = config.retain.max(1);
        config.snapshot_retention.keep_last = config.snapshot_retention.keep_last.max(1);
        Store {
            backend,
            keyring,
            config,
            books: Mutex::new(HashMap::new()),
            pins: Mutex::new(None),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The key ring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The book of state `name`, created on first use.
    pub(crate) fn book(&self, name: &str) -> Arc<Mutex<StateBook>> {
        let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(books.entry(name.to_string()).or_default())
    }

    /// The generations of state `name`, oldest first (listed, not verified).
    pub fn generations(&self, name: &str) -> Result<Vec<GenerationInfo>, BackendError> {
        Ok(self.listing(name)?.generations)
    }

    /// The generations of state `name` and the keys of a generation's shape that are not
    /// generations.
    pub fn listing(&self, name: &str) -> Result<Listing, BackendError> {
        Listing::of(self.backend.as_ref(), name)
    }

    /// The names of every state with at least one generation, sorted.
    pub fn names(&self) -> Result<Vec<String>, BackendError> {
        let mut names: Vec<String> = self
            .backend
            .list("")?
            .iter()
            .filter_map(|m| generation::parse_generation_key(&m.key).map(|(n, _)| n.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
