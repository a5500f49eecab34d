//! A value serialised and ready to be written by any thread.

use rkyv::util::AlignedVec;

use crate::check::Schema;
use crate::persist::{CodecError, Persist};
use crate::schema::Fingerprint;

/// A state value serialised on the caller's thread, with the header fields of its type.
///
/// Serialising first, then handing the bytes to a writer, means the state cannot change under
/// the writer (the [`crate::checkpoint::Checkpointer`] does this for asynchronous saves).
///
/// ```
/// # use persist_core::persist;
/// #[persist(name = "counter", version = 1)]
/// struct Counter(u64);
///
/// let encoded = persist_core::Encoded::new(&Counter(3)).unwrap();
/// assert_eq!(encoded.name(), "counter");
/// ```
#[derive(Debug)]
pub struct Encoded {
    pub(crate) schema: Schema,
    /// The layout fingerprint of the current version (the header's).
    pub(crate) fingerprint: Fingerprint,
    pub(crate) payload: AlignedVec,
}

impl Encoded {
    /// Serialises `value`.
    pub fn new<T: Persist>(value: &T) -> Result<Self, CodecError> {
        Ok(Encoded {
            schema: Schema::of::<T>(),
            fingerprint: T::fingerprint(),
            payload: value.encode()?,
        })
    }

    /// The state's schema name.
    pub fn name(&self) -> &'static str {
        self.schema.name()
    }

    /// What the store knows of the value's type.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The payload's length in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }
}
