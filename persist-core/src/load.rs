//! Loading: the newest valid generation of a type, checked exactly as every other reader
//! checks it, with the off-site fallback when the local store has nothing valid.

use crate::backend::Backend;
use crate::check::{self, Checked, Schema, open_generation};
use crate::envelope::{self, Expect, Header};
use crate::error::LoadError;
use crate::generation::{GenerationInfo, fetch};
use crate::persist::{MigrationStep, Persist};
use crate::recovery::{Accepted, walk_back};
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

    pub(crate) fn load_from<T: Persist>(
        &self,
        backend: &dyn Backend,
    ) -> Result<Loaded<T>, LoadError> {
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

    /// Verifies, decodes and migrates one generation. A large current-version payload is
    /// validated and deserialised on this thread while other threads verify the tag (both are
    /// safe on arbitrary bytes, and the value is dropped unless the tag and header pass); an
    /// older version is decoded only once authentic, since its migration steps are user code.
    fn load_generation<T: Persist>(
        &self,
        backend: &dyn Backend,
        generation: &GenerationInfo,
    ) -> Result<(T, Header, Vec<MigrationStep>), RejectReason> {
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
        let bytes = fetch(self.backend.as_ref(), generation, false)?;
        let expect = Expect::generation(name, generation.sequence);
        Ok(envelope::open(&self.keyring, &bytes, &expect)?.header)
    }
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
