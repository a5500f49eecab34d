//! persist-core: signed, versioned, crash-safe generations of a long-running program's state.
//!
//! A [`Store`] keeps immutable numbered generations of each state over a [`Backend`] (the local
//! filesystem in `persist-fs`, object storage later). Each generation is an [`envelope`]: a
//! fixed header naming the state, its schema version, layout [`Fingerprint`] and sequence number;
//! the rkyv payload; and an HMAC-SHA256 tag from a [`Keyring`]. Loading walks back from the
//! newest generation to the newest valid one and says why it passed over the others in a
//! [`RecoveryReport`].
//!
//! rkyv is re-exported as [`rkyv`] so a downstream crate needs no direct dependency on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod check;
pub mod checkpoint;
pub mod codec;
pub mod encoded;
pub mod envelope;
pub mod generation;
pub mod key;
pub mod layout;
pub mod memory;
pub mod persist;
pub mod recovery;
mod retention;
pub mod schema;
pub mod store;
pub mod view;

pub use rkyv;

pub use persist_derive::{Persist, persist};

#[doc(hidden)]
pub use layout::derive_support as __private;

pub use backend::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};
pub use check::{Checked, Schema};
pub use checkpoint::{CheckpointError, Checkpointer, SavePolicy};
pub use encoded::Encoded;
pub use envelope::{EnvelopeError, Header};
pub use generation::{GenerationInfo, Listing};
pub use key::{Key, KeyError, KeyId, Keyring};
pub use layout::Layout;
pub use memory::MemoryBackend;
pub use persist::{CodecError, Decoded, MigrationStep, Persist, StepError};
pub use recovery::{RecoveryReport, RejectKind, RejectReason, Rejection, RestoredFrom, WalkPast};
pub use schema::{Fingerprint, RkyvFormat};
pub use store::{LoadError, Loaded, NewestValid, SaveError, SaveReceipt, Store, StoreConfig};
pub use view::{OpenError, View};
