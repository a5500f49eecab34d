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
//! - **Large generations** go up as a multipart upload, 8 MiB parts, four in flight. The public
//!   `object_store` multipart API completes in overwrite mode, so it never targets the final
//!   key: the parts go to a unique staging key `<prefix>/.staging/<key>.<random>`; once that
//!   upload completed, the object is published with `copy_if_not_exists` configured as
//!   [`S3CopyIfNotExists::Multipart`](object_store::aws::S3CopyIfNotExists::Multipart): a
//!   one-part server-side `UploadPartCopy` whose `CompleteMultipartUpload` carries
//!   `If-None-Match: *`. So the final key appears atomically, complete, and only if it did not
//!   exist; the staging object is then deleted. The cost is one server-side copy (no network
//!   transfer from the client).
//! - **All or nothing / no litter.** Until `commit`, nothing is visible: a small object is
//!   still in memory; an uncompleted multipart upload is invisible in S3 and is aborted when
//!   the [`NewObject`](persist_core::NewObject) is dropped or any part fails. Residual risk: if
//!   the process dies between completing the staging upload and deleting it, a staging object
//!   remains under `.staging/` (never listed, never a generation); a bucket lifecycle rule on
//!   that prefix, or on incomplete multipart uploads, reclaims such leftovers.
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
//! # Configuration
//!
//! [`S3BackendBuilder::from_env`] reads the standard `AWS_*` variables; `url`, `endpoint`,
//! `credentials`, `allow_http`, `path_style` and the size settings override them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod config;
mod error;
mod replicate;
pub mod retention;
mod runtime;
mod shared;
pub mod testing;
mod upload;

pub use backend::{S3Backend, STAGING_DIR};
pub use config::{DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, S3BackendBuilder, S3Url};
pub use error::S3Error;
pub use replicate::{PassReport, ReplicationStatus, Replicator, ReplicatorConfig, replicate_once};
pub use shared::SharedBackend;
