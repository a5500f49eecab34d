//! Checking one generation as a load of its type would: the one function behind
//! [`crate::Store::load`], [`crate::Store::open`], retention and `persist verify`.

use std::fmt;

use crate::backend::Backend;
use crate::envelope::{self, Expect, Header};
use crate::generation::{GenerationInfo, fetch};
use crate::key::Keyring;
use crate::persist::{CodecError, MigrationStep, Persist};
use crate::reject::RejectReason;
use crate::schema::Fingerprint;

/// What a store knows of a state type without the type itself: its name, the versions it reads,
/// their layout fingerprints, and a decoder that validates and migrates a payload (dropping the
/// value). Enough to check a generation exactly as a load of the type would.
///
/// ```
/// #[persist_core::persist(name = "counter", version = 1)]
/// struct Counter(u64);
///
/// let schema = persist_core::Schema::of::<Counter>();
/// assert_eq!((schema.name(), schema.version()), ("counter", 1));
/// ```
#[derive(Clone, Copy)]
pub struct Schema {
    name: &'static str,
    version: u32,
    oldest_version: u32,
    fingerprint_of: fn(u32) -> Option<Fingerprint>,
    decode: fn(u32, &[u8]) -> Result<Vec<MigrationStep>, CodecError>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("name", &self.name)
            .field("versions", &(self.oldest_version..=self.version))
            .finish_non_exhaustive()
    }
}

impl Schema {
    /// The schema of `T`.
    pub fn of<T: Persist>() -> Schema {
        Schema {
            name: T::NAME,
            version: T::VERSION,
            oldest_version: T::OLDEST_VERSION,
            fingerprint_of: T::fingerprint_of,
            decode: |version, payload| T::decode(version, payload).map(|d| d.migrations),
        }
    }

    /// The schema of `T` for generations stored under another name (snapshot manifests: one
    /// type, a name per set).
    pub(crate) fn of_named<T: Persist>(name: &'static str) -> Schema {
        Schema {
            name,
            ..Schema::of::<T>()
        }
    }

    /// The state's schema name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current schema version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The oldest version the type migrates from.
    pub fn oldest_version(&self) -> u32 {
        self.oldest_version
    }

    /// The layout fingerprint of `version`, if the type knows that version.
    pub fn fingerprint_of(&self, version: u32) -> Option<Fingerprint> {
        (self.fingerprint_of)(version)
    }

    /// What the header of generation `sequence` must say.
    pub(crate) fn expect(&self, sequence: u64) -> Expect<'static> {
        Expect {
            min_version: Some(self.oldest_version),
            max_version: Some(self.version),
            ..Expect::generation(self.name, sequence)
        }
    }
}

/// A generation that passed every check of its type.
#[derive(Debug)]
#[non_exhaustive]
pub struct Checked {
    /// Its authentic header.
    pub header: Header,
    /// The migration steps a load applies to it.
    pub migrations: Vec<MigrationStep>,
}

/// Opens the envelope of generation `sequence` of `schema` and checks its fingerprint: everything
/// a load checks but the payload. `early` runs on the payload beside the tag verification when
/// the payload claims to be the current version (so it must be safe on arbitrary bytes: rkyv
/// validation is; migrations are not and run later); its result is dropped unless every check
/// passes.
pub(crate) fn open_generation<'a, R>(
    ring: &Keyring,
    schema: &Schema,
    sequence: u64,
    bytes: &'a [u8],
    early: impl FnOnce(&'a [u8]) -> R,
) -> Result<(Header, &'a [u8], Option<R>), RejectReason> {
    let expect = schema.expect(sequence);
    let claimed = Header::decode_unverified(bytes).map(|h| h.schema_version);
    let early = |payload| (claimed == Ok(schema.version)).then(|| early(payload));
    let (opened, early) = envelope::open_with(ring, bytes, &expect, early)?;
    let header = opened.header;
    let version = header.schema_version;
    let expected = schema
        .fingerprint_of(version)
        .ok_or(CodecError::UnsupportedVersion(version))?;
    if expected != header.fingerprint {
        return Err(RejectReason::FingerprintMismatch {
            name: schema.name.to_string(),
            version,
            expected,
            found: header.fingerprint,
        });
    }
    Ok((header, opened.payload, early))
}

/// Checks one generation's bytes exactly as a load of its type would: the envelope, the
/// fingerprint, validation, decoding and every migration step (the value is dropped).
pub fn check_generation(
    ring: &Keyring,
    schema: &Schema,
    sequence: u64,
    bytes: &[u8],
) -> Result<Checked, RejectReason> {
    let decode = schema.decode;
    let version = schema.version;
    let (header, payload, early) =
        open_generation(ring, schema, sequence, bytes, |p| decode(version, p))?;
    let migrations = match early {
        Some(decoded) => decoded?,
        None => decode(header.schema_version, payload)?,
    };
    Ok(Checked { header, migrations })
}

/// Fetches one stored generation and checks it with [`check_generation`].
pub(crate) fn check_stored(
    backend: &dyn Backend,
    keyring: &Keyring,
    schema: &Schema,
    generation: &GenerationInfo,
) -> Result<Checked, RejectReason> {
    let bytes = fetch(backend, generation, false)?;
    check_generation(keyring, schema, generation.sequence, &bytes)
}
