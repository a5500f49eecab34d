//! One object being written to S3: buffered and sent with a single create-only `PUT` when
//! small; streamed as a multipart upload to its final key and completed create-only (see
//! [`crate::complete`]) when large.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, PutPayload};
use persist_core::backend::{BackendError, NewObject};
use tokio::task::JoinHandle;

use crate::backend::S3Backend;
use crate::complete::{CompleteError, complete_create};

/// Parts uploading at once per object; more would only buffer more memory.
const MAX_PARTS_IN_FLIGHT: usize = 4;

type PartTask = JoinHandle<object_store::Result<PartId>>;

/// An object being written; see the crate docs for the protocol.
pub(crate) struct S3NewObject<'a> {
    backend: &'a S3Backend,
    key: String,
    buffer: BytesMut,
    multipart: Option<Multipart>,
}

/// A multipart upload in progress: invisible until completed.
struct Multipart {
    path: Path,
    id: MultipartId,
    next_part: usize,
    in_flight: VecDeque<PartTask>,
    done: Vec<PartId>,
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
        let path = self.backend.path_of(&self.key)?;
        let store = Arc::clone(&self.backend.store);
        let p = path.clone();
        let id = self
            .backend
            .run(async move { store.create_multipart(&p).await })?
            .map_err(|e| self.backend.map(&self.key, e))?;
        tracing::debug!(key = %self.key, "multipart upload started");
        self.multipart = Some(Multipart {
            path,
            id,
            next_part: 0,
            in_flight: VecDeque::new(),
            done: Vec::new(),
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
            let part = PutPayload::from(self.buffer.split_to(take).freeze());
            let store = Arc::clone(&self.backend.store);
            let (path, id, idx) = (mp.path.clone(), mp.id.clone(), mp.next_part);
            mp.next_part += 1;
            let task = self
                .backend
                .runtime
                .handle()
                .spawn(async move { store.put_part(&path, &id, idx, part).await });
            mp.in_flight.push_back(task);
            while mp.in_flight.len() > MAX_PARTS_IN_FLIGHT {
                let oldest = mp.in_flight.pop_front().expect("non-empty");
                mp.done.push(wait_part(self.backend, &self.key, oldest)?);
            }
        }
        Ok(())
    }

    fn finish_multipart(&mut self) -> Result<(), BackendError> {
        if let Err(e) = self.send_parts(true) {
            if let Some(mp) = self.multipart.take() {
                abort(self.backend, mp);
            }
            return Err(e);
        }
        let mut mp = self.multipart.take().expect("multipart in progress");
        while let Some(part) = mp.in_flight.pop_front() {
            match wait_part(self.backend, &self.key, part) {
                Ok(id) => mp.done.push(id),
                Err(e) => {
                    abort(self.backend, mp);
                    return Err(e);
                }
            }
        }
        let backend = self.backend;
        let (store, http) = (Arc::clone(&backend.store), backend.http.clone());
        let (region, bucket_url) = (backend.region.clone(), backend.bucket_url.clone());
        let (path, id, parts) = (mp.path.clone(), mp.id.clone(), std::mem::take(&mut mp.done));
        let completed = backend.run(async move {
            complete_create(&store, &http, &region, &bucket_url, &path, &id, &parts).await
        })?;
        match completed {
            Ok(()) => Ok(()),
            Err(e) => {
                abort(backend, mp);
                let location = backend.location_string();
                Err(match e {
                    CompleteError::AlreadyExists => BackendError::AlreadyExists {
                        location,
                        key: self.key.clone(),
                    },
                    CompleteError::Denied(message) => BackendError::AccessDenied {
                        location,
                        message: format!("{}: {message}", self.key),
                    },
                    CompleteError::Other(message) => BackendError::Other {
                        location,
                        message: format!("{}: {message}", self.key),
                    },
                })
            }
        }
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
        self.finish_multipart()
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
        path,
        id,
        in_flight,
        ..
    } = mp;
    for part in &in_flight {
        part.abort();
    }
    let store = Arc::clone(&backend.store);
    let p = path.clone();
    let result = backend.run(async move {
        for part in in_flight {
            let _ = part.await;
        }
        store.abort_multipart(&p, &id).await
    });
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(%path, error = %e, "aborting a multipart upload failed"),
        Err(e) => tracing::warn!(%path, error = %e, "aborting a multipart upload failed"),
    }
}

fn wait_part(backend: &S3Backend, key: &str, part: PartTask) -> Result<PartId, BackendError> {
    match backend.run(part)? {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(e)) => Err(backend.map(key, e)),
        Err(join) => Err(BackendError::Other {
            location: backend.location_string(),
            message: format!("{key}: part upload task failed: {join}"),
        }),
    }
}
