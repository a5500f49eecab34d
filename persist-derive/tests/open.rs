//! `Store::open`: a validated, zero-copy view into a memory map of the generation file.

use std::path::Path;

use persist_core::Header;
use persist_core::format;
use persist_core::format::generation_key;
use persist_core::{
    CodecError, Key, Keyring, LoadError, OpenError, Persist, RejectKind, RejectReason, RkyvFormat,
    Store, StoreConfig, persist,
};
use persist_fs::FsBackend;

fn test_keyring() -> Keyring {
    Keyring::new(
        Key::from_bytes(b"persist test key: 32+ bytes, never for production".to_vec())
            .expect("long enough"),
    )
}

#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub state: u64,
    pub action: u8,
    pub reward: f32,
}

#[persist(name = "replay", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayV1 {
    pub buffer: Vec<Transition>,
}

#[persist(name = "replay", version = 2, from = ReplayV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    pub buffer: Vec<Transition>,
    pub label: String,
}

impl From<ReplayV1> for Replay {
    fn from(old: ReplayV1) -> Self {
        Replay {
            buffer: old.buffer,
            label: "migrated".into(),
        }
    }
}

fn sample(n: u64) -> Replay {
    Replay {
        buffer: (0..n)
            .map(|i| Transition {
                state: i * 7,
                action: (i % 4) as u8,
                reward: i as f32 * 0.5,
            })
            .collect(),
        label: "replay buffer".into(),
    }
}

fn store_at(dir: &Path) -> Store {
    Store::new(
        Box::new(FsBackend::open(dir).expect("open")),
        test_keyring(),
        StoreConfig::default(),
    )
}

/// Writes an authentic `replay` generation with any version, fingerprint and payload.
fn write_raw(store: &Store, sequence: u64, version: u32, payload: &[u8]) {
    let header = Header {
        key_id: store.keyring().current().id(),
        name: "replay".into(),
        schema_version: version,
        fingerprint: Replay::fingerprint_of(version).expect("known version"),
        rkyv_format: RkyvFormat::CURRENT,
        sequence,
        created_at_nanos: 0,
        payload_len: 0,
    };
    let bytes = format::seal(store.keyring(), header, payload).expect("seal");
    store
        .backend()
        .put_new(&generation_key("replay", sequence), &[&bytes])
        .expect("write");
}

/// The file backing the memory mapping that contains `addr`, from `/proc/self/maps`.
fn mapped_file_containing(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let (lo, hi) = parts.next()?.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        let path = parts.nth(4).map(str::to_string);
        (lo <= addr && addr < hi).then_some(path).flatten()
    })
}

#[test]
fn open_returns_a_zero_copy_view_into_the_mapped_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    let value = sample(10_000);
    let seq = store.save(&value).expect("save").sequence;

    let view = store.open::<Replay>().expect("open");
    assert!(view.is_mapped(), "the filesystem backend maps generations");
    assert_eq!(view.report().sequence, seq);
    assert!(view.report().rejected.is_empty());

    // The archived value lives inside the generation's bytes, which are the mapping itself.
    let bytes = view.generation_bytes().as_ptr_range();
    let root = std::ptr::from_ref(view.archived()).cast::<u8>();
    let first = view.buffer.as_ptr().cast::<u8>();
    assert!(bytes.contains(&root) && bytes.contains(&first));
    let file = dir.path().join(generation_key("replay", seq));
    let file = file.canonicalize().expect("canonical path");
    assert_eq!(
        mapped_file_containing(first as usize).as_deref(),
        Some(file.to_str().expect("utf-8 path")),
        "the payload is read through a memory map of the generation file, not a copy"
    );

    // Field reads through the archived view.
    assert_eq!(view.buffer.len(), 10_000);
    assert_eq!(view.buffer[9_999].state.to_native(), 9_999 * 7);
    assert_eq!(view.buffer[3].action, 3);
    assert_eq!(view.buffer[5].reward.to_native(), 2.5);
    assert_eq!(view.label.as_str(), "replay buffer");
    // And the owned value it stands for.
    let owned: Replay =
        persist_core::rkyv::deserialize::<Replay, persist_core::rkyv::rancor::Error>(&*view)
            .expect("deserialize");
    assert_eq!(owned, value);
}

#[test]
fn open_rejects_a_payload_that_fails_validation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    // Authentic envelope, right version and fingerprint, payload that is not an archived Replay.
    let garbage = vec![0xA5u8; 64];
    write_raw(&store, 1, 2, &garbage);
    match store.open::<Replay>() {
        Err(OpenError::Load(LoadError::Blocked {
            kind: RejectKind::Undecodable,
            generation,
            rejected,
            ..
        })) => {
            assert!(rejected.is_empty());
            assert!(
                matches!(
                    generation.reason,
                    RejectReason::Codec(CodecError::InvalidPayload(_))
                ),
                "{}",
                generation.reason
            );
        }
        other => panic!("expected a validation failure, got {other:?}"),
    }
}

#[test]
fn open_falls_back_past_an_invalid_newer_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    store.save(&sample(3)).expect("save");
    // A corrupt newer generation is walked past.
    let newest = store
        .backend()
        .get(&generation_key(Replay::NAME, 1))
        .expect("read");
    let mut bad = newest.to_vec();
    *bad.last_mut().expect("bytes") ^= 1;
    bad[64..72].copy_from_slice(&2u64.to_le_bytes());
    store
        .backend()
        .put_new(&generation_key(Replay::NAME, 2), &[&bad])
        .expect("write");
    let view = store.open::<Replay>().expect("falls back to generation 1");
    assert_eq!(view.report().sequence, 1);
    assert_eq!(view.report().rejected.len(), 1);
    assert_eq!(view.report().rejected[0].sequence, 2);
    assert_eq!(view.buffer.len(), 3);
}

#[test]
fn open_says_when_the_newest_valid_generation_is_older() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    let old = ReplayV1 {
        buffer: sample(2).buffer,
    };
    store.save(&old).expect("save v1");
    match store.open::<Replay>() {
        Err(OpenError::OlderVersion {
            name,
            sequence,
            found,
            current,
        }) => assert_eq!(
            (name.as_str(), sequence, found, current),
            ("replay", 1, 1, 2)
        ),
        other => panic!("expected OlderVersion, got {other:?}"),
    }
    // load migrates it.
    let loaded = store.load::<Replay>().expect("load migrates");
    assert_eq!(loaded.value.label, "migrated");
}

#[test]
fn open_of_nothing_is_no_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    assert!(matches!(
        store.open::<Replay>(),
        Err(OpenError::Load(LoadError::NoGeneration { .. }))
    ));
}

/// About 6.4 MB: above `format::PARALLEL_MIN_LEN`, so `open` validates and `load` decodes on
/// the calling thread while other threads verify the tag.
const LARGE: u64 = 400_000;

#[test]
fn large_generations_decode_beside_the_tag_yet_tampering_is_still_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    let good = sample(LARGE);
    let saved = store.save(&good).expect("save").bytes as usize;
    assert!(saved > format::PARALLEL_MIN_LEN + format::HEADER_LEN + format::TAG_LEN);
    let newer = sample(LARGE + 1);
    let seq = store.save(&newer).expect("save").sequence;
    assert_eq!(store.load::<Replay>().expect("load").value, newer);
    assert_eq!(
        store.open::<Replay>().expect("open").buffer.len() as u64,
        LARGE + 1
    );

    // Change one reward in the middle of the newest payload: still a valid archive (any f32 is
    // valid), so only the tag can tell.
    let path = dir.path().join(generation_key("replay", seq));
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).expect("tamper");

    let loaded = store.load::<Replay>().expect("falls back");
    assert_eq!(loaded.value, good);
    let view = store.open::<Replay>().expect("falls back");
    assert_eq!(view.buffer.len() as u64, LARGE);
    for report in [&loaded.report, view.report()] {
        assert_eq!(report.sequence, seq - 1);
        assert_eq!(report.rejected.len(), 1);
        assert!(
            matches!(
                report.rejected[0].reason,
                RejectReason::Envelope(persist_core::EnvelopeError::BadTag)
            ),
            "{}",
            report.rejected[0].reason
        );
    }
}

#[test]
fn a_large_authentic_payload_that_fails_validation_is_rejected_by_load_and_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    write_raw(&store, 1, 2, &vec![0xA5u8; 8 << 20]);
    let load = store.load::<Replay>().expect_err("not an archive");
    let open = store.open::<Replay>().expect_err("not an archive");
    let OpenError::Load(open) = open else {
        panic!("expected a load error, got {open:?}")
    };
    for err in [load, open] {
        match err {
            LoadError::Blocked {
                kind: RejectKind::Undecodable,
                generation,
                ..
            } => assert!(
                matches!(
                    generation.reason,
                    RejectReason::Codec(CodecError::InvalidPayload(_))
                ),
                "{}",
                generation.reason
            ),
            other => panic!("expected Blocked(Undecodable), got {other:?}"),
        }
    }
}

#[test]
fn a_large_older_generation_is_migrated_by_load_and_refused_by_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    let old = ReplayV1 {
        buffer: sample(LARGE).buffer,
    };
    store.save(&old).expect("save v1");
    assert!(matches!(
        store.open::<Replay>(),
        Err(OpenError::OlderVersion { found: 1, .. })
    ));
    let loaded = store.load::<Replay>().expect("load migrates");
    assert_eq!(loaded.value.buffer, old.buffer);
    assert_eq!(loaded.value.label, "migrated");
    assert_eq!(loaded.report.migrations.len(), 1);
}
