//! PostgreSQL backend for persist: signed generations as rows of a versioned table, their
//! bytes large objects streamed in and out, behind the same [`persist_core::Backend`] trait as
//! the filesystem and S3, so signing, recovery, snapshots, deltas and retention work unchanged.
//!
//! ```no_run
//! use persist_postgres::{Migrate, PgBackend, PgConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PgConfig::from_url("postgres://agent:secret@127.0.0.1:5432/state")?;
//! let backend = PgBackend::connect(config, Migrate::Apply)?;
//! let store = persist_core::Store::new(
//!     Box::new(backend),
//!     persist_core::Keyring::new(persist_core::Key::generate()?),
//!     persist_core::StoreConfig::default(),
//! );
//! # Ok(()) }
//! ```
//!
//! **Client.** The synchronous `postgres` crate (rust-postgres): the backend trait is
//! synchronous, and the crate is the maintained, widely used client; it runs its own small
//! tokio runtime inside, so a program needs none.
//!
//! **Bytes: large objects, not `bytea`.** A generation is written by several `write` calls whose
//! total is not known in advance, and may be hundreds of megabytes: a large object takes the
//! bytes as they come (`lowrite`) inside the transaction that inserts the row, and is read back
//! 1 MiB at a time (`loread`); a `bytea` value would have to be assembled whole on both sides.
//!
//! The layout of the tables is versioned ([`LAYOUT_VERSION`], [`status`], [`migrate`],
//! [`down`]); see `layout.rs`.

mod backend;
mod config;
mod layout;

pub use backend::{Migrate, PgBackend};
pub use config::{PgConfig, PgError, redact_url};
pub use layout::{LAYOUT_VERSION, LayoutStatus, down, migrate, status};
