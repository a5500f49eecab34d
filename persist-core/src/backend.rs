//! The storage a [`crate::Store`] writes generations to: small and object-store-like.
//!
//! Keys are `/`-separated relative paths such as `exit_agent/00000000000000000042.pst`. A backend
//! guarantees four things, which the store relies on:
//!
//! 1. **Create-only.** [`Backend::put_new`] never replaces an existing object; a second writer of
//!    the same key gets [`BackendError::AlreadyExists`].
//! 2. **All or nothing.** An object is visible to [`Backend::get`] and [`Backend::list`] only
//!    once [`NewObject::commit`] returned `Ok`, and then with every byte written.
//! 3. **Durable on acknowledgement.** When `commit` returns `Ok`, the object survives a crash or
//!    power cut. A failed durability step (an `fsync`) is reported as an error, never retried and
//!    never turned into success.
//! 4. **No litter.** A dropped or aborted [`NewObject`] leaves no visible object.

use std::fmt;
use std::ops::Deref;

use rkyv::util::AlignedVec;

use crate::recovery_log::{LogEntries, LogRecord};

/// What went wrong in a backend. Backends map their own failures onto these variants.
///
/// Non-exhaustive: a match needs a `_` arm, so that a new kind of failure can be added without
/// breaking callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// `put_new` found the key taken.
    #[error("{key} already exists in {location}")]
    AlreadyExists {
        /// The backend's location.
        location: String,
        /// The key.
        key: String,
    },
    /// `get` or `delete` found no such object.
    #[error("{key} not found in {location}")]
    NotFound {
        /// The backend's location.
        location: String,
        /// The key.
        key: String,
    },
    /// The device is full (ENOSPC or a quota). Nothing was committed.
    #[error("no space left in {location} while writing {key}")]
    NoSpace {
        /// The backend's location.
        location: String,
        /// The key being written.
        key: String,
    },
    /// Credentials or permissions were refused.
    #[error("access denied to {location}: {source}")]
    AccessDenied {
        /// The backend's location.
        location: String,
        /// The refusal as the backend got it (an [`std::io::Error`] of kind
        /// `PermissionDenied`, an object store's error, …), for callers that downcast it; a
        /// backend that refuses on its own (a read-only handle) gives a message.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An I/O error with the operation that failed.
    #[error("{op} {key} in {location}: {source}")]
    Io {
        /// What was being done (`write`, `fsync`, `rename`, …).
        op: &'static str,
        /// The backend's location.
        location: String,
        /// The key, or the directory.
        key: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Something that is not an object sits at the key (a directory, FIFO, device or symbolic
    /// link where a backend keeps regular files). It is listed, so that sequence numbers skip
    /// it, but it is never read.
    #[error("{key} in {location} is not a regular file but a {what}")]
    NotAnObject {
        /// The backend's location.
        location: String,
        /// The key.
        key: String,
        /// What is there instead (`directory`, `FIFO`, `symbolic link`, …).
        what: &'static str,
    },
    /// Any other failure of a backend (a remote one's, mostly).
    #[error("{location}: {source}")]
    Other {
        /// The backend's location.
        location: String,
        /// What happened: the underlying error, or a message where there is none.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One object found by [`Backend::list`].
///
/// Non-exhaustive, so that fields (a modification time, say) can be added: a backend outside
/// this crate builds one with [`ObjectMeta::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The object's key, relative to the backend's root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

impl ObjectMeta {
    /// The listing entry of the object at `key` of `size` bytes.
    pub fn new(key: impl Into<String>, size: u64) -> Self {
        ObjectMeta {
            key: key.into(),
            size,
        }
    }
}

/// The first bytes of an object and its whole size, from [`Backend::get_head`]: enough to check
/// an envelope's header against the object's size before reading (or allocating) the rest.
///
/// Non-exhaustive like [`ObjectMeta`]: a backend outside this crate builds one with
/// [`ObjectHead::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectHead {
    /// Up to the requested number of bytes from the start of the object.
    pub bytes: Vec<u8>,
    /// The object's whole size in bytes.
    pub size: u64,
}

impl ObjectHead {
    /// The first `bytes` of an object of `size` bytes.
    pub fn new(bytes: Vec<u8>, size: u64) -> Self {
        ObjectHead { bytes, size }
    }
}

/// The bytes of an object, 16-byte aligned so that an rkyv payload at offset 160 can be accessed
/// in place: either an owned buffer, or a read-only memory map a backend made of an immutable
/// object (see [`Backend::get_mapped`]).
pub struct ObjectBytes(Repr);

enum Repr {
    Owned(AlignedVec),
    Mapped(Box<dyn AsRef<[u8]> + Send + Sync>),
}

impl ObjectBytes {
    /// Wraps an aligned buffer.
    pub fn new(bytes: AlignedVec) -> Self {
        ObjectBytes(Repr::Owned(bytes))
    }

    /// Copies unaligned bytes into an aligned buffer.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut v = AlignedVec::with_capacity(bytes.len());
        v.extend_from_slice(bytes);
        ObjectBytes(Repr::Owned(v))
    }

    /// Wraps a memory-mapped region without copying it. The region must stay valid and
    /// unchanged for as long as it lives (the backend's responsibility: see
    /// [`Backend::get_mapped`]). A region that does not start 16-byte aligned (never the case for
    /// a page-aligned map) is copied into an aligned buffer instead.
    pub fn mapped(region: Box<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        let bytes = (*region).as_ref();
        if !(bytes.as_ptr() as usize).is_multiple_of(AlignedVec::<16>::ALIGNMENT) {
            return Self::copy_from(bytes);
        }
        ObjectBytes(Repr::Mapped(region))
    }

    /// True when the bytes are a memory map rather than a copy.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped(_))
    }
}

impl Deref for ObjectBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped(m) => (**m).as_ref(),
        }
    }
}

impl fmt::Debug for ObjectBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBytes")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// An object being written: bytes go in with [`NewObject::write`]; [`NewObject::commit`] makes
/// it durable and visible. Dropping it without `commit` discards it.
pub trait NewObject: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> Result<(), BackendError>;
    /// Makes the object durable and visible under its key, failing with
    /// [`BackendError::AlreadyExists`] if the key was taken meanwhile.
    fn commit(self: Box<Self>) -> Result<(), BackendError>;
}

/// Storage for generations. See the module docs for the guarantees an implementation gives.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Where this backend stores (a path or a URL), for messages.
    fn location(&self) -> String;

    /// Starts writing a new object that must not exist yet.
    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError>;

    /// Reads a whole object.
    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError>;

    /// Reads a whole object for zero-copy access, as a read-only memory map where the backend
    /// can make one (the filesystem backend does); defaults to [`Backend::get`].
    ///
    /// A backend that maps relies on objects being immutable once committed (guarantee 1 and 2
    /// above): a mapped object must never be modified or truncated in place while mapped.
    fn get_mapped(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        self.get(key)
    }

    /// Reads at most `len` bytes from the start of an object and tells its whole size, without
    /// reading the rest: the store checks a generation's header against its size this way
    /// before it reads the whole object, so no object makes it read or allocate more than its
    /// header authorises. The default reads the whole object; backends override it (the
    /// filesystem's reads only the head, S3's makes one ranged request).
    fn get_head(&self, key: &str, len: usize) -> Result<ObjectHead, BackendError> {
        let bytes = self.get(key)?;
        Ok(ObjectHead {
            bytes: bytes[..len.min(bytes.len())].to_vec(),
            size: bytes.len() as u64,
        })
    }

    /// Lists the committed objects whose keys start with `prefix` (a directory ending in `/`).
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError>;

    /// Deletes an object. Deleting a missing object is [`BackendError::NotFound`].
    fn delete(&self, key: &str) -> Result<(), BackendError>;

    /// Free bytes available for new objects, if the backend can tell (a filesystem can; object
    /// storage cannot).
    fn free_space(&self) -> Result<Option<u64>, BackendError> {
        Ok(None)
    }

    /// Writes a whole new object from parts in one call.
    fn put_new(&self, key: &str, parts: &[&[u8]]) -> Result<(), BackendError> {
        let mut obj = self.begin_put(key)?;
        for part in parts {
            obj.write(part)?;
        }
        obj.commit()
    }

    /// Appends a record to this backend's recovery log ([`crate::recovery_log`]). The default
    /// writes it as one small create-only object under [`LOG_PREFIX`](crate::recovery_log::LOG_PREFIX),
    /// which no generation listing includes; a database overrides it with a table.
    fn append_log(&self, record: &LogRecord) -> Result<(), BackendError> {
        crate::recovery_log::append_object(self, record)
    }

    /// Reads the newest `last` records of the recovery log (of `state` only, with `Some`),
    /// oldest first. Entries that are not records are returned as unreadable, never read past
    /// [`MAX_RECORD_LEN`](crate::recovery_log::MAX_RECORD_LEN) bytes.
    fn read_log(&self, state: Option<&str>, last: usize) -> Result<LogEntries, BackendError> {
        crate::recovery_log::read_objects(self, state, last)
    }
}

/// Implements [`Backend`] for a pointer to one, every method (provided ones included, so a
/// backend's own `get_mapped` or `put_new` is kept) forwarded to the pointee.
macro_rules! forward_backend {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        impl<B: Backend + ?Sized> Backend for $pointer {
            fn location(&self) -> String {
                (**self).location()
            }
            fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
                (**self).begin_put(key)
            }
            fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
                (**self).get(key)
            }
            fn get_mapped(&self, key: &str) -> Result<ObjectBytes, BackendError> {
                (**self).get_mapped(key)
            }
            fn get_head(&self, key: &str, len: usize) -> Result<ObjectHead, BackendError> {
                (**self).get_head(key, len)
            }
            fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
                (**self).list(prefix)
            }
            fn delete(&self, key: &str) -> Result<(), BackendError> {
                (**self).delete(key)
            }
            fn free_space(&self) -> Result<Option<u64>, BackendError> {
                (**self).free_space()
            }
            fn put_new(&self, key: &str, parts: &[&[u8]]) -> Result<(), BackendError> {
                (**self).put_new(key, parts)
            }
            fn append_log(&self, record: &LogRecord) -> Result<(), BackendError> {
                (**self).append_log(record)
            }
            fn read_log(
                &self,
                state: Option<&str>,
                last: usize,
            ) -> Result<LogEntries, BackendError> {
                (**self).read_log(state, last)
            }
        }
    };
}

forward_backend! {
    /// A shared backend is a backend: a caller can keep a handle on the backend it gives a
    /// [`crate::Store`] (for a test's fault injection, or a replicator reading the same store).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use persist_core::{Backend, MemoryBackend};
    /// let shared = Arc::new(MemoryBackend::new());
    /// let boxed: Box<dyn Backend> = Box::new(Arc::clone(&shared));
    /// boxed.put_new("s/x", &[b"hi"]).unwrap();
    /// assert_eq!(&*shared.get("s/x").unwrap(), b"hi");
    /// ```
    std::sync::Arc<B>
}

forward_backend! {
    /// A boxed backend is a backend: a `Box<dyn Backend>` can go wherever an `impl Backend` is
    /// wanted (a generic helper, a test suite), and be shared in turn with [`std::sync::Arc`].
    ///
    /// ```
    /// use persist_core::{Backend, MemoryBackend};
    /// fn count(backend: impl Backend) -> usize {
    ///     backend.list("s/").unwrap().len()
    /// }
    /// let boxed: Box<dyn Backend> = Box::new(MemoryBackend::new());
    /// boxed.put_new("s/x", &[b"hi"]).unwrap();
    /// assert_eq!(count(boxed), 1);
    /// ```
    Box<B>
}
