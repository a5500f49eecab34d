//! One object being written to S3: buffered and sent with a single create-only `PUT` when
//! small; streamed as a multipart upload to its final key and completed create-only (see
//! [`crate::complete`]) when large.

use std::sync::Arc;

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, PutPayload};
use persist_core::{BackendError, NewObject};
use tokio::task::JoinSet;

use crate::client::Client;
use crate::complete::{CompleteError, complete_create};

/// Parts uploading at once per object (as `WriteMultipart::wait_for_capacity(4)`): enough to
/// keep a connection busy while the next part fills, and at most this many parts in memory.
const MAX_PARTS_IN_FLIGHT: usize = 4;

/// Part uploads in flight, each answering with its index.
type InFlight = JoinSet<(usize, object_store::Result<PartId>)>;

/// An object being written; see the crate docs for the protocol.
///
/// Every byte is copied once, from the caller's slice into `buffer`; parts leave as views of
/// that buffer (`Bytes`), never copied again.
pub(crate) struct S3NewObject<'a> {
    client: &'a Client,
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
    in_flight: InFlight,
    /// Finished parts with their indexes, in completion order.
    done: Vec<(usize, PartId)>,
}

impl<'a> S3NewObject<'a> {
    pub(crate) fn new(client: &'a Client, key: &str) -> Self {
        S3NewObject {
            client,
            key: key.to_string(),
            buffer: Vec::new(),
            multipart: None,
        }
    }

    /// Starts the multipart upload and sends the full parts of what was buffered so far.
    fn start_multipart(&mut self) -> Result<(), BackendError> {
        let path = self.client.path_of(&self.key)?;
        let store = Arc::clone(&self.client.store);
        let p = path.clone();
        let id = self
            .client
            .run(async move { store.create_multipart(&p).await })?
            .map_err(|e| self.client.map(&self.key, e))?;
        tracing::debug!(key = %self.key, "multipart upload started");
        self.multipart = Some(Multipart {
            path,
            id,
            next_part: 0,
            in_flight: JoinSet::new(),
            done: Vec::new(),
        });
        let part_size = self.client.part_size;
        let mut held = Bytes::from(std::mem::take(&mut self.buffer));
        while held.len() >= part_size {
            let part = held.split_to(part_size);
            self.send_part(part)?;
        }
        self.buffer = Vec::with_capacity(part_size);
        self.buffer.extend_from_slice(&held);
        Ok(())
    }

    /// Uploads one part in the background, first waiting while the maximum is in flight (for
    /// whichever part finishes first, as `WriteMultipart` does, so one slow part does not hold
    /// back the others).
    fn send_part(&mut self, part: Bytes) -> Result<(), BackendError> {
        let client = self.client;
        let mp = self.multipart.as_mut().expect("multipart in progress");
        while mp.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            wait_any(client, &self.key, mp)?;
        }
        let store = Arc::clone(&client.store);
        let (path, id, idx) = (mp.path.clone(), mp.id.clone(), mp.next_part);
        mp.next_part += 1;
        let payload = PutPayload::from(part);
        mp.in_flight.spawn_on(
            async move { (idx, store.put_part(&path, &id, idx, payload).await) },
            client.runtime.handle(),
        );
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
                abort(self.client, mp);
            }
            return Err(e);
        }
        let mut mp = self.multipart.take().expect("multipart in progress");
        while !mp.in_flight.is_empty() {
            if let Err(e) = wait_any(self.client, &self.key, &mut mp) {
                abort(self.client, mp);
                return Err(e);
            }
        }
        mp.done.sort_by_key(|(idx, _)| *idx);
        let client = self.client;
        let (store, http) = (Arc::clone(&client.store), client.http.clone());
        let (region, bucket_url) = (client.region.clone(), client.bucket_url.clone());
        let parts: Vec<PartId> = std::mem::take(&mut mp.done)
            .into_iter()
            .map(|(_, part)| part)
            .collect();
        let (path, id) = (mp.path.clone(), mp.id.clone());
        let completed = client.run(async move {
            complete_create(&store, &http, &region, &bucket_url, &path, &id, &parts).await
        })?;
        match completed {
            Ok(()) => Ok(()),
            Err(e) => {
                abort(client, mp);
                let location = client.location.clone();
                Err(match e {
                    CompleteError::AlreadyExists => BackendError::AlreadyExists {
                        location,
                        key: self.key.clone(),
                    },
                    CompleteError::Denied(source) => {
                        BackendError::AccessDenied { location, source }
                    }
                    CompleteError::Other(source) => BackendError::Other { location, source },
                })
            }
        }
    }
}

impl NewObject for S3NewObject<'_> {
    fn write(&mut self, mut bytes: &[u8]) -> Result<(), BackendError> {
        if self.multipart.is_none() {
            if self.buffer.len() + bytes.len() <= self.client.multipart_threshold {
                self.buffer.extend_from_slice(bytes);
                return Ok(());
            }
            self.start_multipart()?;
        }
        let part_size = self.client.part_size;
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
            return self.client.put_create(&self.key, bytes);
        }
        self.finish_multipart()
    }
}

impl Drop for S3NewObject<'_> {
    fn drop(&mut self) {
        if let Some(mp) = self.multipart.take() {
            tracing::debug!(key = %self.key, "multipart upload dropped before commit: aborting");
            abort(self.client, mp);
        }
    }
}

/// Aborts a multipart upload and its parts in flight, so nothing of it remains.
fn abort(client: &Client, mp: Multipart) {
    let Multipart {
        path,
        id,
        mut in_flight,
        ..
    } = mp;
    in_flight.abort_all();
    let store = Arc::clone(&client.store);
    let p = path.clone();
    let result = client.run(async move {
        while in_flight.join_next().await.is_some() {}
        store.abort_multipart(&p, &id).await
    });
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(%path, error = %e, "aborting a multipart upload failed"),
        Err(e) => tracing::warn!(%path, error = %e, "aborting a multipart upload failed"),
    }
}

/// Waits for the first of the parts in flight to finish and records it.
fn wait_any(client: &Client, key: &str, mp: &mut Multipart) -> Result<(), BackendError> {
    let mut parts = std::mem::take(&mut mp.in_flight);
    // The set goes to the runtime and comes back; if the runtime is shutting down it is
    // dropped there, which cancels its uploads.
    let (parts, first) = client.run(async move {
        let first = parts.join_next().await;
        (parts, first)
    })?;
    mp.in_flight = parts;
    match first {
        None => Ok(()),
        Some(Ok((idx, Ok(part)))) => {
            mp.done.push((idx, part));
            Ok(())
        }
        Some(Ok((_, Err(e)))) => Err(client.map(key, e)),
        Some(Err(join)) => Err(BackendError::Other {
            location: client.location.clone(),
            source: Box::new(join),
        }),
    }
}
