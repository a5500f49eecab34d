//! Zero-copy loads: [`Store::open`] maps the newest valid generation and hands out a validated
//! `&Archived<T>` that points into the mapping, without deserialising or copying the payload.

use std::fmt;
use std::ops::Deref;

use rkyv::api::high::HighValidator;
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::BoxedError as RkyvError;
use rkyv::{Archive, Portable};
use yoke::Yoke;

use crate::check::{self, Schema, open_generation};
use crate::codec::access;
use crate::delta::chain::Resolved;
use crate::envelope;
use crate::error::LoadError;
use crate::generation::GenerationInfo;
use crate::persist::Persist;
use crate::recovery::walk_back;
use crate::recovery_log::Outcome;
use crate::reject::RejectReason;
use crate::report::RecoveryReport;
use crate::store::Store;

/// Why [`Store::open`] returned no view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No generation, every generation invalid, a bad schema name or a backend failure: the same
    /// cases as [`Store::load`].
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The newest valid generation is an older schema version, which cannot be viewed as the
    /// current type in place. [`Store::load`] migrates it.
    #[error(
        "the newest valid generation of {name} (sequence {sequence}) is schema v{found}; open \
         views only the current v{current}: load it with Store::load, which migrates"
    )]
    OlderVersion {
        /// The state's schema name.
        name: String,
        /// The generation's sequence number.
        sequence: u64,
        /// Its schema version.
        found: u32,
        /// The current version of the type.
        current: u32,
    },
}

/// A validated, zero-copy view of a generation's archived payload: derefs to `T::Archived`
/// (`rkyv::Archived<T>`), which points into the generation's bytes (a memory map on backends
/// that map, such as the filesystem's).
pub struct View<T>
where
    T: Archive + 'static,
{
    archived: Yoke<&'static T::Archived, Box<Resolved>>,
    report: RecoveryReport,
}

impl<T: Archive + 'static> View<T> {
    /// The archived value.
    pub fn archived(&self) -> &T::Archived {
        self.archived.get()
    }

    /// Which generation was opened and which newer ones were passed over.
    pub fn report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The bytes the view points into: the whole generation (header, payload, tag), or for a
    /// delta the payload rebuilt from its chain.
    pub fn generation_bytes(&self) -> &[u8] {
        self.archived.backing_cart().bytes()
    }

    /// True when the generation is memory-mapped rather than read into a buffer (never for a
    /// delta, whose payload is rebuilt into one aligned buffer).
    pub fn is_mapped(&self) -> bool {
        self.archived.backing_cart().is_mapped()
    }
}

impl<T: Archive + 'static> Deref for View<T> {
    type Target = T::Archived;
    fn deref(&self) -> &T::Archived {
        self.archived.get()
    }
}

impl<T: Archive + 'static> fmt::Debug for View<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("name", &self.report.name)
            .field("sequence", &self.report.sequence)
            .field("bytes", &self.generation_bytes().len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// What one generation turned out to be.
enum Found<T: Archive + 'static> {
    Current(Yoke<&'static T::Archived, Box<Resolved>>, envelope::Header),
    Older(envelope::Header),
}

/// Why a generation yields no view of the current type.
enum Miss {
    Older(envelope::Header),
    Rejected(RejectReason),
}

impl<E: Into<RejectReason>> From<E> for Miss {
    fn from(e: E) -> Self {
        Miss::Rejected(e.into())
    }
}

impl Store {
    /// Opens the newest valid generation of `T` for zero-copy reading: maps it (on backends that
    /// can), verifies its tag and header, checks its fingerprint, validates the payload with
    /// bytecheck once (on the calling thread while other threads verify the tag, for a large
    /// payload), and returns a view that derefs to `&Archived<T>` inside the mapping.
    ///
    /// Invalid generations are passed over as by [`Store::load`] and listed in the view's
    /// report. If the newest valid generation is an older schema version, the result is
    /// [`OpenError::OlderVersion`]: `load` migrates it.
    pub fn open<T>(&self) -> Result<View<T>, OpenError>
    where
        T: Persist + Archive + 'static,
        T::Archived: Portable + for<'a> CheckBytes<HighValidator<'a, RkyvError>> + 'static,
    {
        let mut result = self.open_newest::<T>();
        let outcome = match &result {
            Ok(view) => Outcome::of(Ok(&view.report)),
            Err(OpenError::Load(e)) => Outcome::of(Err(e)),
            Err(e @ OpenError::OlderVersion { .. }) => Outcome::Failed {
                kind: "older_version".into(),
                error: e.to_string(),
            },
        };
        let log_error = self.record_load(T::NAME, "open", outcome);
        if let Ok(view) = &mut result {
            view.report.log_error = log_error;
        }
        result
    }

    fn open_newest<T>(&self) -> Result<View<T>, OpenError>
    where
        T: Persist + Archive + 'static,
        T::Archived: Portable + for<'a> CheckBytes<HighValidator<'a, RkyvError>> + 'static,
    {
        let backend = self.backend();
        let walk_past = self.config().walk_past;
        let accepted = walk_back(backend, T::NAME, walk_past, |g| {
            self.open_generation::<T>(g)
        })?;
        let sequence = accepted.generation.sequence;
        match accepted.value {
            Found::Current(archived, header) => {
                let location = backend.location();
                let report =
                    RecoveryReport::new(location, sequence, &header, Vec::new(), accepted.rejected);
                Ok(View { archived, report })
            }
            Found::Older(header) => Err(OpenError::OlderVersion {
                name: T::NAME.to_string(),
                sequence,
                found: header.schema_version,
                current: T::VERSION,
            }),
        }
    }

    fn open_generation<T>(&self, generation: &GenerationInfo) -> Result<Found<T>, RejectReason>
    where
        T: Persist + Archive + 'static,
        T::Archived: Portable + for<'a> CheckBytes<HighValidator<'a, RkyvError>> + 'static,
    {
        let schema = Schema::of::<T>();
        let resolved = check::fetch_for(self.backend(), self.keyring(), &schema, generation, true)?;
        let mut authentic = None;
        let attached = Yoke::try_attach_to_cart(Box::new(resolved), |bytes: &Resolved| {
            // Validation (safe on any bytes) overlaps the tag when the payload claims to be the
            // current version; nothing of it is used unless the tag and header pass.
            let (header, payload, early) = open_generation(
                self.keyring(),
                &schema,
                generation.sequence,
                bytes,
                access::<T>,
            )?;
            if header.schema_version != T::VERSION {
                return Err(Miss::Older(header));
            }
            let archived = match early {
                Some(archived) => archived?,
                None => access::<T>(payload)?,
            };
            authentic = Some(header);
            Ok(archived)
        });
        match attached {
            Ok(archived) => Ok(Found::Current(
                archived,
                authentic.expect("set before the view is attached"),
            )),
            Err(Miss::Older(header)) => Ok(Found::Older(header)),
            Err(Miss::Rejected(reason)) => Err(reason),
        }
    }
}
