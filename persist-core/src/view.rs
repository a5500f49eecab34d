//! Zero-copy loads: [`Store::open`] maps the newest valid generation and hands out a validated
//! `&Archived<T>` that points into the mapping, without deserialising or copying the payload.

use std::fmt;
use std::ops::Deref;
use std::time::SystemTime;

use rkyv::api::high::HighValidator;
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::Error as RkyvError;
use rkyv::{Archive, Portable};
use yoke::Yoke;

use crate::backend::ObjectBytes;
use crate::envelope::{self, Expect, HEADER_LEN, TAG_LEN};
use crate::persist::{CodecError, Persist};
use crate::recovery::{RecoveryReport, RejectReason, Rejection};
use crate::store::{GenerationInfo, LoadError, Store};

/// Why [`Store::open`] returned no view.
#[derive(Debug, thiserror::Error)]
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
    archived: Yoke<&'static T::Archived, Box<ObjectBytes>>,
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

    /// The whole generation (header, payload, tag) the view points into.
    pub fn generation_bytes(&self) -> &[u8] {
        self.archived.backing_cart()
    }

    /// True when the generation is memory-mapped rather than read into a buffer.
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
    Current(
        Yoke<&'static T::Archived, Box<ObjectBytes>>,
        envelope::Header,
    ),
    Older(u32),
}

impl Store {
    /// Opens the newest valid generation of `T` for zero-copy reading: maps it (on backends that
    /// can), verifies its tag and header, checks its fingerprint, validates the payload with
    /// bytecheck once, and returns a view that derefs to `&Archived<T>` inside the mapping.
    ///
    /// Invalid generations are passed over as by [`Store::load`] and listed in the view's
    /// report. If the newest valid generation is an older schema version, the result is
    /// [`OpenError::OlderVersion`]: `load` migrates it.
    pub fn open<T>(&self) -> Result<View<T>, OpenError>
    where
        T: Persist + Archive + 'static,
        T::Archived: Portable + for<'a> CheckBytes<HighValidator<'a, RkyvError>> + 'static,
    {
        envelope::validate_name(T::NAME).map_err(LoadError::InvalidName)?;
        let generations = self.generations(T::NAME).map_err(LoadError::Backend)?;
        if generations.is_empty() {
            return Err(LoadError::NoGeneration {
                name: T::NAME.to_string(),
                location: self.backend.location(),
            }
            .into());
        }
        let mut rejected = Vec::new();
        for generation in generations.into_iter().rev() {
            match self.open_generation::<T>(&generation) {
                Ok(Found::Current(archived, header)) => {
                    let created_at = header.created_at();
                    let report = RecoveryReport {
                        name: T::NAME.to_string(),
                        source: self.backend.location(),
                        sequence: generation.sequence,
                        schema_version: header.schema_version,
                        created_at,
                        age: SystemTime::now()
                            .duration_since(created_at)
                            .unwrap_or_default(),
                        migrations: Vec::new(),
                        rejected,
                        restored_from: None,
                    };
                    return Ok(View { archived, report });
                }
                Ok(Found::Older(found)) => {
                    return Err(OpenError::OlderVersion {
                        name: T::NAME.to_string(),
                        sequence: generation.sequence,
                        found,
                        current: T::VERSION,
                    });
                }
                Err(reason) => {
                    tracing::warn!(
                        name = T::NAME,
                        sequence = generation.sequence,
                        %reason,
                        "generation rejected"
                    );
                    rejected.push(Rejection {
                        sequence: generation.sequence,
                        key: generation.key,
                        reason,
                    });
                }
            }
        }
        Err(LoadError::AllInvalid {
            name: T::NAME.to_string(),
            location: self.backend.location(),
            rejected,
        }
        .into())
    }

    fn open_generation<T>(&self, generation: &GenerationInfo) -> Result<Found<T>, RejectReason>
    where
        T: Persist + Archive + 'static,
        T::Archived: Portable + for<'a> CheckBytes<HighValidator<'a, RkyvError>> + 'static,
    {
        let bytes = self.backend.get_mapped(&generation.key)?;
        let expect = Expect {
            name: Some(T::NAME),
            sequence: Some(generation.sequence),
            min_version: Some(T::OLDEST_VERSION),
            max_version: Some(T::VERSION),
        };
        let header = envelope::open(&self.keyring, &bytes, &expect)?.header;
        let version = header.schema_version;
        let expected = T::fingerprint_of(version).ok_or(CodecError::UnsupportedVersion(version))?;
        if expected != header.fingerprint {
            return Err(RejectReason::FingerprintMismatch {
                name: T::NAME.to_string(),
                version,
                expected,
                found: header.fingerprint,
            });
        }
        if version != T::VERSION {
            return Ok(Found::Older(version));
        }
        // `envelope::open` checked that the payload is exactly the bytes between the header
        // and the tag.
        let archived = Yoke::try_attach_to_cart(Box::new(bytes), |bytes: &ObjectBytes| {
            crate::codec::access::<T>(&bytes[HEADER_LEN..bytes.len() - TAG_LEN])
        })?;
        Ok(Found::Current(archived, header))
    }
}
