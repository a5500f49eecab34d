//! Store behaviour on a real filesystem: round trip, retention, fallback, rejection reasons.

use persist_core::EnvelopeError;
use persist_core::{
    Backend, Key, Keyring, LoadError, Persist, RejectKind, RejectReason, Store, StoreConfig,
};
use persist_fs::FsBackend;
use persist_tests::{AgentState, test_keyring};

fn config(retain: usize) -> StoreConfig {
    StoreConfig::default()
        .with_retain(retain)
        .with_space_reserve(0)
}

fn store_in(dir: &std::path::Path, retain: usize) -> Store {
    Store::new(
        Box::new(FsBackend::open(dir).unwrap()),
        test_keyring(),
        config(retain),
    )
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 4);
    let state = AgentState::sample(100, 7);
    let receipt = store.save(&state).unwrap();
    assert_eq!(receipt.sequence, 1);
    let loaded = store.load::<AgentState>().unwrap();
    assert_eq!(loaded.value, state);
    assert_eq!(loaded.report.sequence, 1);
    assert!(loaded.report.is_clean());
}

#[test]
fn retention_keeps_exactly_n() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 3);
    for i in 0..10 {
        store.save(&AgentState::sample(10, i)).unwrap();
    }
    let seqs: Vec<u64> = store
        .generations("agent")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect();
    assert_eq!(seqs, vec![8, 9, 10]);
    assert_eq!(store.load::<AgentState>().unwrap().value.total_updates, 9);
}

#[test]
fn sequence_continues_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store_in(dir.path(), 4);
        store.save(&AgentState::sample(1, 1)).unwrap();
        store.save(&AgentState::sample(1, 2)).unwrap();
    }
    let store = store_in(dir.path(), 4);
    assert_eq!(store.save(&AgentState::sample(1, 3)).unwrap().sequence, 3);
}

#[test]
fn falls_back_past_corrupted_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 4);
    store.save(&AgentState::sample(50, 1)).unwrap();
    store.save(&AgentState::sample(50, 2)).unwrap();
    let newest = dir.path().join("agent/00000000000000000002.pst");
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[300] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();

    let loaded = store.load::<AgentState>().unwrap();
    assert_eq!(loaded.value.total_updates, 1);
    assert_eq!(loaded.report.sequence, 1);
    assert_eq!(loaded.report.rejected.len(), 1);
    assert_eq!(loaded.report.rejected[0].sequence, 2);
    assert!(matches!(
        loaded.report.rejected[0].reason,
        RejectReason::Envelope(EnvelopeError::BadTag)
    ));
    assert!(
        loaded
            .report
            .to_string()
            .contains("HMAC tag does not verify")
    );
}

#[test]
fn empty_store_is_distinct_from_all_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 4);
    assert!(matches!(
        store.load::<AgentState>(),
        Err(LoadError::NoGeneration { .. })
    ));
    store.save(&AgentState::sample(5, 1)).unwrap();
    std::fs::write(dir.path().join("agent/00000000000000000001.pst"), b"junk").unwrap();
    match store.load::<AgentState>() {
        Err(LoadError::AllInvalid { rejected, .. }) => {
            assert_eq!(rejected.len(), 1);
            assert!(matches!(
                rejected[0].reason,
                RejectReason::Envelope(EnvelopeError::Truncated { .. })
            ));
        }
        other => panic!("expected AllInvalid, got {other:?}"),
    }
}

#[test]
fn retention_does_not_count_invalid_generations() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 2);
    store.save(&AgentState::sample(5, 1)).unwrap();
    store.save(&AgentState::sample(5, 2)).unwrap();
    // Generation 3 arrives corrupted (written by someone else, say).
    let backend = FsBackend::open_read_only(dir.path()).unwrap();
    let good = backend.get("agent/00000000000000000002.pst").unwrap();
    let mut bad = good.to_vec();
    bad[200] ^= 1;
    std::fs::write(dir.path().join("agent/00000000000000000003.pst"), bad).unwrap();
    drop(store);
    let fresh = store_in(dir.path(), 2);
    let receipt = fresh.save(&AgentState::sample(5, 4)).unwrap();
    assert_eq!(receipt.sequence, 4);
    // Kept: 4 (valid), 3 (invalid, newer than the second valid one), 2 (valid). Deleted: 1.
    assert_eq!(receipt.deleted, vec![1]);
    let seqs: Vec<u64> = fresh
        .generations("agent")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect();
    assert_eq!(seqs, vec![2, 3, 4]);
}

#[test]
fn wrong_key_and_unknown_key_id_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path(), 4)
        .save(&AgentState::sample(5, 1))
        .unwrap();
    // Another key entirely: its id is unknown to the ring.
    let other = Keyring::new(Key::from_bytes(vec![0xAB; 32]).unwrap());
    let store = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        other,
        config(4),
    );
    // Foreign, not corrupt: the load stops and says to add the key.
    match store.load::<AgentState>() {
        Err(LoadError::Blocked {
            kind: RejectKind::Foreign,
            generation,
            ..
        }) => assert!(matches!(
            generation.reason,
            RejectReason::Envelope(EnvelopeError::UnknownKey(_))
        )),
        other => panic!("expected unknown key, got {other:?}"),
    }
    drop(store);
    // A ring that claims the right key id but holds a different secret: the tag fails.
    let path = dir.path().join("agent/00000000000000000001.pst");
    let mut bytes = std::fs::read(&path).unwrap();
    let forger = Key::from_bytes(vec![0xCD; 32]).unwrap();
    bytes[16..24].copy_from_slice(&forger.id().0);
    std::fs::write(&path, &bytes).unwrap();
    let store = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        Keyring::new(forger),
        config(4),
    );
    match store.load::<AgentState>() {
        Err(LoadError::AllInvalid { rejected, .. }) => assert!(matches!(
            rejected[0].reason,
            RejectReason::Envelope(EnvelopeError::BadTag)
        )),
        other => panic!("expected bad tag, got {other:?}"),
    }
}

#[test]
fn old_key_still_verifies_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path(), 4)
        .save(&AgentState::sample(5, 1))
        .unwrap();
    let ring = Keyring::new(Key::from_bytes(vec![0x11; 32]).unwrap())
        .with_verify_only(persist_tests::test_key());
    let store = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        ring,
        config(4),
    );
    assert_eq!(store.load::<AgentState>().unwrap().value.total_updates, 1);
    let receipt = store.save(&AgentState::sample(5, 2)).unwrap();
    let header = store
        .verify_generation(
            "agent",
            &store.generations("agent").unwrap()[receipt.sequence as usize - 1],
        )
        .unwrap();
    assert_eq!(header.key_id, store.keyring().current().id());
}

#[test]
fn copied_to_another_name_or_sequence_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 4);
    store.save(&AgentState::sample(5, 1)).unwrap();
    let src = dir.path().join("agent/00000000000000000001.pst");

    // Renamed to a higher sequence number.
    std::fs::copy(&src, dir.path().join("agent/00000000000000000009.pst")).unwrap();
    let loaded = store.load::<AgentState>().unwrap();
    assert_eq!(loaded.report.sequence, 1);
    assert!(matches!(
        loaded.report.rejected[0].reason,
        RejectReason::Envelope(EnvelopeError::WrongSequence {
            expected: 9,
            found: 1
        })
    ));

    // Copied under another state's name.
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    std::fs::copy(&src, dir.path().join("other/00000000000000000001.pst")).unwrap();
    let backend = FsBackend::open_read_only(dir.path()).unwrap();
    let bytes = backend.get("other/00000000000000000001.pst").unwrap();
    let expect = persist_core::Expect {
        name: Some("other"),
        sequence: Some(1),
        ..Default::default()
    };
    assert!(matches!(
        persist_core::format::open(&test_keyring(), &bytes, &expect),
        Err(EnvelopeError::WrongName { .. })
    ));
}

#[test]
fn stale_temp_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path(), 4)
        .save(&AgentState::sample(5, 1))
        .unwrap();
    let stale = dir.path().join("agent/.00000000000000000002.pst.999.0.tmp");
    std::fs::write(&stale, b"INCOMPLETE").unwrap();
    let backend = FsBackend::open(dir.path()).unwrap();
    assert_eq!(backend.removed_temps(), std::slice::from_ref(&stale));
    assert!(!stale.exists());
    let store = Store::new(Box::new(backend), test_keyring(), config(4));
    assert_eq!(store.load::<AgentState>().unwrap().value.total_updates, 1);
}

#[test]
fn second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FsBackend::open(dir.path()).unwrap();
    assert!(matches!(
        FsBackend::open(dir.path()),
        Err(persist_fs::FsError::Locked { .. })
    ));
    assert!(FsBackend::open_read_only(dir.path()).is_ok());
}

#[test]
fn insufficient_space_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        test_keyring(),
        StoreConfig::default().with_space_reserve(u64::MAX / 2),
    );
    match store.save(&AgentState::sample(5, 1)) {
        Err(persist_core::SaveError::InsufficientSpace { needed, free, .. }) => {
            assert!(needed > free)
        }
        other => panic!("expected InsufficientSpace, got {other:?}"),
    }
    assert!(store.generations(AgentState::NAME).unwrap().is_empty());
    let leftovers = std::fs::read_dir(dir.path().join("agent"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0);
}
