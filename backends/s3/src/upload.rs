//! One object being written to S3: buffered and sent with a single create-only `PUT` when
//! small; streamed as a multipart upload to its final key and completed create-only (see
//! [`crate::complete`]) when large.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, PutPayload};
use persist_core::backend::{BackendError, NewObject};
use tokio::task::JoinHandle;

use crate::backend::S3Backend;
use crate::complete::{CompleteError, complete_create};

/// Parts uploading at once per object (as `WriteMultipart::wait_for_capacity(4)`): enough to
/// keep a connection busy while the next part fills, and at most this many parts in memory.
const MAX_PARTS_IN_FLIGHT: usize = 4;

type PartTask = JoinHandle<object_store::Result<PartId>>;

/// An object being written; see the crate docs for the protocol.
///
/// Every byte is copied once, from the caller's slice into `buffer`; parts leave as views of
/// that buffer (`Bytes`), never copied again.
pub(crate) struct S3NewObject<'a> {
    backend: &'a S3Backend,
    key: String,
    /// The whole object while it is small; once multipart, the part being filled (allocated
    /// at the part size, so it never grows by reallocation).
    buffer: Vec<u8>,
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
            buffer: Vec::new(),
            multipart: None,
        }
    }

    /// Starts the multipart upload and sends the full parts of what was buffered so far.
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
        let part_size = self.backend.part_size;
        let mut held = Bytes::from(std::mem::take(&mut self.buffer));
        while held.len() >= part_size {
            let part = held.split_to(part_size);
            self.send_part(part)?;
        }
        self.buffer = Vec::with_capacity(part_size);
        self.buffer.extend_from_slice(&held);
        Ok(())
    }

    /// Uploads one part in the background, first waiting while the maximum is in flight.
    fn send_part(&mut self, part: Bytes) -> Result<(), BackendError> {
        let backend = self.backend;
        let mp = self.multipart.as_mut().expect("multipart in progress");
        while mp.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            let oldest = mp.in_flight.pop_front().expect("non-empty");
            mp.done.push(wait_part(backend, &self.key, oldest)?);
        }
        let store = Arc::clone(&backend.store);
        let (path, id, idx) = (mp.path.clone(), mp.id.clone(), mp.next_part);
        mp.next_part += 1;
        let payload = PutPayload::from(part);
        let task = backend
            .runtime
            .handle()
            .spawn(async move { store.put_part(&path, &id, idx, payload).await });
        mp.in_flight.push_back(task);
        Ok(())
    }

    fn finish_multipart(&mut self) -> Result<(), BackendError> {
        let last = std::mem::take(&mut self.buffer);
        let sent = if last.is_empty() {
            Ok(())
        } else {
            self.send_part(Bytes::from(last))
        };
        if let Err(e) = sent {
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
    fn write(&mut self, mut bytes: &[u8]) -> Result<(), BackendError> {
        if self.multipart.is_none() {
            if self.buffer.len() + bytes.len() <= self.backend.multipart_threshold {
                self.buffer.extend_from_slice(bytes);
                return Ok(());
            }
            self.start_multipart()?;
        }
        let part_size = self.backend.part_size;
        while !bytes.is_empty() {
            let take = (part_size - self.buffer.len()).min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            self.buffer.extend_from_slice(now);
            bytes = rest;
            if self.buffer.len() == part_size {
                let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(part_size));
                self.send_part(Bytes::from(full))?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), BackendError> {
        if self.multipart.is_none() {
            let bytes = std::mem::take(&mut self.buffer);
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
