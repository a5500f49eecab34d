//! [`S3Backend`]: the [`Backend`] trait over S3-compatible object storage.

use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::client::HttpClient;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use persist_core::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};

use crate::error::{map_error, shut_down};
use crate::runtime::OwnedRuntime;
use crate::upload::S3NewObject;

/// A store's generations in an S3 bucket under a key prefix. See the crate docs for how each
/// guarantee of [`Backend`] is met.
#[derive(Debug, Clone)]
pub struct S3Backend {
    pub(crate) store: Arc<AmazonS3>,
    pub(crate) runtime: Arc<OwnedRuntime>,
    prefix: Option<Path>,
    bucket: String,
    location: String,
    pub(crate) multipart_threshold: usize,
    pub(crate) part_size: usize,
    /// For the create-only multipart completion (see `complete`).
    pub(crate) http: HttpClient,
    pub(crate) region: String,
    pub(crate) bucket_url: String,
}

/// How an [`S3Backend`] is put together (built by the builder).
pub(crate) struct Parts {
    pub(crate) store: Arc<AmazonS3>,
    pub(crate) runtime: Arc<OwnedRuntime>,
    pub(crate) prefix: Option<Path>,
    pub(crate) bucket: String,
    pub(crate) location: String,
    pub(crate) multipart_threshold: usize,
    pub(crate) part_size: usize,
    pub(crate) http: HttpClient,
    pub(crate) region: String,
    pub(crate) bucket_url: String,
}

impl S3Backend {
    pub(crate) fn from_parts(p: Parts) -> Self {
        S3Backend {
            store: p.store,
            runtime: p.runtime,
            prefix: p.prefix,
            bucket: p.bucket,
            location: p.location,
            multipart_threshold: p.multipart_threshold,
            part_size: p.part_size,
            http: p.http,
            region: p.region,
            bucket_url: p.bucket_url,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The underlying `object_store` client, for tools and tests that need the raw API.
    pub fn object_store(&self) -> Arc<AmazonS3> {
        Arc::clone(&self.store)
    }

    /// The full object path of a backend key (the prefix joined with the key).
    pub fn path_of(&self, key: &str) -> Result<Path, BackendError> {
        let full = match &self.prefix {
            Some(p) => format!("{p}/{key}"),
            None => key.to_string(),
        };
        Path::parse(&full).map_err(|e| BackendError::Other {
            location: self.location.clone(),
            message: format!("invalid key {key:?}: {e}"),
        })
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

    pub(crate) fn location_string(&self) -> String {
        self.location.clone()
    }

    fn strip_prefix<'a>(&self, full: &'a str) -> Option<&'a str> {
        match &self.prefix {
            Some(p) => full.strip_prefix(p.as_ref())?.strip_prefix('/'),
            None => Some(full),
        }
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        // Validate the key now, so a bad key fails before any byte is buffered.
        self.path_of(key)?;
        Ok(Box::new(S3NewObject::new(self, key)))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let path = self.path_of(key)?;
        let store = Arc::clone(&self.store);
        let bytes = self.run(async move {
            let result = store.get(&path).await?;
            result.bytes().await
        })?;
        bytes
            .map(|b| ObjectBytes::copy_from(&b))
            .map_err(|e| self.map(key, e))
    }

    /// One ranged GET for the first `len` bytes; the response carries the object's size.
    fn get_head(&self, key: &str, len: usize) -> Result<ObjectHead, BackendError> {
        let path = self.path_of(key)?;
        let store = Arc::clone(&self.store);
        let end = len.max(1) as u64;
        let result = self.run(async move {
            let options = object_store::GetOptions {
                range: Some(object_store::GetRange::Bounded(0..end)),
                ..Default::default()
            };
            let result = store.get_opts(&path, options).await?;
            let size = result.meta.size;
            result.bytes().await.map(|b| (b, size))
        })?;
        match result {
            Ok((bytes, size)) => Ok(ObjectHead {
                bytes: bytes[..len.min(bytes.len())].to_vec(),
                size,
            }),
            // A range an empty object cannot satisfy: read it whole (it is empty).
            Err(e @ object_store::Error::NotFound { .. }) => Err(self.map(key, e)),
            Err(_) => {
                let bytes = self.get(key)?;
                Ok(ObjectHead {
                    bytes: bytes[..len.min(bytes.len())].to_vec(),
                    size: bytes.len() as u64,
                })
            }
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        let dir = prefix.trim_end_matches('/');
        let list_path = if dir.is_empty() {
            self.prefix.clone()
        } else {
            Some(self.path_of(dir)?)
        };
        let store = Arc::clone(&self.store);
        let listed =
            self.run(async move { store.list(list_path.as_ref()).try_collect::<Vec<_>>().await })?;
        let listed = listed.map_err(|e| self.map(prefix, e))?;
        let mut out: Vec<ObjectMeta> = listed
            .into_iter()
            .filter_map(|m| {
                let key = self.strip_prefix(m.location.as_ref())?;
                key.starts_with(prefix).then(|| ObjectMeta {
                    key: key.to_string(),
                    size: m.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        // S3 deletes a missing key successfully; the contract wants NotFound, so look first.
        let path = self.path_of(key)?;
        let store = Arc::clone(&self.store);
        self.run(async move {
            store.head(&path).await?;
            store.delete(&path).await
        })?
        .map_err(|e| self.map(key, e))
    }
}
