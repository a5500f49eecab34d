//! The PostgreSQL backend beyond the conformance suite, against the cluster of `common`: clear
//! errors that never print the password, the versioned table layout, a store's saves, deltas
//! and recovery over it, and replication between PostgreSQL and the filesystem both ways.

mod common;

use common::pg_env;
use persist_conformance::pattern;
use persist_core::{Backend, ChunkSizes, DeltaPolicy, Key, Keyring, Store, StoreConfig, persist};
use persist_postgres::{LAYOUT_VERSION, Migrate, PgBackend, PgConfig, PgError};

#[persist(name = "buffer", version = 1)]
#[derive(Debug, Clone, PartialEq)]
struct Buffer {
    cells: Vec<u64>,
}

fn keyring() -> Keyring {
    Keyring::new(Key::from_bytes(vec![0x42; 32]).unwrap())
}

/// The password of the cluster's URL.
fn password(url: &str) -> String {
    let (_, rest) = url.split_once("://").unwrap();
    let (userinfo, _) = rest.split_once('@').unwrap();
    userinfo.split_once(':').unwrap().1.to_string()
}

#[test]
fn a_server_that_is_down_a_wrong_password_and_a_missing_database_each_say_so() {
    let Some(env) = pg_env("errors") else {
        return;
    };
    let secret = password(&env.url);
    // Nothing listens on port 1.
    let down = env.url.replacen(
        &env.url[env.url.find('@').unwrap()..env.url.rfind('/').unwrap()],
        "@127.0.0.1:1",
        1,
    );
    let err = PgBackend::open(&down).unwrap_err();
    assert!(matches!(err, PgError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1") && text.contains("persist_test"),
        "{text}"
    );
    assert!(!text.contains(&secret), "{text}");

    let wrong = env.url.replacen(&secret, "not-the-password", 1);
    let err = PgBackend::open(&wrong).unwrap_err();
    assert!(matches!(err, PgError::Authentication { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("user persist") && text.contains("persist_test"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");

    let missing = env.url_of("no_such_database");
    let err = PgBackend::open(&missing).unwrap_err();
    assert!(matches!(err, PgError::NoDatabase { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("no_such_database") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains(&secret), "{text}");
    // Nor in the Debug of a backend or a config.
    let backend = PgBackend::open(&env.fresh_database("debug")).unwrap();
    assert!(!format!("{backend:?}").contains(&secret));
    assert!(!backend.location().contains(&secret));
}

#[test]
fn the_table_layout_migrates_up_and_down_and_a_newer_one_is_refused() {
    let Some(env) = pg_env("layout") else {
        return;
    };
    let url = env.fresh_database("layout");
    let config = PgConfig::from_url(&url).unwrap();
    let status = persist_postgres::status(&config).unwrap();
    assert_eq!((status.current, status.known), (0, LAYOUT_VERSION));
    assert_eq!(status.pending.len(), LAYOUT_VERSION as usize);
    // Check mode refuses an outdated layout; migrate applies it.
    let err = PgBackend::connect(config.clone(), Migrate::Check).unwrap_err();
    assert!(
        matches!(err, PgError::LayoutOutdated { found: 0, .. }),
        "{err}"
    );
    assert_eq!(persist_postgres::migrate(&config).unwrap(), vec![1, 2]);
    assert_eq!(
        persist_postgres::migrate(&config).unwrap(),
        Vec::<u32>::new()
    );
    let backend = PgBackend::connect(config.clone(), Migrate::Check).unwrap();
    backend
        .put_new("s/00000000000000000001.pst", &[b"x"])
        .unwrap();
    // Down from 2 drops only the (empty) recovery log; down from 1 would delete a generation:
    // refused, nothing changed.
    assert_eq!(persist_postgres::down(&config).unwrap(), 1);
    let err = persist_postgres::down(&config).unwrap_err();
    assert!(
        matches!(
            err,
            PgError::DownRefused {
                rows: 1,
                table: "persist_generations",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        backend.get("s/00000000000000000001.pst").unwrap().to_vec(),
        b"x"
    );
    // Layout 1 with a generation migrates up to 2 keeping it.
    let err = PgBackend::connect(config.clone(), Migrate::Check).unwrap_err();
    assert!(
        matches!(err, PgError::LayoutOutdated { found: 1, .. }),
        "{err}"
    );
    let backend = PgBackend::connect(config.clone(), Migrate::Apply).unwrap();
    assert_eq!(
        backend.get("s/00000000000000000001.pst").unwrap().to_vec(),
        b"x"
    );
    backend.delete("s/00000000000000000001.pst").unwrap();
    assert_eq!(persist_postgres::down(&config).unwrap(), 1);
    assert_eq!(persist_postgres::down(&config).unwrap(), 0);
    assert_eq!(persist_postgres::status(&config).unwrap().current, 0);
    // A newer release's layout is never touched.
    persist_postgres::migrate(&config).unwrap();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    db.batch_execute(
        "INSERT INTO persist_layout (version, description) VALUES (99, 'from the future')",
    )
    .unwrap();
    for migrate in [Migrate::Apply, Migrate::Check] {
        let err = PgBackend::connect(config.clone(), migrate).unwrap_err();
        assert!(
            matches!(err, PgError::LayoutTooNew { found: 99, .. }),
            "{err}"
        );
    }
    assert!(matches!(
        persist_postgres::migrate(&config).unwrap_err(),
        PgError::LayoutTooNew { .. }
    ));
    assert!(matches!(
        persist_postgres::down(&config).unwrap_err(),
        PgError::LayoutTooNew { .. }
    ));
}

#[test]
fn a_store_saves_loads_and_writes_deltas_over_postgres() {
    let Some(env) = pg_env("store") else {
        return;
    };
    let url = env.fresh_database("store");
    let config = StoreConfig::default()
        .with_space_reserve(0)
        .with_retain(3)
        .with_deltas(
            DeltaPolicy::default()
                .with_min_payload(0)
                .with_chunk_sizes(ChunkSizes::around(16 << 10)),
        );
    let store = Store::new(Box::new(PgBackend::open(&url).unwrap()), keyring(), config);
    let mut buffer = Buffer {
        cells: (0..300_000u64).collect(),
    };
    let first = store.save(&buffer).unwrap();
    assert_eq!(first.base, None);
    for i in 0..5 {
        buffer.cells[i * 1000] += 1;
        let receipt = store.save(&buffer).unwrap();
        assert!(receipt.base.is_some());
        assert!(receipt.bytes * 10 < receipt.payload_len);
    }
    // A fresh reader over the same database rebuilds the chain.
    let reader = Store::new(
        Box::new(PgBackend::open(&url).unwrap()),
        keyring(),
        StoreConfig::default(),
    );
    let loaded = reader.load::<Buffer>().unwrap();
    assert_eq!(loaded.value, buffer);
    assert_eq!(loaded.report.base, Some(5));
    // A 5 MB generation streams through large objects byte for byte.
    let big = pattern(7, 5 << 20);
    let backend = PgBackend::open(&url).unwrap();
    backend
        .put_new(
            "big/00000000000000000001.pst",
            &[&big[..1 << 20], &big[1 << 20..]],
        )
        .unwrap();
    assert_eq!(
        &backend.get("big/00000000000000000001.pst").unwrap()[..],
        &big[..]
    );
    let head = backend
        .get_head("big/00000000000000000001.pst", 100)
        .unwrap();
    assert_eq!(
        (head.bytes.as_slice(), head.size),
        (&big[..100], big.len() as u64)
    );
}

#[test]
fn generations_replicate_from_the_filesystem_to_postgres_and_back() {
    let Some(env) = pg_env("replicate") else {
        return;
    };
    let pg = PgBackend::open(&env.fresh_database("replicate")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = persist_fs::FsBackend::open(dir.path()).unwrap();
    let store = Store::new(
        Box::new(local),
        keyring(),
        StoreConfig::default().with_space_reserve(0),
    );
    for i in 0..3u64 {
        store
            .save(&Buffer {
                cells: vec![i; 1000],
            })
            .unwrap();
    }
    let pushed = persist_s3::replicate_once(store.backend(), &pg, |_, _, _| {}).unwrap();
    assert_eq!(pushed.uploaded.len(), 3);
    let again = persist_s3::replicate_once(store.backend(), &pg, |_, _, _| {}).unwrap();
    assert!(again.uploaded.is_empty());
    // PostgreSQL -> a fresh directory: the same generations, loadable.
    let back = tempfile::tempdir().unwrap();
    let restored = persist_fs::FsBackend::open(back.path()).unwrap();
    let pulled = persist_s3::replicate_once(&pg, &restored, |_, _, _| {}).unwrap();
    assert_eq!(pulled.uploaded, pushed.uploaded);
    let reader = Store::new(Box::new(restored), keyring(), StoreConfig::default());
    assert_eq!(reader.load::<Buffer>().unwrap().value.cells, vec![2; 1000]);
}

#[test]
fn loads_are_recorded_in_the_recovery_log_table() {
    let Some(env) = pg_env("recovery_log") else {
        return;
    };
    let url = env.fresh_database("recovery_log");
    let config = StoreConfig::default()
        .with_space_reserve(0)
        .with_recovery_log(true);
    let store = Store::new(Box::new(PgBackend::open(&url).unwrap()), keyring(), config);
    let buffer = Buffer { cells: vec![1, 2] };
    assert!(store.load::<Buffer>().is_err());
    store.save(&buffer).unwrap();
    store.save(&buffer).unwrap();
    let loaded = store.load::<Buffer>().unwrap();
    assert!(loaded.report.log_error.is_none());
    // The records are rows an operator can query with SQL.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows: Vec<(String, String, Option<i64>)> = db
        .query(
            "SELECT state, outcome, (record->'outcome'->>'sequence')::bigint \
             FROM persist_recovery_log ORDER BY at, id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            ("buffer".to_string(), "no_generation".to_string(), None),
            ("buffer".to_string(), "recovered".to_string(), Some(2)),
        ]
    );
    let read = PgBackend::open(&url)
        .unwrap()
        .read_log(Some("buffer"), 1)
        .unwrap();
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].outcome.name(), "recovered");
    // A row edited into something else is reported, never trusted or panicked on.
    db.batch_execute(
        "UPDATE persist_recovery_log SET record = '{\"at_ms\": \"soon\"}' WHERE outcome = 'no_generation'",
    )
    .unwrap();
    let read = PgBackend::open(&url).unwrap().read_log(None, 10).unwrap();
    assert_eq!((read.records.len(), read.unreadable.len()), (1, 1));
    // The log's rows are data too: down from layout 2 refuses while it holds any.
    let config = PgConfig::from_url(&url).unwrap();
    let err = persist_postgres::down(&config).unwrap_err();
    assert!(
        matches!(
            err,
            PgError::DownRefused {
                rows: 2,
                table: "persist_recovery_log",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn keys_with_quotes_and_backslashes_are_written_listed_and_deleted_exactly() {
    let Some(env) = pg_env("odd_keys") else {
        return;
    };
    let backend = PgBackend::open(&env.fresh_database("odd_keys")).unwrap();
    let keys = [
        "a'b/1",
        "a\\'b/2",
        "a\\\\b/3",
        "a';DROP TABLE x;--/4",
        "a/5",
    ];
    for key in keys {
        backend.put_new(key, &[key.as_bytes()]).unwrap();
    }
    // Each delete removes exactly its own row, and a second one is NotFound.
    for (i, key) in keys.iter().enumerate() {
        backend.delete(key).unwrap();
        assert!(matches!(
            backend.delete(key),
            Err(persist_core::BackendError::NotFound { .. })
        ));
        let left: Vec<String> = backend
            .list("")
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        let mut expected: Vec<String> = keys[i + 1..].iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(left, expected);
    }
    // The connection is usable after a NotFound (no transaction left open).
    backend.put_new("a/6", &[b"x"]).unwrap();
    assert_eq!(&backend.get("a/6").unwrap()[..], b"x");
}
