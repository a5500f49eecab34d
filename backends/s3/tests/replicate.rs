//! Off-site replication, restore and retention against a real S3-compatible server.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Blob, Moto, create_bucket, keyring, s3_env};
use persist_core::Header;
use persist_core::format;
use persist_core::format::generation_key;
use persist_core::{Backend, BackendError, LoadError, Persist, RkyvFormat, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_s3::retention::{self, Reason, RetentionPolicy};
use persist_s3::{
    AutoPrune, Replicator, ReplicatorConfig, S3Backend, ThreadPriority, replicate_once,
};

fn local_store(dir: &std::path::Path, retain: usize, off_site: Option<Arc<dyn Backend>>) -> Store {
    Store::new(Box::new(FsBackend::open(dir).unwrap()), keyring(), {
        let mut config = StoreConfig::default()
            .with_retain(retain)
            .with_space_reserve(0);
        config.off_site = off_site;
        config
    })
}

fn keys(backend: &dyn Backend) -> Vec<String> {
    backend
        .list("")
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect()
}

fn fast() -> ReplicatorConfig {
    ReplicatorConfig {
        poll_interval: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        resync_interval: Duration::from_secs(60),
        // Functional tests: the default idle priority could starve on a CI machine busy with
        // other normal-priority work (priorities are tested in `priority`).
        priority: ThreadPriority::Normal,
        retention: None,
    }
}

#[test]
fn replicator_keeps_saving_through_an_outage_reports_lag_and_catches_up() {
    let Some(mut moto) = Moto::start("replicator_keeps_saving_through_an_outage") else {
        return;
    };
    let env = moto.env();
    let bucket = "outage";
    create_bucket(&env, bucket);
    let remote = Arc::new(env.backend(bucket, "offsite"));
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), 3, None);
    store.save(&Blob::new(1, 2000)).unwrap();
    let replicator = Replicator::start(
        Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
        remote.clone(),
        fast(),
    );
    for i in 2..=3 {
        store.save(&Blob::new(i, 2000)).unwrap();
        replicator.notify();
    }
    let status = replicator.wait_caught_up(Duration::from_secs(30));
    assert!(status.is_caught_up(), "{status:?}");
    assert_eq!(keys(&remote), keys(store.backend()));
    assert_eq!(status.newest_off_site.get("blob"), Some(&3));

    // The server goes away; the program keeps saving at local speed.
    moto.stop();
    let mut slowest = Duration::ZERO;
    for i in 4..=9 {
        let start = Instant::now();
        store.save(&Blob::new(i, 2000)).unwrap();
        replicator.notify();
        slowest = slowest.max(start.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a save waited on the network: {slowest:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let lagging = loop {
        let s = replicator.status();
        if s.last_error.is_some() && s.pending_generations > 0 && s.seconds_behind > 0.3 {
            break s;
        }
        assert!(Instant::now() < deadline, "no lag reported: {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Local retention holds 7, 8, 9; all three are pending.
    assert_eq!(lagging.pending_generations, 3, "{lagging:?}");
    assert!(lagging.consecutive_failures >= 1);
    assert!(
        lagging.last_error.as_deref().unwrap().contains("127.0.0.1"),
        "{lagging:?}"
    );

    // The server comes back empty (moto is in-memory): the bucket is re-created and the
    // replicator pushes everything local retention still holds.
    moto.restart();
    create_bucket(&env, bucket);
    let status = replicator.wait_caught_up(Duration::from_secs(30));
    assert!(status.is_caught_up(), "{status:?}");
    let local = keys(store.backend());
    assert_eq!(
        local,
        (7..=9)
            .map(|s| generation_key("blob", s))
            .collect::<Vec<_>>()
    );
    assert_eq!(keys(&remote), local);
    // Verbatim copies.
    for key in &local {
        assert_eq!(
            &remote.get(key).unwrap()[..],
            &store.backend().get(key).unwrap()[..]
        );
    }
    assert_eq!(status.seconds_behind, 0.0);
    replicator.stop();
}

#[test]
fn load_falls_back_to_the_off_site_copy_when_the_local_directory_is_wiped() {
    let Some(env) =
        s3_env("load_falls_back_to_the_off_site_copy_when_the_local_directory_is_wiped")
    else {
        return;
    };
    let bucket = env.fresh_bucket("restore");
    let off_site: Arc<dyn Backend> = Arc::new(env.backend(&bucket, "agents"));
    let dir = tempfile::tempdir().unwrap();
    {
        let store = local_store(dir.path(), 4, Some(Arc::clone(&off_site)));
        for i in 1..=5 {
            store.save(&Blob::new(i, 3000)).unwrap();
        }
        let local = FsBackend::open_read_only(dir.path()).unwrap();
        let pushed = replicate_once(&local, off_site.as_ref(), |_, _, _| {}).unwrap();
        assert_eq!(pushed.uploaded.len(), 4);
    }
    // The disk dies.
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();

    // Without the fallback: nothing.
    let plain = local_store(dir.path(), 4, None);
    assert!(matches!(
        plain.load::<Blob>(),
        Err(LoadError::NoGeneration { .. })
    ));
    drop(plain);

    let store = local_store(dir.path(), 4, Some(Arc::clone(&off_site)));
    let loaded = store.load::<Blob>().unwrap();
    assert_eq!(loaded.value, Blob::new(5, 3000));
    let restored = loaded.report.restored_from.as_ref().expect("restored");
    assert!(restored.location.contains(&bucket), "{}", loaded.report);
    assert_eq!(restored.local_sequence, Some(5));
    assert!(restored.write_back_error.is_none());
    assert!(!loaded.report.is_clean());
    assert!(loaded.report.to_string().contains("restored from off-site"));

    // Written back locally, verbatim: a plain store loads it now, and saving continues at 6.
    drop(store);
    let plain = local_store(dir.path(), 4, None);
    let again = plain.load::<Blob>().unwrap();
    assert_eq!(again.value, Blob::new(5, 3000));
    assert!(again.report.restored_from.is_none());
    assert_eq!(
        &plain.backend().get(&generation_key("blob", 5)).unwrap()[..],
        &off_site.get(&generation_key("blob", 5)).unwrap()[..]
    );
    assert_eq!(plain.save(&Blob::new(6, 10)).unwrap().sequence, 6);
}

#[test]
fn load_falls_back_past_all_invalid_local_generations_and_reports_them() {
    let Some(env) = s3_env("load_falls_back_past_all_invalid_local_generations") else {
        return;
    };
    let bucket = env.fresh_bucket("invalid");
    let off_site: Arc<dyn Backend> = Arc::new(env.backend(&bucket, ""));
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), 4, Some(Arc::clone(&off_site)));
    store.save(&Blob::new(1, 100)).unwrap();
    replicate_once(store.backend(), off_site.as_ref(), |_, _, _| {}).unwrap();
    store.save(&Blob::new(2, 100)).unwrap();
    drop(store);
    // Both local generations get corrupted.
    for seq in 1..=2 {
        let path = dir.path().join(generation_key("blob", seq));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[170] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    }
    let store = local_store(dir.path(), 4, Some(Arc::clone(&off_site)));
    let loaded = store.load::<Blob>().unwrap();
    assert_eq!(loaded.value, Blob::new(1, 100));
    let rejected: Vec<u64> = loaded.report.rejected.iter().map(|r| r.sequence).collect();
    assert_eq!(rejected, vec![2, 1]);
    // Key 1 is taken locally by the corrupt copy: re-sealed as a new generation.
    assert_eq!(
        loaded.report.restored_from.as_ref().unwrap().local_sequence,
        Some(3)
    );
    drop(store);
    let plain = local_store(dir.path(), 4, None);
    assert_eq!(plain.load::<Blob>().unwrap().value, Blob::new(1, 100));

    // With an empty off-site copy the local answer stands; with only invalid generations
    // off-site, the error names both failures.
    let empty: Arc<dyn Backend> = Arc::new(env.backend(&env.fresh_bucket("empty"), ""));
    let wiped = tempfile::tempdir().unwrap();
    let store = local_store(wiped.path(), 4, Some(Arc::clone(&empty)));
    let err = store.load::<Blob>().unwrap_err();
    assert!(matches!(err, LoadError::NoGeneration { .. }), "{err}");
    empty
        .put_new(
            &generation_key("blob", 1),
            &[b"not an envelope at all, just bytes"],
        )
        .unwrap();
    let err = store.load::<Blob>().unwrap_err();
    assert!(matches!(err, LoadError::OffSiteFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("off-site fallback failed"),
        "{err}"
    );
}

/// Writes a generation of `Blob` with a chosen creation time.
fn put_at(backend: &dyn Backend, seq: u64, created_secs: u64, corrupt: bool) {
    let payload = Blob::new(seq, 64).encode().unwrap();
    let header = Header {
        key_id: keyring().current().id(),
        name: Blob::NAME.to_string(),
        schema_version: Blob::VERSION,
        fingerprint: Blob::fingerprint(),
        rkyv_format: RkyvFormat::CURRENT,
        sequence: seq,
        created_at_nanos: created_secs * 1_000_000_000,
        payload_len: payload.len() as u64,
    };
    let mut bytes = format::seal(&keyring(), header, &payload).unwrap();
    if corrupt {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    }
    backend
        .put_new(&generation_key("blob", seq), &[&bytes])
        .unwrap();
}

#[test]
fn time_bucketed_retention_dry_run_matches_what_is_deleted() {
    let Some(env) = s3_env("time_bucketed_retention_dry_run_matches_what_is_deleted") else {
        return;
    };
    let bucket = env.fresh_bucket("retention");
    let backend = Arc::new(env.backend(&bucket, "r"));
    // "Now" is 12:45 UTC on day 20 000.
    let now = 20_000 * 86_400 + 12 * 3600 + 2700;
    let (h, d, m) = (3600, 86_400, 60);
    let plan_in: [(u64, u64, bool, &str); 13] = [
        (1, now - 10 * d, false, "expired"),
        (2, now - 6 * d, false, "expired"),
        (3, now - 6 * d + h, false, "daily"),
        (4, now - 3 * d, true, "invalid"),
        (5, now - 30 * h, false, "expired"),
        (6, now - 20 * h, false, "hourly"),
        (7, now - 5 * h, false, "expired"),
        (8, now - 5 * h + 10 * m, false, "hourly"),
        (9, now - 2 * h, false, "hourly"),
        (10, now - h, false, "hourly"),
        (11, now - 30 * m, false, "last"),
        (12, now - 10 * m, false, "newest"),
        (13, now, true, "invalid-newest"),
    ];
    for (seq, at, corrupt, _) in plan_in {
        put_at(&backend, seq, at, corrupt);
    }
    let policy = RetentionPolicy {
        keep_last: 2,
        ..RetentionPolicy::default()
    };
    let now_t = UNIX_EPOCH + Duration::from_secs(now);
    let plan = retention::plan(backend.clone(), &keyring(), &policy, now_t).unwrap();
    assert_eq!(plan.len(), 13);
    for entry in &plan {
        let expected = plan_in[entry.sequence as usize - 1].3;
        let ok = match (&entry.reason, expected) {
            (Reason::Expired { .. }, "expired") => !entry.keep,
            (Reason::Daily { .. }, "daily") => entry.keep,
            (Reason::Hourly { .. }, "hourly") => entry.keep,
            (Reason::Invalid { .. }, "invalid") => !entry.keep,
            (Reason::LastN { rank: 2 }, "last") => entry.keep,
            (Reason::NewestValid, "newest") => entry.keep,
            (Reason::InvalidButNewest { .. }, "invalid-newest") => entry.keep,
            _ => false,
        };
        assert!(
            ok,
            "generation {}: expected {expected}, got {entry}",
            entry.sequence
        );
        assert!(!entry.to_string().is_empty());
    }

    let planned_deletes: Vec<String> = plan
        .iter()
        .filter(|e| !e.keep)
        .map(|e| e.key.clone())
        .collect();
    let report = retention::apply(&backend, &plan);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.deleted, planned_deletes);
    let mut kept: Vec<String> = plan
        .iter()
        .filter(|e| e.keep)
        .map(|e| e.key.clone())
        .collect();
    kept.sort();
    assert_eq!(keys(&backend), kept);

    // A second dry run at the same time deletes nothing more.
    let again = retention::plan(backend.clone(), &keyring(), &policy, now_t).unwrap();
    assert!(again.iter().all(|e| e.keep), "{again:?}");

    // A delete that fails is reported: a plan entry for a key that is no longer there.
    let stale = retention::apply(&backend, &plan);
    assert_eq!(stale.failed.len(), planned_deletes.len());
    assert!(stale.deleted.is_empty());
    let _ = SystemTime::now();
}

/// The real S3 backend, with `get` of one key failing as a network error would.
#[derive(Debug)]
struct UnreadableKey {
    inner: Arc<S3Backend>,
    key: String,
}

impl Backend for UnreadableKey {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn begin_put(&self, key: &str) -> Result<Box<dyn persist_core::NewObject + '_>, BackendError> {
        self.inner.begin_put(key)
    }
    fn get(&self, key: &str) -> Result<persist_core::ObjectBytes, BackendError> {
        if key == self.key {
            return Err(BackendError::Other {
                location: self.location(),
                source: format!("{key}: connection reset (injected)").into(),
            });
        }
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<persist_core::ObjectMeta>, BackendError> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key)
    }
}

#[test]
fn a_generation_that_cannot_be_read_fails_the_plan_instead_of_being_deleted() {
    let Some(env) =
        s3_env("a_generation_that_cannot_be_read_fails_the_plan_instead_of_being_deleted")
    else {
        return;
    };
    let bucket = env.fresh_bucket("unreadable");
    let backend = Arc::new(env.backend(&bucket, "u"));
    let now = 20_000 * 86_400;
    for seq in 1..=4 {
        put_at(&backend, seq, now - 30 * 86_400 + seq, false);
    }
    let policy = RetentionPolicy {
        keep_last: 1,
        ..RetentionPolicy::default()
    };
    let now_t = UNIX_EPOCH + Duration::from_secs(now);
    // Readable, generations 1 to 3 are old and expired: the plan deletes them.
    let plan = retention::plan(backend.clone(), &keyring(), &policy, now_t).unwrap();
    assert_eq!(plan.iter().filter(|e| !e.keep).count(), 3);
    // With generation 2 unreadable, there is no plan at all, and nothing is deleted.
    let flaky = Arc::new(UnreadableKey {
        inner: backend.clone(),
        key: generation_key("blob", 2),
    });
    let err = retention::plan(flaky, &keyring(), &policy, now_t).unwrap_err();
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert_eq!(keys(&backend).len(), 4);
}

/// Waits until `done(status)` holds, or panics with the last status after 30 s.
fn wait_for(
    replicator: &Replicator,
    what: &str,
    done: impl Fn(&persist_s3::ReplicationStatus) -> bool,
) -> persist_s3::ReplicationStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = replicator.status();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status:?}");
        replicator.notify();
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn the_replicator_prunes_off_site_and_never_uploads_a_pruned_generation_again() {
    let Some(env) =
        s3_env("the_replicator_prunes_off_site_and_never_uploads_a_pruned_generation_again")
    else {
        return;
    };
    let bucket = env.fresh_bucket("autoprune");
    let remote = Arc::new(env.backend(&bucket, "p"));
    let dir = tempfile::tempdir().unwrap();
    // Locally five generations are kept; off-site only the newest two.
    let store = local_store(dir.path(), 5, None);
    for i in 1..=5 {
        store.save(&Blob::new(i, 2000)).unwrap();
    }
    let config = ReplicatorConfig {
        retention: Some(AutoPrune {
            keyring: keyring(),
            policy: RetentionPolicy {
                keep_last: 2,
                hourly_for: Duration::ZERO,
                daily_for: Duration::ZERO,
            },
            every: Duration::ZERO,
        }),
        ..fast()
    };
    let replicator = Replicator::start(
        Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
        remote.clone(),
        config,
    );
    let key = |seq| generation_key("blob", seq);
    let status = wait_for(&replicator, "pruned to the newest two", |s| {
        s.pruned_generations >= 3
    });
    assert_eq!(status.last_prune_error, None);
    assert_eq!(keys(&remote), vec![key(4), key(5)]);

    // Many more passes: generations 1 to 3 are still local, yet never uploaded again.
    let passes = status.passes;
    let status = wait_for(&replicator, "more passes", |s| s.passes >= passes + 10);
    assert_eq!(keys(&remote), vec![key(4), key(5)]);
    assert_eq!(status.uploaded_generations, 5, "{status:?}");
    assert_eq!(status.pruned_generations, 3, "{status:?}");

    // A new save goes off-site and pushes the oldest of the two out.
    store.save(&Blob::new(6, 2000)).unwrap();
    wait_for(&replicator, "the sixth pruned in", |s| {
        s.pruned_generations >= 4
    });
    assert_eq!(keys(&remote), vec![key(5), key(6)]);
    let status = replicator.status();
    assert_eq!(status.uploaded_generations, 6);
    assert_eq!(status.last_prune_error, None);
}
