//! Incremental generations off-site: deltas are uploaded as they are (bytes sent follow the
//! change), a store restores a delta's chain from the S3 test server after the local disk is
//! gone, and off-site retention never orphans a delta (its dry run and its real run agree).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{keyring, s3_env};
use persist_core::{
    Backend, ChunkSizes, DeltaPolicy, MemoryBackend, Schema, Store, StoreConfig, persist,
};
use persist_fs::FsBackend;
use persist_s3::replicate_once;
use persist_s3::retention::{self, Reason, RetentionPolicy};

#[persist(name = "buffer", version = 1)]
#[derive(Debug, Clone, PartialEq)]
struct Buffer {
    cursor: u64,
    cells: Vec<u64>,
}

impl Buffer {
    /// 2 MB of cells; each step rewrites 1% of them at the cursor, as a ring buffer does.
    fn new() -> Self {
        Buffer {
            cursor: 0,
            cells: (0..262_144u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect(),
        }
    }

    fn step(&mut self) {
        let n = self.cells.len() as u64;
        for i in 0..n / 100 {
            let at = ((self.cursor + i) % n) as usize;
            self.cells[at] = self.cells[at].rotate_left(13) ^ self.cursor;
        }
        self.cursor = (self.cursor + n / 100) % n;
    }
}

fn policy() -> DeltaPolicy {
    DeltaPolicy::default()
        .with_min_payload(0)
        .with_max_chain(8)
        .with_chunk_sizes(ChunkSizes::around(16 << 10))
}

fn store_over(backend: Box<dyn Backend>) -> Store {
    Store::new(
        backend,
        keyring(),
        StoreConfig::default()
            .with_retain(2)
            .with_space_reserve(0)
            .with_deltas(policy()),
    )
}

#[test]
fn deltas_replicate_as_they_are_and_a_chain_restores_from_the_s3_server() {
    let Some(env) = s3_env("deltas_replicate_as_they_are_and_a_chain_restores_from_the_s3_server")
    else {
        return;
    };
    let bucket = env.fresh_bucket("delta-restore");
    let remote: Arc<dyn Backend> = Arc::new(env.backend(&bucket, "offsite"));
    let dir = tempfile::tempdir().unwrap();
    let mut buffer = Buffer::new();
    {
        let store = store_over(Box::new(FsBackend::open(dir.path()).unwrap()));
        let full = store.save(&buffer).unwrap();
        let local = FsBackend::open_read_only(dir.path()).unwrap();
        let pushed = replicate_once(&local, remote.as_ref(), |_, _, _| {}).unwrap();
        assert_eq!(pushed.bytes, full.bytes);
        for _ in 0..5 {
            buffer.step();
            let receipt = store.save(&buffer).unwrap();
            assert!(receipt.base.is_some());
            assert!(receipt.bytes * 20 < receipt.payload_len, "{receipt:?}");
            // Bytes sent are the delta's, not the payload's.
            let pushed = replicate_once(&local, remote.as_ref(), |_, _, _| {}).unwrap();
            assert_eq!(pushed.bytes, receipt.bytes);
        }
    }
    std::fs::remove_dir_all(dir.path()).unwrap();

    // The disk is gone: the off-site chain rebuilds the newest value, written back locally.
    let fresh = tempfile::tempdir().unwrap();
    let store = Store::new(
        Box::new(FsBackend::open(fresh.path()).unwrap()),
        keyring(),
        StoreConfig::default()
            .with_space_reserve(0)
            .with_off_site(Arc::clone(&remote)),
    );
    let loaded = store.load::<Buffer>().unwrap();
    assert_eq!(loaded.value, buffer);
    assert_eq!(loaded.report.sequence, 6);
    assert_eq!(loaded.report.base, Some(5));
    let restored = loaded.report.restored_from.expect("restored from off-site");
    assert!(restored.write_back_error.is_none(), "{restored:?}");
    // Written back whole (a delta alone would need its chain locally).
    let again = Store::new(
        Box::new(FsBackend::open_read_only(fresh.path()).unwrap()),
        keyring(),
        StoreConfig::default(),
    )
    .load::<Buffer>()
    .unwrap();
    assert_eq!(again.value, buffer);
    assert_eq!(again.report.base, None);
}

#[test]
fn off_site_retention_never_orphans_a_delta_and_its_dry_run_is_what_it_does() {
    let local = Arc::new(MemoryBackend::new());
    let store = store_over(Box::new(Arc::clone(&local)));
    let off_site: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let mut buffer = Buffer::new();
    // Two chains of nine (a full and eight deltas), then three of the next.
    for _ in 0..21 {
        buffer.step();
        store.save(&buffer).unwrap();
        replicate_once(local.as_ref(), off_site.as_ref(), |_, _, _| {}).unwrap();
    }
    let policy = RetentionPolicy {
        keep_last: 2,
        hourly_for: Duration::ZERO,
        daily_for: Duration::ZERO,
    };
    let now = SystemTime::now();
    let plan = retention::plan(Arc::clone(&off_site), &keyring(), &policy, now).unwrap();
    for entry in &plan {
        println!("{entry}");
    }
    let kept: Vec<u64> = plan.iter().filter(|e| e.keep).map(|e| e.sequence).collect();
    // The two newest (20 and 21, deltas of 19) and their chain back to the full generation 19.
    assert_eq!(kept, [21, 20, 19]);
    let bases: Vec<u64> = plan
        .iter()
        .filter(|e| matches!(e.reason, Reason::Base { .. }))
        .map(|e| e.sequence)
        .collect();
    assert_eq!(bases, [19]);

    let report = retention::apply(off_site.as_ref(), &plan);
    assert!(report.failed.is_empty());
    let planned: Vec<&str> = plan
        .iter()
        .filter(|e| !e.keep)
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(
        report.deleted, planned,
        "the real run did what the dry run said"
    );
    // Every generation left off-site rebuilds and decodes: no delta lost its chain.
    let remote = Store::new(
        Box::new(Arc::clone(&off_site)),
        keyring(),
        StoreConfig::default(),
    );
    for g in remote.generations("buffer").unwrap() {
        remote.check(&Schema::of::<Buffer>(), &g).unwrap();
    }
    assert_eq!(remote.load::<Buffer>().unwrap().value, buffer);
}
