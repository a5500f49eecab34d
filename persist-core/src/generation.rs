//! Generations as a backend holds them: their keys, their sequence numbers, listing them, and
//! reading one without trusting its size.
//!
//! Invariants:
//!
//! - A generation's key is `name/<sequence, 20 digits>.pst`, and its sequence lies in
//!   `1..=MAX_SEQUENCE`. A key of that shape with a larger number is *not* a generation: it is
//!   listed as [`Listing::beyond`] (so a report can say so), never counted for the next sequence
//!   number and never deleted. No arithmetic on sequence numbers can therefore wrap.
//! - Whatever occupies a generation's key counts for the next sequence number, whether or not
//!   it is a regular file: a save never collides with it.
//! - [`fetch`] reads the head of an object first and reads the rest only if the header's lengths
//!   account for exactly the object's size: no object makes a reader allocate or read more than
//!   its header authorises.

use crate::backend::{Backend, BackendError, ObjectBytes, ObjectMeta};
use crate::envelope;
use crate::reject::RejectReason;

/// The file extension of a generation.
pub const GENERATION_EXT: &str = "pst";

/// The largest sequence number a store allocates: 2^53 − 1, so that every sequence is exact in
/// JSON numbers too. At a million saves a second it lasts 285 years.
pub const MAX_SEQUENCE: u64 = (1 << 53) - 1;

/// The key of generation `seq` of state `name`: `name/<seq, 20 digits>.pst`.
///
/// ```
/// assert_eq!(persist_core::format::generation_key("q", 42), "q/00000000000000000042.pst");
/// ```
pub fn generation_key(name: &str, seq: u64) -> String {
    format!("{name}/{seq:020}.{GENERATION_EXT}")
}

/// Parses a generation key into its state name and sequence number; `None` for anything else,
/// including a sequence above [`MAX_SEQUENCE`].
///
/// ```
/// use persist_core::format::parse_generation_key;
/// assert_eq!(parse_generation_key("q/00000000000000000042.pst"), Some(("q", 42)));
/// assert_eq!(parse_generation_key("q/42.pst.tmp"), None);
/// assert_eq!(parse_generation_key("q/18446744073709551615.pst"), None);
/// ```
pub fn parse_generation_key(key: &str) -> Option<(&str, u64)> {
    parse_any_sequence(key).filter(|&(_, seq)| (1..=MAX_SEQUENCE).contains(&seq))
}

/// Parses a key of a generation's shape, whatever its number.
fn parse_any_sequence(key: &str) -> Option<(&str, u64)> {
    let (name, file) = key.rsplit_once('/')?;
    let digits = file.strip_suffix(".pst")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        name.rsplit('/').next().unwrap_or(name),
        digits.parse().ok()?,
    ))
}

/// One generation as listed (not verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationInfo {
    /// Its sequence number.
    pub sequence: u64,
    /// Its key in the backend.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The generations of one state in a backend, oldest first, and the keys of a generation's
/// shape that are not generations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The generations, oldest first (listed, not verified).
    pub generations: Vec<GenerationInfo>,
    /// Keys shaped like a generation's whose number is 0 or above [`MAX_SEQUENCE`]: not
    /// generations (no store writes them), reported and otherwise left alone.
    pub beyond: Vec<String>,
}

impl Listing {
    /// Lists the generations of state `name` in `backend`.
    pub fn of(backend: &dyn Backend, name: &str) -> Result<Listing, BackendError> {
        let mut listing = Listing::default();
        for ObjectMeta { key, size } in backend.list(&format!("{name}/"))? {
            match parse_any_sequence(&key) {
                Some((n, _)) if n != name => {}
                Some((_, sequence)) if (1..=MAX_SEQUENCE).contains(&sequence) => {
                    listing.generations.push(GenerationInfo {
                        sequence,
                        key,
                        size,
                    });
                }
                Some(_) => listing.beyond.push(key),
                None => {}
            }
        }
        listing.generations.sort_by_key(|g| g.sequence);
        if !listing.beyond.is_empty() {
            tracing::warn!(name, keys = ?listing.beyond, max = MAX_SEQUENCE, "keys shaped like generations with a sequence number no store writes: not generations, ignored");
        }
        Ok(listing)
    }

    /// The sequence number the next generation gets: one above every generation listed (valid
    /// or not), or 1. `None` once [`MAX_SEQUENCE`] is used up.
    pub fn next_sequence(&self) -> Option<u64> {
        match self.generations.last() {
            Some(g) => g.sequence.checked_add(1).filter(|&s| s <= MAX_SEQUENCE),
            None => Some(1),
        }
    }
}

/// Reads a whole generation, checking its head first: the magic, the header length and that the
/// payload length in the header accounts for exactly the object's size. Only then is the rest
/// read (mapped, with `mapped`, on backends that map). Nothing here is verified: the caller
/// opens the envelope.
pub fn fetch(
    backend: &dyn Backend,
    generation: &GenerationInfo,
    mapped: bool,
) -> Result<ObjectBytes, RejectReason> {
    let head = backend.get_head(&generation.key, envelope::HEAD_LEN)?;
    envelope::check_head(&head.bytes, head.size)?;
    let bytes = if mapped {
        backend.get_mapped(&generation.key)?
    } else {
        backend.get(&generation.key)?
    };
    // Generations are immutable: a different size now means someone replaced the object.
    envelope::check_head(
        &bytes[..envelope::HEAD_LEN.min(bytes.len())],
        bytes.len() as u64,
    )?;
    Ok(bytes)
}
