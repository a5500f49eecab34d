//! persist-core: signed, versioned, crash-safe generations of a long-running program's state.
//!
//! A [`Store`] keeps immutable numbered generations of each state over a [`Backend`] (the local
//! filesystem in `persist-fs`, S3-compatible object storage in `persist-s3`, memory in
//! [`MemoryBackend`]). Each generation is an envelope ([`format`](mod@format)): a
//! fixed header naming the state, its schema version, layout [`Fingerprint`] and sequence number;
//! the rkyv payload; and an HMAC-SHA256 tag from a [`Keyring`]. Loading walks back from the
//! newest generation to the newest valid one and says why it passed over the others in a
//! [`RecoveryReport`].
//!
//! rkyv is re-exported as [`rkyv`] so a downstream crate needs no direct dependency on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Every module is private; each public item has one path: the crate root, or `format` for the
// storage format's functions and constants, `codec` for rkyv helpers, `layout` for layout
// descriptors (what `#[persist]` generates).
mod backend;
mod check;
mod checkpoint;
pub mod codec;
mod encoded;
mod envelope;
mod error;
mod generation;
mod key;
pub mod layout;
mod load;
mod memory;
mod offsite;
mod persist;
mod recovery;
mod reject;
mod report;
mod retention;
mod save;
mod schema;
mod store;
mod view;

pub use rkyv;

pub use persist_derive::persist;

#[doc(hidden)]
pub use layout::derive_support as __private;

pub use backend::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};
pub use check::{Checked, Schema};
pub use checkpoint::{CheckpointError, CheckpointStatus, Checkpointer, SavePolicy};
pub use encoded::Encoded;
pub use envelope::{EnvelopeError, Expect, Header, Opened};
pub use error::{LoadError, SaveError};
pub use generation::{GenerationInfo, Listing};
pub use key::{KEY_ENV, Key, KeyError, KeyId, Keyring, MAX_KEY_FILE_LEN, MIN_KEY_LEN};
pub use load::{Loaded, NewestValid};
pub use memory::MemoryBackend;
pub use persist::{CodecError, Decoded, MigrationStep, Persist, StepError};
pub use reject::{RejectKind, RejectReason, Rejection, WalkPast};
pub use report::{RecoveryReport, RestoredFrom};
pub use save::SaveReceipt;
pub use schema::{Fingerprint, RkyvFormat};
pub use store::{Store, StoreConfig};
pub use view::{OpenError, View};

/// The storage format, for tools that read generations without a [`Store`]: how generations
/// are named, and the envelope's constants and functions (`docs/FORMAT.md` describes the bytes).
///
/// ```
/// use persist_core::format::{generation_key, parse_generation_key};
/// let key = generation_key("position", 7);
/// assert_eq!(parse_generation_key(&key), Some(("position", 7)));
/// ```
pub mod format {
    pub use crate::check::check_generation;
    pub use crate::envelope::{
        CHUNK_LEN, DOMAIN, DOMAIN_V1, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_NAME_LEN,
        OLDEST_FORMAT_VERSION, PARALLEL_MIN_LEN, TAG_LEN, check_head, is_readable_format, open,
        open_with, seal, tag, validate_name,
    };
    pub use crate::generation::{
        GENERATION_EXT, MAX_SEQUENCE, fetch, generation_key, parse_generation_key,
    };
}
