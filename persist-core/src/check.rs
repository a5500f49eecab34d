//! Checking one generation as a load of its type would: the one function behind
//! [`crate::Store::load`], [`crate::Store::open`], retention and `persist verify`.

use std::fmt;

use crate::backend::Backend;
use crate::delta::chain::{self, Rebuilt, Resolved};
use crate::envelope::{self, Expect, Header};
use crate::generation::GenerationInfo;
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
    /// A delta's base generation (`None` for a whole generation): kept as long as it is.
    pub base: Option<u64>,
}

/// Opens the envelope of generation `sequence` of `schema` and checks its fingerprint: everything
/// a load checks but the payload. `early` runs on the payload beside the tag verification when
/// the payload claims to be the current version (so it must be safe on arbitrary bytes: rkyv
/// validation is; migrations are not and run later); its result is dropped unless every check
/// passes. A rebuilt delta was verified when its chain was read: only its fingerprint is left.
pub(crate) fn open_generation<'a, R>(
    ring: &Keyring,
    schema: &Schema,
    sequence: u64,
    resolved: &'a Resolved,
    early: impl FnOnce(&'a [u8]) -> R,
) -> Result<(Header, &'a [u8], Option<R>), RejectReason> {
    let (header, payload, early) = match resolved {
        Resolved::Whole(bytes) => open_whole(ring, schema, sequence, bytes, early)?,
        Resolved::Rebuilt(rebuilt) => open_rebuilt(schema, rebuilt, early)?,
    };
    check_fingerprint(schema, &header)?;
    Ok((header, payload, early))
}

/// [`open_generation`] of a rebuilt delta: its links' literal digests are checked on other
/// threads while `early` runs on the payload (when it is the current version), as for a whole
/// generation's tag; `early`'s result is dropped unless they pass.
fn open_rebuilt<'a, R>(
    schema: &Schema,
    rebuilt: &'a Rebuilt,
    early: impl FnOnce(&'a [u8]) -> R,
) -> Result<(Header, &'a [u8], Option<R>), RejectReason> {
    let payload = &rebuilt.payload[..];
    let current = rebuilt.header.schema_version == schema.version;
    let early = if current && rebuilt.is_pending() {
        std::thread::scope(|s| {
            let verify = s.spawn(|| rebuilt.verify_links());
            let early = early(payload);
            let verified = verify
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            verified.map(|()| Some(early))
        })?
    } else {
        rebuilt.verify_links()?;
        current.then(|| early(payload))
    };
    Ok((rebuilt.header.clone(), payload, early))
}

/// [`open_generation`] of a generation's own bytes (no chain to follow).
fn open_whole<'a, R>(
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
    Ok((opened.header, opened.payload, early))
}

/// The header's fingerprint must be the type's for that version.
fn check_fingerprint(schema: &Schema, header: &Header) -> Result<(), RejectReason> {
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
    Ok(())
}

/// Checks one generation's bytes exactly as a load of its type would: the envelope, the
/// fingerprint, validation, decoding and every migration step (the value is dropped). A delta
/// needs its base: it fails with [`crate::EnvelopeError::NeedsBase`] here (a [`crate::Store`]
/// follows the chain).
pub fn check_generation(
    ring: &Keyring,
    schema: &Schema,
    sequence: u64,
    bytes: &[u8],
) -> Result<Checked, RejectReason> {
    let (header, payload, early) = open_whole(ring, schema, sequence, bytes, |p| {
        (schema.decode)(schema.version, p)
    })?;
    check_fingerprint(schema, &header)?;
    decode_checked(schema, header, payload, early)
}

fn decode_checked(
    schema: &Schema,
    header: Header,
    payload: &[u8],
    early: Option<Result<Vec<MigrationStep>, CodecError>>,
) -> Result<Checked, RejectReason> {
    let migrations = match early {
        Some(decoded) => decoded?,
        None => (schema.decode)(header.schema_version, payload)?,
    };
    Ok(Checked {
        header,
        migrations,
        base: None,
    })
}

/// Reads one stored generation (following a delta's chain) and checks it as a load would.
pub(crate) fn check_stored(
    backend: &dyn Backend,
    keyring: &Keyring,
    schema: &Schema,
    generation: &GenerationInfo,
) -> Result<Checked, RejectReason> {
    let resolved = fetch_for(backend, keyring, schema, generation, false)?;
    check_resolved(keyring, schema, generation.sequence, &resolved)
}

/// Checks a generation as read by [`fetch_for`] as a load would.
pub(crate) fn check_resolved(
    keyring: &Keyring,
    schema: &Schema,
    sequence: u64,
    resolved: &Resolved,
) -> Result<Checked, RejectReason> {
    let base = match resolved {
        Resolved::Rebuilt(rebuilt) => Some(rebuilt.chunks.header.base_sequence),
        Resolved::Whole(_) => None,
    };
    let (header, payload, early) = open_generation(keyring, schema, sequence, resolved, |p| {
        (schema.decode)(schema.version, p)
    })?;
    Ok(Checked {
        base,
        ..decode_checked(schema, header, payload, early)?
    })
}

/// Reads generation `generation` of `schema` for a check or a load: a delta's chain is
/// followed and verified (its header checked against what the schema expects).
pub(crate) fn fetch_for(
    backend: &dyn Backend,
    keyring: &Keyring,
    schema: &Schema,
    generation: &GenerationInfo,
    mapped: bool,
) -> Result<Resolved, RejectReason> {
    let expect = schema.expect(generation.sequence);
    // Checked by `open_generation`, beside the decoding.
    let deferred = true;
    chain::fetch_resolved(
        backend,
        keyring,
        schema.name,
        &expect,
        generation,
        mapped,
        deferred,
    )
}
