//! The signed envelope: a fixed little-endian header, the rkyv payload, and an HMAC-SHA256 tag.
//!
//! The byte layout is documented in `docs/FORMAT.md`; the constants below are its source of
//! truth. Invariants that [`open`] enforces, in this order, before anything is handed out:
//!
//! 1. the input is at least `HEADER_LEN + TAG_LEN` bytes and starts with [`MAGIC`];
//! 2. the format version is one this build reads, the key id names a key of the ring, and the
//!    tag (the last 32 bytes) verifies in constant time (see [Formats](self#formats) for what it
//!    covers in each format);
//! 3. the now-authentic header is well formed (format version, zero flags and reserved bytes,
//!    header length, payload length that accounts for every byte, a valid schema name, the rkyv
//!    format of this build);
//! 4. the header matches what the caller expects (schema name, sequence number, version range).
//!
//! Validation of the payload itself (rkyv's bytecheck) is the caller's fifth step, done by
//! [`crate::Persist::decode`], because only the caller knows the payload's type.
//!
//! # Formats
//!
//! Format 2, written by this build, signs the header and the SHA-256 digests of the payload's
//! 1 MiB chunks ([`CHUNK_LEN`]), which every core hashes at once; format 1 signed the header and
//! the payload in one pass. Both are read: a generation written by an older build stays
//! loadable. `docs/FORMAT.md` has the exact inputs.

pub(crate) mod chunked;
mod mac;

use std::fmt;

use chunked::{CHUNKED_FORMAT, CHUNKED_HEADER_LEN, ChunkHeader, Chunks};
pub use mac::{CHUNK_LEN, PARALLEL_MIN_LEN};

use crate::key::{Key, KeyId, Keyring};
use crate::schema::{Fingerprint, RkyvFormat};

/// The first eight bytes of every generation (PNG-style: a high byte, a name, and line endings
/// that reveal a text-mode transfer).
pub const MAGIC: [u8; 8] = *b"\x89PST\r\n\x1a\n";
/// The envelope format this build writes for whole generations (chunked ones, full or delta,
/// are [`chunked::CHUNKED_FORMAT`], 3).
pub const FORMAT_VERSION: u16 = 2;
/// The oldest envelope format this build reads.
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// The newest envelope format this build reads (every format from [`OLDEST_FORMAT_VERSION`] to
/// it).
pub const NEWEST_FORMAT_VERSION: u16 = CHUNKED_FORMAT;
/// The header's length; the payload starts here, 16-byte aligned.
pub const HEADER_LEN: usize = 160;
/// The HMAC-SHA256 tag's length, at the end of the envelope.
pub const TAG_LEN: usize = 32;
/// The longest schema name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The domain-separation string the tag of [`FORMAT_VERSION`] covers first.
pub const DOMAIN: &[u8] = mac::DOMAIN_V2;
/// The domain-separation string of format 1's tag.
pub const DOMAIN_V1: &[u8] = mac::DOMAIN_V1;

/// The fields of an envelope header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The id of the key that signed the envelope.
    pub key_id: KeyId,
    /// The schema name (also the generation's directory or key prefix).
    pub name: String,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The layout fingerprint of the payload's type at that version.
    pub fingerprint: Fingerprint,
    /// The rkyv format the payload was written in.
    pub rkyv_format: RkyvFormat,
    /// The generation's sequence number (also in its file or object name).
    pub sequence: u64,
    /// When the generation was sealed, in nanoseconds since the Unix epoch (UTC).
    pub created_at_nanos: u64,
    /// The payload's length in bytes.
    pub payload_len: u64,
}

/// What the caller expects of an envelope's header. `None` fields are not checked.
#[derive(Clone, Debug, Default)]
pub struct Expect<'a> {
    /// The schema name the generation must carry.
    pub name: Option<&'a str>,
    /// The sequence number the generation must carry (the one in its file name).
    pub sequence: Option<u64>,
    /// The oldest schema version accepted.
    pub min_version: Option<u32>,
    /// The newest schema version this binary knows.
    pub max_version: Option<u32>,
}

impl<'a> Expect<'a> {
    /// What the generation stored under `name`'s key for `sequence` must say of itself: that
    /// name and that sequence (a copied or renamed file fails). Versions are not checked; a
    /// state's type adds them ([`crate::Schema`]).
    pub fn generation(name: &'a str, sequence: u64) -> Self {
        Expect {
            name: Some(name),
            sequence: Some(sequence),
            ..Expect::default()
        }
    }
}

/// Why an envelope was rejected. Every failure of [`open`] has its own variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than a header and a tag: a truncated or empty file.
    #[error("truncated: {len} bytes, fewer than the {min} of an empty envelope")]
    Truncated {
        /// The length found.
        len: u64,
        /// The smallest valid length.
        min: u64,
    },
    /// The first eight bytes are not [`MAGIC`].
    #[error("not a persist generation (bad magic)")]
    BadMagic,
    /// The header names a key the ring does not hold: the generation was signed by another key
    /// (a foreign generation), which the ring must hold to verify it.
    #[error("signed with unknown key id {0} (the key ring does not hold it)")]
    UnknownKey(KeyId),
    /// A header field that is not covered by a check of its own was damaged: with the field
    /// restored (the ring's key id, or a format this build reads) the tag verifies, so the
    /// generation is provably corrupt, not foreign or newer.
    #[error("damaged header: the {field} field was altered (the tag verifies with it restored)")]
    DamagedHeader {
        /// `key id` or `format version`.
        field: &'static str,
    },
    /// The HMAC tag does not verify: corruption or tampering.
    #[error("HMAC tag does not verify (corrupted or tampered)")]
    BadTag,
    /// A format version this build cannot read.
    #[error(
        "envelope format version {found} is not supported \
         (this build reads {OLDEST_FORMAT_VERSION} to {NEWEST_FORMAT_VERSION})"
    )]
    UnsupportedFormat {
        /// The version found.
        found: u16,
    },
    /// Flags or reserved bytes that should be zero are not.
    #[error("reserved header bits are set: {0}")]
    Reserved(&'static str),
    /// The lengths in the header do not account for the envelope's bytes.
    #[error(
        "length mismatch: header length {header_len} + payload {payload_len} + tag {TAG_LEN} \
         != {total} bytes"
    )]
    LengthMismatch {
        /// The header length field.
        header_len: u32,
        /// The payload length field.
        payload_len: u64,
        /// The envelope's actual length.
        total: u64,
    },
    /// The schema name is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid schema name: {0}")]
    InvalidName(String),
    /// The payload was written by an rkyv format this build does not read.
    #[error("payload written in rkyv format {found}, this build reads {expected}")]
    RkyvFormat {
        /// The format found.
        found: RkyvFormat,
        /// This build's format.
        expected: RkyvFormat,
    },
    /// The generation belongs to another state (copied or renamed).
    #[error("generation belongs to state {found:?}, expected {expected:?}")]
    WrongName {
        /// The name the caller expected.
        expected: String,
        /// The name in the signed header.
        found: String,
    },
    /// The generation's sequence number is not the one of its file name (renamed).
    #[error("generation carries sequence {found}, but its name says {expected}")]
    WrongSequence {
        /// The sequence the caller expected (from the file name).
        expected: u64,
        /// The sequence in the signed header.
        found: u64,
    },
    /// Written by a newer program: this binary does not know that version.
    #[error("schema version {found} is newer than the newest this binary knows ({newest_known})")]
    FutureVersion {
        /// The version found.
        found: u32,
        /// The newest version this binary knows.
        newest_known: u32,
    },
    /// Older than the oldest version this binary can migrate from.
    #[error(
        "schema version {found} is older than the oldest this binary migrates from ({oldest_known})"
    )]
    VersionTooOld {
        /// The version found.
        found: u32,
        /// The oldest version this binary knows.
        oldest_known: u32,
    },
    /// A chunked envelope's chunk table is inconsistent (lengths that do not add up, a full
    /// generation that refers to a base, a base that is not older).
    #[error("inconsistent chunk table: {0}")]
    BadChunkTable(&'static str),
    /// A chunk's bytes do not have the digest the signed table lists: corruption.
    #[error("chunk {index} does not match its signed digest (corrupted)")]
    ChunkDigest {
        /// The chunk's index in the table.
        index: usize,
    },
    /// A delta's chain is longer than any this build reads.
    #[error("delta chain of depth {depth}: this build reads chains of at most {limit}")]
    ChainTooLong {
        /// The depth in the delta's header.
        depth: u32,
        /// [`chunked::MAX_DEPTH`].
        limit: u32,
    },
    /// The envelope is an authentic delta: it can only be read with its base generation
    /// ([`crate::Store::load`] and the other store readers follow the chain).
    #[error("a delta of generation {base_sequence}: read it with its base (through a Store)")]
    NeedsBase {
        /// The base generation's sequence.
        base_sequence: u64,
    },
}

/// An envelope that passed every check of [`open`]: its header and a borrow of its payload.
#[derive(Debug)]
pub struct Opened<'a> {
    /// The verified header.
    pub header: Header,
    /// The payload, 16-byte aligned if the input was.
    pub payload: &'a [u8],
}

/// Checks a schema name: 1 to 64 bytes of `[A-Za-z0-9_.-]`, not starting with a dot (names are
/// directory names and key prefixes, so no path can be smuggled in).
///
/// ```
/// assert!(persist_core::format::validate_name("exit_agent").is_ok());
/// assert!(persist_core::format::validate_name("../etc").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), EnvelopeError> {
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.starts_with('.')
        || !name.bytes().all(ok_char)
    {
        return Err(EnvelopeError::InvalidName(name.escape_debug().to_string()));
    }
    Ok(())
}

impl Header {
    /// Encodes the header into its fixed 160 bytes.
    ///
    /// Fails only if the name is invalid.
    pub fn encode(&self) -> Result<[u8; HEADER_LEN], EnvelopeError> {
        validate_name(&self.name)?;
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // 10..12: flags, zero.
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.key_id.0);
        b[24..28].copy_from_slice(&self.schema_version.to_le_bytes());
        b[28] = self.rkyv_format.version;
        b[29] = self.rkyv_format.flags;
        b[30] = self.name.len() as u8;
        // 31: reserved, zero.
        b[32..64].copy_from_slice(&self.fingerprint.0);
        b[64..72].copy_from_slice(&self.sequence.to_le_bytes());
        b[72..80].copy_from_slice(&self.created_at_nanos.to_le_bytes());
        b[80..88].copy_from_slice(&self.payload_len.to_le_bytes());
        b[88..88 + self.name.len()].copy_from_slice(self.name.as_bytes());
        // 152..160: reserved, zero.
        Ok(b)
    }

    /// Encodes the header of a chunked envelope (format 3): these 160 bytes with the format
    /// and header length of format 3, then the chunk header.
    pub fn encode_chunked(
        &self,
        chunk: &ChunkHeader,
    ) -> Result<[u8; CHUNKED_HEADER_LEN], EnvelopeError> {
        let mut b = [0u8; CHUNKED_HEADER_LEN];
        b[..HEADER_LEN].copy_from_slice(&self.encode()?);
        b[8..10].copy_from_slice(&CHUNKED_FORMAT.to_le_bytes());
        b[12..16].copy_from_slice(&(CHUNKED_HEADER_LEN as u32).to_le_bytes());
        b[HEADER_LEN..].copy_from_slice(&chunk.encode());
        Ok(b)
    }

    /// Decodes a header **without verifying the tag**: for `persist inspect` and for choosing the
    /// key. Never trust its fields before [`open`] succeeds.
    pub fn decode_unverified(bytes: &[u8]) -> Result<Header, EnvelopeError> {
        let min = (HEADER_LEN + TAG_LEN) as u64;
        if (bytes.len() as u64) < min {
            return Err(EnvelopeError::Truncated {
                len: bytes.len() as u64,
                min,
            });
        }
        if bytes[0..8] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let name_len = usize::from(bytes[30]).min(MAX_NAME_LEN);
        Ok(Header {
            key_id: KeyId(bytes[16..24].try_into().expect("8 bytes")),
            name: String::from_utf8_lossy(&bytes[88..88 + name_len]).into_owned(),
            schema_version: u32_at(24),
            fingerprint: Fingerprint(bytes[32..64].try_into().expect("32 bytes")),
            rkyv_format: RkyvFormat {
                version: bytes[28],
                flags: bytes[29],
            },
            sequence: u64_at(64),
            created_at_nanos: u64_at(72),
            payload_len: u64_at(80),
        })
    }

    /// The creation time as a [`std::time::SystemTime`].
    pub fn created_at(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.created_at_nanos)
    }
}

/// Computes the [`FORMAT_VERSION`] tag of the encoded header and the payload, hashing a large
/// payload's chunks on every core.
///
/// This is the expensive half of sealing; [`crate::Store`] runs it beside the write of a large
/// payload so hashing overlaps I/O.
pub fn tag(key: &Key, header: &[u8; HEADER_LEN], payload: &[u8]) -> [u8; TAG_LEN] {
    mac::compute(FORMAT_VERSION, key, header, payload)
}

/// Whether this build reads envelope format `format`.
pub fn is_readable_format(format: u16) -> bool {
    (OLDEST_FORMAT_VERSION..=NEWEST_FORMAT_VERSION).contains(&format)
}

/// Seals a payload into one contiguous envelope signed with the ring's current key.
///
/// `header.key_id` and `header.payload_len` are set from the key and the payload.
///
/// ```
/// use persist_core::format;
/// use persist_core::{Expect, Header};
/// use persist_core::{Fingerprint, Key, Keyring, RkyvFormat};
/// let ring = Keyring::new(Key::from_bytes(vec![9; 32]).unwrap());
/// let header = Header {
///     key_id: ring.current().id(),
///     name: "demo".into(),
///     schema_version: 1,
///     fingerprint: Fingerprint([0; 32]),
///     rkyv_format: RkyvFormat::CURRENT,
///     sequence: 7,
///     created_at_nanos: 0,
///     payload_len: 0,
/// };
/// let bytes = format::seal(&ring, header, b"hello").unwrap();
/// let opened = format::open(&ring, &bytes, &Expect { sequence: Some(7), ..Expect::default() }).unwrap();
/// assert_eq!(opened.payload, b"hello");
/// ```
pub fn seal(ring: &Keyring, mut header: Header, payload: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    header.key_id = ring.current().id();
    header.payload_len = payload.len() as u64;
    let head = header.encode()?;
    let tag = tag(ring.current(), &head, payload);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Verifies an envelope and checks its header against `expect`. See the module docs for the
/// order of the checks; nothing is returned unless all pass.
///
/// A full chunked generation (format 3) is opened in place like the others; a delta fails with
/// [`EnvelopeError::NeedsBase`] once authentic: only a reader that fetches its base (the
/// [`crate::Store`]) can rebuild it.
pub fn open<'a>(
    ring: &Keyring,
    bytes: &'a [u8],
    expect: &Expect<'_>,
) -> Result<Opened<'a>, EnvelopeError> {
    match open_sealed(ring, bytes, expect)? {
        Sealed::Whole(opened) => Ok(opened),
        Sealed::Chunked(link) if !link.chunks.header.is_delta() => Ok(Opened {
            header: link.header,
            payload: link.data,
        }),
        Sealed::Chunked(link) => Err(EnvelopeError::NeedsBase {
            base_sequence: link.chunks.header.base_sequence,
        }),
    }
}

/// An envelope that passed every check of [`open_sealed`].
#[derive(Debug)]
pub enum Sealed<'a> {
    /// Format 1 or 2: the payload is in the envelope.
    Whole(Opened<'a>),
    /// Format 3, full or delta: the chunk table and the literal data, whose digests were checked.
    Chunked(ChunkedOpened<'a>),
}

/// A chunked envelope (format 3) that passed every check of its own: tag, structure,
/// expectations, chunk table and the digests of its literal chunks. A delta's references are
/// checked against its base by the reader of the chain.
#[derive(Debug)]
pub struct ChunkedOpened<'a> {
    /// The verified header (its payload length is the reconstructed payload's).
    pub header: Header,
    /// The chunk header and table.
    pub chunks: Chunks,
    /// The literal data: a full generation's whole payload, 16-byte aligned if the input was.
    pub data: &'a [u8],
    /// The envelope's tag.
    pub tag: [u8; TAG_LEN],
}

/// [`open`] for every format, deltas included: see [`Sealed`].
pub fn open_sealed<'a>(
    ring: &Keyring,
    bytes: &'a [u8],
    expect: &Expect<'_>,
) -> Result<Sealed<'a>, EnvelopeError> {
    open_sealed_with(ring, bytes, expect, true)
}

/// [`open_sealed`], leaving the digests of a chunked envelope's literal chunks unchecked when
/// `literals` is false: for the chain reader, which checks the digests of the rebuilt payload
/// instead (every byte of it exactly once, beside the decoding) and hands nothing out before.
pub(crate) fn open_sealed_with<'a>(
    ring: &Keyring,
    bytes: &'a [u8],
    expect: &Expect<'_>,
    literals: bool,
) -> Result<Sealed<'a>, EnvelopeError> {
    let header = Header::decode_unverified(bytes)?;
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    let Some(key) = ring.get(header.key_id) else {
        let foreign = EnvelopeError::UnknownKey(header.key_id);
        return Err(damaged_or(ring, bytes, Field::KeyId, foreign));
    };
    if !is_readable_format(format) {
        let unsupported = EnvelopeError::UnsupportedFormat { found: format };
        return Err(damaged_or(ring, bytes, Field::Format, unsupported));
    }
    if format == CHUNKED_FORMAT {
        // A whole envelope whose format field was damaged into 3 is damage too, not a
        // malformed chunked envelope: the tag verifies with the field restored.
        let damaged = |e| damaged_or(ring, bytes, Field::Format, e);
        chunked::check_lengths(bytes, bytes.len() as u64).map_err(damaged)?;
        let (head, data, table, tag) = chunked::split(bytes);
        if !chunked::verify(key, head, table, tag) {
            return Err(damaged(EnvelopeError::BadTag));
        }
        check_structure(bytes, CHUNKED_HEADER_LEN)?;
        check_expectations(&header, expect)?;
        let chunks = chunked::parse(head, table, header.payload_len, header.sequence)?;
        if chunks.header.depth > chunked::MAX_DEPTH {
            return Err(EnvelopeError::ChainTooLong {
                depth: chunks.header.depth,
                limit: chunked::MAX_DEPTH,
            });
        }
        if literals {
            chunked::verify_literals(&chunks.entries, data)
                .map_err(|index| EnvelopeError::ChunkDigest { index })?;
        }
        return Ok(Sealed::Chunked(ChunkedOpened {
            header,
            chunks,
            data,
            tag: tag.try_into().expect("32 bytes"),
        }));
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let (head, payload) = signed.split_at(HEADER_LEN);
    if !mac::verify(format, key, head, payload, tag) {
        return Err(EnvelopeError::BadTag);
    }

    check_structure(bytes, HEADER_LEN)?;
    check_expectations(&header, expect)?;
    let end = bytes.len() - TAG_LEN;
    Ok(Sealed::Whole(Opened {
        header,
        payload: &bytes[HEADER_LEN..end],
    }))
}

/// Whether `bytes` claim to be a chunked delta (format 3, depth above 0). Unverified: for
/// choosing a reader, never for trusting anything.
pub fn is_delta_unverified(bytes: &[u8]) -> bool {
    bytes.len() >= CHUNKED_HEADER_LEN
        && bytes[..MAGIC.len()] == MAGIC
        && u16::from_le_bytes([bytes[8], bytes[9]]) == CHUNKED_FORMAT
        && ChunkHeader::decode_unverified(bytes).is_some_and(|c| c.is_delta())
}

/// Where the payload of a whole envelope would be, by its unverified header: `None` for a
/// delta or lengths that do not add up.
fn payload_range(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let min = HEADER_LEN + TAG_LEN;
    if bytes.len() < min || bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    if u16::from_le_bytes([bytes[8], bytes[9]]) != CHUNKED_FORMAT {
        return Some(HEADER_LEN..bytes.len() - TAG_LEN);
    }
    let chunk = ChunkHeader::decode_unverified(bytes)?;
    chunked::check_lengths(bytes, bytes.len() as u64).ok()?;
    (!chunk.is_delta()).then(|| CHUNKED_HEADER_LEN..CHUNKED_HEADER_LEN + chunk.literal_len as usize)
}

/// [`open`], with `alongside` run on the payload while the tag is being verified: when the
/// payload is large (at least [`PARALLEL_MIN_LEN`]) the verification runs on other threads and
/// `alongside` on the calling one, so decoding overlaps authentication; when it is small,
/// `alongside` runs after every check passed.
///
/// On the parallel path `alongside` sees bytes that are **not yet authentic**, so it must be safe
/// on arbitrary bytes (rkyv validation and deserialisation are; a migration step written by a
/// user is not, and must run afterwards). Its result is returned only if every check of `open`
/// passes; otherwise it is dropped and the envelope's error returned.
///
/// ```
/// use persist_core::format;
/// use persist_core::{Expect, Header};
/// use persist_core::{Fingerprint, Key, Keyring, RkyvFormat};
/// let ring = Keyring::new(Key::from_bytes(vec![9; 32]).unwrap());
/// let header = Header {
///     key_id: ring.current().id(),
///     name: "demo".into(),
///     schema_version: 1,
///     fingerprint: Fingerprint([0; 32]),
///     rkyv_format: RkyvFormat::CURRENT,
///     sequence: 7,
///     created_at_nanos: 0,
///     payload_len: 0,
/// };
/// let bytes = format::seal(&ring, header, b"hello").unwrap();
/// let (opened, len) = format::open_with(&ring, &bytes, &Expect::default(), |p| p.len()).unwrap();
/// assert_eq!((opened.payload, len), (&b"hello"[..], 5));
/// ```
pub fn open_with<'a, R, F>(
    ring: &Keyring,
    bytes: &'a [u8],
    expect: &Expect<'_>,
    alongside: F,
) -> Result<(Opened<'a>, R), EnvelopeError>
where
    F: FnOnce(&'a [u8]) -> R,
{
    let range = payload_range(bytes).filter(|r| r.len() >= PARALLEL_MIN_LEN);
    let Some(range) = range else {
        let opened = open(ring, bytes, expect)?;
        let result = alongside(opened.payload);
        return Ok((opened, result));
    };
    // The slice `open` hands out once it has checked the lengths in the header.
    let payload = &bytes[range];
    // The verification moves to a second thread (its result is `Send`; the caller's value need
    // not be).
    std::thread::scope(|s| {
        let verify = s.spawn(|| open(ring, bytes, expect));
        let result = alongside(payload);
        let opened = verify
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((opened?, result))
    })
}

/// Tells a foreign or newer envelope from a damaged one. `field` (the key id or the format
/// version) holds a value this build cannot verify with; if the tag verifies under some key of
/// the ring once the field is restored to a value that key and this build would have written,
/// the field was damaged and the envelope is corrupt. Otherwise `otherwise` stands: the
/// envelope may well be authentic (another key, a newer format), and a load must not walk past
/// it as if it were corrupt.
///
/// Costs one tag computation per ring key and readable format, only on this rejection path.
fn damaged_or(
    ring: &Keyring,
    bytes: &[u8],
    field: Field,
    otherwise: EnvelopeError,
) -> EnvelopeError {
    let stated_key = KeyId(bytes[16..24].try_into().expect("8 bytes"));
    let stated_format = u16::from_le_bytes([bytes[8], bytes[9]]);
    let candidates: Vec<(&Key, u16)> = match field {
        Field::KeyId if is_readable_format(stated_format) => {
            ring.keys().map(|k| (k, stated_format)).collect()
        }
        Field::Format => match ring.get(stated_key) {
            Some(key) => (OLDEST_FORMAT_VERSION..=NEWEST_FORMAT_VERSION)
                .map(|f| (key, f))
                .collect(),
            None => Vec::new(),
        },
        Field::KeyId => Vec::new(),
    };
    for (key, format) in candidates {
        let mut restored = bytes[..HEADER_LEN].to_vec();
        restored[16..24].copy_from_slice(&key.id().0);
        restored[8..10].copy_from_slice(&format.to_le_bytes());
        if tag_verifies(format, key, &restored, bytes) {
            return EnvelopeError::DamagedHeader {
                field: field.name(),
            };
        }
    }
    otherwise
}

/// Whether `bytes`, with their first 160 bytes replaced by `head`, carry a valid tag of
/// `format` under `key` (the tag alone: no literal digest is checked).
fn tag_verifies(format: u16, key: &Key, head: &[u8], bytes: &[u8]) -> bool {
    if format == CHUNKED_FORMAT {
        if chunked::check_lengths(bytes, bytes.len() as u64).is_err() {
            return false;
        }
        let (chunk_head, _, table, tag) = chunked::split(bytes);
        let mut restored = chunk_head.to_vec();
        restored[..HEADER_LEN].copy_from_slice(head);
        return chunked::verify(key, &restored, table, tag);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    mac::verify(format, key, head, &signed[HEADER_LEN..], tag)
}

/// A header field [`damaged_or`] can restore.
#[derive(Clone, Copy)]
enum Field {
    KeyId,
    Format,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::KeyId => "key id",
            Field::Format => "format version",
        }
    }
}

/// Checks, before anything but the head of an object is read, that an object of `size` bytes
/// whose first bytes are `head` can be an envelope: long enough, the magic, this build's header
/// length, and a payload length that accounts for every byte. Readers call it so that no file,
/// however large, makes them read or allocate more than its header authorises (the tag later
/// proves the header authentic).
///
/// ```
/// use persist_core::format;
/// use persist_core::EnvelopeError;
/// assert_eq!(format::check_head(b"not a generation", 1 << 36), Err(EnvelopeError::BadMagic));
/// ```
pub fn check_head(head: &[u8], size: u64) -> Result<(), EnvelopeError> {
    let min = (HEADER_LEN + TAG_LEN) as u64;
    if head.len() >= MAGIC.len() && head[..MAGIC.len()] != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    if size < min || head.len() < HEADER_LEN {
        return Err(EnvelopeError::Truncated { len: size, min });
    }
    let header_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
    let payload_len = u64::from_le_bytes(head[80..88].try_into().expect("8 bytes"));
    if u16::from_le_bytes([head[8], head[9]]) == CHUNKED_FORMAT {
        if head.len() < CHUNKED_HEADER_LEN {
            return Err(EnvelopeError::Truncated { len: size, min });
        }
        return chunked::check_lengths(head, size);
    }
    let expected = u64::from(header_len)
        .checked_add(payload_len)
        .and_then(|n| n.checked_add(TAG_LEN as u64));
    if header_len as usize != HEADER_LEN || expected != Some(size) {
        return Err(EnvelopeError::LengthMismatch {
            header_len,
            payload_len,
            total: size,
        });
    }
    Ok(())
}

/// How many bytes of an object [`check_head`] needs to see: every format's header.
pub const HEAD_LEN: usize = CHUNKED_HEADER_LEN;

/// Checks the authentic header's own consistency (`header_len`: the format's header length;
/// the lengths of a chunked envelope were checked before its tag).
fn check_structure(bytes: &[u8], header_len: usize) -> Result<(), EnvelopeError> {
    if bytes[10..12] != [0, 0] {
        return Err(EnvelopeError::Reserved("flags"));
    }
    if bytes[31] != 0 || bytes[152..160].iter().any(|&b| b != 0) {
        return Err(EnvelopeError::Reserved("reserved bytes"));
    }
    if header_len == HEADER_LEN {
        let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        let payload_len = u64::from_le_bytes(bytes[80..88].try_into().expect("8 bytes"));
        let total = bytes.len() as u64;
        let expected_total = u64::from(header_len)
            .checked_add(payload_len)
            .and_then(|n| n.checked_add(TAG_LEN as u64));
        if header_len as usize != HEADER_LEN || expected_total != Some(total) {
            return Err(EnvelopeError::LengthMismatch {
                header_len,
                payload_len,
                total,
            });
        }
    }
    let name_len = usize::from(bytes[30]);
    if name_len > MAX_NAME_LEN || bytes[88 + name_len..152].iter().any(|&b| b != 0) {
        return Err(EnvelopeError::InvalidName(format!("length {name_len}")));
    }
    let name = std::str::from_utf8(&bytes[88..88 + name_len])
        .map_err(|_| EnvelopeError::InvalidName("not UTF-8".into()))?;
    validate_name(name)?;
    let found = RkyvFormat {
        version: bytes[28],
        flags: bytes[29],
    };
    if found != RkyvFormat::CURRENT {
        return Err(EnvelopeError::RkyvFormat {
            found,
            expected: RkyvFormat::CURRENT,
        });
    }
    Ok(())
}

fn check_expectations(header: &Header, expect: &Expect<'_>) -> Result<(), EnvelopeError> {
    if let Some(name) = expect.name
        && name != header.name
    {
        return Err(EnvelopeError::WrongName {
            expected: name.to_string(),
            found: header.name.clone(),
        });
    }
    if let Some(seq) = expect.sequence
        && seq != header.sequence
    {
        return Err(EnvelopeError::WrongSequence {
            expected: seq,
            found: header.sequence,
        });
    }
    if let Some(newest) = expect.max_version
        && header.schema_version > newest
    {
        return Err(EnvelopeError::FutureVersion {
            found: header.schema_version,
            newest_known: newest,
        });
    }
    if let Some(oldest) = expect.min_version
        && header.schema_version < oldest
    {
        return Err(EnvelopeError::VersionTooOld {
            found: header.schema_version,
            oldest_known: oldest,
        });
    }
    Ok(())
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} v{} seq {} ({} payload bytes, key {})",
            self.name, self.schema_version, self.sequence, self.payload_len, self.key_id
        )
    }
}
