//! The [`Persist`] trait: what a state type tells the store about itself.

use std::fmt;
use std::sync::Arc;

use rkyv::util::AlignedVec;

use crate::schema::Fingerprint;

/// One migration step applied while loading: `from` → `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationStep {
    /// The version decoded.
    pub from: u32,
    /// The version it was converted to.
    pub to: u32,
}

/// A value decoded from a payload, with the migration steps that produced it.
#[derive(Debug)]
pub struct Decoded<T> {
    /// The value, at the current version.
    pub value: T,
    /// The steps applied, oldest first; empty when the payload was already current.
    pub migrations: Vec<MigrationStep>,
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// rkyv could not serialise the value.
    #[error("cannot serialise: {0}")]
    Encode(#[source] rkyv::rancor::BoxedError),
    /// The payload failed rkyv validation (bytecheck) or could not be deserialised.
    #[error("payload fails validation: {0}")]
    InvalidPayload(#[source] rkyv::rancor::BoxedError),
    /// The type has no decoder for this version.
    #[error("no decoder for schema version {0}")]
    UnsupportedVersion(u32),
    /// A fallible migration step refused the value.
    #[error("migration v{from} -> v{to} failed: {reason}")]
    Migration {
        /// The version being migrated from.
        from: u32,
        /// The version being migrated to.
        to: u32,
        /// The step's error message.
        reason: String,
        /// The step's error itself, with its type: see [`StepError::downcast_ref`].
        #[source]
        error: StepError,
    },
    /// The value decoded and migrated, but the state's validation hook (`validate = path` in
    /// `#[persist(...)]`) refused it: a load treats the generation as undecodable.
    #[error("decoded value fails validation: {error}")]
    Invalid {
        /// The hook's error itself, with its type: see [`StepError::downcast_ref`].
        #[source]
        error: StepError,
    },
}

/// The error a fallible migration step (`TryFrom`) returned, kept with its type.
///
/// Two step errors compare equal when their messages do (so [`CodecError`] stays comparable).
///
/// ```
/// use persist_core::StepError;
/// let e = StepError::new(std::io::Error::other("bad epsilon"));
/// assert_eq!(e.to_string(), "bad epsilon");
/// assert!(e.downcast_ref::<std::io::Error>().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct StepError(Arc<dyn std::error::Error + Send + Sync>);

impl StepError {
    /// Wraps a step's error (any `Error + Send + Sync`, a `String` or a `&str`).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StepError(Arc::from(error.into()))
    }

    /// The step's error as its own type, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for StepError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for StepError {}

/// A state type the store can save and load.
///
/// The `#[persist(name = "...", version = N, from = Previous)]` attribute (see
/// [`macro@crate::persist`]) generates this impl, including the migration chain and a layout
/// fingerprint built from [`crate::layout`]. By hand, an impl for a type that derives rkyv's
/// `Archive`, `Serialize` and `Deserialize` is a few lines with the helpers of [`crate::codec`]:
///
/// ```
/// use persist_core::{codec, rkyv, CodecError, Decoded, Fingerprint, Persist};
///
/// #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
/// #[rkyv(crate = persist_core::rkyv)]
/// struct Position { ticket: u64, entry_price: f64 }
///
/// impl Persist for Position {
///     const NAME: &'static str = "position";
///     const VERSION: u32 = 1;
///     fn fingerprint() -> Fingerprint {
///         Fingerprint::of_descriptor("Position{ticket:u64,entry_price:f64}")
///     }
///     fn encode(&self) -> Result<rkyv::util::AlignedVec, CodecError> {
///         codec::encode(self)
///     }
///     fn decode(version: u32, payload: &[u8]) -> Result<Decoded<Self>, CodecError> {
///         codec::decode_current::<Self>(version, payload)
///     }
/// }
///
/// let bytes = Position { ticket: 7, entry_price: 1.25 }.encode().unwrap();
/// let back = Position::decode(1, &bytes).unwrap().value;
/// assert_eq!(back, Position { ticket: 7, entry_price: 1.25 });
/// ```
pub trait Persist: Sized {
    /// The schema name: the generation's directory (or key prefix) and a signed header field.
    /// 1 to 64 bytes of `[A-Za-z0-9_.-]`.
    const NAME: &'static str;
    /// The current schema version (at least 1).
    const VERSION: u32;
    /// The oldest version [`Persist::decode`] accepts (migrating it up to [`Persist::VERSION`]).
    const OLDEST_VERSION: u32 = Self::VERSION;

    /// The layout fingerprint of the current version.
    fn fingerprint() -> Fingerprint;

    /// The layout fingerprint of any version in the migration chain; `None` for a version the
    /// type does not know. Defaults to the current version only.
    fn fingerprint_of(version: u32) -> Option<Fingerprint> {
        (version == Self::VERSION).then(Self::fingerprint)
    }

    /// The canonical layout descriptor of any version in the migration chain (the text whose
    /// hash is [`Persist::fingerprint_of`]), for schema snapshots and diagnostics. `None` when
    /// the type does not know the version or, by default, has no textual descriptor.
    fn descriptor_of(version: u32) -> Option<String> {
        let _ = version;
        None
    }

    /// Serialises the value (the envelope's payload).
    fn encode(&self) -> Result<AlignedVec, CodecError>;

    /// Serialises the value into `buffer` (cleared first), reusing its allocation: a store
    /// that writes deltas encodes each save of a large state into the buffer of the save before
    /// last, so the encode touches pages already mapped instead of faulting fresh ones in. The
    /// default ignores `buffer` and calls [`Persist::encode`]; the derive reuses it.
    fn encode_into(&self, buffer: AlignedVec) -> Result<AlignedVec, CodecError> {
        drop(buffer);
        self.encode()
    }

    /// Validates and deserialises a payload of schema `version`, migrating it to the current
    /// version.
    ///
    /// For an older `version` the store calls this only after the envelope's tag, version range
    /// and fingerprint have been checked, so migration steps see authentic data. For the
    /// current version of a large payload it may call this *while* the tag is being verified,
    /// on bytes not yet known to be authentic, and drop the result if verification fails: with
    /// `version == Self::VERSION`, `decode` must be safe on arbitrary bytes (validate before
    /// reading, as [`crate::codec::decode_current`] and the derive do; never panic).
    fn decode(version: u32, payload: &[u8]) -> Result<Decoded<Self>, CodecError>;
}
