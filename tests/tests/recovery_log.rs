//! The recovery log on a real filesystem: every load and open records what it found (a fresh
//! start, a generation with the ones walked past and why, a blocked load), a record equals the
//! report the program got, the log never changes a load's outcome, and a store without it
//! writes none.

use std::path::Path;

use persist_core::recovery_log::{LOG_PREFIX, LogRecord, Outcome};
use persist_core::{Backend, Key, Keyring, LoadError, Store, StoreConfig, persist};
use persist_fs::FsBackend;
use persist_tests::test_keyring;

#[persist(name = "agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
struct Agent {
    q: Vec<f64>,
}

fn store(dir: &Path, keyring: Keyring, log: bool) -> Store {
    let config = StoreConfig::default()
        .with_space_reserve(0)
        .with_recovery_log(log);
    Store::new(Box::new(FsBackend::open(dir).unwrap()), keyring, config)
}

fn log_of(dir: &Path) -> Vec<LogRecord> {
    let backend = FsBackend::open_read_only(dir).unwrap();
    let entries = backend.read_log(Some("agent"), 100).unwrap();
    assert!(entries.unreadable.is_empty(), "{:?}", entries.unreadable);
    entries.records
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn every_load_is_recorded_as_the_report_says() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh start is recorded: the state had no generation.
    {
        let s = store(dir.path(), test_keyring(), true);
        assert!(matches!(
            s.load::<Agent>(),
            Err(LoadError::NoGeneration { .. })
        ));
        for i in 1..=3 {
            s.save(&Agent { q: vec![i as f64] }).unwrap();
        }
    }
    // The newest generation damaged: the load walks past it, and the record says so.
    flip(&dir.path().join("agent/00000000000000000003.pst"), 200);
    let s = store(dir.path(), test_keyring(), true);
    let loaded = s.load::<Agent>().unwrap();
    assert_eq!(loaded.value, Agent { q: vec![2.0] });
    assert!(loaded.report.log_error.is_none());
    let view = s.open::<Agent>().unwrap();
    assert_eq!(view.report().sequence, 2);
    drop(s);
    // A program with another key is blocked by an authentic generation it cannot verify.
    let other = Keyring::new(Key::from_bytes(vec![7; 32]).unwrap());
    let blocked = store(dir.path(), other, true).load::<Agent>().unwrap_err();
    assert!(matches!(blocked, LoadError::Blocked { .. }), "{blocked}");

    let log = log_of(dir.path());
    let outcomes: Vec<(&str, &str)> = log
        .iter()
        .map(|r| (r.operation.as_str(), r.outcome.name()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("load", "no_generation"),
            ("load", "recovered"),
            ("open", "recovered"),
            ("load", "failed"),
        ]
    );
    assert!(log.iter().all(|r| r.pid == std::process::id()));
    assert!(log.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    let Outcome::Recovered {
        sequence,
        schema_version,
        rejected,
        base,
        restored_from,
        ..
    } = &log[1].outcome
    else {
        panic!("{:?}", log[1]);
    };
    assert_eq!((*sequence, *schema_version, *base), (2, 1, None));
    assert!(restored_from.is_none());
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].sequence, 3);
    assert_eq!(rejected[0].kind, "corrupt");
    assert_eq!(
        rejected[0].reason,
        loaded.report.rejected[0].reason.to_string()
    );
    let Outcome::Failed { kind, error } = &log[3].outcome else {
        panic!("{:?}", log[3]);
    };
    assert_eq!(kind, "blocked: foreign");
    assert_eq!(error, &blocked.to_string());
}

#[test]
fn a_log_that_cannot_be_written_never_fails_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), test_keyring(), true);
    s.save(&Agent { q: vec![1.0] }).unwrap();
    // The log's directory is taken by a file: every append fails.
    std::fs::write(
        dir.path().join(LOG_PREFIX.trim_end_matches('/')),
        b"in the way",
    )
    .unwrap();
    let loaded = s.load::<Agent>().unwrap();
    assert_eq!(loaded.value, Agent { q: vec![1.0] });
    let error = loaded
        .report
        .log_error
        .as_deref()
        .expect("the failure is reported");
    assert!(error.contains("@recovery-log"), "{error}");
    assert!(
        loaded
            .report
            .to_string()
            .contains("NOT recorded in the recovery log"),
        "{}",
        loaded.report
    );
}

#[test]
fn a_store_without_the_log_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), test_keyring(), false);
    s.save(&Agent { q: vec![1.0] }).unwrap();
    s.load::<Agent>().unwrap();
    assert!(log_of(dir.path()).is_empty());
    assert!(!dir.path().join(LOG_PREFIX).exists());
}
