//! [`MemoryBackend`]: a [`Backend`] that keeps objects in memory, for tests, fuzzing and
//! examples.
//!
//! It gives the guarantees of [`crate::backend`] that make sense without a disk: create-only
//! puts, all-or-nothing visibility on commit, listings sorted by key, no litter from a dropped
//! object. "Durable" means "until the last clone of the backend is dropped".
//!
//! For tests of failure paths it can also run out of room ([`MemoryBackend::with_quota`]:
//! [`BackendError::NoSpace`]) and refuse writes ([`MemoryBackend::set_read_only`]:
//! [`BackendError::AccessDenied`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rkyv::util::AlignedVec;

use crate::backend::{Backend, BackendError, NewObject, ObjectBytes, ObjectMeta};

type Objects = BTreeMap<String, Arc<AlignedVec>>;

/// Objects in a `BTreeMap` behind a mutex. Clones share the same objects, so a test can keep a
/// handle to a backend it gave to a [`crate::Store`].
///
/// ```
/// use persist_core::{Backend, BackendError, MemoryBackend};
/// let backend = MemoryBackend::new();
/// backend.put_new("q/00000000000000000001.pst", &[b"head", b"tail"]).unwrap();
/// assert_eq!(&*backend.get("q/00000000000000000001.pst").unwrap(), b"headtail");
/// // Create-only: a second put of the same key fails and leaves the first object alone.
/// let again = backend.insert_raw("q/00000000000000000001.pst", b"other");
/// assert!(matches!(again, Err(BackendError::AlreadyExists { .. })));
/// assert_eq!(backend.list("q/").unwrap().len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryBackend {
    objects: Arc<Mutex<Objects>>,
    /// The most bytes all objects together may hold (`None`: no limit).
    quota: Option<u64>,
    /// Shared by clones, so a test can refuse writes through a handle it kept.
    read_only: Arc<AtomicBool>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty backend that holds at most `bytes` bytes of objects in all, like a small disk:
    /// a write or commit that would go beyond fails with [`BackendError::NoSpace`] and leaves
    /// nothing behind, and [`Backend::free_space`] tells the room left.
    ///
    /// ```
    /// use persist_core::{Backend, BackendError, MemoryBackend};
    /// let small = MemoryBackend::with_quota(4);
    /// small.put_new("s/1", &[b"abc"]).unwrap();
    /// assert_eq!(small.free_space().unwrap(), Some(1));
    /// let full = small.put_new("s/2", &[b"de"]);
    /// assert!(matches!(full, Err(BackendError::NoSpace { .. })));
    /// assert_eq!(small.list("s/").unwrap().len(), 1);
    /// ```
    pub fn with_quota(bytes: u64) -> Self {
        MemoryBackend {
            quota: Some(bytes),
            ..Self::default()
        }
    }

    /// Refuses (`true`) or allows again (`false`) every write and delete, on this backend and
    /// all its clones, with [`BackendError::AccessDenied`], as a read-only mount or revoked
    /// credentials would. Reads keep working.
    ///
    /// ```
    /// use persist_core::{Backend, BackendError, MemoryBackend};
    /// let backend = MemoryBackend::new();
    /// backend.put_new("s/1", &[b"x"]).unwrap();
    /// backend.set_read_only(true);
    /// let refused = backend.put_new("s/2", &[b"y"]);
    /// assert!(matches!(refused, Err(BackendError::AccessDenied { .. })));
    /// assert!(matches!(backend.delete("s/1"), Err(BackendError::AccessDenied { .. })));
    /// assert_eq!(&*backend.get("s/1").unwrap(), b"x");
    /// ```
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::SeqCst);
    }

    /// Stores `bytes` under `key`. This bypasses nothing: it is [`Backend::put_new`] with one
    /// part, so it fails with [`BackendError::AlreadyExists`] if the key is taken. Handy for
    /// planting hand-made or corrupted generations in tests and fuzz targets.
    pub fn insert_raw(&self, key: &str, bytes: &[u8]) -> Result<(), BackendError> {
        self.put_new(key, &[bytes])
    }

    fn objects(&self) -> MutexGuard<'_, Objects> {
        // Every critical section leaves the map consistent, so a panic elsewhere while the lock
        // was held does not invalidate it.
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn already_exists(&self, key: &str) -> BackendError {
        BackendError::AlreadyExists {
            location: self.location(),
            key: key.to_string(),
        }
    }

    fn refuse_read_only(&self) -> Result<(), BackendError> {
        if !self.read_only.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(BackendError::AccessDenied {
            location: self.location(),
            source: "the memory backend is set read-only".into(),
        })
    }

    /// Fails with `NoSpace` unless `extra` more bytes fit beside the committed objects.
    fn check_room(&self, objects: &Objects, key: &str, extra: u64) -> Result<(), BackendError> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        if used(objects).saturating_add(extra) <= quota {
            return Ok(());
        }
        Err(BackendError::NoSpace {
            location: self.location(),
            key: key.to_string(),
        })
    }
}

/// The bytes all committed objects hold.
fn used(objects: &Objects) -> u64 {
    objects.values().map(|bytes| bytes.len() as u64).sum()
}

/// An object being written: invisible until [`NewObject::commit`] inserts it whole.
struct MemoryObject<'a> {
    backend: &'a MemoryBackend,
    key: String,
    bytes: AlignedVec,
}

impl NewObject for MemoryObject<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        if self.backend.quota.is_some() {
            let extra = (self.bytes.len() + bytes.len()) as u64;
            self.backend
                .check_room(&self.backend.objects(), &self.key, extra)?;
        }
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), BackendError> {
        let MemoryObject {
            backend,
            key,
            bytes,
        } = *self;
        backend.refuse_read_only()?;
        let mut objects = backend.objects();
        if objects.contains_key(&key) {
            return Err(backend.already_exists(&key));
        }
        backend.check_room(&objects, &key, bytes.len() as u64)?;
        objects.insert(key, Arc::new(bytes));
        Ok(())
    }
}

/// A committed object shared without copying (objects are never modified once committed).
struct Shared(Arc<AlignedVec>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".to_string()
    }

    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        self.refuse_read_only()?;
        // Checked again at commit: another writer may take the key meanwhile.
        if self.objects().contains_key(key) {
            return Err(self.already_exists(key));
        }
        Ok(Box::new(MemoryObject {
            backend: self,
            key: key.to_string(),
            bytes: AlignedVec::new(),
        }))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let object = self.objects().get(key).cloned();
        match object {
            Some(bytes) => Ok(ObjectBytes::copy_from(&bytes)),
            None => Err(BackendError::NotFound {
                location: self.location(),
                key: key.to_string(),
            }),
        }
    }

    /// Shares the committed buffer instead of copying it (the in-memory analogue of a map).
    fn get_mapped(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let object = self.objects().get(key).cloned();
        match object {
            Some(bytes) => Ok(ObjectBytes::mapped(Box::new(Shared(bytes)))),
            None => Err(BackendError::NotFound {
                location: self.location(),
                key: key.to_string(),
            }),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        let objects = self.objects();
        Ok(objects
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, bytes)| ObjectMeta::new(key.clone(), bytes.len() as u64))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.refuse_read_only()?;
        match self.objects().remove(key) {
            Some(_) => Ok(()),
            None => Err(BackendError::NotFound {
                location: self.location(),
                key: key.to_string(),
            }),
        }
    }

    /// The room left under the quota; `None` (unknown) without one.
    fn free_space(&self) -> Result<Option<u64>, BackendError> {
        Ok(self
            .quota
            .map(|quota| quota.saturating_sub(used(&self.objects()))))
    }
}

/// What the backend contract asks of every backend (create-only puts, races, visibility,
/// deletes, error kinds) is checked by the conformance suite, `backends/conformance` (its
/// `tests/memory.rs` runs it on this backend); these are what is particular to this one.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_sorted_and_prefixed() {
        let b = MemoryBackend::new();
        for key in ["s/3", "t/1", "s/1", "s/2", "r/9", "s0"] {
            b.insert_raw(key, key.as_bytes()).unwrap();
        }
        let keys: Vec<_> = b.list("s/").unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(keys, ["s/1", "s/2", "s/3"]);
        assert_eq!(b.list("s/").unwrap()[0].size, 3);
        assert_eq!(b.list("").unwrap().len(), 6);
    }

    #[test]
    fn bytes_are_aligned_and_clones_share() {
        let b = MemoryBackend::new();
        let handle = b.clone();
        b.insert_raw("s/1", &[1; 33]).unwrap();
        for bytes in [
            handle.get("s/1").unwrap(),
            handle.get_mapped("s/1").unwrap(),
        ] {
            assert_eq!(bytes.as_ptr() as usize % 16, 0);
            assert_eq!(&*bytes, &[1; 33]);
        }
    }
}
