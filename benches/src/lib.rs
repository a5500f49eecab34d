//! Benchmark support for persist: the states measured and the floors they are compared with.
//!
//! The criterion benches in `benches/store.rs` put each store operation beside its floor in one
//! group, on the same bytes:
//!
//! - [`floor::ProtocolFloor`]: the durable-write protocol in plain `std::fs` (write a temp file,
//!   `fsync`, rename, `fsync` the directory, delete old files), the least any crash-safe save of
//!   those bytes can cost;
//! - [`floor::tag_floor`]: the envelope's tag alone, recomputed over bytes already in memory as
//!   a load does, the least any verified load can cost ([`floor::hmac_sha256`], the flat
//!   single-pass HMAC of envelope format 1, is measured beside it for reference).
//!
//! The states are [`agent::EntryAgentState`] (a 4 KB Q-table, the small state of the spec's
//! rapid-save test) and [`replay::ReplayBuffer`] (the spec's experience replay buffer, 200 MB at
//! two million experiences). Both are `#[persist(...)]` states.

pub mod agent;
pub mod floor;
pub mod replay;
pub mod report;
pub mod workload;

use std::path::Path;

use persist_core::{Key, Keyring, Store, StoreConfig};
use persist_fs::{FsBackend, FsError};

/// The benches' signing key secret (a constant: never do this in a program).
pub const BENCH_SECRET: &[u8; 32] = b"persist bench key, 32 bytes long";

/// A key ring holding [`BENCH_SECRET`].
pub fn bench_keyring() -> Keyring {
    Keyring::new(Key::from_bytes(BENCH_SECRET.to_vec()).expect("32 bytes is long enough"))
}

/// A store over a filesystem backend at `dir`, signing with [`bench_keyring`].
pub fn open_store(dir: &Path, config: StoreConfig) -> Result<Store, FsError> {
    Ok(Store::new(
        Box::new(FsBackend::open(dir)?),
        bench_keyring(),
        config,
    ))
}
