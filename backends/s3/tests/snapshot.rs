//! Snapshot sets off-site: members replicated before their manifest, off-site retention that
//! keeps what a kept snapshot references, and a whole snapshot restored from the S3 test server
//! after the local store is wiped.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{keyring, s3_env};
use persist_core::format::MANIFEST_PREFIX;
use persist_core::{
    Backend, MemoryBackend, SnapshotReceipt, SnapshotSpec, Store, StoreConfig, persist,
};
use persist_fs::FsBackend;
use persist_s3::replicate_once;
use persist_s3::retention::{self, Reason, RetentionPolicy};

#[persist(name = "regime", version = 1)]
#[derive(Debug, Clone, PartialEq)]
struct Regime {
    state: u8,
}

#[persist(name = "position", version = 1)]
#[derive(Debug, Clone, PartialEq)]
struct Position {
    lots: i64,
    fills: Vec<u64>,
}

fn spec() -> SnapshotSpec {
    SnapshotSpec::builder("agent_system")
        .member::<Regime>()
        .member_after::<Position>(&["regime"])
        .build()
        .unwrap()
}

fn store_over(backend: Box<dyn Backend>, retain: usize) -> Store {
    Store::new(
        backend,
        keyring(),
        StoreConfig::default()
            .with_retain(retain)
            .with_space_reserve(0),
    )
}

fn commit(store: &Store, spec: &SnapshotSpec, step: i64) -> SnapshotReceipt {
    // The regime changes every third snapshot: its generation is mostly referenced.
    let regime = Regime {
        state: (step / 3) as u8,
    };
    let position = Position {
        lots: step,
        fills: (0..64).map(|i| i * step as u64).collect(),
    };
    let mut writer = store.snapshot(spec);
    writer.add(&regime).unwrap().add(&position).unwrap();
    writer.commit().unwrap()
}

fn is_manifest(key: &str) -> bool {
    key.starts_with(MANIFEST_PREFIX)
}

#[test]
fn a_pass_uploads_every_member_before_any_manifest() {
    let local = Arc::new(MemoryBackend::new());
    let store = store_over(Box::new(Arc::clone(&local)), 4);
    let spec = spec();
    for step in 0..4 {
        commit(&store, &spec, step);
    }
    let off_site = MemoryBackend::new();
    let report = replicate_once(local.as_ref(), &off_site, |_, _, _| {}).unwrap();
    let first_manifest = report.uploaded.iter().position(|k| is_manifest(k)).unwrap();
    assert!(
        report.uploaded[first_manifest..]
            .iter()
            .all(|k| is_manifest(k)),
        "{:?}",
        report.uploaded
    );
    // The copy restores whole.
    let remote = store_over(Box::new(off_site), 4);
    let restored = remote.load_snapshot(&spec).unwrap();
    assert!(restored.report.is_complete());
}

#[test]
fn off_site_retention_keeps_every_member_of_a_kept_snapshot() {
    let local = Arc::new(MemoryBackend::new());
    // Locally each state keeps one generation of its own; snapshots keep 8.
    let store = store_over(Box::new(Arc::clone(&local)), 1);
    let spec = spec();
    let off_site: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let mut ids = Vec::new();
    for step in 0..7 {
        ids.push(commit(&store, &spec, step).id);
        // Between snapshots the position is also saved on its own, every tick.
        for tick in 1..=2 {
            let position = Position {
                lots: step * 10 + tick,
                fills: Vec::new(),
            };
            store.save(&position).unwrap();
        }
        replicate_once(local.as_ref(), off_site.as_ref(), |_, _, _| {}).unwrap();
    }
    // Off-site: the last two of each state, no buckets. The position generations the two kept
    // snapshots reference are older than the last two positions.
    let policy = RetentionPolicy {
        keep_last: 2,
        hourly_for: Duration::ZERO,
        daily_for: Duration::ZERO,
    };
    let plan = retention::plan(
        Arc::clone(&off_site),
        &keyring(),
        &policy,
        SystemTime::now(),
    )
    .unwrap();
    let referenced: Vec<_> = plan
        .iter()
        .filter(|e| matches!(e.reason, Reason::Referenced { .. }))
        .collect();
    for entry in &plan {
        println!("{entry}");
    }
    let report = retention::apply(off_site.as_ref(), &plan);
    assert!(report.failed.is_empty());
    // Manifests are deleted before members.
    let first_member = report.deleted.iter().position(|k| !is_manifest(k));
    if let Some(first_member) = first_member {
        assert!(
            report.deleted[first_member..]
                .iter()
                .all(|k| !is_manifest(k))
        );
    }
    let remote = store_over(Box::new(Arc::clone(&off_site)), 1);
    let kept: Vec<u64> = remote
        .snapshots("agent_system")
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(kept, ids[5..].to_vec());
    for id in kept {
        let restored = remote.load_snapshot_at(&spec, id).unwrap();
        assert!(restored.report.is_complete(), "{}", restored.report);
    }
    // The older kept snapshot's position generation was kept for it alone (the newer one's is
    // among the last two anyway).
    let kept_for: Vec<(&str, u64)> = referenced
        .iter()
        .map(|e| (e.name.as_str(), e.sequence))
        .collect();
    assert_eq!(kept_for.len(), 1, "{kept_for:?}");
    assert!(kept_for.iter().all(|(name, _)| *name == "position"));
}

#[test]
fn a_snapshot_restores_from_the_s3_server_after_the_local_store_is_wiped() {
    let Some(env) = s3_env("a_snapshot_restores_from_the_s3_server_after_the_local_store_is_wiped")
    else {
        return;
    };
    let bucket = env.fresh_bucket("snapshot-restore");
    let remote: Arc<dyn Backend> = Arc::new(env.backend(&bucket, "offsite"));
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let last = {
        let store = store_over(Box::new(FsBackend::open(dir.path()).unwrap()), 2);
        let mut last = None;
        for step in 0..5 {
            last = Some(commit(&store, &spec, step));
        }
        let local = FsBackend::open_read_only(dir.path()).unwrap();
        replicate_once(&local, remote.as_ref(), |_, _, _| {}).unwrap();
        last.unwrap()
    };
    std::fs::remove_dir_all(dir.path()).unwrap();

    // The disk is gone: the off-site copy restores the newest snapshot whole.
    let from_s3 = store_over(Box::new(Arc::clone(&remote)), 2);
    let mut restored = from_s3.load_snapshot(&spec).unwrap();
    assert_eq!(restored.report.snapshot, Some(last.id));
    assert!(restored.report.is_complete(), "{}", restored.report);
    assert_eq!(restored.take::<Position>().unwrap().lots, 4);
    assert_eq!(restored.take::<Regime>(), Some(Regime { state: 1 }));
}
