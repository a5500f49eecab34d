//! Opening a store directory for the read-only commands (`list`, `verify`).

use std::path::Path;

use persist_core::{Key, Keyring, Store, StoreConfig};
use persist_fs::FsBackend;

use crate::error::CliError;

/// Opens the store in `dir` read-only (no lock, so it works beside a live writer) with `key`.
pub fn read_only(dir: &Path, key: Key) -> Result<Store, CliError> {
    let backend = FsBackend::open_read_only(dir).map_err(|source| CliError::OpenStore {
        path: dir.to_path_buf(),
        source,
    })?;
    if !dir.is_dir() {
        return Err(CliError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    Ok(Store::new(
        Box::new(backend),
        Keyring::new(key),
        StoreConfig::default(),
    ))
}

/// A hint for a directory that holds no states but looks like the demo's directory, whose
/// store is its `state` subdirectory.
pub fn empty_store_hint(dir: &Path) -> Option<String> {
    let sub = dir.join("state");
    sub.is_dir()
        .then(|| format!("did you mean {}?", sub.display()))
}
