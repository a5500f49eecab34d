//! The Checkpointer over [`MemoryBackend`]: bounded shutdown and drop against a slow disk, exact
//! reports of what was not durable, the status, low-priority skips, and snapshot cadence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use persist_core::{
    Backend, BackendError, CheckpointError, Checkpointer, Key, Keyring, MemoryBackend, NewObject,
    ObjectBytes, ObjectMeta, SavePolicy, SnapshotSpec, Store, StoreConfig, persist,
};

/// A disk on which every write takes `delay` before it starts.
#[derive(Debug)]
struct Slow {
    inner: MemoryBackend,
    delay_ms: AtomicU64,
}

impl Backend for Slow {
    fn location(&self) -> String {
        "slow memory".into()
    }
    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        self.inner.begin_put(key)
    }
    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key)
    }
    fn free_space(&self) -> Result<Option<u64>, BackendError> {
        self.inner.free_space()
    }
}

macro_rules! states {
    ($($ty:ident = $name:literal),*) => {$(
        #[persist(name = $name, version = 1)]
        #[derive(Debug, Clone, PartialEq)]
        struct $ty(u64);
    )*};
}
states!(A = "a", B = "b", C = "c", D = "d", E = "e");

fn slow_store(delay_ms: u64) -> (Arc<Slow>, Arc<Store>) {
    let slow = Arc::new(Slow {
        inner: MemoryBackend::new(),
        delay_ms: AtomicU64::new(delay_ms),
    });
    let store = Store::new(
        Box::new(Arc::clone(&slow)),
        Keyring::new(Key::from_bytes(vec![1; 32]).unwrap()),
        StoreConfig::default().with_space_reserve(0),
    );
    (slow, Arc::new(store))
}

fn saved(slow: &Slow, name: &str) -> bool {
    !slow.inner.list(&format!("{name}/")).unwrap().is_empty()
}

#[test]
fn shutdown_keeps_its_deadline_and_names_exactly_what_was_not_durable() {
    let (slow, store) = slow_store(300);
    let mut cp = Checkpointer::new(store, SavePolicy::default());
    cp.save_async(&A(1)).unwrap();
    cp.save_async(&B(1)).unwrap();
    cp.save_async(&C(1)).unwrap();
    cp.save_async(&D(1)).unwrap();
    cp.save_async(&E(1)).unwrap();
    let start = Instant::now();
    let result = cp.shutdown(Duration::from_millis(450));
    let took = start.elapsed();
    let durable: Vec<&str> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .filter(|n| saved(&slow, n))
        .collect();
    assert!(took < Duration::from_millis(700), "shutdown took {took:?}");
    match result {
        Err(CheckpointError::Timeout { unsaved, .. }) => {
            for name in ["a", "b", "c", "d", "e"] {
                assert_ne!(
                    unsaved.contains(&name),
                    durable.contains(&name),
                    "{name}: reported unsaved {unsaved:?}, durable {durable:?}"
                );
            }
            assert!(!unsaved.is_empty());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Nothing abandoned is written later; at most the one in flight finishes on its own.
    std::thread::sleep(Duration::from_millis(700));
    let later = ["a", "b", "c", "d", "e"]
        .into_iter()
        .filter(|n| saved(&slow, n))
        .count();
    assert!(later <= durable.len() + 1, "{later} vs {durable:?}");
}

#[test]
fn drop_keeps_its_deadline_too() {
    let (_slow, store) = slow_store(400);
    let start = Instant::now();
    {
        let mut cp = Checkpointer::new(store, SavePolicy::default())
            .with_drop_timeout(Duration::from_millis(100));
        for i in 0..5 {
            cp.save_async(&A(i)).unwrap();
            cp.save_async(&B(i)).unwrap();
        }
    }
    assert!(
        start.elapsed() < Duration::from_millis(350),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_shutdown_with_time_enough_writes_everything() {
    let (slow, store) = slow_store(5);
    let mut cp = Checkpointer::new(store, SavePolicy::default());
    cp.save_async(&A(1)).unwrap();
    cp.save_async(&B(1)).unwrap();
    cp.shutdown(Duration::from_secs(10)).unwrap();
    assert!(saved(&slow, "a") && saved(&slow, "b"));
}

#[test]
fn status_lists_a_state_once_while_one_save_is_written_and_another_queued() {
    let (slow, store) = slow_store(300);
    let mut cp = Checkpointer::new(store, SavePolicy::default());
    cp.save_async(&A(1)).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // A(1) is being written
    cp.save_async(&A(2)).unwrap(); // and A(2) is queued behind it
    assert_eq!(cp.status().pending(), ["a"]);
    cp.flush(Duration::from_secs(10)).unwrap();
    assert!(cp.status().pending().is_empty());
    slow.delay_ms.store(0, Ordering::SeqCst);
}

#[test]
fn a_skipped_low_priority_save_waits_for_the_next_policy_point() {
    let backend = Arc::new(MemoryBackend::with_quota(10_000));
    let store = Arc::new(Store::new(
        Box::new(Arc::clone(&backend)),
        Keyring::new(Key::from_bytes(vec![1; 32]).unwrap()),
        StoreConfig::default().with_space_reserve(0),
    ));
    let mut cp = Checkpointer::new(
        Arc::clone(&store),
        SavePolicy::every_events(10).low_priority(1_000_000),
    );
    for i in 0..30 {
        assert!(!cp.record(&A(i)).unwrap());
    }
    // Three policy points, three skips: not one per event after the first.
    assert_eq!(cp.status().skipped, 3);
    assert!(store.generations("a").unwrap().is_empty());
}

#[test]
fn snapshots_follow_their_policy_and_full_ones_rewrite_every_member() {
    let (slow, store) = slow_store(0);
    let spec = SnapshotSpec::builder("pair")
        .member::<A>()
        .member_after::<B>(&["a"])
        .build()
        .unwrap();
    let policy = SavePolicy::every_events(2).full_every(Duration::from_secs(3600));
    let mut cp = Checkpointer::new(Arc::clone(&store), SavePolicy::default())
        .with_snapshot_policy(&spec, policy);
    let mut queued = 0;
    for tick in 0..6 {
        let due = cp
            .record_snapshot(&spec, |batch| {
                batch.add(&A(7))?.add(&B(tick))?;
                Ok(())
            })
            .unwrap();
        if due {
            queued += 1;
            // (A snapshot still queued when the next is due would be superseded by it.)
            cp.flush(Duration::from_secs(10)).unwrap();
        }
    }
    assert_eq!(queued, 3);
    let snapshots = store.snapshots("pair").unwrap();
    assert_eq!(snapshots.len(), 3);
    // The first was full; the next two referenced the unchanged `a`.
    assert_eq!(store.generations("a").unwrap().len(), 1);
    assert_eq!(store.generations("b").unwrap().len(), 3);
    let status = cp.status();
    assert_eq!(status.snapshots.len(), 1);
    assert_eq!(status.snapshots[0].set, "pair");
    assert!(!status.snapshots[0].pending);
    assert!(
        status.snapshots[0].next_due.is_none(),
        "the policy has no interval"
    );
    let on_disk: u64 = slow.inner.list("").unwrap().iter().map(|o| o.size).sum();
    assert_eq!(status.bytes_on_disk, Some(on_disk));

    // A priority event: durable on return.
    let receipt = cp
        .snapshot_now(&spec, |batch| {
            batch.add(&A(8))?.add(&B(99))?;
            Ok(())
        })
        .unwrap();
    let mut restored = store.load_snapshot(&spec).unwrap();
    assert_eq!(restored.report.snapshot, Some(receipt.id));
    assert_eq!(restored.take::<B>(), Some(B(99)));
    assert_eq!(
        cp.status().snapshots[0].newest.map(|(id, _)| id),
        Some(receipt.id)
    );
    cp.shutdown(Duration::from_secs(10)).unwrap();
    assert!(saved(&slow, "snapshot.pair"));
}

#[persist(name = "ring", version = 1)]
#[derive(Debug, Clone, PartialEq)]
struct Ring(Vec<u64>);

/// Which generations of `name` are deltas, oldest first.
fn deltas(store: &Store, name: &str) -> Vec<bool> {
    store
        .generations(name)
        .unwrap()
        .iter()
        .map(|g| {
            let head = store
                .backend()
                .get_head(&g.key, persist_core::format::HEAD_LEN)
                .unwrap();
            persist_core::format::is_delta_unverified(&head.bytes)
        })
        .collect()
}

/// The specification's "hourly full, 5-minute incremental" for one state: `full_every` starts a
/// new chain on schedule, the saves in between are deltas.
#[test]
fn full_every_writes_a_full_generation_on_schedule_and_deltas_between() {
    let policy = persist_core::DeltaPolicy::default()
        .with_min_payload(0)
        .with_chunk_sizes(persist_core::ChunkSizes::around(1024));
    let run = |full_every: Duration| {
        let store = Arc::new(Store::new(
            Box::new(MemoryBackend::new()),
            Keyring::new(Key::from_bytes(vec![3; 32]).unwrap()),
            StoreConfig::default()
                .with_retain(10)
                .with_space_reserve(0)
                .with_deltas(policy),
        ));
        let mut cp = Checkpointer::new(
            Arc::clone(&store),
            SavePolicy::every_events(1).full_every(full_every),
        );
        let mut ring = Ring((0..20_000).collect());
        for i in 0..4 {
            ring.0[i * 100] += 1;
            assert!(cp.record(&ring).unwrap());
            cp.flush(Duration::from_secs(10)).unwrap();
        }
        cp.shutdown(Duration::from_secs(10)).unwrap();
        assert_eq!(store.load::<Ring>().unwrap().value, ring);
        deltas(&store, "ring")
    };
    // Hourly fulls: the first save of the hour is full, the rest deltas.
    assert_eq!(run(Duration::from_secs(3600)), [false, true, true, true]);
    // A full save due every time: no deltas.
    assert_eq!(run(Duration::ZERO), [false, false, false, false]);
}
