//! Incremental generations on a real filesystem: deltas rebuild byte-identical payloads, every
//! flipped bit of a base or a delta is caught, grafted, orphaned and overlong chains are rejected
//! with their own errors and the load falls back, and retention never orphans a delta.

use std::path::{Path, PathBuf};

use persist_core::format::{self, ChunkHeader, Sealed};
use persist_core::{
    ChunkSizes, DeltaPolicy, EnvelopeError, Expect, Header, LoadError, RejectKind, RejectReason,
    Store, StoreConfig, persist,
};
use persist_fs::FsBackend;
use persist_tests::test_keyring;
use proptest::prelude::*;

/// A payload of raw bytes: rkyv lays the bytes out first, so edits to them are edits to the
/// payload at the same place.
#[persist(name = "blob", version = 1)]
#[derive(Clone, Debug, PartialEq)]
struct Blob {
    bytes: Vec<u8>,
}

/// Deltas for every payload, however small and however much changed.
fn policy() -> DeltaPolicy {
    DeltaPolicy::default()
        .with_min_payload(0)
        .with_max_delta_percent(1_000)
        .with_chunk_sizes(ChunkSizes::around(1024))
}

fn store_in(dir: &Path, retain: usize, policy: DeltaPolicy) -> Store {
    let config = StoreConfig::default()
        .with_retain(retain)
        .with_space_reserve(0)
        .with_deltas(policy);
    Store::new(
        Box::new(FsBackend::open(dir).unwrap()),
        test_keyring(),
        config,
    )
}

/// A second store over the same directory, reading only (the writer holds the lock).
fn read_only(dir: &Path) -> Store {
    let config = StoreConfig::default().with_deltas(policy());
    Store::new(
        Box::new(FsBackend::open_read_only(dir).unwrap()),
        test_keyring(),
        config,
    )
}

fn path_of(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format::generation_key("blob", sequence))
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// How the second payload differs from the first.
#[derive(Clone, Debug)]
enum Edit {
    InPlace { at: usize, len: usize },
    Insert { at: usize, len: usize },
    Remove { at: usize, len: usize },
    Truncate { to: usize },
    Grow { by: usize },
}

fn edit(base: &[u8], edit: &Edit, seed: u64) -> Vec<u8> {
    let n = base.len();
    let mut out = base.to_vec();
    match *edit {
        Edit::InPlace { at, len } => {
            let at = at % (n + 1);
            let len = len.min(n - at);
            out[at..at + len].copy_from_slice(&noise(len, seed));
        }
        Edit::Insert { at, len } => {
            let at = at % (n + 1);
            out.splice(at..at, noise(len, seed));
        }
        Edit::Remove { at, len } => {
            let at = at % (n + 1);
            let len = len.min(n - at);
            out.drain(at..at + len);
        }
        Edit::Truncate { to } => out.truncate(to % (n + 1)),
        Edit::Grow { by } => out.extend(noise(by, seed)),
    }
    out
}

fn edits() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..20_000).prop_map(|(at, len)| Edit::InPlace { at, len }),
        (any::<usize>(), 1usize..20_000).prop_map(|(at, len)| Edit::Insert { at, len }),
        (any::<usize>(), 1usize..20_000).prop_map(|(at, len)| Edit::Remove { at, len }),
        any::<usize>().prop_map(|to| Edit::Truncate { to }),
        (1usize..20_000).prop_map(|by| Edit::Grow { by }),
    ]
}

fn flip(path: &Path, bit: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let bit = bit % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    std::fs::write(path, bytes).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// A delta rebuilds exactly the payload saved; a flipped bit anywhere in the delta makes the
    /// load fall back to the base, and anywhere in the base makes both unusable.
    #[test]
    fn deltas_rebuild_exactly_and_every_flipped_bit_is_caught(
        len in 0usize..120_000,
        seed in any::<u64>(),
        change in edits(),
        bit in any::<usize>(),
        in_base in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path(), 8, policy());
        let first = Blob { bytes: noise(len, seed) };
        let second = Blob { bytes: edit(&first.bytes, &change, seed ^ 1) };
        let r1 = store.save(&first).unwrap();
        prop_assert_eq!(r1.base, None);
        let r2 = store.save(&second).unwrap();
        prop_assert_eq!(r2.base, Some(1));

        // A fresh store (nothing in memory) rebuilds the delta from disk.
        let reader = read_only(dir.path());
        let loaded = reader.load::<Blob>().unwrap();
        prop_assert_eq!(&loaded.value, &second);
        prop_assert_eq!(loaded.report.sequence, 2);
        prop_assert_eq!(loaded.report.base, Some(1));

        flip(&path_of(dir.path(), if in_base { 1 } else { 2 }), bit);
        let reader = read_only(dir.path());
        match reader.load::<Blob>() {
            Ok(loaded) => {
                prop_assert!(!in_base, "a corrupt base must invalidate its delta");
                prop_assert_eq!(&loaded.value, &first);
                prop_assert_eq!(loaded.report.rejected.len(), 1);
                prop_assert_eq!(loaded.report.rejected[0].kind(), RejectKind::Corrupt);
            }
            Err(LoadError::AllInvalid { rejected, .. }) => {
                prop_assert!(in_base);
                prop_assert_eq!(rejected.len(), 2);
                // The delta names the link that failed: its base.
                let is_base_rejection = matches!(
                    &rejected[0].reason,
                    RejectReason::BaseRejected { base: 1, .. }
                );
                prop_assert!(is_base_rejection, "{}", rejected[0].reason);
            }
            Err(e) => prop_assert!(false, "unexpected: {e}"),
        }
    }
}

#[test]
fn chains_close_at_the_policy_limit_and_every_link_loads() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 100, policy().with_max_chain(3));
    let mut bytes = noise(200_000, 3);
    let mut bases = Vec::new();
    for i in 0..9u64 {
        let at = (i as usize * 20_011) % 190_000;
        bytes[at..at + 500].copy_from_slice(&noise(500, i + 10));
        let receipt = store
            .save(&Blob {
                bytes: bytes.clone(),
            })
            .unwrap();
        assert!(receipt.bytes < receipt.payload_len || receipt.base.is_none());
        bases.push(receipt.base);
    }
    // Full, three deltas, full, three deltas, full.
    assert_eq!(
        bases,
        [
            None,
            Some(1),
            Some(2),
            Some(3),
            None,
            Some(5),
            Some(6),
            Some(7),
            None
        ]
    );
    let loaded = read_only(dir.path()).load::<Blob>().unwrap();
    assert_eq!(loaded.value.bytes, bytes);
}

#[test]
fn a_delta_that_would_carry_most_of_the_payload_is_written_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 8, policy().with_max_delta_percent(50));
    let mut bytes = noise(100_000, 11);
    store
        .save(&Blob {
            bytes: bytes.clone(),
        })
        .unwrap();
    bytes[..60_000].copy_from_slice(&noise(60_000, 12));
    let receipt = store
        .save(&Blob {
            bytes: bytes.clone(),
        })
        .unwrap();
    assert_eq!(receipt.base, None, "60% changed: a full generation");
    bytes[..1_000].copy_from_slice(&noise(1_000, 13));
    let receipt = store
        .save(&Blob {
            bytes: bytes.clone(),
        })
        .unwrap();
    assert_eq!(receipt.base, Some(2), "1% changed: a delta of the full one");
    assert_eq!(
        read_only(dir.path()).load::<Blob>().unwrap().value.bytes,
        bytes
    );
}

#[test]
fn a_delta_grafted_onto_another_base_is_rejected_and_the_load_falls_back() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_a = store_in(a.path(), 8, policy());
    let store_b = store_in(b.path(), 8, policy());
    let one = noise(50_000, 1);
    let mut two = one.clone();
    two[100..200].fill(7);
    store_a.save(&Blob { bytes: one.clone() }).unwrap();
    store_a.save(&Blob { bytes: two }).unwrap();
    // Store B holds another generation 1 (same key, same state, other bytes).
    let other = Blob {
        bytes: noise(50_000, 2),
    };
    store_b.save(&other).unwrap();
    std::fs::copy(path_of(a.path(), 2), path_of(b.path(), 2)).unwrap();

    let loaded = read_only(b.path()).load::<Blob>().unwrap();
    assert_eq!(loaded.value, other);
    let rejection = &loaded.report.rejected[0];
    assert_eq!(rejection.sequence, 2);
    assert!(
        matches!(rejection.reason, RejectReason::BaseMismatch { base: 1, .. }),
        "{}",
        rejection.reason
    );
}

#[test]
fn a_delta_whose_base_is_missing_is_rejected_and_the_load_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 8, policy());
    let first = Blob {
        bytes: noise(60_000, 4),
    };
    store.save(&first).unwrap();
    let mut bytes = first.bytes.clone();
    bytes[10] ^= 1;
    store
        .save_full(&Blob {
            bytes: bytes.clone(),
        })
        .unwrap();
    bytes[20] ^= 1;
    assert_eq!(store.save(&Blob { bytes }).unwrap().base, Some(2));
    std::fs::remove_file(path_of(dir.path(), 2)).unwrap();

    let loaded = read_only(dir.path()).load::<Blob>().unwrap();
    assert_eq!(loaded.value, first);
    let rejection = &loaded.report.rejected[0];
    assert_eq!(rejection.sequence, 3);
    assert!(matches!(
        rejection.reason,
        RejectReason::BaseMissing { base: 2 }
    ));
    assert_eq!(rejection.kind(), RejectKind::Corrupt);
}

#[test]
fn a_chain_longer_than_any_reader_follows_is_rejected_unread() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 8, policy());
    let first = Blob {
        bytes: noise(10_000, 5),
    };
    store.save(&first).unwrap();
    // A delta, signed with the store's key, claiming a chain of 65 links (no writer makes one).
    let full = std::fs::read(path_of(dir.path(), 1)).unwrap();
    let ring = test_keyring();
    let Sealed::Chunked(opened) =
        format::open_sealed(&ring, &full, &Expect::generation("blob", 1)).unwrap()
    else {
        panic!("a delta store writes chunked generations");
    };
    let entries: Vec<format::Entry> = (0..opened.chunks.entries.len())
        .map(|i| format::Entry {
            source: i as u32,
            ..opened.chunks.entries[i]
        })
        .collect();
    let chunk = ChunkHeader {
        base_sequence: 1,
        base_tag: opened.tag,
        depth: format::MAX_DEPTH + 1,
        chunk_count: entries.len() as u32,
        literal_len: 0,
    };
    let header = Header {
        sequence: 2,
        ..opened.header.clone()
    };
    let head = header.encode_chunked(&chunk).unwrap();
    let table = format::encode_table(&entries);
    let tag = format::chunked_tag(ring.current(), &head, &table);
    let forged = [&head[..], &table, &tag].concat();
    std::fs::write(path_of(dir.path(), 2), forged).unwrap();

    let loaded = read_only(dir.path()).load::<Blob>().unwrap();
    assert_eq!(loaded.value, first);
    assert!(matches!(
        loaded.report.rejected[0].reason,
        RejectReason::Envelope(EnvelopeError::ChainTooLong {
            depth: 65,
            limit: 64
        })
    ));
}

#[test]
fn retention_keeps_the_chain_of_every_kept_delta() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 2, policy().with_max_chain(4));
    let mut bytes = noise(100_000, 6);
    for i in 0..12u64 {
        bytes[(i as usize * 7_919) % 99_000] ^= 0xff;
        store
            .save(&Blob {
                bytes: bytes.clone(),
            })
            .unwrap();
        // Every generation left loads (its chain is whole), and the newest is the last saved.
        let left: Vec<u64> = store
            .generations("blob")
            .unwrap()
            .iter()
            .map(|g| g.sequence)
            .collect();
        let reader = read_only(dir.path());
        for g in store.generations("blob").unwrap() {
            reader
                .check(&persist_core::Schema::of::<Blob>(), &g)
                .unwrap_or_else(|e| panic!("generation {} of {left:?}: {e}", g.sequence));
        }
        assert_eq!(left.last(), Some(&(i + 1)));
    }
    // Chains of five (a full and four deltas): after twelve saves the two newest are 12 and its
    // base 11 (a full generation); 10 and its chain 6..=9 went, newest first.
    let left: Vec<u64> = store
        .generations("blob")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect();
    assert_eq!(left, [11, 12]);
}

#[test]
fn every_single_bit_flip_of_a_delta_is_caught_and_the_load_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = ChunkSizes {
        min: 64,
        avg: 256,
        max: 1024,
    };
    let store = store_in(dir.path(), 8, policy().with_chunk_sizes(sizes));
    let first = Blob {
        bytes: noise(4_000, 8),
    };
    let mut second = first.clone();
    second.bytes[2_000..2_100].fill(1);
    store.save(&first).unwrap();
    assert_eq!(store.save(&second).unwrap().base, Some(1));
    let path = path_of(dir.path(), 2);
    let good = std::fs::read(&path).unwrap();
    assert!(
        good.len() < 2_000,
        "a small edit makes a small delta: {}",
        good.len()
    );
    let reader = read_only(dir.path());
    let mut flipped = good.clone();
    for bit in 0..good.len() * 8 {
        flipped[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&path, &flipped).unwrap();
        let loaded = reader.load::<Blob>().unwrap();
        assert_eq!(loaded.value, first, "flip of bit {bit} accepted");
        assert_eq!(loaded.report.rejected[0].sequence, 2);
        assert_eq!(loaded.report.rejected[0].kind(), RejectKind::Corrupt);
        flipped[bit / 8] ^= 1 << (bit % 8);
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(reader.load::<Blob>().unwrap().value, second);
}

#[persist(name = "tick", version = 1)]
#[derive(Clone, Debug, PartialEq)]
struct Tick {
    n: u64,
}

#[test]
fn snapshot_members_are_written_as_deltas_and_restore_whole() {
    let dir = tempfile::tempdir().unwrap();
    let spec = persist_core::SnapshotSpec::builder("system")
        .member::<Tick>()
        .member_after::<Blob>(&["tick"])
        .build()
        .unwrap();
    let config = StoreConfig::default()
        .with_retain(1)
        .with_retain_snapshots(2)
        .with_space_reserve(0)
        .with_deltas(policy().with_max_chain(3));
    let store = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        test_keyring(),
        config,
    );
    let mut blob = Blob {
        bytes: noise(80_000, 21),
    };
    let mut bases = Vec::new();
    for n in 0..9u64 {
        blob.bytes[(n as usize * 8_111) % 79_000] ^= 0x55;
        let mut writer = store.snapshot(&spec);
        writer.add(&Tick { n }).unwrap().add(&blob).unwrap();
        let receipt = writer.commit().unwrap();
        let member = receipt.members.iter().find(|m| m.name == "blob").unwrap();
        assert!(member.written);
        bases.push(member.base);
        // Every kept snapshot restores whole: no retention took a base its member needs.
        for info in store.snapshots("system").unwrap() {
            let mut restored = store.load_snapshot_at(&spec, info.id).unwrap();
            assert!(restored.report.is_complete(), "{}", restored.report);
            assert!(restored.take::<Blob>().is_some());
        }
    }
    assert_eq!(
        bases,
        [
            None,
            Some(1),
            Some(2),
            Some(3),
            None,
            Some(5),
            Some(6),
            Some(7),
            None
        ]
    );
    let mut restored = read_only(dir.path()).load_snapshot(&spec).unwrap();
    assert_eq!(restored.take::<Blob>(), Some(blob));
}

/// A delta whose base is authentic but signed with a key this program lacks is not corrupt:
/// the load stops (the delta takes its base's kind, foreign) instead of falling back, and
/// retention keeps both the delta and its base however many saves follow.
#[test]
fn a_delta_whose_base_is_foreign_blocks_the_load_and_retention_keeps_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let old_key = persist_core::Key::from_bytes(vec![0x11; 32]).unwrap();
    let config = || {
        StoreConfig::default()
            .with_retain(1)
            .with_space_reserve(0)
            .with_deltas(policy())
    };
    let mut bytes = noise(40_000, 31);
    {
        let old = Store::new(
            Box::new(FsBackend::open(dir.path()).unwrap()),
            persist_core::Keyring::new(old_key.clone()),
            config(),
        );
        old.save(&Blob {
            bytes: bytes.clone(),
        })
        .unwrap();
    }
    // The key is rotated: the new ring signs with the test key and still verifies the old one,
    // so the load seeds generation 1 as the base and the next save is a delta of it.
    {
        let rotated = Store::new(
            Box::new(FsBackend::open(dir.path()).unwrap()),
            test_keyring().with_verify_only(old_key),
            config(),
        );
        rotated.load::<Blob>().unwrap();
        bytes[100] ^= 1;
        assert_eq!(
            rotated
                .save(&Blob {
                    bytes: bytes.clone()
                })
                .unwrap()
                .base,
            Some(1)
        );
    }
    // A program with only the new key: generation 2 verifies, its base does not.
    let forgetful = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        test_keyring(),
        config(),
    );
    match forgetful.load::<Blob>() {
        Err(LoadError::Blocked {
            kind, generation, ..
        }) => {
            assert_eq!(kind, RejectKind::Foreign);
            assert_eq!(generation.sequence, 2);
            assert!(
                matches!(
                    generation.reason,
                    RejectReason::BaseRejected { base: 1, .. }
                ),
                "{}",
                generation.reason
            );
        }
        other => panic!("expected the load to stop at the foreign chain, got {other:?}"),
    }
    // Its retention (retain 1) never deletes the chain it cannot read.
    for i in 0..3 {
        bytes[200 + i] ^= 1;
        forgetful
            .save(&Blob {
                bytes: bytes.clone(),
            })
            .unwrap();
    }
    let left: Vec<u64> = forgetful
        .generations("blob")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect();
    assert!(left.starts_with(&[1, 2]), "{left:?}");
}
