//! The `Store` over [`MemoryBackend`]: saving, loading, walking back, blocking, retention and
//! the off-site fallback, with no disk. (The filesystem's own behaviour, crashes and power cuts
//! are tested in `tests/` and by the backend conformance suite.)

use std::sync::Arc;

use persist_core::format::generation_key;
use persist_core::{
    Backend, Key, Keyring, LoadError, MemoryBackend, Persist, RejectKind, Schema, Store,
    StoreConfig, WalkPast, persist,
};

#[persist(name = "counter", version = 1)]
#[derive(Debug, Clone, PartialEq)]
struct Counter {
    value: u64,
    label: String,
}

/// Version 2 of the same state, as a newer release would write it.
#[persist(name = "counter", version = 2, from = Counter)]
#[derive(Debug, Clone, PartialEq)]
struct CounterV2 {
    value: u64,
    label: String,
    step: u32,
}

impl From<Counter> for CounterV2 {
    fn from(old: Counter) -> Self {
        CounterV2 {
            value: old.value,
            label: old.label,
            step: 1,
        }
    }
}

fn counter(value: u64) -> Counter {
    Counter {
        value,
        label: format!("n{value}"),
    }
}

fn key() -> Key {
    Key::from_bytes(vec![7u8; 32]).expect("key")
}

fn store_over(backend: Arc<MemoryBackend>, retain: usize) -> Store {
    Store::new(
        Box::new(backend),
        Keyring::new(key()),
        StoreConfig::default()
            .with_retain(retain)
            .with_space_reserve(0),
    )
}

fn sequences(backend: &MemoryBackend, name: &str) -> Vec<u64> {
    backend
        .list(&format!("{name}/"))
        .expect("list")
        .iter()
        .filter_map(|m| persist_core::format::parse_generation_key(&m.key).map(|(_, s)| s))
        .collect()
}

/// Flips one byte in the middle of a stored generation.
fn corrupt(backend: &MemoryBackend, name: &str, sequence: u64) {
    let key = generation_key(name, sequence);
    let mut bytes = backend.get(&key).expect("get").to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    backend.delete(&key).expect("delete");
    backend.insert_raw(&key, &bytes).expect("insert");
}

#[test]
fn save_then_load_round_trips_and_numbers_generations() {
    let backend = Arc::new(MemoryBackend::new());
    let store = store_over(Arc::clone(&backend), 10);
    for v in 1..=3 {
        let receipt = store.save(&counter(v)).expect("save");
        assert_eq!(receipt.sequence, v);
    }
    let loaded = store.load::<Counter>().expect("load");
    assert_eq!(loaded.value, counter(3));
    assert_eq!(loaded.report.sequence, 3);
    assert!(loaded.report.is_clean(), "{}", loaded.report);
    assert_eq!(sequences(&backend, Counter::NAME), vec![1, 2, 3]);
    assert_eq!(store.names().expect("names"), vec!["counter".to_string()]);
}

#[test]
fn an_empty_store_says_no_generation_not_corruption() {
    let store = store_over(Arc::new(MemoryBackend::new()), 4);
    match store.load::<Counter>() {
        Err(LoadError::NoGeneration { name, .. }) => assert_eq!(name, "counter"),
        other => panic!("expected NoGeneration, got {other:?}"),
    }
}

#[test]
fn a_corrupt_newest_generation_is_walked_past_and_reported() {
    let backend = Arc::new(MemoryBackend::new());
    let store = store_over(Arc::clone(&backend), 10);
    store.save(&counter(1)).expect("save");
    store.save(&counter(2)).expect("save");
    corrupt(&backend, Counter::NAME, 2);
    let loaded = store.load::<Counter>().expect("load");
    assert_eq!(loaded.value, counter(1));
    assert_eq!(loaded.report.rejected.len(), 1);
    assert_eq!(loaded.report.rejected[0].sequence, 2);
    assert_eq!(loaded.report.rejected[0].kind(), RejectKind::Corrupt);
}

#[test]
fn all_corrupt_is_a_different_error_from_none() {
    let backend = Arc::new(MemoryBackend::new());
    let store = store_over(Arc::clone(&backend), 10);
    store.save(&counter(1)).expect("save");
    corrupt(&backend, Counter::NAME, 1);
    match store.load::<Counter>() {
        Err(LoadError::AllInvalid { rejected, .. }) => assert_eq!(rejected.len(), 1),
        other => panic!("expected AllInvalid, got {other:?}"),
    }
}

#[test]
fn retention_keeps_the_newest_valid_generations() {
    let backend = Arc::new(MemoryBackend::new());
    let store = store_over(Arc::clone(&backend), 2);
    let mut deleted = Vec::new();
    for v in 1..=5 {
        deleted.extend(store.save(&counter(v)).expect("save").deleted);
    }
    assert_eq!(sequences(&backend, Counter::NAME), vec![4, 5]);
    deleted.sort_unstable();
    assert_eq!(deleted, vec![1, 2, 3]);
}

#[test]
fn a_newer_release_generation_blocks_the_load_and_survives_retention() {
    let backend = Arc::new(MemoryBackend::new());
    // The newer release saves version 2 on top of version 1.
    store_over(Arc::clone(&backend), 2)
        .save(&counter(1))
        .expect("v1 save");
    let newer = store_over(Arc::clone(&backend), 2);
    newer.save(&CounterV2::from(counter(2))).expect("v2 save");

    // The old binary must not silently fall back to generation 1.
    let old = store_over(Arc::clone(&backend), 1);
    match old.load::<Counter>() {
        Err(LoadError::Blocked {
            kind, generation, ..
        }) => {
            assert_eq!(kind, RejectKind::TooNew);
            assert_eq!(generation.sequence, 2);
        }
        other => panic!("expected Blocked(TooNew), got {other:?}"),
    }

    // Opting in walks past it; saving with retain 1 keeps the too-new generation.
    let rollback = Store::new(
        Box::new(Arc::clone(&backend)),
        Keyring::new(key()),
        StoreConfig::default()
            .with_retain(1)
            .with_space_reserve(0)
            .with_walk_past(WalkPast::default().allow(RejectKind::TooNew)),
    );
    let loaded = rollback.load::<Counter>().expect("walk past");
    assert_eq!(loaded.value, counter(1));
    assert_eq!(loaded.report.walked_past_authentic().count(), 1);
    rollback.save(&counter(3)).expect("save");
    rollback.save(&counter(4)).expect("save");
    let left = sequences(&backend, Counter::NAME);
    assert!(
        left.contains(&2),
        "the too-new generation was deleted: {left:?}"
    );
    assert_eq!(left, vec![2, 4]);

    // The newer release migrates v1 generations and reads its own.
    let loaded = newer.load::<CounterV2>().expect("v2 load");
    assert_eq!(loaded.value, CounterV2::from(counter(4)));
    assert_eq!(loaded.report.migrations.len(), 1);
}

#[test]
fn a_foreign_key_blocks_and_verify_only_keys_unblock() {
    let backend = Arc::new(MemoryBackend::new());
    let other_key = Key::from_bytes(vec![9u8; 32]).expect("key");
    Store::new(
        Box::new(Arc::clone(&backend)),
        Keyring::new(other_key.clone()),
        StoreConfig::default().with_space_reserve(0),
    )
    .save(&counter(1))
    .expect("save");

    let store = store_over(Arc::clone(&backend), 4);
    match store.load::<Counter>() {
        Err(LoadError::Blocked { kind, .. }) => assert_eq!(kind, RejectKind::Foreign),
        other => panic!("expected Blocked(Foreign), got {other:?}"),
    }
    let both = Store::new(
        Box::new(Arc::clone(&backend)),
        Keyring::new(key()).with_verify_only(other_key),
        StoreConfig::default().with_space_reserve(0),
    );
    assert_eq!(both.load::<Counter>().expect("load").value, counter(1));
}

#[test]
fn newest_valid_and_check_agree_with_load() {
    let backend = Arc::new(MemoryBackend::new());
    let store = store_over(Arc::clone(&backend), 10);
    store.save(&counter(1)).expect("save");
    store.save(&counter(2)).expect("save");
    corrupt(&backend, Counter::NAME, 2);
    let schema = Schema::of::<Counter>();
    let newest = store.newest_valid(&schema).expect("newest valid");
    assert_eq!(newest.generation.sequence, 1);
    assert_eq!(newest.report.rejected.len(), 1);
    let generations = store.generations(Counter::NAME).expect("generations");
    assert!(store.check(&schema, &generations[0]).is_ok());
    let reason = store.check(&schema, &generations[1]).expect_err("corrupt");
    assert_eq!(reason.kind(), RejectKind::Corrupt);
    assert_eq!(
        store.load::<Counter>().expect("load").report.sequence,
        newest.generation.sequence
    );
}

#[test]
fn off_site_fallback_restores_and_writes_back() {
    let off_site = Arc::new(MemoryBackend::new());
    store_over(Arc::clone(&off_site), 4)
        .save(&counter(5))
        .expect("off-site save");

    let local = Arc::new(MemoryBackend::new());
    let store = Store::new(
        Box::new(Arc::clone(&local)),
        Keyring::new(key()),
        StoreConfig::default()
            .with_space_reserve(0)
            .with_off_site(Arc::clone(&off_site) as Arc<dyn Backend>),
    );
    let loaded = store.load::<Counter>().expect("fallback");
    assert_eq!(loaded.value, counter(5));
    let restored = loaded.report.restored_from.expect("restored_from");
    assert_eq!(restored.local_sequence, Some(1));
    // Written back verbatim: the local copy now loads by itself.
    assert_eq!(sequences(&local, Counter::NAME), vec![1]);
    let alone = store_over(Arc::clone(&local), 4);
    assert_eq!(alone.load::<Counter>().expect("local").value, counter(5));
}

#[test]
fn saves_of_different_states_from_threads_all_land() {
    #[persist(name = "other", version = 1)]
    #[derive(Debug, Clone, PartialEq)]
    struct Other(u64);

    let backend = Arc::new(MemoryBackend::new());
    let store = Arc::new(store_over(Arc::clone(&backend), 100));
    std::thread::scope(|s| {
        let a = Arc::clone(&store);
        s.spawn(move || {
            for v in 1..=20 {
                a.save(&counter(v)).expect("save");
            }
        });
        let b = Arc::clone(&store);
        s.spawn(move || {
            for v in 1..=20 {
                b.save(&Other(v)).expect("save");
            }
        });
    });
    assert_eq!(sequences(&backend, "counter"), (1..=20).collect::<Vec<_>>());
    assert_eq!(sequences(&backend, "other"), (1..=20).collect::<Vec<_>>());
    assert_eq!(store.load::<Other>().expect("load").value, Other(20));
}
