//! rkyv helpers with the bounds spelled out once, for [`crate::Persist`] impls.
//!
//! Every function here is safe on arbitrary bytes: access and decoding validate the payload with
//! bytecheck first and report failure as [`CodecError::InvalidPayload`].

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::BoxedError as RkyvError;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Portable, Serialize};

use crate::persist::{CodecError, Decoded};

/// Serialises `value` with rkyv into a 16-byte aligned buffer.
pub fn encode<T>(value: &T) -> Result<AlignedVec, CodecError>
where
    T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, RkyvError>>,
{
    rkyv::to_bytes::<RkyvError>(value).map_err(CodecError::Encode)
}

/// Serialises `value` into `buffer` (cleared first), reusing its allocation.
pub fn encode_into<T>(value: &T, mut buffer: AlignedVec) -> Result<AlignedVec, CodecError>
where
    T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, RkyvError>>,
{
    buffer.clear();
    rkyv::api::high::to_bytes_in::<_, RkyvError>(value, buffer).map_err(CodecError::Encode)
}

/// Validates `payload` and returns a zero-copy view of its archived root.
pub fn access<T>(payload: &[u8]) -> Result<&T::Archived, CodecError>
where
    T: Archive,
    T::Archived: Portable + for<'a> CheckBytes<HighValidator<'a, RkyvError>>,
{
    rkyv::access::<T::Archived, RkyvError>(payload).map_err(CodecError::InvalidPayload)
}

/// Validates `payload` and deserialises it into an owned `T`.
pub fn decode<T>(payload: &[u8]) -> Result<T, CodecError>
where
    T: Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, RkyvError>>
        + Deserialize<T, HighDeserializer<RkyvError>>,
{
    rkyv::from_bytes::<T, RkyvError>(payload).map_err(CodecError::InvalidPayload)
}

/// [`decode`] for a type with no older versions: accepts only `T::VERSION`.
pub fn decode_current<T>(version: u32, payload: &[u8]) -> Result<Decoded<T>, CodecError>
where
    T: crate::Persist + Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, RkyvError>>
        + Deserialize<T, HighDeserializer<RkyvError>>,
{
    if version != T::VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    Ok(Decoded {
        value: decode::<T>(payload)?,
        migrations: Vec::new(),
    })
}
