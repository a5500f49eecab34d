//! Loading: the newest valid generation of a type, checked exactly as every other reader
//! checks it, with the off-site fallback when the local store has nothing valid.

use crate::backend::Backend;
use crate::check::{self, Checked, Schema, open_generation};
use crate::delta::chain::Resolved;
use crate::envelope::{self, Expect, Header};
use crate::error::LoadError;
use crate::generation::GenerationInfo;
use crate::persist::{MigrationStep, Persist};
use crate::recovery::{Accepted, walk_back};
use crate::recovery_log::Outcome;
use crate::reject::RejectReason;
use crate::report::RecoveryReport;
use crate::retention::Class;
use crate::store::Store;

/// A loaded value and how it was found.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The value, migrated to the current version.
    pub value: T,
    /// Which generation was used and what was rejected.
    pub report: RecoveryReport,
}

impl Store {
    /// Loads the newest valid generation of `T`, walking back past corrupt ones and migrating
    /// older versions. The report lists every generation rejected on the way.
    ///
    /// An authentic generation this program cannot use (signed by a key the ring lacks, of a
    /// newer version or layout, failing validation or migration, or unreadable) stops the load
    /// with [`LoadError::Blocked`], which says what to do; [`StoreConfig::walk_past`](crate::StoreConfig::walk_past) opts in
    /// to walking past such generations.
    ///
    /// With [`StoreConfig::off_site`](crate::StoreConfig::off_site) set, a local store with no generation or only corrupt
    /// ones falls back to the off-site copy: the value is verified like any other, written back
    /// locally, and [`RecoveryReport::restored_from`] says so.
    pub fn load<T: Persist>(&self) -> Result<Loaded<T>, LoadError> {
        let mut result = self.load_or_restore::<T>();
        let outcome = Outcome::of(result.as_ref().map(|loaded| &loaded.report));
        let log_error = self.record_load(T::NAME, "load", outcome);
        if let Ok(loaded) = &mut result {
            loaded.report.log_error = log_error;
        }
        result
    }

    fn load_or_restore<T: Persist>(&self) -> Result<Loaded<T>, LoadError> {
        match self.load_local::<T>() {
            Ok(loaded) => Ok(loaded),
            Err(local @ (LoadError::NoGeneration { .. } | LoadError::AllInvalid { .. })) => {
                match &self.config.off_site {
                    Some(off_site) => self.restore_from_off_site::<T>(off_site.as_ref(), local),
                    None => Err(local),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Loads from the local backend. With deltas on, the generation loaded becomes the base of
    /// the next save (when it is chunked), so a restart does not cost a full generation.
    fn load_local<T: Persist>(&self) -> Result<Loaded<T>, LoadError> {
        let keep = self.config.deltas.is_some();
        let (loaded, resolved) = self.load_with::<T>(self.backend.as_ref(), keep)?;
        let sequence = loaded.report.sequence;
        let base = loaded.report.base;
        let book = self.book(T::NAME);
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        book.known.insert(sequence, Class::Loadable { base });
        if let Some(resolved) = resolved {
            book.previous = resolved.into_previous(sequence);
        }
        Ok(loaded)
    }

    pub(crate) fn load_from<T: Persist>(
        &self,
        backend: &dyn Backend,
    ) -> Result<Loaded<T>, LoadError> {
        self.load_with(backend, false).map(|(loaded, _)| loaded)
    }

    /// [`Store::load_from`], also returning the generation as read when `keep`.
    fn load_with<T: Persist>(
        &self,
        backend: &dyn Backend,
        keep: bool,
    ) -> Result<(Loaded<T>, Option<Resolved>), LoadError> {
        let Accepted {
            value:
                Found {
                    value,
                    header,
                    migrations,
                    base,
                    resolved,
                },
            generation,
            rejected,
        } = walk_back(backend, T::NAME, self.config.walk_past, |generation| {
            self.load_generation::<T>(backend, generation, keep)
        })?;
        let mut report = RecoveryReport::new(
            backend.location(),
            generation.sequence,
            &header,
            migrations,
            rejected,
        );
        report.base = base;
        if !report.rejected.is_empty() {
            tracing::warn!(%report, "recovered past rejected generations");
        }
        Ok((Loaded { value, report }, resolved))
    }

    /// Verifies, decodes and migrates one generation. A large current-version payload is
    /// validated and deserialised on this thread while other threads verify the tag (both are
    /// safe on arbitrary bytes, and the value is dropped unless the tag and header pass); an
    /// older version is decoded only once authentic, since its migration steps are user code.
    fn load_generation<T: Persist>(
        &self,
        backend: &dyn Backend,
        generation: &GenerationInfo,
        keep: bool,
    ) -> Result<Found<T>, RejectReason> {
        // A copy, not a map: `load` is the path for stores whose files other writers might
        // touch (see persist-fs's mmap safety note); `open` is the zero-copy one.
        let schema = Schema::of::<T>();
        let resolved = check::fetch_for(backend, &self.keyring, &schema, generation, false)?;
        let (header, payload, early) = open_generation(
            &self.keyring,
            &schema,
            generation.sequence,
            &resolved,
            |p| T::decode(T::VERSION, p),
        )?;
        let decoded = match early {
            Some(decoded) => decoded?,
            None => T::decode(header.schema_version, payload)?,
        };
        let base = match &resolved {
            Resolved::Rebuilt(rebuilt) => Some(rebuilt.chunks.header.base_sequence),
            Resolved::Whole(_) => None,
        };
        Ok(Found {
            value: decoded.value,
            header,
            migrations: decoded.migrations,
            base,
            resolved: keep.then_some(resolved),
        })
    }

    /// Checks one generation exactly as a load of its type would (envelope, fingerprint,
    /// validation, decoding, migrations), without keeping the value.
    pub fn check(
        &self,
        schema: &Schema,
        generation: &GenerationInfo,
    ) -> Result<Checked, RejectReason> {
        check::check_stored(self.backend.as_ref(), &self.keyring, schema, generation)
    }

    /// The newest generation of `schema` that a load would use, found by the same walk as
    /// [`Store::load`] (same rules for corrupt and authentic generations, same report), without
    /// keeping the value: for tools such as `persist verify`.
    pub fn newest_valid(&self, schema: &Schema) -> Result<NewestValid, LoadError> {
        let backend = self.backend.as_ref();
        let accepted = walk_back(backend, schema.name(), self.config.walk_past, |g| {
            self.check(schema, g)
        })?;
        let mut report = RecoveryReport::new(
            backend.location(),
            accepted.generation.sequence,
            &accepted.value.header,
            accepted.value.migrations,
            accepted.rejected,
        );
        report.base = accepted.value.base;
        Ok(NewestValid {
            generation: accepted.generation,
            report,
        })
    }

    /// The newest generation of state `name` whose envelope verifies (tag, structure, name and
    /// sequence), found by the same walk as [`Store::load`]: for states whose type this program
    /// does not have. Its payload is not decoded, so the report lists no migrations;
    /// [`Store::newest_valid`] checks as far as a load of the type would.
    pub fn newest_sealed(&self, name: &str) -> Result<NewestValid, LoadError> {
        let backend = self.backend.as_ref();
        let accepted = walk_back(backend, name, self.config.walk_past, |g| {
            self.verify_generation(name, g)
        })?;
        let report = RecoveryReport::new(
            backend.location(),
            accepted.generation.sequence,
            &accepted.value,
            Vec::new(),
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
        let expect = Expect::generation(name, generation.sequence);
        let resolved = crate::delta::chain::fetch_resolved(
            self.backend.as_ref(),
            &self.keyring,
            name,
            &expect,
            generation,
            false,
            false,
        )?;
        match resolved {
            Resolved::Whole(bytes) => Ok(envelope::open(&self.keyring, &bytes, &expect)?.header),
            Resolved::Rebuilt(rebuilt) => Ok(rebuilt.header),
        }
    }
}

/// A generation a load accepted.
struct Found<T> {
    value: T,
    header: Header,
    migrations: Vec<MigrationStep>,
    /// A delta's base.
    base: Option<u64>,
    /// The generation as read, when asked to keep it.
    resolved: Option<Resolved>,
}

/// The generation [`Store::newest_valid`] found, with the report a load would give.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewestValid {
    /// The generation.
    pub generation: GenerationInfo,
    /// What a load of it reports.
    pub report: RecoveryReport,
}
