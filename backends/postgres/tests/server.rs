//! The PostgreSQL backend against a real server that goes away: a server crash (SIGKILL of the
//! postmaster and its backends) in the middle of writing generations, a restart while a replicator copies a
//! filesystem store to PostgreSQL, and PostgreSQL as the source of a replicator.
//!
//! The tests that crash or stop a server start a private cluster each ([`PgCluster`]: never the
//! shared cluster of `PERSIST_PG_URL`, which other tests use in parallel) and delete it when
//! done, also on panic. All of them are gated like the other PostgreSQL tests (skipped without
//! `PERSIST_PG_URL`, failed under `CI=true`, recorded in `PERSIST_PG_RAN_MARKER`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::PgCluster;
use common::pg_env;
use persist_conformance::pattern;
use persist_core::format::{generation_key, parse_generation_key};
use persist_core::{
    Backend, ChunkSizes, DeltaPolicy, Key, Keyring, SaveError, Store, StoreConfig, persist,
};
use persist_fs::FsBackend;
use persist_postgres::PgBackend;
use persist_s3::{Replicator, ReplicatorConfig, ThreadPriority};

#[persist(name = "buffer", version = 1)]
#[derive(Debug, Clone, PartialEq)]
struct Buffer {
    cells: Vec<u64>,
}

fn keyring() -> Keyring {
    Keyring::new(Key::from_bytes(vec![0x42; 32]).unwrap())
}

/// A replicator that polls and retries quickly, at normal priority (the default idle priority
/// could starve on a machine busy with other tests; priorities are tested in persist-s3).
fn fast() -> ReplicatorConfig {
    ReplicatorConfig {
        poll_interval: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        priority: ThreadPriority::Normal,
        ..ReplicatorConfig::default()
    }
}

/// The generation keys of `backend`, sorted.
fn generation_keys(backend: &dyn Backend) -> Vec<String> {
    backend
        .list("")
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .filter(|k| parse_generation_key(k).is_some())
        .collect()
}

/// The password of a `postgres://user:password@…` URL.
fn password(url: &str) -> String {
    let (_, rest) = url.split_once("://").unwrap();
    let (userinfo, _) = rest.split_once('@').unwrap();
    userinfo.split_once(':').unwrap().1.to_string()
}

/// Large objects, rows, and large-object pages that belong to no row, in the cluster's
/// `persist_test` database.
fn large_objects_rows_orphans(cluster: &PgCluster) -> (i64, i64, i64) {
    let row = cluster
        .admin()
        .query_one(
            "SELECT (SELECT count(*) FROM pg_largeobject_metadata), \
                    (SELECT count(*) FROM persist_generations), \
                    (SELECT count(*) FROM pg_largeobject \
                      WHERE loid NOT IN (SELECT object FROM persist_generations))",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// A real server crash in the middle of writes: what was acknowledged survives, what was not
/// is gone without a trace, and the store goes on.
///
/// Three generations are in flight when the server is SIGKILLed (the postmaster and every
/// process it started: see [`PgCluster::kill`] for why not the postmaster alone): two written
/// by hand through `Backend::begin_put` + `write` (8 × 256 KiB acknowledged by the server, then
/// the kill, then one more `write` on the first and the `commit` of the second), and a
/// store-level save of a 32 MiB value, killed while the server executes the `lowrite` of its
/// payload (seen in `pg_stat_activity`). Proves: every one of them reports `Err`, never `Ok`;
/// after the restart (crash recovery) no row of them exists, their large objects are gone with
/// their transactions (no orphan), the acknowledged generation 1 loads cleanly; a fresh
/// store's next save takes the next sequence, and the store and the backend that lived through
/// the crash (their broken connections dropped) save again without being rebuilt.
#[test]
fn a_server_killed_mid_write_keeps_what_was_acknowledged_and_nothing_else() {
    let Some(mut cluster) = PgCluster::start("server::killed_mid_write") else {
        return;
    };
    let started = Instant::now();
    let store = Store::new(
        Box::new(PgBackend::open(&cluster.url).unwrap()),
        keyring(),
        StoreConfig::default().with_space_reserve(0),
    );
    let first = Buffer {
        cells: (0..1000).collect(),
    };
    assert_eq!(store.save(&first).unwrap().sequence, 1);

    // Two generations written by hand, each an open transaction holding 2 MiB of large object.
    let raw = PgBackend::open(&cluster.url).unwrap();
    let chunk = pattern(3, 256 << 10);
    let torn_write = generation_key("direct", 1);
    let torn_commit = generation_key("direct", 2);
    let mut writing = raw.begin_put(&torn_write).unwrap();
    let mut committing = raw.begin_put(&torn_commit).unwrap();
    for _ in 0..8 {
        writing.write(&chunk).unwrap();
        committing.write(&chunk).unwrap();
    }
    // `raw` also holds an idle pooled connection when the server dies.
    assert_eq!(generation_keys(&raw), vec![generation_key("buffer", 1)]);

    // The store-level save: killed while the server executes the 32 MiB `lowrite` (some
    // 400 ms of work; the header's and the tag's take microseconds, hence the 20 ms).
    let big = Buffer {
        cells: (0..4u64 << 20)
            .map(|i| i.wrapping_mul(0x9E37_79B9))
            .collect(),
    };
    let mut watch = cluster.admin();
    let (saved, killed_at) = std::thread::scope(|s| {
        let saver = s.spawn(|| store.save(&big));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let writing_now: i64 = watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE state = 'active' AND query LIKE 'SELECT lowrite%' \
                       AND clock_timestamp() - query_start > interval '20 milliseconds'",
                    &[],
                )
                .unwrap()
                .get(0);
            if writing_now > 0 {
                break;
            }
            assert!(
                !saver.is_finished(),
                "the 32 MiB save ended before its lowrite was seen running: {:?}",
                saver.join()
            );
            assert!(Instant::now() < deadline, "the save never reached lowrite");
            std::thread::sleep(Duration::from_millis(1));
        }
        cluster.kill();
        let killed_at = started.elapsed();
        (saver.join().unwrap(), killed_at)
    });
    drop(watch);

    // Nothing in flight may report success.
    let err = saved.expect_err("a save cut by a server crash reported Ok");
    assert!(matches!(err, SaveError::Backend(_)), "{err}");
    let err = writing
        .write(&chunk)
        .expect_err("a write after a server crash reported Ok");
    assert!(!err.to_string().contains(&password(&cluster.url)), "{err}");
    assert!(writing.commit().is_err());
    committing
        .commit()
        .expect_err("a commit after a server crash reported Ok");

    let starts = cluster.restart();
    let restarted_at = started.elapsed();

    // A fresh backend and store: generation 1 only, loaded cleanly; no orphaned large object.
    let fresh = Store::new(
        Box::new(PgBackend::open(&cluster.url).unwrap()),
        keyring(),
        StoreConfig::default().with_space_reserve(0),
    );
    assert_eq!(
        generation_keys(fresh.backend()),
        vec![generation_key("buffer", 1)],
        "an interrupted generation left a row"
    );
    let loaded = fresh.load::<Buffer>().unwrap();
    assert_eq!(loaded.value, first);
    assert_eq!(loaded.report.sequence, 1);
    assert!(loaded.report.is_clean(), "{}", loaded.report);
    assert_eq!(large_objects_rows_orphans(&cluster), (1, 1, 0));

    // The next save takes the next sequence.
    let second = Buffer {
        cells: (0..2000).collect(),
    };
    assert_eq!(fresh.save(&second).unwrap().sequence, 2);

    // The store that lived through the crash saves again: its failed save spent number 2,
    // which is taken anyway, so it writes 3.
    let third = Buffer {
        cells: (0..3000).collect(),
    };
    assert_eq!(store.save(&third).unwrap().sequence, 3);
    // So does the raw backend. Its idle pooled connection died with the server, which the
    // client only notices when a statement fails; the pool checks a connection idle for a
    // second or more before using it, so the first operation after the restart succeeds on a
    // new connection. (The sleep makes sure the connection has been idle that long.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let after_restart = raw
        .list("")
        .expect("an idle connection that died with the server is replaced, not used");
    raw.put_new(&torn_write, &[&chunk]).unwrap();
    assert_eq!(&raw.get(&torn_write).unwrap()[..], &chunk[..]);

    let newest = fresh.load::<Buffer>().unwrap();
    assert_eq!((newest.value, newest.report.sequence), (third, 3));
    assert!(newest.report.is_clean(), "{}", newest.report);
    assert_eq!(large_objects_rows_orphans(&cluster), (4, 4, 0));
    eprintln!(
        "killed_mid_write: killed at {killed_at:?}, restarted at {restarted_at:?} ({starts} \
         pg_ctl start), done at {:?}; cut save: {err}; first list after restart on a pooled \
         connection: {:?}",
        started.elapsed(),
        after_restart.len()
    );
}

/// A PostgreSQL restart while a replicator copies a filesystem store to it.
///
/// Proves: while the server is down (`pg_ctl stop -m immediate`) local saves go on and
/// succeed, and the replicator neither panics nor stops: it reports the outage (the error,
/// naming the server but never the password, repeated failures, the generations pending and
/// the lag); once the server is back (after crash recovery) it catches up by itself, every
/// local generation is in PostgreSQL byte for byte, and a store reading PostgreSQL loads the
/// newest value.
#[test]
fn a_replicator_to_postgres_rides_out_a_server_restart_and_catches_up() {
    let Some(mut cluster) = PgCluster::start("server::replicator_restart") else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        keyring(),
        // Keep every generation, so that all of them must reach PostgreSQL.
        StoreConfig::default()
            .with_space_reserve(0)
            .with_retain(100),
    );
    let replicator = Replicator::start(
        Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
        Arc::new(PgBackend::open(&cluster.url).unwrap()),
        fast(),
    );
    let mut value = Buffer {
        cells: vec![0; 50_000],
    };
    let mut save = |i: u64| {
        value.cells[i as usize] = i;
        let receipt = store.save(&value).unwrap();
        assert_eq!(receipt.sequence, i);
        replicator.notify();
        value.clone()
    };
    for i in 1..=3 {
        save(i);
    }
    let status = replicator.wait_caught_up(Duration::from_secs(20));
    assert!(status.is_caught_up(), "{status:?}");
    assert_eq!(status.newest_off_site.get("buffer"), Some(&3));

    // The server goes down; the program keeps saving locally.
    cluster.stop_immediate();
    let outage = Instant::now();
    let mut newest = None;
    for i in 4..=8 {
        newest = Some(save(i));
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let lagging = loop {
        let s = replicator.status();
        if s.last_error.is_some() && s.pending_generations == 5 && s.consecutive_failures >= 2 {
            break s;
        }
        assert!(Instant::now() < deadline, "no outage reported: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!lagging.is_caught_up());
    assert!(lagging.seconds_behind > 0.0, "{lagging:?}");
    assert_eq!(lagging.newest_off_site.get("buffer"), Some(&3));
    let error = lagging.last_error.as_deref().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{}", cluster.port)),
        "{error}"
    );
    assert!(!error.contains(&password(&cluster.url)), "{error}");
    let down_for = outage.elapsed();

    // Back up (crash recovery runs): the replicator catches up by itself.
    let starts = cluster.restart();
    let status = replicator.wait_caught_up(Duration::from_secs(30));
    assert!(status.is_caught_up(), "{status:?}");
    assert_eq!(status.newest_off_site.get("buffer"), Some(&8));
    assert_eq!(status.uploaded_generations, 8, "{status:?}");
    assert_eq!(status.seconds_behind, 0.0);
    replicator.stop();

    let pg = PgBackend::open(&cluster.url).unwrap();
    let local = generation_keys(store.backend());
    assert_eq!(
        local,
        (1..=8)
            .map(|s| generation_key("buffer", s))
            .collect::<Vec<_>>()
    );
    assert_eq!(generation_keys(&pg), local);
    for key in &local {
        assert_eq!(
            &pg.get(key).unwrap()[..],
            &store.backend().get(key).unwrap()[..],
            "{key} differs in PostgreSQL"
        );
    }
    let reader = Store::new(Box::new(pg), keyring(), StoreConfig::default());
    let loaded = reader.load::<Buffer>().unwrap();
    assert_eq!(Some(loaded.value), newest);
    assert_eq!(loaded.report.sequence, 8);
    assert!(loaded.report.is_clean(), "{}", loaded.report);
    eprintln!(
        "replicator_restart: down for {down_for:?} ({} failed passes, {starts} pg_ctl start), \
         done at {:?}",
        lagging.consecutive_failures,
        started.elapsed()
    );
}

/// PostgreSQL as the replicator's source: a store saving deltas to PostgreSQL while a
/// replicator copies PostgreSQL to a directory.
///
/// Proves: the replicator keeps up as saves go on (caught up mid-run and at the end), every
/// generation (the full one and the deltas, written to PostgreSQL in many chunks) arrives in
/// the directory byte for byte, and a store over the copy rebuilds the newest value from the
/// delta chain.
#[test]
fn a_replicator_copies_postgres_deltas_to_the_filesystem() {
    let Some(env) = pg_env("server::pg_to_fs") else {
        return;
    };
    let started = Instant::now();
    let url = env.fresh_database("pg_to_fs");
    let store = Store::new(
        Box::new(PgBackend::open(&url).unwrap()),
        keyring(),
        StoreConfig::default()
            .with_space_reserve(0)
            .with_retain(100)
            .with_deltas(
                DeltaPolicy::default()
                    .with_min_payload(0)
                    .with_chunk_sizes(ChunkSizes::around(16 << 10)),
            ),
    );
    let copy = tempfile::tempdir().unwrap();
    let replicator = Replicator::start(
        Box::new(PgBackend::open(&url).unwrap()),
        Arc::new(FsBackend::open(copy.path()).unwrap()),
        fast(),
    );
    let mut buffer = Buffer {
        cells: (0..300_000u64).collect(),
    };
    let first = store.save(&buffer).unwrap();
    assert_eq!((first.sequence, first.base), (1, None));
    replicator.notify();
    for i in 0..5u64 {
        buffer.cells[i as usize * 1000] += 1;
        let receipt = store.save(&buffer).unwrap();
        assert_eq!(receipt.sequence, i + 2);
        assert_eq!(receipt.base, Some(i + 1), "not a delta");
        assert!(receipt.bytes * 10 < receipt.payload_len);
        replicator.notify();
        if i == 2 {
            // Mid-run: the replicator keeps up while saves go on.
            let status = replicator.wait_caught_up(Duration::from_secs(20));
            assert!(status.is_caught_up(), "{status:?}");
            assert_eq!(status.newest_off_site.get("buffer"), Some(&4));
        }
    }
    let status = replicator.wait_caught_up(Duration::from_secs(20));
    assert!(status.is_caught_up(), "{status:?}");
    assert_eq!(status.newest_off_site.get("buffer"), Some(&6));
    assert_eq!(status.uploaded_generations, 6, "{status:?}");
    replicator.stop();

    let fs = FsBackend::open(copy.path()).unwrap();
    let keys = generation_keys(store.backend());
    assert_eq!(keys.len(), 6);
    assert_eq!(generation_keys(&fs), keys);
    for key in &keys {
        assert_eq!(
            &fs.get(key).unwrap()[..],
            &store.backend().get(key).unwrap()[..],
            "{key} differs in the copy"
        );
    }
    let reader = Store::new(Box::new(fs), keyring(), StoreConfig::default());
    let loaded = reader.load::<Buffer>().unwrap();
    assert_eq!(loaded.value, buffer);
    assert_eq!((loaded.report.sequence, loaded.report.base), (6, Some(5)));
    assert!(loaded.report.is_clean(), "{}", loaded.report);
    eprintln!("pg_to_fs: done in {:?}", started.elapsed());
}
