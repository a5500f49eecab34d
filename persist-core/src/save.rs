//! Saving: sequence allocation, the free-space pre-check, sealing and signing, then retention.

use std::time::{SystemTime, UNIX_EPOCH};

use rkyv::util::AlignedVec;

use crate::backend::BackendError;
use crate::check::{Schema, check_stored};
use crate::delta::write::ChunkedWrite;
use crate::encoded::Encoded;
use crate::envelope::{self, EnvelopeError, HEADER_LEN, Header, TAG_LEN};
use crate::error::SaveError;
use crate::generation::{Listing, MAX_SEQUENCE, generation_key};
use crate::persist::Persist;
use crate::retention::{self, Class};
use crate::schema::{Fingerprint, RkyvFormat};
use crate::store::{StateBook, Store};

/// A successful save.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SaveReceipt {
    /// The sequence number of the new generation.
    pub sequence: u64,
    /// Its size in bytes (for a delta: what was written, not the payload it stands for).
    pub bytes: u64,
    /// The payload's length in bytes.
    pub payload_len: u64,
    /// For a delta, its base generation (the chain's previous link); `None` for a whole or
    /// full generation.
    pub base: Option<u64>,
    /// Its tag (the last 32 bytes): what a snapshot manifest records of it.
    pub tag: [u8; TAG_LEN],
    /// Generations deleted by retention.
    pub deleted: Vec<u64>,
    /// A retention failure, if any: the save itself is durable and stands.
    pub retention_error: Option<String>,
}

/// A generation made durable by [`Store::commit_generation`].
pub(crate) struct Committed {
    pub(crate) sequence: u64,
    pub(crate) bytes: u64,
    /// A delta's base.
    pub(crate) base: Option<u64>,
    pub(crate) tag: [u8; TAG_LEN],
    pub(crate) header: Header,
}

impl Store {
    /// Saves `value` as a new generation and applies retention. Returns once the generation is
    /// durable.
    ///
    /// With [`StoreConfig::deltas`](crate::StoreConfig::deltas), a large value is encoded into
    /// the buffer of the save before last (no fresh pages to fault in) and written as a delta
    /// when the policy allows.
    pub fn save<T: Persist>(&self, value: &T) -> Result<SaveReceipt, SaveError> {
        self.save_value(value, false)
    }

    /// Saves `value` as a full generation, never a delta: it starts a new chain (the
    /// [`SavePolicy::full_every`](crate::SavePolicy::full_every) of a checkpointer does this).
    /// Without [`StoreConfig::deltas`](crate::StoreConfig::deltas) it is [`Store::save`].
    pub fn save_full<T: Persist>(&self, value: &T) -> Result<SaveReceipt, SaveError> {
        self.save_value(value, true)
    }

    fn save_value<T: Persist>(&self, value: &T, full: bool) -> Result<SaveReceipt, SaveError> {
        let Some(_) = self.config.deltas else {
            return self.save_encoded(&Encoded::new(value)?);
        };
        let scratch = {
            let book = self.book(T::NAME);
            let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
            book.scratch.take()
        };
        let payload = match scratch {
            Some(buffer) => value.encode_into(buffer)?,
            None => value.encode()?,
        };
        let schema = Schema::of::<T>();
        self.save_payload(&schema, T::fingerprint(), Payload::Owned(payload), full)
    }

    /// Saves a value serialised earlier (possibly on another thread) as a new generation and
    /// applies retention. Returns once the generation is durable.
    ///
    /// The new generation's sequence number is one above every generation present, valid or not
    /// (whatever occupies a generation's key counts). If its key is taken meanwhile (another
    /// writer, or something odd in the directory), the save takes the next free number.
    pub fn save_encoded(&self, encoded: &Encoded) -> Result<SaveReceipt, SaveError> {
        let payload = Payload::Borrowed(&encoded.payload);
        self.save_payload(&encoded.schema, encoded.fingerprint, payload, false)
    }

    /// [`Store::save_encoded`] taking the value, so a delta store keeps its buffer without a
    /// copy; `full` forces a full generation.
    pub(crate) fn save_encoded_owned(
        &self,
        encoded: Encoded,
        full: bool,
    ) -> Result<SaveReceipt, SaveError> {
        let payload = Payload::Owned(encoded.payload);
        self.save_payload(&encoded.schema, encoded.fingerprint, payload, full)
    }

    fn save_payload(
        &self,
        schema: &Schema,
        fingerprint: Fingerprint,
        payload: Payload<'_>,
        full: bool,
    ) -> Result<SaveReceipt, SaveError> {
        let name = schema.name();
        if name.starts_with(crate::snapshot::MANIFEST_PREFIX) {
            return Err(SaveError::InvalidName(EnvelopeError::InvalidName(format!(
                "{name} (names starting with `{}` are snapshot manifests)",
                crate::snapshot::MANIFEST_PREFIX
            ))));
        }
        let book = self.book(name);
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        // A save outside a snapshot: the next snapshot must not take an earlier generation as
        // this state's latest.
        book.last_written = None;
        let payload_len = payload.len() as u64;
        let committed = self.commit_generation(
            &mut book,
            name,
            schema.version(),
            fingerprint,
            payload,
            full,
        )?;
        let (deleted, retention_error) = self.retain_state(schema, &mut book);
        Ok(SaveReceipt {
            sequence: committed.sequence,
            bytes: committed.bytes,
            payload_len,
            base: committed.base,
            tag: committed.tag,
            deleted,
            retention_error,
        })
    }

    /// Applies retention to the state of `schema`, keeping generations that snapshots pin.
    pub(crate) fn retain_state(
        &self,
        schema: &Schema,
        book: &mut StateBook,
    ) -> (Vec<u64>, Option<String>) {
        let name = schema.name();
        let pinned = match self.pinned(name) {
            Ok(pinned) => pinned,
            Err(e) => {
                tracing::warn!(name, error = %e, "snapshot pins unknown; retention skipped");
                return (Vec::new(), Some(e.to_string()));
            }
        };
        let backend = self.backend.as_ref();
        let (deleted, failure) = retention::apply(
            backend,
            name,
            self.config.retain,
            &pinned,
            &mut book.known,
            &mut |g| check_stored(backend, &self.keyring, schema, g).map(|c| c.base),
        );
        let retention_error = failure.map(|e| {
            tracing::warn!(name, error = %e, "retention failed; the save stands");
            e.to_string()
        });
        (deleted, retention_error)
    }

    /// Seals `payload` as the next generation of state `name` and makes it durable: the whole
    /// save but retention. The sequence number is one above every generation present, valid or
    /// not; if its key is taken meanwhile, the next free number is taken (three times at most).
    ///
    /// Under a [`crate::DeltaPolicy`] a large payload is written chunked: as a delta against
    /// the last generation this store wrote of the state unless `full` or the policy asks for a
    /// full one; the payload is then kept as the next delta's base.
    pub(crate) fn commit_generation(
        &self,
        book: &mut StateBook,
        name: &str,
        schema_version: u32,
        fingerprint: Fingerprint,
        payload: Payload<'_>,
        full: bool,
    ) -> Result<Committed, SaveError> {
        envelope::validate_name(name).map_err(SaveError::InvalidName)?;
        let bytes = payload.as_slice();
        // Snapshot manifests are always whole: their readers need no chain.
        let manifest = name.starts_with(crate::snapshot::MANIFEST_PREFIX);
        let policy = (self.config.deltas).filter(|p| p.applies_to(bytes.len()) && !manifest);
        let mut attempts = 0;
        let (sequence, header, written) = loop {
            let sequence = match book.next_sequence {
                Some(seq) => seq,
                None => Listing::of(self.backend.as_ref(), name)?
                    .next_sequence()
                    .ok_or_else(|| SaveError::SequenceExhausted {
                        name: name.to_string(),
                    })?,
            };
            if sequence > MAX_SEQUENCE {
                return Err(SaveError::SequenceExhausted {
                    name: name.to_string(),
                });
            }
            // Whatever happens below, this number is spent: a failed commit may have left a file.
            book.next_sequence = Some(sequence + 1);
            let header = Header {
                key_id: self.keyring.current().id(),
                name: name.to_string(),
                schema_version,
                fingerprint,
                rkyv_format: RkyvFormat::CURRENT,
                sequence,
                created_at_nanos: now_nanos(),
                payload_len: bytes.len() as u64,
            };
            let key = generation_key(name, sequence);
            let result = match policy {
                Some(policy) => {
                    let base = book
                        .previous
                        .as_ref()
                        .filter(|p| !full && !policy.full_due(p));
                    let sizes = policy.chunk_sizes;
                    let max = policy.max_delta_percent;
                    self.write_chunked(&key, &header, bytes, base, sizes, max)
                        .map(Written::Chunked)
                }
                None => {
                    let total = (HEADER_LEN + bytes.len() + TAG_LEN) as u64;
                    self.preflight(total)?;
                    self.write_generation(&key, &header, bytes)
                        .map(|tag| Written::Whole { tag, total })
                }
            };
            match result {
                Ok(written) => break (sequence, header, written),
                Err(SaveError::Backend(BackendError::AlreadyExists { .. })) if attempts < 3 => {
                    tracing::warn!(name, sequence, "generation key taken; listing again");
                    attempts += 1;
                    book.next_sequence = None;
                }
                Err(e) => return Err(e),
            }
        };
        let (tag, total, base) = match written {
            Written::Whole { tag, total } => {
                book.previous = None;
                book.scratch = None;
                (tag, total, None)
            }
            Written::Chunked(chunked) => {
                let (tag, total) = (chunked.tag, chunked.bytes);
                let base = chunked
                    .chunk
                    .is_delta()
                    .then_some(chunked.chunk.base_sequence);
                let owned = payload.into_owned(book.scratch.take());
                let before = book.previous.take();
                book.previous = Some(chunked.into_previous(sequence, before.as_ref(), owned));
                book.scratch = before.map(|p| p.payload);
                (tag, total, base)
            }
        };
        book.known.insert(sequence, Class::Loadable { base });
        tracing::debug!(name, sequence, bytes = total, ?base, "generation saved");
        Ok(Committed {
            sequence,
            bytes: total,
            base,
            tag,
            header,
        })
    }

    pub(crate) fn preflight(&self, bytes: u64) -> Result<(), SaveError> {
        if let Some(free) = self.backend.free_space()? {
            let reserve = self.config.space_reserve;
            let needed = bytes.saturating_add(reserve);
            if free < needed {
                tracing::error!(needed, free, reserve, "insufficient space; save refused");
                return Err(SaveError::InsufficientSpace {
                    location: self.backend.location(),
                    needed,
                    reserve,
                    free,
                });
            }
        }
        Ok(())
    }

    /// Writes header, payload and tag. Large payloads are signed on a second thread while the
    /// first writes them, so hashing overlaps I/O.
    fn write_generation(
        &self,
        key: &str,
        header: &Header,
        payload: &[u8],
    ) -> Result<[u8; TAG_LEN], SaveError> {
        let head = header.encode().map_err(SaveError::InvalidName)?;
        let signing_key = self.keyring.current();
        let mut obj = self.backend.begin_put(key)?;
        let tag = if payload.len() >= self.config.parallel_sign_threshold {
            std::thread::scope(|s| {
                let signer = s.spawn(|| envelope::tag(signing_key, &head, payload));
                let written = obj.write(&head).and_then(|()| obj.write(payload));
                let tag = signer.join().expect("HMAC computation does not panic");
                written.map(|()| tag)
            })?
        } else {
            let tag = envelope::tag(signing_key, &head, payload);
            obj.write(&head)?;
            obj.write(payload)?;
            tag
        };
        obj.write(&tag)?;
        obj.commit()?;
        Ok(tag)
    }
}

/// A payload to commit: borrowed (copied if kept as a delta base) or owned (kept as is).
pub(crate) enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(AlignedVec),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(bytes) => bytes,
            Payload::Owned(buffer) => buffer,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The payload in a buffer of its own, copied into `spare` if borrowed.
    fn into_owned(self, spare: Option<AlignedVec>) -> AlignedVec {
        match self {
            Payload::Owned(buffer) => buffer,
            Payload::Borrowed(bytes) => {
                let mut buffer = spare.unwrap_or_default();
                buffer.clear();
                buffer.extend_from_slice(bytes);
                buffer
            }
        }
    }
}

/// How a generation was written.
enum Written {
    Whole { tag: [u8; TAG_LEN], total: u64 },
    Chunked(ChunkedWrite),
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
