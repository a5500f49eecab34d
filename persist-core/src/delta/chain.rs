//! Reading a delta: its chain back to a full generation, every link verified, the payload
//! rebuilt into one aligned buffer.
//!
//! Invariants:
//!
//! - Every link is opened exactly as a generation is (tag, structure, name, sequence, chunk
//!   table, the digests of its literal chunks) before anything of it is used.
//! - A base must be the generation the delta names: same state, the sequence and the tag in the
//!   delta's signed header, and a depth one less. Each reference must name a chunk of the base
//!   with the same length and digest. So the rebuilt payload is exactly the one whose chunk
//!   digests the delta's tag signs.
//! - The walk is bounded by the depth in the first (authentic) header, at most
//!   [`MAX_DEPTH`](crate::format::MAX_DEPTH) links.
//! - Nothing is allocated for the payload before every link is verified; then exactly the
//!   signed payload length.

use rkyv::util::AlignedVec;

use crate::backend::{Backend, BackendError, ObjectBytes};
use xxhash_rust::xxh3::xxh3_64;

use super::diff::Previous;
use crate::envelope::chunked::{
    self, CHUNKED_FORMAT, CHUNKED_HEADER_LEN, ChunkHeader, Chunks, Entry,
};
use crate::envelope::{self, Expect, Header, Sealed, TAG_LEN};
use crate::generation::{GenerationInfo, fetch};
use crate::key::Keyring;
use crate::reject::RejectReason;

/// A generation as read: its envelope (not yet verified: the caller opens it as before), or the
/// verified, rebuilt payload of a delta.
pub(crate) enum Resolved {
    /// A whole generation (format 1, 2 or a full format 3), still to be opened.
    Whole(ObjectBytes),
    /// A delta whose chain verified.
    Rebuilt(Box<Rebuilt>),
}

/// The verified payload of a delta, rebuilt from its chain.
pub(crate) struct Rebuilt {
    /// The delta's header.
    pub(crate) header: Header,
    /// The payload, 16-byte aligned.
    pub(crate) payload: AlignedVec,
    /// The delta's chunk header and table.
    pub(crate) chunks: Chunks,
    /// The delta's tag.
    pub(crate) tag: [u8; TAG_LEN],
    /// The envelope bytes of the chain's deltas, this one included.
    pub(crate) chain_bytes: u64,
    /// The envelope bytes of the chain's full generation.
    pub(crate) full_bytes: u64,
    /// Links whose literal digests are still to be checked ([`Rebuilt::verify_links`]): the
    /// payload was assembled from them, and nothing of it may be used before they pass.
    unverified: Vec<Link>,
}

impl Rebuilt {
    /// Checks the SHA-256 of every literal chunk of every link still unverified: the last check
    /// before the payload may be used. A load runs it on other cores while it decodes the
    /// payload on its own (decoding is safe on arbitrary bytes, and its result is dropped
    /// unless this passes), as it does for a whole generation's tag.
    pub(crate) fn verify_links(&self) -> Result<(), RejectReason> {
        for (k, link) in self.unverified.iter().enumerate() {
            if let Err(index) = chunked::verify_literals(&link.chunks.entries, link.data()) {
                let corrupt =
                    RejectReason::Envelope(envelope::EnvelopeError::ChunkDigest { index });
                return Err(if k == 0 {
                    corrupt
                } else {
                    RejectReason::BaseRejected {
                        base: link.sequence,
                        reason: Box::new(corrupt),
                    }
                });
            }
        }
        Ok(())
    }

    /// Whether [`Rebuilt::verify_links`] has work left.
    pub(crate) fn is_pending(&self) -> bool {
        !self.unverified.is_empty()
    }
}

impl Resolved {
    /// What a delta store keeps of this generation to write the next save as a delta against
    /// it: its payload (moved for a rebuilt delta, copied from a full chunked generation) and
    /// chunk table. `None` for a generation that is not chunked. The caller has verified it.
    pub(crate) fn into_previous(self, sequence: u64) -> Option<Previous> {
        let (tag, depth, chain_bytes, full_bytes, payload, entries) = match self {
            Resolved::Rebuilt(r) => (
                r.tag,
                r.chunks.header.depth,
                r.chain_bytes,
                r.full_bytes,
                r.payload,
                r.chunks.entries,
            ),
            Resolved::Whole(bytes) => {
                let chunk = ChunkHeader::decode_unverified(&bytes)?;
                if u16::from_le_bytes([bytes[8], bytes[9]]) != CHUNKED_FORMAT || chunk.is_delta() {
                    return None;
                }
                let len = chunk.literal_len as usize;
                let table = &bytes[CHUNKED_HEADER_LEN + len..bytes.len() - TAG_LEN];
                let entries: Vec<Entry> = chunked::decode_table(table);
                let mut payload = AlignedVec::with_capacity(len);
                payload.extend_from_slice(&bytes[CHUNKED_HEADER_LEN..CHUNKED_HEADER_LEN + len]);
                let tag = bytes[bytes.len() - TAG_LEN..].try_into().expect("32 bytes");
                (tag, 0, 0, bytes.len() as u64, payload, entries)
            }
        };
        let mut at = 0usize;
        let hashes = entries
            .iter()
            .map(|e| {
                let hash = xxh3_64(&payload[at..at + e.len as usize]);
                at += e.len as usize;
                hash
            })
            .collect();
        Some(Previous::new(
            sequence,
            tag,
            depth,
            chain_bytes,
            full_bytes,
            payload,
            entries,
            hashes,
        ))
    }

    /// The bytes a view points into: the envelope, or the rebuilt payload.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Resolved::Whole(bytes) => bytes,
            Resolved::Rebuilt(rebuilt) => &rebuilt.payload,
        }
    }

    /// True when the bytes are a memory map.
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Resolved::Whole(bytes) if bytes.is_mapped())
    }
}

/// Reads generation `generation` of state `name`; a delta's chain is followed, checked and
/// rebuilt (its own header checked against `expect`). With `deferred`, the digests of the
/// links' literal chunks are left for [`Rebuilt::verify_links`], which the caller must run
/// before using anything (`check::open_generation` does, beside the decoding); otherwise they
/// are checked here.
pub(crate) fn fetch_resolved(
    backend: &dyn Backend,
    ring: &Keyring,
    name: &str,
    expect: &Expect<'_>,
    generation: &GenerationInfo,
    mapped: bool,
    deferred: bool,
) -> Result<Resolved, RejectReason> {
    let bytes = fetch(backend, generation, mapped)?;
    resolve_with(backend, ring, name, expect, generation, bytes, deferred)
}

/// [`fetch_resolved`] of bytes already read, every check done.
pub(crate) fn resolve(
    backend: &dyn Backend,
    ring: &Keyring,
    name: &str,
    expect: &Expect<'_>,
    generation: &GenerationInfo,
    bytes: ObjectBytes,
) -> Result<Resolved, RejectReason> {
    resolve_with(backend, ring, name, expect, generation, bytes, false)
}

fn resolve_with(
    backend: &dyn Backend,
    ring: &Keyring,
    name: &str,
    expect: &Expect<'_>,
    generation: &GenerationInfo,
    bytes: ObjectBytes,
    deferred: bool,
) -> Result<Resolved, RejectReason> {
    if !envelope::is_delta_unverified(&bytes) {
        return Ok(Resolved::Whole(bytes));
    }
    let mut rebuilt = rebuild(backend, ring, name, expect, generation, bytes)?;
    if !deferred {
        rebuilt.verify_links()?;
        rebuilt.unverified.clear();
    }
    Ok(Resolved::Rebuilt(Box::new(rebuilt)))
}

/// One verified link of a chain.
struct Link {
    sequence: u64,
    bytes: ObjectBytes,
    chunks: Chunks,
}

impl Link {
    fn data(&self) -> &[u8] {
        let len = self.chunks.header.literal_len as usize;
        &self.bytes[CHUNKED_HEADER_LEN..CHUNKED_HEADER_LEN + len]
    }
}

fn rebuild(
    backend: &dyn Backend,
    ring: &Keyring,
    name: &str,
    expect: &Expect<'_>,
    generation: &GenerationInfo,
    bytes: ObjectBytes,
) -> Result<Rebuilt, RejectReason> {
    // Literal digests are checked after assembly (`Rebuilt::verify_links`).
    let Sealed::Chunked(top) = envelope::open_sealed_with(ring, &bytes, expect, false)? else {
        unreachable!("is_delta_unverified checked the format, and open_sealed verified it")
    };
    let (header, chunks, tag) = (top.header, top.chunks, top.tag);
    let mut links = vec![Link {
        sequence: generation.sequence,
        bytes,
        chunks: chunks.clone(),
    }];
    let dir = generation
        .key
        .rsplit_once('/')
        .map_or(String::new(), |(dir, _)| format!("{dir}/"));
    let mut want = links[0].chunks.header;
    while want.depth > 0 {
        let base = want.base_sequence;
        let info = GenerationInfo {
            sequence: base,
            key: format!("{dir}{base:020}.{}", crate::generation::GENERATION_EXT),
            size: 0,
        };
        let rejected = |reason: RejectReason| RejectReason::BaseRejected {
            base,
            reason: Box::new(reason),
        };
        let bytes = match fetch(backend, &info, true) {
            Ok(bytes) => bytes,
            Err(RejectReason::Read(BackendError::NotFound { .. })) => {
                return Err(RejectReason::BaseMissing { base });
            }
            Err(e) => return Err(rejected(e)),
        };
        let opened =
            envelope::open_sealed_with(ring, &bytes, &Expect::generation(name, base), false)
                .map_err(|e| rejected(e.into()))?;
        let Sealed::Chunked(link) = opened else {
            return Err(RejectReason::BaseMismatch {
                base,
                what: "is not a chunked generation",
            });
        };
        if link.tag != want.base_tag {
            return Err(RejectReason::BaseMismatch {
                base,
                what: "has another tag: the delta was made from another generation",
            });
        }
        if link.chunks.header.depth + 1 != want.depth {
            return Err(RejectReason::BaseMismatch {
                base,
                what: "has a depth that does not precede the delta's",
            });
        }
        want = link.chunks.header;
        let chunks = link.chunks;
        links.push(Link {
            sequence: base,
            bytes,
            chunks,
        });
    }
    let payload = assemble(&links, header.payload_len as usize)?;
    let (full, deltas) = links
        .split_last()
        .expect("a chain ends with a full generation");
    let chain_bytes = deltas.iter().map(|l| l.bytes.len() as u64).sum();
    let full_bytes = full.bytes.len() as u64;
    Ok(Rebuilt {
        header,
        payload,
        chunks,
        tag,
        chain_bytes,
        full_bytes,
        unverified: links,
    })
}

/// Resolves every chunk of the newest link to bytes of some link's literal data, checking each
/// reference against its base, then copies them into one aligned buffer.
fn assemble(links: &[Link], payload_len: usize) -> Result<AlignedVec, RejectReason> {
    let full = links.last().expect("a chain ends with a full generation");
    // Where each chunk of the current link lies: (link index, offset in its literal data).
    let mut locations: Vec<(usize, usize)> = literal_offsets(&full.chunks.entries)
        .map(|offset| {
            (
                links.len() - 1,
                offset.expect("a full generation is all literal"),
            )
        })
        .collect();
    for k in (0..links.len() - 1).rev() {
        let base = &links[k + 1];
        let mut next = Vec::with_capacity(links[k].chunks.entries.len());
        for (entry, offset) in links[k]
            .chunks
            .entries
            .iter()
            .zip(literal_offsets(&links[k].chunks.entries))
        {
            match offset {
                Some(offset) => next.push((k, offset)),
                None => {
                    let j = entry.source as usize;
                    let same = base
                        .chunks
                        .entries
                        .get(j)
                        .is_some_and(|b| b.len == entry.len && b.digest == entry.digest);
                    if !same {
                        return Err(RejectReason::BaseMismatch {
                            base: base.sequence,
                            what: "lacks a chunk the delta refers to",
                        });
                    }
                    next.push(locations[j]);
                }
            }
        }
        locations = next;
    }
    let mut out = AlignedVec::with_capacity(payload_len);
    let mut run: Option<(usize, usize, usize)> = None; // (link, start, end)
    for (entry, &(k, offset)) in links[0].chunks.entries.iter().zip(&locations) {
        let end = offset + entry.len as usize;
        run = match run {
            Some((rk, s, e)) if rk == k && e == offset => Some((k, s, end)),
            Some((rk, s, e)) => {
                out.extend_from_slice(&links[rk].data()[s..e]);
                Some((k, offset, end))
            }
            None => Some((k, offset, end)),
        };
    }
    if let Some((k, s, e)) = run {
        out.extend_from_slice(&links[k].data()[s..e]);
    }
    debug_assert_eq!(out.len(), payload_len);
    Ok(out)
}

/// For each entry, its offset in the literal data when it is literal.
fn literal_offsets(entries: &[Entry]) -> impl Iterator<Item = Option<usize>> + '_ {
    let mut at = 0usize;
    entries.iter().map(move |e| {
        e.is_literal().then(|| {
            let offset = at;
            at += e.len as usize;
            offset
        })
    })
}
