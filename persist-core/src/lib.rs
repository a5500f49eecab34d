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
//!
//! Runnable programs: `cargo run --example first_save` (a first save and load),
//! `--example migration` (a three-version chain) and `--example checkpointing` (a training loop
//! with a [`Checkpointer`]), from the `examples/` directory of the workspace.
//!
//! # Defining a state
//!
//! Two spellings generate the same [`Persist`] and [`Layout`](layout::Layout) impls (and the
//! same fingerprint).
//! The attribute adds rkyv's derives itself; the derive is for a codebase whose types already
//! derive rkyv's traits, and takes the same arguments in a `#[persist(...)]` helper attribute
//! written **below** the `#[derive(...)]` line:
//!
//! ```
//! // The attribute: persist-core is the only dependency.
//! use persist_core::persist;
//!
//! #[persist(nested)]
//! #[derive(Clone, Debug)]
//! pub struct Position { pub ticket: u64, pub entry: f64 }
//!
//! #[persist(name = "exit_agent", version = 1)]
//! #[derive(Clone, Debug)]
//! pub struct ExitAgent { pub positions: Vec<Position>, pub epsilon: f64 }
//! ```
//!
//! ```
//! // The derive, next to rkyv's own derives.
//! use persist_core::Persist;
//! use persist_core::rkyv::{Archive, Deserialize, Serialize};
//!
//! #[derive(Archive, Serialize, Deserialize, Persist, Clone, Debug)]
//! #[persist(nested)]
//! #[rkyv(crate = persist_core::rkyv)] // not needed with rkyv 0.8 as your own dependency
//! pub struct Position { pub ticket: u64, pub entry: f64 }
//!
//! #[derive(Archive, Serialize, Deserialize, Persist, Clone, Debug)]
//! #[persist(name = "exit_agent", version = 1)]
//! #[rkyv(crate = persist_core::rkyv)]
//! pub struct ExitAgent { pub positions: Vec<Position>, pub epsilon: f64 }
//! ```
//!
//! The arguments (`name`, `version`, `from`/`try_from`, `validate`, `nested`) are described in
//! [`macro@persist`]. Every type a state contains needs `#[persist(nested)]` (or is a supported
//! std type, see [`Layout`](layout::Layout)). [`Persist`] can also be implemented by hand; its documentation
//! shows how.
//!
//! # Reading an archived view
//!
//! [`Store::open`] returns a [`View`] that derefs to the *archived* form of the state, in place
//! in the generation's bytes: `ArchivedExitAgent` for `ExitAgent`, with the same field names.
//! The archived types are rkyv's, and differ from the native ones in three ways:
//!
//! - integers and floats are little-endian wrappers (`Archived<u64>` is `rend::u64_le`):
//!   `.to_native()` gives the `u64`, and `Archived::<u64>::from_native(7)` makes one to compare
//!   with (they also compare equal to native values directly);
//! - a `Vec<T>` is an `ArchivedVec<Archived<T>>`, which derefs to a slice (`.len()`, `.iter()`,
//!   indexing); a `String` is an `ArchivedString` (`.as_str()`); an `Option<T>` is an
//!   `ArchivedOption` (`.as_ref()`); a `Box<T>` derefs to `Archived<T>`;
//! - an enum `Side` is an `ArchivedSide` with the same variants, whose fields are archived.
//!
//! To get a native value back, deserialise the part needed (or use [`Store::load`] for the whole
//! state): `rkyv::deserialize::<Position, rkyv::rancor::Error>(&view.positions[0])`.
//!
//! ```
//! use persist_core::rkyv::{self, Archived};
//! use persist_core::{persist, Key, Keyring, MemoryBackend, Store, StoreConfig};
//!
//! #[persist(nested)]
//! #[derive(Clone, Debug, PartialEq)]
//! pub enum Side { Buy, Sell }
//!
//! #[persist(nested)]
//! #[derive(Clone, Debug, PartialEq)]
//! pub struct Position { pub ticket: u64, pub entry: f64, pub side: Side, pub note: Option<String> }
//!
//! #[persist(name = "book", version = 1)]
//! pub struct Book { pub positions: Vec<Position>, pub limit: u16 }
//!
//! let key = Key::from_bytes(b"an example key of at least 32 bytes".to_vec()).unwrap();
//! let store = Store::new(Box::new(MemoryBackend::new()), Keyring::new(key), StoreConfig::default());
//! let position = Position { ticket: 7, entry: 1.25, side: Side::Sell, note: Some("hedge".into()) };
//! store.save(&Book { positions: vec![position.clone()], limit: 3 }).unwrap();
//!
//! let view = store.open::<Book>().unwrap();     // derefs to &ArchivedBook
//! assert_eq!(view.limit.to_native(), 3u16);     // Archived<u16> -> u16
//! assert_eq!(view.limit, Archived::<u16>::from_native(3));
//! assert_eq!(view.limit, 3);                    // or compared with a native value
//!
//! let first = &view.positions[0];               // &ArchivedPosition
//! assert_eq!(view.positions.len(), 1);
//! assert_eq!(first.ticket.to_native(), 7u64);
//! assert_eq!(first.entry.to_native(), 1.25f64);
//! assert!(matches!(first.side, ArchivedSide::Sell));
//! assert_eq!(first.note.as_ref().map(|n| n.as_str()), Some("hedge"));
//!
//! // A native copy of one part, without loading the whole state.
//! let native: Position = rkyv::deserialize::<Position, rkyv::rancor::Error>(first).unwrap();
//! assert_eq!(native, position);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Every module is private; each public item has one path: the crate root, or `format` for the
// storage format's functions and constants, `codec` for rkyv helpers, `layout` for layout
// descriptors (what `#[persist]` generates).
mod backend;
mod check;
mod checkpoint;
pub mod codec;
mod delta;
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
pub mod recovery_log;
mod reject;
mod report;
mod retention;
mod retention_plan;
mod save;
mod schema;
mod snapshot;
mod store;
mod view;

// `#[persist]` expands to `::persist_core::…` paths; this lets persist-core use it too.
extern crate self as persist_core;

pub use rkyv;

pub use persist_derive::{Persist, persist};

#[doc(hidden)]
pub use layout::derive_support as __private;

pub use backend::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};
pub use check::{Checked, Schema};
pub use checkpoint::{
    CheckpointError, CheckpointStatus, Checkpointer, SavePolicy, SetStatus, SnapshotBatch,
};
pub use delta::{ChunkSizes, DeltaPolicy};
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
pub use retention_plan::{PlanEntry, RetentionPolicy, RetentionReason, keep_bases, plan_retention};
pub use save::SaveReceipt;
pub use schema::{Fingerprint, RkyvFormat};
pub use snapshot::{
    MemberOutcome, MemberReceipt, MemberReport, RestoredSnapshot, Snapshot, SnapshotError,
    SnapshotInfo, SnapshotMember, SnapshotReceipt, SnapshotReport, SnapshotSpec,
    SnapshotSpecBuilder, SnapshotWriter, SpecError,
};
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
    pub use crate::envelope::chunked::{
        CHUNKED_FORMAT, CHUNKED_HEADER_LEN, ChunkHeader, Chunks, DOMAIN_V3, ENTRY_LEN, Entry,
        LITERAL, MAX_DEPTH, encode_table, envelope_len, tag as chunked_tag,
    };
    pub use crate::envelope::{
        CHUNK_LEN, ChunkedOpened, DOMAIN, DOMAIN_V1, FORMAT_VERSION, HEAD_LEN, HEADER_LEN, MAGIC,
        MAX_NAME_LEN, NEWEST_FORMAT_VERSION, OLDEST_FORMAT_VERSION, PARALLEL_MIN_LEN, Sealed,
        TAG_LEN, check_head, is_delta_unverified, is_readable_format, open, open_sealed, open_with,
        seal, tag, validate_name,
    };
    pub use crate::generation::{
        GENERATION_EXT, MAX_SEQUENCE, fetch, generation_key, parse_generation_key,
    };
    pub use crate::snapshot::{MANIFEST_PREFIX, snapshot_members};
}
