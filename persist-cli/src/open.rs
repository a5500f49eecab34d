//! Opening a store for the read-only commands (`list`, `verify`): a directory, an
//! `s3://bucket/prefix` URL (configured from the standard `AWS_*` environment), or a
//! `postgres://user@host:port/database` URL (the password from `PGPASSWORD`).

use std::path::Path;

use persist_core::{Backend, Key, Keyring, Store, StoreConfig};
use persist_fs::FsBackend;
pub use persist_postgres::Migrate;
use persist_postgres::{PgBackend, PgConfig};
use persist_s3::{S3Backend, S3BackendBuilder, S3Url, ThreadPriority};

use crate::error::CliError;

/// Opens the store in `dir` read-only (no lock, so it works beside a live writer) with `key`.
/// An `s3://…` path opens the bucket and prefix instead.
pub fn read_only(dir: &Path, key: Key) -> Result<Store, CliError> {
    if let Some(url) = remote_url(dir) {
        return Ok(Store::new(
            remote(url, Migrate::Check)?,
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

/// The path as a remote location (`s3://` or `postgres://`), if it is one.
pub fn remote_url(path: &Path) -> Option<&str> {
    s3_url(path).or_else(|| path.to_str().filter(|s| is_postgres(s)))
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The backend of a remote location: an S3 bucket and prefix, or a PostgreSQL database (its
/// table layout migrated up with [`Migrate::Apply`], checked with [`Migrate::Check`]).
pub fn remote(url: &str, migrate: Migrate) -> Result<Box<dyn Backend>, CliError> {
    if is_postgres(url) {
        return Ok(Box::new(postgres(url, migrate)?));
    }
    Ok(Box::new(s3(url)?))
}

/// The configuration of a `postgres://` URL from the command line: refused if it holds a
/// password (use `PGPASSWORD`).
pub fn postgres_config(url: &str) -> Result<PgConfig, CliError> {
    let config = PgConfig::from_url(url).map_err(CliError::Postgres)?;
    if config.has_password() {
        return Err(CliError::PasswordInUrl {
            url: persist_postgres::redact_url(url),
        });
    }
    PgConfig::from_url_and_env(url).map_err(CliError::Postgres)
}

/// A PostgreSQL backend for a `postgres://` URL from the command line.
pub fn postgres(url: &str, migrate: Migrate) -> Result<PgBackend, CliError> {
    PgBackend::connect(postgres_config(url)?, migrate).map_err(CliError::Postgres)
}

/// The off-site copy of `persist demo --off-site URL`: a PostgreSQL database (tables created if
/// missing) or an S3 bucket and prefix whose backend threads run at `priority`.
pub fn off_site(url: &str, priority: ThreadPriority) -> Result<Box<dyn Backend>, CliError> {
    if is_postgres(url) {
        return Ok(Box::new(postgres(url, Migrate::Apply)?));
    }
    Ok(Box::new(s3_at(url, priority)?))
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
