//! Opening a store for the read-only commands (`list`, `verify`): a directory, or an
//! `s3://bucket/prefix` URL (configured from the standard `AWS_*` environment).

use std::path::Path;

use persist_core::{Key, Keyring, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_s3::{S3Backend, S3BackendBuilder, S3Url, ThreadPriority};

use crate::error::CliError;

/// Opens the store in `dir` read-only (no lock, so it works beside a live writer) with `key`.
/// An `s3://…` path opens the bucket and prefix instead.
pub fn read_only(dir: &Path, key: Key) -> Result<Store, CliError> {
    if let Some(url) = s3_url(dir) {
        return Ok(Store::new(
            Box::new(s3(url)?),
            Keyring::new(key),
            StoreConfig::default(),
        ));
    }
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

/// The path as an S3 URL, if it is one.
pub fn s3_url(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| S3Url::is_s3(s))
}

/// An S3 backend for `s3://bucket[/prefix]`, configured from the standard `AWS_*` environment
/// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ALLOW_HTTP`).
pub fn s3(url: &str) -> Result<S3Backend, CliError> {
    s3_at(url, ThreadPriority::Normal)
}

/// [`s3`] with the backend's own threads at `priority`: [`ThreadPriority::Idle`] for a backend
/// that only a background replicator uses, never for one a command waits on.
pub fn s3_at(url: &str, priority: ThreadPriority) -> Result<S3Backend, CliError> {
    let err = |source| CliError::S3Config {
        url: url.to_string(),
        source,
    };
    S3BackendBuilder::from_env()
        .url(url)
        .map_err(err)?
        .thread_priority(priority)
        .build()
        .map_err(err)
}
