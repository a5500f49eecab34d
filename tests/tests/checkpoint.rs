//! The Checkpointer: policy-driven and asynchronous saves on a real filesystem.

use std::sync::Arc;
use std::time::Duration;

use persist_core::{CheckpointError, Checkpointer, SaveError, SavePolicy, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_tests::{AgentState, test_keyring};

fn store(dir: &std::path::Path, reserve: u64) -> Arc<Store> {
    Arc::new(Store::new(
        Box::new(FsBackend::open(dir).unwrap()),
        test_keyring(),
        StoreConfig::default()
            .with_space_reserve(reserve)
            .with_retain(100),
    ))
}

#[test]
fn every_n_events_saves_the_value_of_the_nth_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 0);
    let mut cp = Checkpointer::new(Arc::clone(&store), SavePolicy::every_events(3));
    let queued: Vec<bool> = (1..=10)
        .map(|i| cp.record(&AgentState::sample(20, i)).unwrap())
        .collect();
    assert_eq!(
        queued,
        [
            false, false, true, false, false, true, false, false, true, false
        ]
    );
    cp.flush(Duration::from_secs(10)).unwrap();
    let loaded = store.load::<AgentState>().unwrap();
    assert_eq!(loaded.value.total_updates, 9);
    // Each queued value was written or superseded by a newer one, never lost or reordered.
    let status = cp.status();
    assert_eq!(status.written + status.superseded, 3);
    assert!(status.pending().is_empty());
}

#[test]
fn interval_policy_saves_the_first_event_then_waits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cp = Checkpointer::new(
        store(dir.path(), 0),
        SavePolicy::default().or_every(Duration::from_secs(3600)),
    );
    assert!(cp.record(&AgentState::sample(5, 1)).unwrap());
    assert!(!cp.record(&AgentState::sample(5, 2)).unwrap());
    cp.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn save_now_is_durable_on_return_and_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 0);
    let mut cp = Checkpointer::new(Arc::clone(&store), SavePolicy::default());
    for i in 0..20 {
        cp.save_async(&AgentState::sample(2_000, i)).unwrap();
    }
    let receipt = cp.save_now(&AgentState::sample(10, 1_000)).unwrap();
    // Durable on return: a fresh reader sees it.
    let reader = Store::new(
        Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
        test_keyring(),
        StoreConfig::default(),
    );
    let loaded = reader.load::<AgentState>().unwrap();
    assert_eq!(loaded.report.sequence, receipt.sequence);
    assert_eq!(loaded.value.total_updates, 1_000);
    cp.flush(Duration::from_secs(10)).unwrap();
    // The queued older values were superseded, never written after the priority save.
    assert_eq!(
        store.load::<AgentState>().unwrap().value.total_updates,
        1_000
    );
}

#[test]
fn a_failed_background_save_is_reported_on_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut cp = Checkpointer::new(store(dir.path(), u64::MAX / 2), SavePolicy::every_events(1));
    assert!(cp.record(&AgentState::sample(5, 1)).unwrap());
    // Wait for the writer; flush reports the failure once ...
    let err = cp.flush(Duration::from_secs(10)).unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::Save {
            name: "agent",
            source: SaveError::InsufficientSpace { .. }
        }
    ));
    // ... and a second failure is reported by the next record.
    assert!(cp.record(&AgentState::sample(5, 2)).unwrap());
    while !cp.status().pending().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        cp.record(&AgentState::sample(5, 3)),
        Err(CheckpointError::Save { .. })
    ));
}

#[test]
fn low_priority_states_are_skipped_under_space_pressure() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 0);
    let mut cp = Checkpointer::new(
        Arc::clone(&store),
        SavePolicy::every_events(1).low_priority(u64::MAX / 2),
    );
    assert!(!cp.record(&AgentState::sample(5, 1)).unwrap());
    cp.flush(Duration::from_secs(10)).unwrap();
    assert!(store.generations("agent").unwrap().is_empty());
}

#[test]
fn dropping_the_checkpointer_flushes_queued_saves() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 0);
    {
        let mut cp = Checkpointer::new(Arc::clone(&store), SavePolicy::default());
        cp.save_async(&AgentState::sample(50_000, 77)).unwrap();
    }
    assert_eq!(store.load::<AgentState>().unwrap().value.total_updates, 77);
}
