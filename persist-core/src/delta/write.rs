//! Writing a chunked generation (format 3): a full one, or a delta against the last generation
//! the store wrote of the state.

use super::diff::{self, Planned, Previous};
use super::{ChunkSizes, DeltaPolicy};
use crate::envelope::chunked::{self, ChunkHeader, Entry};
use crate::envelope::{Header, TAG_LEN};
use crate::error::SaveError;
use crate::store::Store;

/// A chunked generation made durable.
pub(crate) struct ChunkedWrite {
    pub(crate) tag: [u8; TAG_LEN],
    /// The envelope's size.
    pub(crate) bytes: u64,
    pub(crate) chunk: ChunkHeader,
    pub(crate) entries: Vec<Entry>,
    pub(crate) hashes: Vec<u64>,
}

impl ChunkedWrite {
    /// What the store keeps of this generation to write the next one as a delta.
    pub(crate) fn into_previous(
        self,
        sequence: u64,
        before: Option<&Previous>,
        payload: rkyv::util::AlignedVec,
    ) -> Previous {
        let (chain_bytes, full_bytes) = match before.filter(|_| self.chunk.is_delta()) {
            Some(before) => (before.chain_bytes + self.bytes, before.full_bytes),
            None => (0, self.bytes),
        };
        Previous::new(
            sequence,
            self.tag,
            self.chunk.depth,
            chain_bytes,
            full_bytes,
            payload,
            self.entries,
            self.hashes,
        )
    }
}

impl Store {
    /// Writes `payload` under `key` as a chunked generation: a delta against `previous` when
    /// given (the caller has applied the [`DeltaPolicy`]), else a full one.
    pub(crate) fn write_chunked(
        &self,
        key: &str,
        header: &Header,
        payload: &[u8],
        previous: Option<&Previous>,
        sizes: ChunkSizes,
        max_percent: u32,
    ) -> Result<ChunkedWrite, SaveError> {
        let mut plan: Vec<Planned> = match previous {
            Some(previous) => diff::plan(previous, payload, sizes),
            None => diff::cut_all(payload, sizes)
                .into_iter()
                .map(|(start, len)| Planned::New { start, len })
                .collect(),
        };
        let mut literal_len = new_bytes(&plan);
        // A delta that carries most of the payload saves little and lengthens the chain: write
        // a full generation instead (same chunks, all carried).
        let previous = match previous {
            Some(_) if literal_len as u64 * 100 > payload.len() as u64 * u64::from(max_percent) => {
                plan = all_new(&plan, previous.expect("matched"));
                literal_len = payload.len();
                None
            }
            previous => previous,
        };
        let chunk = match previous {
            Some(previous) => ChunkHeader {
                base_sequence: previous.sequence,
                base_tag: previous.tag,
                depth: previous.depth + 1,
                chunk_count: plan.len() as u32,
                literal_len: literal_len as u64,
            },
            None => ChunkHeader {
                chunk_count: plan.len() as u32,
                literal_len: literal_len as u64,
                ..ChunkHeader::default()
            },
        };
        let total = chunked::envelope_len(chunk.literal_len, u64::from(chunk.chunk_count))
            .expect("a payload in memory has a representable envelope");
        self.preflight(total)?;
        let head = header
            .encode_chunked(&chunk)
            .map_err(SaveError::InvalidName)?;
        let signing_key = self.keyring.current();
        let mut obj = self.backend.begin_put(key)?;
        obj.write(&head)?;
        // The new chunks' digests are computed while their bytes are written (a full
        // generation's are most of the work); the table and the tag follow the data.
        let (entries, hashes) = std::thread::scope(|s| {
            let hashing = s.spawn(|| diff::table(previous, payload, &plan));
            let written = write_runs(&mut *obj, payload, &plan);
            let table = hashing.join().expect("hashing does not panic");
            written.map(|()| table)
        })?;
        let table = chunked::encode_table(&entries);
        let tag = chunked::tag(signing_key, &head, &table);
        obj.write(&table)?;
        obj.write(&tag)?;
        obj.commit()?;
        Ok(ChunkedWrite {
            tag,
            bytes: total,
            chunk,
            entries,
            hashes,
        })
    }
}

/// The bytes of the new chunks of a plan.
fn new_bytes(plan: &[Planned]) -> usize {
    plan.iter()
        .map(|p| match p {
            Planned::New { len, .. } => *len,
            Planned::Same(_) => 0,
        })
        .sum()
}

/// `plan` with every chunk carried (a full generation with the same chunk boundaries).
fn all_new(plan: &[Planned], previous: &Previous) -> Vec<Planned> {
    let mut at = 0usize;
    plan.iter()
        .map(|p| {
            let len = match *p {
                Planned::New { len, .. } => len,
                Planned::Same(j) => previous.entries[j as usize].len as usize,
            };
            let start = at;
            at += len;
            Planned::New { start, len }
        })
        .collect()
}

/// Writes the new chunks' bytes, adjacent ones in one write.
fn write_runs(
    obj: &mut dyn crate::backend::NewObject,
    payload: &[u8],
    plan: &[Planned],
) -> Result<(), crate::backend::BackendError> {
    let mut run: Option<(usize, usize)> = None;
    for p in plan {
        if let Planned::New { start, len } = *p {
            run = match run {
                Some((s, e)) if e == start => Some((s, start + len)),
                Some((s, e)) => {
                    obj.write(&payload[s..e])?;
                    Some((start, start + len))
                }
                None => Some((start, start + len)),
            };
        }
    }
    if let Some((s, e)) = run {
        obj.write(&payload[s..e])?;
    }
    Ok(())
}

impl DeltaPolicy {
    /// Whether a payload of `len` bytes is written chunked under this policy.
    pub(crate) fn applies_to(&self, len: usize) -> bool {
        len >= self.min_payload
    }
}
