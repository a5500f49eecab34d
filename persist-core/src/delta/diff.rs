//! Dirty detection: which chunks of a new payload the last generation already holds.
//!
//! The store keeps the last payload it wrote of a state ([`Previous`]) with its chunk table.
//! A new payload is compared with it byte for byte (exact; no hash decides that two chunks are
//! equal), so a save costs a `memcmp` of the unchanged bytes plus chunking and hashing of the
//! changed ones:
//!
//! 1. While the new payload lines up with the previous one, each previous chunk is compared in
//!    place and, when equal, referenced.
//! 2. Where it does not, FastCDC cuts a chunk from the new bytes; if a previous chunk of the
//!    same length has the same XXH3 and the same bytes (data that moved: an insertion or a
//!    removal before it), it is referenced and the walk lines up again from there; otherwise
//!    the chunk is carried as a literal.
//!
//! Content-defined cuts resynchronise with the previous chunk boundaries shortly after a
//! change, so an insertion costs about the inserted bytes plus a chunk or two.

use std::collections::HashMap;

use rkyv::util::AlignedVec;
use xxhash_rust::xxh3::xxh3_64;

use super::ChunkSizes;
use crate::envelope::TAG_LEN;
use crate::envelope::chunked::{Entry, LITERAL};

/// The last generation a store wrote (or verified) of a state, kept to write the next one as a
/// delta.
pub(crate) struct Previous {
    pub(crate) sequence: u64,
    pub(crate) tag: [u8; TAG_LEN],
    /// Its depth (0: full).
    pub(crate) depth: u32,
    /// The envelope bytes of the deltas since the last full generation, this one included.
    pub(crate) chain_bytes: u64,
    /// The envelope bytes of that full generation.
    pub(crate) full_bytes: u64,
    pub(crate) payload: AlignedVec,
    /// Its chunk table (sources are irrelevant here: every entry is a chunk of `payload`).
    pub(crate) entries: Vec<Entry>,
    /// Where each chunk starts in `payload`.
    pub(crate) starts: Vec<usize>,
    /// XXH3 of each chunk.
    pub(crate) hashes: Vec<u64>,
    /// A chunk index by (XXH3, length), for data that moved.
    by_hash: HashMap<(u64, u32), u32>,
}

impl std::fmt::Debug for Previous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Previous")
            .field("sequence", &self.sequence)
            .field("depth", &self.depth)
            .field("payload_len", &self.payload.len())
            .field("chunks", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// One chunk of a new payload, as planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Planned {
    /// The previous generation's chunk `index` holds these bytes.
    Same(u32),
    /// New bytes: `payload[start..start + len]`.
    New { start: usize, len: usize },
}

impl Previous {
    /// What a store keeps of a chunked generation it just wrote or verified.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        sequence: u64,
        tag: [u8; TAG_LEN],
        depth: u32,
        chain_bytes: u64,
        full_bytes: u64,
        payload: AlignedVec,
        entries: Vec<Entry>,
        hashes: Vec<u64>,
    ) -> Previous {
        let mut starts = Vec::with_capacity(entries.len());
        let mut at = 0usize;
        for entry in &entries {
            starts.push(at);
            at += entry.len as usize;
        }
        let mut by_hash = HashMap::with_capacity(entries.len());
        for (i, (entry, &hash)) in entries.iter().zip(&hashes).enumerate() {
            by_hash.entry((hash, entry.len)).or_insert(i as u32);
        }
        Previous {
            sequence,
            tag,
            depth,
            chain_bytes,
            full_bytes,
            payload,
            entries,
            starts,
            hashes,
            by_hash,
        }
    }

    fn chunk(&self, index: usize) -> &[u8] {
        let start = self.starts[index];
        &self.payload[start..start + self.entries[index].len as usize]
    }

    /// The chunk starting at `at` in the previous payload, if one does.
    fn chunk_at(&self, at: usize) -> Option<usize> {
        self.starts.binary_search(&at).ok()
    }
}

/// Cuts `payload` into content-defined chunks: `(start, len)` pairs covering it in order.
pub(crate) fn cut_all(payload: &[u8], sizes: ChunkSizes) -> Vec<(usize, usize)> {
    let sizes = sizes.clamped();
    fastcdc::v2020::FastCDC::new(payload, sizes.min, sizes.avg, sizes.max)
        .map(|c| (c.offset, c.length))
        .collect()
}

/// Plans `payload` against `previous`: see the module docs.
pub(crate) fn plan(previous: &Previous, payload: &[u8], sizes: ChunkSizes) -> Vec<Planned> {
    let sizes = sizes.clamped();
    let cdc = fastcdc::v2020::FastCDC::new(payload, sizes.min, sizes.avg, sizes.max);
    let n = payload.len();
    let mut out = Vec::with_capacity(previous.entries.len() + 16);
    let mut q = 0usize;
    // The previous chunk expected next, and how far the new payload is shifted against the
    // previous one (previous position − new position).
    let mut next = Some(0usize);
    let mut shift: isize = 0;
    while q < n {
        if let Some(j) = next.filter(|&j| j < previous.entries.len()) {
            let len = previous.entries[j].len as usize;
            if q + len <= n && payload[q..q + len] == *previous.chunk(j) {
                out.push(Planned::Same(j as u32));
                q += len;
                next = Some(j + 1);
                continue;
            }
        }
        let (_, end) = cdc.cut(q, n - q);
        let len = end - q;
        let bytes = &payload[q..end];
        let moved = u32::try_from(len)
            .ok()
            .and_then(|len32| previous.by_hash.get(&(xxh3_64(bytes), len32)))
            .map(|&j| j as usize)
            .filter(|&j| previous.chunk(j) == bytes);
        match moved {
            Some(j) => {
                out.push(Planned::Same(j as u32));
                shift = previous.starts[j] as isize - q as isize;
                next = Some(j + 1);
            }
            None => {
                out.push(Planned::New { start: q, len });
                next = (end as isize + shift)
                    .try_into()
                    .ok()
                    .and_then(|at| previous.chunk_at(at));
            }
        }
        q = end;
    }
    out
}

/// The chunk table and XXH3 list of a planned payload, hashing (SHA-256, XXH3) only its new
/// chunks.
pub(crate) fn table(
    previous: Option<&Previous>,
    payload: &[u8],
    plan: &[Planned],
) -> (Vec<Entry>, Vec<u64>) {
    let new: Vec<(usize, usize)> = plan
        .iter()
        .filter_map(|p| match *p {
            Planned::New { start, len } => Some((start, len)),
            Planned::Same(_) => None,
        })
        .collect();
    let mut digests = crate::envelope::chunked::digests(payload, &new).into_iter();
    let mut entries = Vec::with_capacity(plan.len());
    let mut hashes = Vec::with_capacity(plan.len());
    for p in plan {
        match *p {
            Planned::Same(j) => {
                let previous = previous.expect("a reference needs a previous generation");
                let base = previous.entries[j as usize];
                entries.push(Entry {
                    len: base.len,
                    source: j,
                    digest: base.digest,
                });
                hashes.push(previous.hashes[j as usize]);
            }
            Planned::New { start, len } => {
                entries.push(Entry {
                    len: len as u32,
                    source: LITERAL,
                    digest: digests.next().expect("one digest per new chunk"),
                });
                hashes.push(xxh3_64(&payload[start..start + len]));
            }
        }
    }
    (entries, hashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn previous_of(payload: &[u8], sizes: ChunkSizes) -> Previous {
        let plan: Vec<Planned> = cut_all(payload, sizes)
            .into_iter()
            .map(|(start, len)| Planned::New { start, len })
            .collect();
        let (entries, hashes) = table(None, payload, &plan);
        let mut buf = AlignedVec::new();
        buf.extend_from_slice(payload);
        Previous::new(1, [0; 32], 0, 0, payload.len() as u64, buf, entries, hashes)
    }

    fn new_bytes(plan: &[Planned]) -> usize {
        plan.iter()
            .map(|p| match p {
                Planned::New { len, .. } => *len,
                Planned::Same(_) => 0,
            })
            .sum()
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn an_in_place_edit_costs_about_the_edit_and_an_insertion_resynchronises() {
        let sizes = ChunkSizes::around(4096);
        let old = noise(1 << 20, 7);
        let previous = previous_of(&old, sizes);
        let mut edited = old.clone();
        edited[500_000..510_000].copy_from_slice(&noise(10_000, 9));
        let plan = plan(&previous, &edited, sizes);
        assert!(
            new_bytes(&plan) < 10_000 + 4 * 16384,
            "{}",
            new_bytes(&plan)
        );

        let mut grown = old[..300_000].to_vec();
        grown.extend_from_slice(&noise(777, 3));
        grown.extend_from_slice(&old[300_000..]);
        let plan = super::plan(&previous, &grown, sizes);
        assert!(new_bytes(&plan) < 777 + 4 * 16384, "{}", new_bytes(&plan));
        assert_eq!(
            plan.iter()
                .map(|p| match p {
                    Planned::New { len, .. } => *len,
                    Planned::Same(j) => previous.entries[*j as usize].len as usize,
                })
                .sum::<usize>(),
            grown.len()
        );
    }
}
