//! [`S3Backend`]: the [`Backend`] trait over S3-compatible object storage.

use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use persist_core::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};

use crate::client::Client;
use crate::upload::S3NewObject;

/// A store's generations in an S3 bucket under a key prefix. See the crate docs for how each
/// guarantee of [`Backend`] is met.
#[derive(Debug, Clone)]
pub struct S3Backend {
    client: Client,
}

impl S3Backend {
    pub(crate) fn new(client: Client) -> Self {
        S3Backend { client }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.client.bucket
    }

    /// The underlying `object_store` client, for tools and tests that need the raw API.
    pub fn object_store(&self) -> Arc<AmazonS3> {
        Arc::clone(&self.client.store)
    }

    /// The full object path of a backend key (the prefix joined with the key).
    pub fn path_of(&self, key: &str) -> Result<Path, BackendError> {
        self.client.path_of(key)
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.client.location.clone()
    }

    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        // Validate the key now, so a bad key fails before any byte is buffered.
        self.path_of(key)?;
        Ok(Box::new(S3NewObject::new(&self.client, key)))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let path = self.path_of(key)?;
        let store = Arc::clone(&self.client.store);
        let bytes = self.client.run(async move {
            let result = store.get(&path).await?;
            result.bytes().await
        })?;
        bytes
            .map(|b| ObjectBytes::copy_from(&b))
            .map_err(|e| self.client.map(key, e))
    }

    /// One ranged GET for the first `len` bytes; the response carries the object's size.
    fn get_head(&self, key: &str, len: usize) -> Result<ObjectHead, BackendError> {
        let path = self.path_of(key)?;
        let store = Arc::clone(&self.client.store);
        let end = len.max(1) as u64;
        let result = self.client.run(async move {
            let options = object_store::GetOptions {
                range: Some(object_store::GetRange::Bounded(0..end)),
                ..Default::default()
            };
            let result = store.get_opts(&path, options).await?;
            let size = result.meta.size;
            result.bytes().await.map(|b| (b, size))
        })?;
        match result {
            Ok((bytes, size)) => Ok(ObjectHead::new(
                bytes[..len.min(bytes.len())].to_vec(),
                size,
            )),
            // A range an empty object cannot satisfy: read it whole (it is empty).
            Err(e @ object_store::Error::NotFound { .. }) => Err(self.client.map(key, e)),
            Err(_) => {
                let bytes = self.get(key)?;
                Ok(ObjectHead::new(
                    bytes[..len.min(bytes.len())].to_vec(),
                    bytes.len() as u64,
                ))
            }
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        let dir = prefix.trim_end_matches('/');
        let list_path = if dir.is_empty() {
            self.client.prefix.clone()
        } else {
            Some(self.path_of(dir)?)
        };
        let store = Arc::clone(&self.client.store);
        let listed = self
            .client
            .run(async move { store.list(list_path.as_ref()).try_collect::<Vec<_>>().await })?;
        let listed = listed.map_err(|e| self.client.map(prefix, e))?;
        let mut out: Vec<ObjectMeta> = listed
            .into_iter()
            .filter_map(|m| {
                let key = self.client.strip_prefix(m.location.as_ref())?;
                key.starts_with(prefix)
                    .then(|| ObjectMeta::new(key, m.size))
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        // S3 deletes a missing key successfully; the contract wants NotFound, so look first.
        let path = self.path_of(key)?;
        let store = Arc::clone(&self.client.store);
        self.client
            .run(async move {
                store.head(&path).await?;
                store.delete(&path).await
            })?
            .map_err(|e| self.client.map(key, e))
    }
}
