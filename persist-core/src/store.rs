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
use std::time::{SystemTime, UNIX_EPOCH};

use crate::backend::{Backend, BackendError};
use crate::check::{self, Checked, Schema, open_generation};
use crate::encoded::Encoded;
use crate::envelope::{self, EnvelopeError, Expect, HEADER_LEN, Header, TAG_LEN};
use crate::generation::{self, GenerationInfo, Listing, MAX_SEQUENCE, fetch, generation_key};
use crate::key::Keyring;
use crate::persist::{CodecError, Persist};
use crate::recovery::{
    Accepted, RecoveryReport, RejectKind, RejectReason, Rejection, RestoredFrom, WalkPast,
    walk_back,
};
use crate::retention::Class;
use crate::schema::RkyvFormat;

/// How a store keeps and writes generations.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// How many valid generations of each state to keep (at least 1; default 4: the current one
    /// and three backups).
    pub retain: usize,
    /// Free space that must remain after a save, in bytes (default 100 MiB). A save that would
    /// cut into it fails with [`SaveError::InsufficientSpace`] before writing anything.
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
    /// [`LoadError::Blocked`]). Corrupt generations are always walked past.
    pub walk_past: WalkPast,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retain: 4,
            space_reserve: 100 * 1024 * 1024,
            parallel_sign_threshold: 1 << 20,
            off_site: None,
            walk_past: WalkPast::default(),
        }
    }
}

/// Why a save failed. The previous generations are untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The type's schema name cannot be used.
    #[error(transparent)]
    InvalidName(EnvelopeError),
    /// The value could not be serialised.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// Not enough free space for the generation plus the configured reserve.
    #[error(
        "insufficient space in {location}: {needed} bytes needed ({} for the generation + \
         {reserve} kept free by StoreConfig::space_reserve; lower that reserve if the disk is \
         meant to fill up), {free} free",
        needed - reserve
    )]
    InsufficientSpace {
        /// The backend's location.
        location: String,
        /// Bytes needed, reserve included.
        needed: u64,
        /// The reserve ([`StoreConfig::space_reserve`]).
        reserve: u64,
        /// Bytes free.
        free: u64,
    },
    /// Every sequence number up to [`MAX_SEQUENCE`] is used: the state needs a new name (or its
    /// generations moved elsewhere).
    #[error("no sequence number left for {name}: the newest generation has {MAX_SEQUENCE}")]
    SequenceExhausted {
        /// The state's schema name.
        name: String,
    },
    /// The backend failed; the generation was not acknowledged.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a load found nothing to return.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The state has never been saved here: not an error to hide, but not corruption either.
    #[error("no generation yet of {name} in {location}")]
    NoGeneration {
        /// The state's schema name.
        name: String,
        /// The backend's location.
        location: String,
    },
    /// Generations exist, and every one is corrupt.
    #[error("all {} generations of {name} in {location} are invalid:{}", rejected.len(), list(rejected))]
    AllInvalid {
        /// The state's schema name.
        name: String,
        /// The backend's location.
        location: String,
        /// Every generation with its reason, newest first.
        rejected: Vec<Rejection>,
    },
    /// The newest generation that is not corrupt cannot be used by this program: it is foreign,
    /// too new, undecodable or unreadable (see [`RejectKind`]). The load stops rather than hand
    /// back an older generation as if it were the newest state; nothing is deleted.
    #[error(
        "cannot load {name} from {location}: generation {} is {kind}, not corrupt, so the load \
         stopped rather than fall back to older state: {}.\n  To fix: {}.\n  (To load an older \
         generation anyway, set StoreConfig::walk_past; the newer one is kept.){}",
        generation.sequence, generation.reason, kind.advice(), list(rejected)
    )]
    Blocked {
        /// The state's schema name.
        name: String,
        /// The backend's location.
        location: String,
        /// What the blocking generation is.
        kind: RejectKind,
        /// The blocking generation and why this program cannot use it.
        generation: Box<Rejection>,
        /// Newer generations walked past before it (corrupt ones), newest first.
        rejected: Vec<Rejection>,
    },
    /// The type's schema name cannot be used.
    #[error(transparent)]
    InvalidName(EnvelopeError),
    /// The generations could not be listed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The local store had no valid generation and the off-site copy's generations were all
    /// invalid or unreadable. (An off-site copy with no generation at all leaves the local
    /// error as it was.)
    #[error("{local}; off-site fallback failed too: {off_site}")]
    OffSiteFailed {
        /// Why the local store had nothing.
        local: Box<LoadError>,
        /// Why the off-site copy had nothing.
        off_site: Box<LoadError>,
    },
}

fn list(rejected: &[Rejection]) -> String {
    rejected.iter().map(|r| format!("\n  {r}")).collect()
}

/// A successful save.
#[derive(Debug, Clone)]
pub struct SaveReceipt {
    /// The sequence number of the new generation.
    pub sequence: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Generations deleted by retention.
    pub deleted: Vec<u64>,
    /// A retention failure, if any: the save itself is durable and stands.
    pub retention_error: Option<String>,
}

/// A loaded value and how it was found.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The value, migrated to the current version.
    pub value: T,
    /// Which generation was used and what was rejected.
    pub report: RecoveryReport,
}

/// Per-state bookkeeping: the next sequence number and what is known of generations already
/// checked (generations are immutable, so a result never goes stale).
#[derive(Default)]
pub(crate) struct StateBook {
    next_sequence: Option<u64>,
    pub(crate) known: BTreeMap<u64, Class>,
}

/// Immutable, numbered, signed generations of any number of states over one backend.
///
/// ```
/// # use persist_core::{codec, rkyv, CodecError, Decoded, Fingerprint, Persist};
/// # #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
/// # #[rkyv(crate = persist_core::rkyv)]
/// # struct Counter(u64);
/// # impl Persist for Counter {
/// #     const NAME: &'static str = "counter";
/// #     const VERSION: u32 = 1;
/// #     fn fingerprint() -> Fingerprint { Fingerprint::of_descriptor("Counter(u64)") }
/// #     fn encode(&self) -> Result<rkyv::util::AlignedVec, CodecError> { codec::encode(self) }
/// #     fn decode(v: u32, p: &[u8]) -> Result<Decoded<Self>, CodecError> { codec::decode_current(v, p) }
/// # }
/// # fn demo(backend: Box<dyn persist_core::Backend>) -> Result<(), Box<dyn std::error::Error>> {
/// use persist_core::{Key, Keyring, Store, StoreConfig};
/// let store = Store::new(backend, Keyring::new(Key::generate()?), StoreConfig::default());
/// store.save(&Counter(1))?;
/// let loaded = store.load::<Counter>()?;
/// assert_eq!(loaded.value, Counter(1));
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
        Store {
            backend,
            keyring,
            config,
            books: Mutex::new(HashMap::new()),
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

    /// Saves `value` as a new generation and applies retention. Returns once the generation is
    /// durable.
    pub fn save<T: Persist>(&self, value: &T) -> Result<SaveReceipt, SaveError> {
        self.save_encoded(&Encoded::new(value)?)
    }

    /// Saves a value serialised earlier (possibly on another thread) as a new generation and
    /// applies retention. Returns once the generation is durable.
    ///
    /// The new generation's sequence number is one above every generation present, valid or not
    /// (whatever occupies a generation's key counts). If its key is taken meanwhile (another
    /// writer, or something odd in the directory), the save takes the next free number.
    pub fn save_encoded(&self, encoded: &Encoded) -> Result<SaveReceipt, SaveError> {
        let name = encoded.name();
        envelope::validate_name(name).map_err(SaveError::InvalidName)?;
        let payload = &encoded.payload;
        let book = self.book(name);
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        let total = (HEADER_LEN + payload.len() + TAG_LEN) as u64;
        let mut attempts = 0;
        let sequence = loop {
            let sequence = match book.next_sequence {
                Some(seq) => seq,
                None => Listing::of(self.backend.as_ref(), name)?
                    .next_sequence()
                    .ok_or_else(|| SaveError::SequenceExhausted {
                        name: name.to_string(),
                    })?,
            };
            if sequence > MAX_SEQUENCE {
                return Err(SaveError::SequenceExhausted {
                    name: name.to_string(),
                });
            }
            // Whatever happens below, this number is spent: a failed commit may have left a file.
            book.next_sequence = Some(sequence + 1);
            let header = Header {
                key_id: self.keyring.current().id(),
                name: name.to_string(),
                schema_version: encoded.schema.version(),
                fingerprint: encoded.fingerprint,
                rkyv_format: RkyvFormat::CURRENT,
                sequence,
                created_at_nanos: now_nanos(),
                payload_len: payload.len() as u64,
            };
            self.preflight(total)?;
            let key = generation_key(name, sequence);
            match self.write_generation(&key, &header, payload) {
                Ok(()) => break sequence,
                Err(SaveError::Backend(BackendError::AlreadyExists { .. })) if attempts < 3 => {
                    tracing::warn!(name, sequence, "generation key taken; listing again");
                    attempts += 1;
                    book.next_sequence = None;
                }
                Err(e) => return Err(e),
            }
        };
        book.known.insert(sequence, Class::Loadable);
        tracing::debug!(name, sequence, bytes = total, "generation saved");

        let (deleted, failure) = crate::retention::apply(self, &encoded.schema, &mut book);
        let retention_error = failure.map(|e| {
            tracing::warn!(name, error = %e, "retention failed; the save stands");
            e.to_string()
        });
        Ok(SaveReceipt {
            sequence,
            bytes: total,
            deleted,
            retention_error,
        })
    }

    /// The book of state `name`, created on first use.
    fn book(&self, name: &str) -> Arc<Mutex<StateBook>> {
        let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(books.entry(name.to_string()).or_default())
    }

    fn preflight(&self, bytes: u64) -> Result<(), SaveError> {
        if let Some(free) = self.backend.free_space()? {
            let reserve = self.config.space_reserve;
            let needed = bytes.saturating_add(reserve);
            if free < needed {
                tracing::error!(needed, free, reserve, "insufficient space; save refused");
                return Err(SaveError::InsufficientSpace {
                    location: self.backend.location(),
                    needed,
                    reserve,
                    free,
                });
            }
        }
        Ok(())
    }

    /// Writes header, payload and tag. Large payloads are signed on a second thread while the
    /// first writes them, so hashing overlaps I/O.
    fn write_generation(
        &self,
        key: &str,
        header: &Header,
        payload: &[u8],
    ) -> Result<(), SaveError> {
        let head = header.encode().map_err(SaveError::InvalidName)?;
        let signing_key = self.keyring.current();
        let mut obj = self.backend.begin_put(key)?;
        let tag = if payload.len() >= self.config.parallel_sign_threshold {
            std::thread::scope(|s| {
                let signer = s.spawn(|| envelope::tag(signing_key, &head, payload));
                let written = obj.write(&head).and_then(|()| obj.write(payload));
                let tag = signer.join().expect("HMAC computation does not panic");
                written.map(|()| tag)
            })?
        } else {
            let tag = envelope::tag(signing_key, &head, payload);
            obj.write(&head)?;
            obj.write(payload)?;
            tag
        };
        obj.write(&tag)?;
        obj.commit()?;
        Ok(())
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

    /// Loads the newest valid generation of `T`, walking back past corrupt ones and migrating
    /// older versions. The report lists every generation rejected on the way.
    ///
    /// An authentic generation this program cannot use (signed by a key the ring lacks, of a
    /// newer version or layout, failing validation or migration, or unreadable) stops the load
    /// with [`LoadError::Blocked`], which says what to do; [`StoreConfig::walk_past`] opts in
    /// to walking past such generations.
    ///
    /// With [`StoreConfig::off_site`] set, a local store with no generation or only corrupt
    /// ones falls back to the off-site copy: the value is verified like any other, written back
    /// locally, and [`RecoveryReport::restored_from`] says so.
    pub fn load<T: Persist>(&self) -> Result<Loaded<T>, LoadError> {
        match self.load_from::<T>(self.backend.as_ref()) {
            Ok(loaded) => {
                self.remember(T::NAME, loaded.report.sequence, Class::Loadable);
                Ok(loaded)
            }
            Err(local @ (LoadError::NoGeneration { .. } | LoadError::AllInvalid { .. })) => {
                match &self.config.off_site {
                    Some(off_site) => self.restore_from_off_site::<T>(off_site.as_ref(), local),
                    None => Err(local),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Loads from the off-site backend and writes the generation back locally: verbatim under
    /// its own key if that key is free, else re-sealed as a new local generation.
    fn restore_from_off_site<T: Persist>(
        &self,
        off_site: &dyn Backend,
        local: LoadError,
    ) -> Result<Loaded<T>, LoadError> {
        tracing::warn!(error = %local, off_site = %off_site.location(), "no valid local generation; trying the off-site copy");
        let mut loaded = match self.load_from::<T>(off_site) {
            Ok(loaded) => loaded,
            // Nothing off-site either: the local answer stands (a fresh start, or all invalid).
            Err(LoadError::NoGeneration { .. }) => return Err(local),
            Err(off) => {
                return Err(LoadError::OffSiteFailed {
                    local: Box::new(local),
                    off_site: Box::new(off),
                });
            }
        };
        let sequence = loaded.report.sequence;
        let written = self.write_back::<T>(off_site, sequence, &loaded.value);
        if let Err(e) = &written {
            tracing::error!(error = %e, "restored off-site generation could not be written back locally");
        }
        if let LoadError::AllInvalid { rejected, .. } = local {
            let mut all = rejected;
            all.append(&mut loaded.report.rejected);
            loaded.report.rejected = all;
        }
        loaded.report.restored_from = Some(RestoredFrom {
            location: off_site.location(),
            local_sequence: written.as_ref().ok().copied(),
            write_back_error: written.err().map(|e| e.to_string()),
        });
        tracing::info!(report = %loaded.report, "restored from the off-site copy");
        Ok(loaded)
    }

    fn write_back<T: Persist>(
        &self,
        off_site: &dyn Backend,
        sequence: u64,
        value: &T,
    ) -> Result<u64, SaveError> {
        let generation = GenerationInfo {
            sequence,
            key: generation_key(T::NAME, sequence),
            size: 0,
        };
        let verbatim = match fetch(off_site, &generation, false) {
            Ok(bytes) => {
                let expect = Expect {
                    name: Some(T::NAME),
                    sequence: Some(sequence),
                    ..Expect::default()
                };
                (envelope::open(&self.keyring, &bytes, &expect).is_ok()
                    && self.preflight(bytes.len() as u64).is_ok())
                .then_some(bytes)
            }
            Err(_) => None,
        };
        if let Some(bytes) = verbatim {
            match self.backend.put_new(&generation.key, &[&bytes]) {
                Ok(()) => {
                    let book = self.book(T::NAME);
                    let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
                    book.known.insert(sequence, Class::Loadable);
                    if let Some(next) = book.next_sequence.as_mut() {
                        *next = (*next).max(sequence + 1);
                    }
                    return Ok(sequence);
                }
                Err(BackendError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The key is taken locally (by a corrupt generation): save anew.
        Ok(self.save(value)?.sequence)
    }

    fn load_from<T: Persist>(&self, backend: &dyn Backend) -> Result<Loaded<T>, LoadError> {
        let Accepted {
            value: (value, header, migrations),
            generation,
            rejected,
        } = walk_back(backend, T::NAME, self.config.walk_past, |generation| {
            self.load_generation::<T>(backend, generation)
        })?;
        let report = RecoveryReport::new(
            backend.location(),
            generation.sequence,
            &header,
            migrations,
            rejected,
        );
        if !report.rejected.is_empty() {
            tracing::warn!(%report, "recovered past rejected generations");
        }
        Ok(Loaded { value, report })
    }

    /// Records what is known of a generation (for retention).
    pub(crate) fn remember(&self, name: &str, sequence: u64, class: Class) {
        let book = self.book(name);
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        book.known.insert(sequence, class);
    }

    /// Verifies, decodes and migrates one generation. A large current-version payload is
    /// validated and deserialised on this thread while other threads verify the tag (both are
    /// safe on arbitrary bytes, and the value is dropped unless the tag and header pass); an
    /// older version is decoded only once authentic, since its migration steps are user code.
    fn load_generation<T: Persist>(
        &self,
        backend: &dyn Backend,
        generation: &GenerationInfo,
    ) -> Result<(T, Header, Vec<crate::MigrationStep>), RejectReason> {
        // A copy, not a map: `load` is the path for stores whose files other writers might
        // touch (see persist-fs's mmap safety note); `open` is the zero-copy one.
        let bytes = fetch(backend, generation, false)?;
        let schema = Schema::of::<T>();
        let (header, payload, early) =
            open_generation(&self.keyring, &schema, generation.sequence, &bytes, |p| {
                T::decode(T::VERSION, p)
            })?;
        let decoded = match early {
            Some(decoded) => decoded?,
            None => T::decode(header.schema_version, payload)?,
        };
        Ok((decoded.value, header, decoded.migrations))
    }

    /// Checks one generation exactly as a load of its type would (envelope, fingerprint,
    /// validation, decoding, migrations), without keeping the value.
    pub fn check(
        &self,
        schema: &Schema,
        generation: &GenerationInfo,
    ) -> Result<Checked, RejectReason> {
        let bytes = fetch(self.backend.as_ref(), generation, false)?;
        check::check_generation(&self.keyring, schema, generation.sequence, &bytes)
    }

    /// The newest generation of `schema` that a load would use, found by the same walk as
    /// [`Store::load`] (same rules for corrupt and authentic generations, same report), without
    /// keeping the value: for tools such as `persist verify`.
    pub fn newest_valid(&self, schema: &Schema) -> Result<NewestValid, LoadError> {
        let backend = self.backend.as_ref();
        let accepted = walk_back(backend, schema.name(), self.config.walk_past, |g| {
            self.check(schema, g)
        })?;
        let report = RecoveryReport::new(
            backend.location(),
            accepted.generation.sequence,
            &accepted.value.header,
            accepted.value.migrations,
            accepted.rejected,
        );
        Ok(NewestValid {
            generation: accepted.generation,
            report,
        })
    }

    /// Verifies one generation's envelope (tag, structure, name and sequence) without decoding
    /// its payload, and returns its header. For states whose type this program does not have;
    /// [`Store::check`] checks a generation as a load would.
    pub fn verify_generation(
        &self,
        name: &str,
        generation: &GenerationInfo,
    ) -> Result<Header, RejectReason> {
        let bytes = fetch(self.backend.as_ref(), generation, false)?;
        let expect = Expect {
            name: Some(name),
            sequence: Some(generation.sequence),
            ..Expect::default()
        };
        Ok(envelope::open(&self.keyring, &bytes, &expect)?.header)
    }
}

/// The generation [`Store::newest_valid`] found, with the report a load would give.
#[derive(Debug)]
pub struct NewestValid {
    /// The generation.
    pub generation: GenerationInfo,
    /// What a load of it reports.
    pub report: RecoveryReport,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
