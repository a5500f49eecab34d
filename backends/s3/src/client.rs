//! [`Client`]: what every S3 request of a backend needs (the `object_store` client, the
//! backend's runtime, the key prefix and the settings), shared by the [`crate::S3Backend`]
//! and the objects it is writing ([`crate::upload`]), which both import it and not each
//! other.

use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::client::HttpClient;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};
use persist_core::BackendError;

use crate::error::{map_error, shut_down};
use crate::runtime::OwnedRuntime;

/// One bucket and key prefix on one server, with the runtime its requests run on. Built by
/// [`crate::S3BackendBuilder::build`].
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) store: Arc<AmazonS3>,
    pub(crate) runtime: Arc<OwnedRuntime>,
    pub(crate) prefix: Option<Path>,
    pub(crate) bucket: String,
    pub(crate) location: String,
    pub(crate) multipart_threshold: usize,
    pub(crate) part_size: usize,
    /// For the create-only multipart completion (see `complete`).
    pub(crate) http: HttpClient,
    pub(crate) region: String,
    pub(crate) bucket_url: String,
}

impl Client {
    /// The full object path of a backend key (the prefix joined with the key).
    pub(crate) fn path_of(&self, key: &str) -> Result<Path, BackendError> {
        let full = match &self.prefix {
            Some(p) => format!("{p}/{key}"),
            None => key.to_string(),
        };
        Path::parse(&full).map_err(|e| BackendError::Other {
            location: self.location.clone(),
            source: format!("invalid key {key:?}: {e}").into(),
        })
    }

    /// The backend key of a full object path, if it is under the prefix.
    pub(crate) fn strip_prefix<'a>(&self, full: &'a str) -> Option<&'a str> {
        match &self.prefix {
            Some(p) => full.strip_prefix(p.as_ref())?.strip_prefix('/'),
            None => Some(full),
        }
    }

    /// Runs a future on the backend's runtime and waits for it (see the `runtime` module).
    pub(crate) fn run<F>(&self, future: F) -> Result<F::Output, BackendError>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime
            .run(future)
            .ok_or_else(|| shut_down(&self.location))
    }

    /// The backend error for an `object_store` error about `key`.
    pub(crate) fn map(&self, key: &str, e: object_store::Error) -> BackendError {
        map_error(&self.location, key, e)
    }

    /// Writes a small object in one create-only request (`If-None-Match: *`).
    pub(crate) fn put_create(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackendError> {
        let path = self.path_of(key)?;
        let store = Arc::clone(&self.store);
        let payload = PutPayload::from(bytes);
        self.run(async move { store.put_opts(&path, payload, PutMode::Create.into()).await })?
            .map(|_| ())
            .map_err(|e| self.map(key, e))
    }
}
