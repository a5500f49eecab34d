//! S3-compatible object storage for persist: an [`S3Backend`] implementing
//! [`persist_core::Backend`] on the `object_store` crate, usable as a store's primary backend
//! or as the off-site copy that a [`Replicator`] fills in the background.
//!
//! # How the backend keeps the `Backend` contract
//!
//! - **Create-only.** A generation up to the multipart threshold (default 8 MiB) is buffered
//!   and sent in one `PUT` with `If-None-Match: *` (`PutMode::Create`); the server answers
//!   `412 Precondition Failed` if the key exists, mapped to
//!   [`BackendError::AlreadyExists`](persist_core::BackendError::AlreadyExists). Concurrent
//!   writers of one key: exactly one wins.
//! - **Large generations** go up as a multipart upload straight to the final key, 8 MiB parts,
//!   four in flight. `object_store` 0.14 completes its public multipart uploads in overwrite
//!   mode (its create-mode completion is private), so this crate sends the
//!   `CompleteMultipartUpload` itself, signed with `object_store`'s public `AwsAuthorizer` and
//!   sent through its HTTP client, with `If-None-Match: *`: the key appears atomically, complete,
//!   and only if it did not exist (412 becomes `AlreadyExists`). No head-check race, and no
//!   server-side copy (an earlier version staged the upload and published it with
//!   `copy_if_not_exists`, which cost a full copy: 2.2x the upload time on moto). The
//!   completion is not retried: after a lost response a retry would find its own object.
//! - **All or nothing / no litter.** Until `commit`, nothing is visible: a small object is
//!   still in memory; an uncompleted multipart upload is invisible in S3 and is aborted when
//!   the [`NewObject`](persist_core::NewObject) is dropped, a part fails, or the completion is
//!   refused. Residual risk: a process killed mid-upload leaves an incomplete multipart upload
//!   (invisible, but stored); a bucket lifecycle rule `AbortIncompleteMultipartUpload`
//!   reclaims it.
//! - **Durable on acknowledgement.** S3 acknowledges a `PUT` or `CompleteMultipartUpload` only
//!   once the object is stored durably.
//! - `delete` of a missing key is `NotFound` (checked with a `HEAD` first, since S3 itself
//!   deletes missing keys successfully).
//!
//! # Synchronous API, asynchronous client
//!
//! The backend owns a small two-thread tokio runtime; every call spawns its request there and
//! waits on a `std` channel. It never calls `block_on`, so it works from plain threads and from
//! inside a tokio runtime without panicking (async callers should still prefer
//! `spawn_blocking`, as for any blocking I/O).
//!
//! # Off-site writing never slows the program down
//!
//! A [`Replicator`] uploads on its own thread; saves never wait for it. Its CPU work yields
//! too: the replicator's thread runs at idle priority by default
//! ([`ReplicatorConfig::priority`]), and so do the runtime threads of a backend built with
//! [`S3BackendBuilder::thread_priority`] (`SCHED_IDLE` and nice 19 per thread on Linux, see
//! [`ThreadPriority`]), so a saving thread always wins the CPU. The upload itself reads the local generation through a
//! memory map and copies each byte once, into the part that carries it.
//!
//! # Configuration
//!
//! [`S3BackendBuilder::from_env`] reads the standard `AWS_*` variables; `url`, `endpoint`,
//! `credentials`, `allow_http`, `path_style` and the size settings override them.
// One reviewed `unsafe` call: `sched_setscheduler` in `priority`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod client;
mod complete;
mod config;
mod error;
mod priority;
mod replicate;
pub mod retention;
mod runtime;
#[cfg(feature = "testing")]
pub mod testing;
mod upload;

pub use backend::S3Backend;
pub use config::{DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, S3BackendBuilder, S3Url};
pub use error::S3Error;
pub use priority::ThreadPriority;
pub use replicate::{
    AutoPrune, PassReport, ReplicationStatus, Replicator, ReplicatorConfig, replicate_once,
};
