//! The floors a store operation is measured against.
//!
//! [`ProtocolFloor`] is the durable-write protocol with nothing else: no encoding, no signing, no
//! listing, no checks. [`tag_floor`] is the authentication pass of a load with nothing else: the
//! envelope's tag recomputed over bytes already in memory (every core hashing the payload's
//! chunks, as a load does), no read, no validation, no copy. [`hmac_sha256`] is the flat,
//! single-pass HMAC of envelope format 1 and of the spec, for reference.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use persist_core::Key;
use persist_core::format;
use persist_core::format::{HEADER_LEN, TAG_LEN};
use sha2::Sha256;

/// Durable writes of byte strings into one directory with plain `std::fs`, each under a fresh
/// name, keeping the newest `keep` files (as the store's retention does).
#[derive(Debug)]
pub struct ProtocolFloor {
    dir: PathBuf,
    keep: usize,
    next: u64,
    live: VecDeque<PathBuf>,
}

impl ProtocolFloor {
    /// A floor writing into `dir` (created if missing), keeping `keep` files (at least 1).
    pub fn new(dir: &Path, keep: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(ProtocolFloor {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            next: 0,
            live: VecDeque::new(),
        })
    }

    /// Writes `bytes` to a new temp file, `fsync`s it, renames it to a new name, `fsync`s the
    /// directory, then deletes the oldest file beyond `keep`. Returns the new file's path.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<PathBuf> {
        let n = self.next;
        self.next += 1;
        let temp = self.dir.join(format!(".{n:020}.tmp"));
        let target = self.dir.join(format!("{n:020}.dat"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &target)?;
        File::open(&self.dir)?.sync_all()?;
        self.live.push_back(target.clone());
        while self.live.len() > self.keep {
            if let Some(old) = self.live.pop_front() {
                fs::remove_file(old)?;
            }
        }
        Ok(target)
    }

    /// The files currently kept, oldest first.
    pub fn live(&self) -> impl Iterator<Item = &Path> {
        self.live.iter().map(PathBuf::as_path)
    }
}

/// The envelope tag of `signed` (a generation without its last `TAG_LEN` bytes) under `key`:
/// exactly the authentication work a load does, on bytes already in memory.
pub fn tag_floor(key: &Key, signed: &[u8]) -> [u8; TAG_LEN] {
    let (head, payload) = signed.split_at(HEADER_LEN);
    let head: &[u8; HEADER_LEN] = head.try_into().expect("a generation starts with a header");
    format::tag(key, head, payload)
}

/// HMAC-SHA256 of the concatenation of `parts` under `key` (hmac 0.12 and sha2 0.10, as in
/// persist-core).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}
