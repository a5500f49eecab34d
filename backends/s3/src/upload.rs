//! One object being written to S3: buffered and sent with a single create-only `PUT` when
//! small; streamed as a multipart upload to a staging key, then published with a create-only
//! copy, when large.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use persist_core::backend::{BackendError, NewObject};
use tokio::task::JoinHandle;

use crate::backend::{S3Backend, STAGING_DIR};

/// Parts uploading at once per object; more would only buffer more memory.
const MAX_PARTS_IN_FLIGHT: usize = 4;

/// An object being written; see the crate docs for the protocol.
pub(crate) struct S3NewObject<'a> {
    backend: &'a S3Backend,
    key: String,
    buffer: BytesMut,
    multipart: Option<Multipart>,
}

/// A multipart upload in progress to a staging key.
struct Multipart {
    staging: Path,
    upload: Box<dyn MultipartUpload>,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
}

impl<'a> S3NewObject<'a> {
    pub(crate) fn new(backend: &'a S3Backend, key: &str) -> Self {
        S3NewObject {
            backend,
            key: key.to_string(),
            buffer: BytesMut::new(),
            multipart: None,
        }
    }

    fn start_multipart(&mut self) -> Result<(), BackendError> {
        let staging = self.backend.path_of(&staging_key(&self.key)?)?;
        let store = Arc::clone(&self.backend.store);
        let path = staging.clone();
        let upload = self
            .backend
            .run(async move { store.put_multipart(&path).await })?
            .map_err(|e| self.backend.map(&self.key, e))?;
        tracing::debug!(key = %self.key, staging = %staging, "multipart upload started");
        self.multipart = Some(Multipart {
            staging,
            upload,
            in_flight: VecDeque::new(),
        });
        Ok(())
    }

    /// Sends every full part in the buffer (and the rest too when `last`).
    fn send_parts(&mut self, last: bool) -> Result<(), BackendError> {
        let part_size = self.backend.part_size;
        let Some(mp) = self.multipart.as_mut() else {
            return Ok(());
        };
        while self.buffer.len() >= part_size || (last && !self.buffer.is_empty()) {
            let take = part_size.min(self.buffer.len());
            let part = self.buffer.split_to(take).freeze();
            let future = mp.upload.put_part(PutPayload::from(part));
            mp.in_flight
                .push_back(self.backend.runtime.handle().spawn(future));
            while mp.in_flight.len() > MAX_PARTS_IN_FLIGHT {
                let oldest = mp.in_flight.pop_front().expect("non-empty");
                wait_part(self.backend, &self.key, oldest)?;
            }
        }
        Ok(())
    }

    fn finish_multipart(&mut self) -> Result<Path, BackendError> {
        self.send_parts(true)?;
        let mut mp = self.multipart.take().expect("multipart in progress");
        let mut result = Ok(());
        while let Some(part) = mp.in_flight.pop_front() {
            result = result.and(wait_part(self.backend, &self.key, part));
        }
        if let Err(e) = result {
            abort(self.backend, mp);
            return Err(e);
        }
        let Multipart {
            staging, upload, ..
        } = mp;
        let mut upload = upload;
        let (upload, completed) = self.backend.run(async move {
            let r = upload.complete().await;
            (upload, r)
        })?;
        if let Err(e) = completed {
            abort(
                self.backend,
                Multipart {
                    staging,
                    upload,
                    in_flight: VecDeque::new(),
                },
            );
            return Err(self.backend.map(&self.key, e));
        }
        Ok(staging)
    }
}

impl NewObject for S3NewObject<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.buffer.extend_from_slice(bytes);
        if self.multipart.is_none() && self.buffer.len() > self.backend.multipart_threshold {
            self.start_multipart()?;
        }
        self.send_parts(false)
    }

    fn commit(mut self: Box<Self>) -> Result<(), BackendError> {
        if self.multipart.is_none() {
            let bytes = std::mem::take(&mut self.buffer).to_vec();
            return self.backend.put_create(&self.key, bytes);
        }
        let staging = self.finish_multipart()?;
        self.backend.publish_staged(&staging, &self.key)
    }
}

impl Drop for S3NewObject<'_> {
    fn drop(&mut self) {
        if let Some(mp) = self.multipart.take() {
            tracing::debug!(key = %self.key, "multipart upload dropped before commit: aborting");
            abort(self.backend, mp);
        }
    }
}

/// Aborts a multipart upload and its parts in flight, so nothing of it remains.
fn abort(backend: &S3Backend, mp: Multipart) {
    let Multipart {
        staging,
        mut upload,
        in_flight,
    } = mp;
    for part in &in_flight {
        part.abort();
    }
    let result = backend.run(async move {
        for part in in_flight {
            let _ = part.await;
        }
        upload.abort().await
    });
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(%staging, error = %e, "aborting a multipart upload failed"),
        Err(e) => tracing::warn!(%staging, error = %e, "aborting a multipart upload failed"),
    }
}

fn wait_part(
    backend: &S3Backend,
    key: &str,
    part: JoinHandle<object_store::Result<()>>,
) -> Result<(), BackendError> {
    match backend.run(part)? {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(backend.map(key, e)),
        Err(join) => Err(BackendError::Other {
            location: backend.location_string(),
            message: format!("{key}: part upload task failed: {join}"),
        }),
    }
}

/// A unique staging key for `key`: `.staging/<key with / as ~>.<16 random hex digits>`.
fn staging_key(key: &str) -> Result<String, BackendError> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| BackendError::Other {
        location: String::new(),
        message: format!("no randomness for a staging key: {e}"),
    })?;
    Ok(format!(
        "{STAGING_DIR}/{}.{}",
        key.replace('/', "~"),
        hex::encode(nonce)
    ))
}
