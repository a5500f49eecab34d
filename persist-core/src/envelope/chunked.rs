//! Envelope format 3, the chunked envelope: full and delta generations as a table of chunks.
//!
//! ```text
//! 0    header (160 bytes, as format 2; format version 3, header length 224,
//!      payload length = the length of the whole reconstructed payload)
//! 160  chunk header (64 bytes): base sequence u64, base tag [32], depth u32,
//!      chunk count u32, literal length u64, reserved u64 (zero)
//! 224  literal data: the bytes of the chunks this generation carries, in table order
//! ...  chunk table: `chunk count` entries of 40 bytes: length u32, source u32, SHA-256 [32]
//! ...  tag (32 bytes)
//! ```
//!
//! Every chunk of the reconstructed payload has an entry, in payload order. `source` is
//! [`LITERAL`] when the chunk's bytes are in this generation's literal data, or the index of the
//! base generation's entry whose bytes it repeats (same length, same digest). A full generation
//! (depth 0, base sequence 0, base tag zero) has only literal chunks, so its literal data *is*
//! its payload, contiguous and 16-byte aligned at offset 224: it is read in place, as format 2.
//!
//! The tag is `HMAC-SHA256(key, DOMAIN_V3 ‖ bytes[0..224] ‖ chunk table)`: it covers every byte
//! of the file except the literal data, which the table's SHA-256 digests cover. Hence, as in
//! format 2, the tag authenticates the whole reconstructed payload as a list of chunk digests,
//! and the base's sequence and tag are inside it: a delta applies to exactly one base.
//!
//! Invariants [`parse`] checks before anything is handed out (after the tag verifies):
//! every length adds up exactly (`224 + literal length + 40 · count + 32` is the file's size,
//! the entries' lengths add up to the payload length, the literal ones to the literal length),
//! no entry is empty, a full generation has no references, and a delta's base is older than
//! itself. Literal digests are checked by [`verify_literals`]; references are checked against
//! the base's table by the chain reader.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{EnvelopeError, HEADER_LEN, TAG_LEN};
use crate::key::Key;

/// The format version of chunked envelopes.
pub const CHUNKED_FORMAT: u16 = 3;
/// The header length of a chunked envelope: the 160-byte header and the 64-byte chunk header.
pub const CHUNKED_HEADER_LEN: usize = HEADER_LEN + 64;
/// The length of one chunk table entry.
pub const ENTRY_LEN: usize = 40;
/// The `source` of a chunk whose bytes this generation carries.
pub const LITERAL: u32 = u32::MAX;
/// The domain string of format 3's tag.
pub const DOMAIN_V3: &[u8] = b"persist/envelope/v3\0";
/// The longest chain of deltas this build reads: a delta of a greater depth is rejected
/// without reading its bases ([`EnvelopeError::ChainTooLong`]).
pub const MAX_DEPTH: u32 = 64;

/// The chunk header of a format-3 envelope (bytes 160..224).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChunkHeader {
    /// The base generation's sequence number (0 for a full generation).
    pub base_sequence: u64,
    /// The base generation's tag (zero for a full generation).
    pub base_tag: [u8; TAG_LEN],
    /// How many deltas lead back to a full generation: 0 for a full one, the base's depth + 1
    /// for a delta.
    pub depth: u32,
    /// The number of chunk table entries.
    pub chunk_count: u32,
    /// The length of the literal data.
    pub literal_len: u64,
}

impl ChunkHeader {
    /// True for a delta (it needs its base to be read).
    pub fn is_delta(&self) -> bool {
        self.depth > 0
    }

    /// Encodes the chunk header into its 64 bytes.
    pub fn encode(&self) -> [u8; CHUNKED_HEADER_LEN - HEADER_LEN] {
        let mut b = [0u8; CHUNKED_HEADER_LEN - HEADER_LEN];
        b[0..8].copy_from_slice(&self.base_sequence.to_le_bytes());
        b[8..40].copy_from_slice(&self.base_tag);
        b[40..44].copy_from_slice(&self.depth.to_le_bytes());
        b[44..48].copy_from_slice(&self.chunk_count.to_le_bytes());
        b[48..56].copy_from_slice(&self.literal_len.to_le_bytes());
        b
    }

    /// Decodes the chunk header of a format-3 envelope **without verifying anything**; `None`
    /// if `bytes` is shorter than [`CHUNKED_HEADER_LEN`].
    pub fn decode_unverified(bytes: &[u8]) -> Option<ChunkHeader> {
        let b = bytes.get(HEADER_LEN..CHUNKED_HEADER_LEN)?;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        Some(ChunkHeader {
            base_sequence: u64_at(0),
            base_tag: b[8..40].try_into().expect("32 bytes"),
            depth: u32_at(40),
            chunk_count: u32_at(44),
            literal_len: u64_at(48),
        })
    }
}

/// One chunk of a reconstructed payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its length in bytes (at least 1).
    pub len: u32,
    /// [`LITERAL`], or the index of the base's entry it repeats.
    pub source: u32,
    /// SHA-256 of its bytes.
    pub digest: [u8; 32],
}

impl Entry {
    /// True when this generation carries the chunk's bytes.
    pub fn is_literal(&self) -> bool {
        self.source == LITERAL
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.source.to_le_bytes());
        out.extend_from_slice(&self.digest);
    }

    fn decode(b: &[u8]) -> Entry {
        Entry {
            len: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            source: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            digest: b[8..40].try_into().expect("32 bytes"),
        }
    }
}

/// Encodes a chunk table.
pub fn encode_table(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for entry in entries {
        entry.encode(&mut out);
    }
    out
}

/// Decodes a chunk table (whole entries only).
pub fn decode_table(table: &[u8]) -> Vec<Entry> {
    table.chunks_exact(ENTRY_LEN).map(Entry::decode).collect()
}

/// The size of a format-3 envelope with `literal_len` bytes of literal data and `chunk_count`
/// entries; `None` on overflow.
pub fn envelope_len(literal_len: u64, chunk_count: u64) -> Option<u64> {
    chunk_count
        .checked_mul(ENTRY_LEN as u64)?
        .checked_add(literal_len)?
        .checked_add((CHUNKED_HEADER_LEN + TAG_LEN) as u64)
}

/// The format-3 tag of `head` (the 224 header bytes) and the encoded chunk table.
pub fn tag(key: &Key, head: &[u8], table: &[u8]) -> [u8; TAG_LEN] {
    mac(key, head, table).finalize().into_bytes().into()
}

/// Verifies a format-3 tag in constant time.
pub(super) fn verify(key: &Key, head: &[u8], table: &[u8], tag: &[u8]) -> bool {
    mac(key, head, table).verify_slice(tag).is_ok()
}

fn mac(key: &Key, head: &[u8], table: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.secret()).expect("HMAC accepts keys of any length");
    mac.update(DOMAIN_V3);
    mac.update(head);
    mac.update(table);
    mac
}

/// The parts of a format-3 envelope: `(head, literal data, table, tag)`. The caller has checked
/// the length with [`check_lengths`].
pub(super) fn split(bytes: &[u8]) -> (&[u8], &[u8], &[u8], &[u8]) {
    let (head, rest) = bytes.split_at(CHUNKED_HEADER_LEN);
    let chunk = ChunkHeader::decode_unverified(bytes).expect("checked length");
    let (data, rest) = rest.split_at(chunk.literal_len as usize);
    let (table, tag) = rest.split_at(rest.len() - TAG_LEN);
    (head, data, table, tag)
}

/// Checks that the lengths of a format-3 envelope's head account for exactly `size` bytes.
pub(super) fn check_lengths(head: &[u8], size: u64) -> Result<(), EnvelopeError> {
    let header_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
    let payload_len = u64::from_le_bytes(head[80..88].try_into().expect("8 bytes"));
    let mismatch = EnvelopeError::LengthMismatch {
        header_len,
        payload_len,
        total: size,
    };
    if header_len as usize != CHUNKED_HEADER_LEN || head.len() < CHUNKED_HEADER_LEN {
        return Err(mismatch);
    }
    let chunk = ChunkHeader::decode_unverified(head).expect("checked length");
    match envelope_len(chunk.literal_len, u64::from(chunk.chunk_count)) {
        Some(expected) if expected == size => Ok(()),
        _ => Err(mismatch),
    }
}

/// A verified format-3 envelope's chunk header and table.
#[derive(Clone, Debug)]
pub struct Chunks {
    /// The chunk header.
    pub header: ChunkHeader,
    /// The table, in payload order.
    pub entries: Vec<Entry>,
}

/// Parses and checks the chunk header and table of an envelope whose tag verified: see the
/// module's invariants. `payload_len` and `sequence` are the authentic header's.
pub(super) fn parse(
    head: &[u8],
    table: &[u8],
    payload_len: u64,
    sequence: u64,
) -> Result<Chunks, EnvelopeError> {
    let header = ChunkHeader::decode_unverified(head).expect("checked length");
    if head[216..224].iter().any(|&b| b != 0) {
        return Err(EnvelopeError::Reserved("chunk header reserved bytes"));
    }
    let bad = |what: &'static str| EnvelopeError::BadChunkTable(what);
    let full = header.depth == 0;
    if full != (header.base_sequence == 0) || (full && header.base_tag != [0; TAG_LEN]) {
        return Err(bad("a full generation names a base, or a delta none"));
    }
    if !full && header.base_sequence >= sequence {
        return Err(bad("the base is not older than the delta"));
    }
    let entries = decode_table(table);
    let (mut total, mut literal) = (0u64, 0u64);
    for entry in &entries {
        if entry.len == 0 {
            return Err(bad("an empty chunk"));
        }
        total += u64::from(entry.len);
        if entry.is_literal() {
            literal += u64::from(entry.len);
        } else if full {
            return Err(bad("a full generation refers to a base"));
        }
    }
    if total != payload_len {
        return Err(bad("the chunks do not add up to the payload length"));
    }
    if literal != header.literal_len {
        return Err(bad(
            "the literal chunks do not add up to the literal length",
        ));
    }
    Ok(Chunks { header, entries })
}

/// Checks the SHA-256 digest of every literal chunk against the table, on every core for a
/// large literal section. `Err(index)` names the first chunk that fails.
pub fn verify_literals(entries: &[Entry], data: &[u8]) -> Result<(), usize> {
    let mut spans = Vec::new();
    let mut at = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        if entry.is_literal() {
            spans.push((i, at, entry.len as usize));
            at += entry.len as usize;
        }
    }
    check_spans(entries, data, &spans)
}

/// Checks `(entry index, start, length)` spans of `data` against the entries' digests.
fn check_spans(
    entries: &[Entry],
    data: &[u8],
    spans: &[(usize, usize, usize)],
) -> Result<(), usize> {
    let check = |spans: &[(usize, usize, usize)]| -> Result<(), usize> {
        for &(i, start, len) in spans {
            let bytes = data.get(start..start + len).ok_or(i)?;
            let digest: [u8; 32] = Sha256::digest(bytes).into();
            if digest != entries[i].digest {
                return Err(i);
            }
        }
        Ok(())
    };
    if data.len() < super::PARALLEL_MIN_LEN {
        return check(spans);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let per = spans.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = spans
            .chunks(per)
            .skip(1)
            .map(|part| s.spawn(move || check(part)))
            .collect();
        let mut result = check(&spans[..per.min(spans.len())]);
        for part in parts {
            let r = part.join().expect("hashing does not panic");
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// SHA-256 digests of `chunks` of `data` (start, length), on every core for a large total.
pub fn digests(data: &[u8], chunks: &[(usize, usize)]) -> Vec<[u8; 32]> {
    let one = |&(start, len): &(usize, usize)| -> [u8; 32] {
        Sha256::digest(&data[start..start + len]).into()
    };
    let total: usize = chunks.iter().map(|c| c.1).sum();
    if total < super::PARALLEL_MIN_LEN {
        return chunks.iter().map(one).collect();
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let per = chunks.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = chunks[..]
            .chunks(per)
            .skip(1)
            .map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<[u8; 32]> = chunks[..per.min(chunks.len())].iter().map(one).collect();
        for part in parts {
            all.extend(part.join().expect("hashing does not panic"));
        }
        all
    })
}
