//! Issue 13, "never destroy or silently skip authentic state": a generation this program cannot
//! use but which is not corrupt (too new, foreign, undecodable) blocks a load instead of being
//! walked past silently, is walked past only when `StoreConfig::walk_past` opts in (with a
//! WARNING in the report), and is never deleted by retention.

use std::collections::BTreeSet;
use std::path::Path;

use persist_core::{
    CodecError, Key, Keyring, LoadError, MigrationStep, OpenError, RejectKind, RejectReason, Store,
    StoreConfig, WalkPast, persist,
};
use persist_fs::FsBackend;
use persist_tests::{AgentState, test_key, test_keyring};

// ---- a three-version chain: v1 (the "old binary"), v2 and v3 (the "newer binaries") ---------

#[persist(name = "rollback", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct RollbackV1 {
    pub counter: u64,
    pub note: String,
}

#[persist(name = "rollback", version = 2, from = RollbackV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct RollbackV2 {
    pub counter: u64,
    pub note: String,
    pub extra: u32,
}

impl From<RollbackV1> for RollbackV2 {
    fn from(old: RollbackV1) -> Self {
        RollbackV2 {
            counter: old.counter,
            note: old.note,
            extra: 7,
        }
    }
}

#[persist(name = "rollback", version = 3, from = RollbackV2)]
#[derive(Clone, Debug, PartialEq)]
pub struct RollbackV3 {
    pub counter: u64,
    pub note: String,
    pub extra: u32,
    pub flag: bool,
}

impl From<RollbackV2> for RollbackV3 {
    fn from(old: RollbackV2) -> Self {
        RollbackV3 {
            counter: old.counter,
            note: old.note,
            extra: old.extra,
            flag: true,
        }
    }
}

// ---- a fallible migration: v2 refuses a negative v1 value ------------------------------------

#[persist(name = "migrating", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct MigV1 {
    pub value: i64,
}

#[persist(name = "migrating", version = 2, try_from = MigV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct MigV2 {
    pub value: u64,
}

/// The v1 → v2 step refuses a negative value.
#[derive(Debug, PartialEq)]
pub struct Negative(pub i64);

impl std::fmt::Display for Negative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "value {} is negative", self.0)
    }
}

impl std::error::Error for Negative {}

impl TryFrom<MigV1> for MigV2 {
    type Error = Negative;
    fn try_from(old: MigV1) -> Result<Self, Negative> {
        u64::try_from(old.value)
            .map(|value| MigV2 { value })
            .map_err(|_| Negative(old.value))
    }
}

// ---- fixtures --------------------------------------------------------------------------------

fn store_with(dir: &Path, ring: Keyring, retain: usize, walk_past: WalkPast) -> Store {
    Store::new(
        Box::new(FsBackend::open(dir).expect("open store")),
        ring,
        StoreConfig::default()
            .with_retain(retain)
            .with_space_reserve(0)
            .with_walk_past(walk_past),
    )
}

fn sequences(store: &Store, name: &str) -> BTreeSet<u64> {
    store
        .generations(name)
        .expect("list")
        .iter()
        .map(|g| g.sequence)
        .collect()
}

fn set(seqs: &[u64]) -> BTreeSet<u64> {
    seqs.iter().copied().collect()
}

/// A second key, as a program started with the wrong key file would have.
fn other_key() -> Key {
    Key::from_bytes(b"another persist test key, also 32+ bytes long!!".to_vec()).expect("long")
}

// ---- a. rollback to an older binary --------------------------------------------------------

/// Guards against a rollback (an older release started on a store a newer release wrote)
/// silently loading an old generation as if it were the newest state, and against its retention
/// deleting the newer release's generations, which would lose them when the newer release is
/// deployed again.
#[test]
fn rollback_binary_is_blocked_then_walks_past_and_never_deletes_newer_generations() {
    let dir = tempfile::tempdir().unwrap();
    // The history: v1, then v2, then v3 releases each saved once.
    {
        let store = store_with(dir.path(), test_keyring(), 10, WalkPast::default());
        let v1 = RollbackV1 {
            counter: 1,
            note: "written by v1".into(),
        };
        assert_eq!(store.save(&v1).unwrap().sequence, 1);
        let v2 = RollbackV2 {
            counter: 2,
            note: "written by v2".into(),
            extra: 2,
        };
        assert_eq!(store.save(&v2).unwrap().sequence, 2);
        let v3 = RollbackV3 {
            counter: 3,
            note: "written by v3".into(),
            extra: 3,
            flag: false,
        };
        assert_eq!(store.save(&v3).unwrap().sequence, 3);
    }

    // The v1 release is deployed again (a rollback), with default settings: blocked.
    {
        let store = store_with(dir.path(), test_keyring(), 2, WalkPast::default());
        match store.load::<RollbackV1>() {
            Err(LoadError::Blocked {
                kind,
                generation,
                rejected,
                ..
            }) => {
                assert_eq!(kind, RejectKind::TooNew);
                assert_eq!(generation.sequence, 3);
                assert_eq!(generation.kind(), RejectKind::TooNew);
                assert!(rejected.is_empty(), "{rejected:?}");
            }
            other => panic!("expected Blocked{{TooNew}}, got {other:?}"),
        }
        let message = store.load::<RollbackV1>().unwrap_err().to_string();
        assert!(message.contains("too new"), "{message}");
        assert!(message.contains("walk_past"), "{message}");
        // The zero-copy path walks the same way.
        match store.open::<RollbackV1>() {
            Err(OpenError::Load(LoadError::Blocked { kind, .. })) => {
                assert_eq!(kind, RejectKind::TooNew)
            }
            Err(other) => panic!("expected Blocked{{TooNew}} from open, got {other:?}"),
            Ok(_) => panic!("open returned a view of an old generation"),
        }
        // Nothing was deleted by the failed loads.
        assert_eq!(sequences(&store, "rollback"), set(&[1, 2, 3]));
    }

    // The operator opts in to the rollback: the v1 generation loads, with the newer ones listed.
    let rollback = WalkPast::default().allow(RejectKind::TooNew);
    let store = store_with(dir.path(), test_keyring(), 2, rollback);
    let loaded = store.load::<RollbackV1>().expect("walks past v2 and v3");
    assert_eq!(loaded.report.sequence, 1);
    assert_eq!(loaded.value.counter, 1);
    let walked: Vec<(u64, RejectKind)> = loaded
        .report
        .walked_past_authentic()
        .map(|r| (r.sequence, r.kind()))
        .collect();
    assert_eq!(
        walked,
        vec![(3, RejectKind::TooNew), (2, RejectKind::TooNew)]
    );
    let shown = loaded.report.to_string();
    assert!(shown.contains("WARNING"), "{shown}");
    assert!(shown.contains("NOT corrupt"), "{shown}");

    // Six saves of the v1 release with retain = 2: its own old generations go, v2's and v3's stay.
    let mut last = 0;
    for i in 0..6u64 {
        let receipt = store
            .save(&RollbackV1 {
                counter: 100 + i,
                note: format!("v1 after rollback, save {i}"),
            })
            .expect("save");
        assert!(receipt.retention_error.is_none(), "{receipt:?}");
        assert!(
            !receipt.deleted.contains(&2) && !receipt.deleted.contains(&3),
            "retention deleted a newer release's generation: {receipt:?}"
        );
        last = receipt.sequence;
    }
    assert_eq!(last, 9);
    assert_eq!(
        sequences(&store, "rollback"),
        set(&[2, 3, 8, 9]),
        "retention must keep the too-new generations 2 and 3 and the newest 2 of its own"
    );
    drop(store);

    // The v3 release is deployed again: it loads the newest generation (a v1 save, migrated).
    let store = store_with(dir.path(), test_keyring(), 2, WalkPast::default());
    let loaded = store.load::<RollbackV3>().expect("v3 loads the newest");
    assert_eq!(loaded.report.sequence, 9);
    assert!(loaded.report.rejected.is_empty(), "{}", loaded.report);
    assert_eq!(
        loaded.report.migrations,
        vec![
            MigrationStep { from: 1, to: 2 },
            MigrationStep { from: 2, to: 3 }
        ]
    );
    assert_eq!(
        loaded.value,
        RollbackV3 {
            counter: 105,
            note: "v1 after rollback, save 5".into(),
            extra: 7,
            flag: true,
        }
    );
    // And the v2/v3 generations are still loadable as v3 (nothing was damaged).
    for seq in [2, 3] {
        let g = store
            .generations("rollback")
            .unwrap()
            .into_iter()
            .find(|g| g.sequence == seq)
            .unwrap();
        store
            .check(&persist_core::Schema::of::<RollbackV3>(), &g)
            .unwrap_or_else(|e| panic!("generation {seq} no longer checks: {e}"));
    }
}

// ---- b. the wrong key ------------------------------------------------------------------------

/// Guards against a program started with the wrong key treating every generation of the right
/// key as corrupt: starting afresh over them (a silent loss of all state) and letting retention
/// delete them. Once the right key is back in the ring they are ordinary generations again.
#[test]
fn wrong_key_blocks_and_keeps_foreign_generations_until_the_key_is_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store_with(dir.path(), test_keyring(), 10, WalkPast::default());
        for i in 1..=3 {
            assert_eq!(store.save(&AgentState::sample(20, i)).unwrap().sequence, i);
        }
    }

    // Key B only.
    let store = store_with(
        dir.path(),
        Keyring::new(other_key()),
        2,
        WalkPast::default(),
    );
    match store.load::<AgentState>() {
        Err(LoadError::Blocked {
            kind,
            generation,
            rejected,
            ..
        }) => {
            assert_eq!(kind, RejectKind::Foreign);
            assert_eq!(generation.sequence, 3);
            assert!(
                matches!(
                    generation.reason,
                    RejectReason::Envelope(persist_core::EnvelopeError::UnknownKey(id))
                        if id == test_key().id()
                ),
                "{}",
                generation.reason
            );
            assert!(rejected.is_empty(), "{rejected:?}");
        }
        other => panic!("expected Blocked{{Foreign}}, got {other:?}"),
    }
    let message = store.load::<AgentState>().unwrap_err().to_string();
    assert!(message.contains("with_verify_only"), "{message}");

    for i in 0..6u64 {
        let receipt = store.save(&AgentState::sample(20, 100 + i)).expect("save");
        assert!(receipt.retention_error.is_none(), "{receipt:?}");
        assert!(
            receipt.deleted.iter().all(|s| *s > 3),
            "retention deleted a generation of key A: {receipt:?}"
        );
    }
    assert_eq!(
        sequences(&store, "agent"),
        set(&[1, 2, 3, 8, 9]),
        "key A's generations 1-3 must all survive; key B's own keep the newest 2"
    );
    drop(store);

    // B current, A verify-only: B's newest loads; A's are authentic again and age out normally.
    let ring = Keyring::new(other_key()).with_verify_only(test_key());
    let store = store_with(dir.path(), ring, 2, WalkPast::default());
    let loaded = store.load::<AgentState>().expect("load");
    assert_eq!(loaded.report.sequence, 9);
    assert_eq!(loaded.value, AgentState::sample(20, 105));
    assert!(loaded.report.is_clean(), "{}", loaded.report);
    let receipt = store.save(&AgentState::sample(20, 200)).expect("save");
    assert_eq!(receipt.sequence, 10);
    assert!(receipt.retention_error.is_none(), "{receipt:?}");
    assert_eq!(sequences(&store, "agent"), set(&[9, 10]), "{receipt:?}");
}

// ---- c. a failing migration ----------------------------------------------------------------

/// Guards against a migration bug in a new release making it fall back to an older generation
/// (silently losing the newest state) and its retention then deleting the newest authentic
/// generation, the only copy of the state, that a fixed migration would have loaded.
#[test]
fn failing_migration_blocks_is_never_deleted_and_walks_past_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store_with(dir.path(), test_keyring(), 10, WalkPast::default());
        assert_eq!(store.save(&MigV1 { value: 5 }).unwrap().sequence, 1);
        assert_eq!(store.save(&MigV1 { value: -1 }).unwrap().sequence, 2);
    }

    // The v2 release: blocked on generation 2, with the migration's error.
    {
        let store = store_with(dir.path(), test_keyring(), 1, WalkPast::default());
        match store.load::<MigV2>() {
            Err(LoadError::Blocked {
                kind,
                generation,
                rejected,
                ..
            }) => {
                assert_eq!(kind, RejectKind::Undecodable);
                assert_eq!(generation.sequence, 2);
                match &generation.reason {
                    RejectReason::Codec(CodecError::Migration {
                        from, to, error, ..
                    }) => {
                        assert_eq!((*from, *to), (1, 2));
                        assert_eq!(error.downcast_ref::<Negative>(), Some(&Negative(-1)));
                    }
                    other => panic!("expected the migration error, got {other}"),
                }
                assert!(rejected.is_empty(), "{rejected:?}");
            }
            other => panic!("expected Blocked{{Undecodable}}, got {other:?}"),
        }
        let message = store.load::<MigV2>().unwrap_err().to_string();
        assert!(message.contains("value -1 is negative"), "{message}");
        assert_eq!(sequences(&store, "migrating"), set(&[1, 2]));
    }

    // Opting in walks past it, loudly.
    let walk = WalkPast::default().allow(RejectKind::Undecodable);
    let store = store_with(dir.path(), test_keyring(), 1, walk);
    let loaded = store.load::<MigV2>().expect("walks past generation 2");
    assert_eq!(loaded.report.sequence, 1);
    assert_eq!(loaded.value, MigV2 { value: 5 });
    let walked: Vec<(u64, RejectKind)> = loaded
        .report
        .walked_past_authentic()
        .map(|r| (r.sequence, r.kind()))
        .collect();
    assert_eq!(walked, vec![(2, RejectKind::Undecodable)]);
    let shown = loaded.report.to_string();
    assert!(shown.contains("WARNING"), "{shown}");
    assert!(shown.contains("value -1 is negative"), "{shown}");

    // Saves with retain = 1: generation 1 and the new ones age out, generation 2 never does.
    for i in 0..3u64 {
        let receipt = store.save(&MigV2 { value: 10 + i }).expect("save");
        assert!(receipt.retention_error.is_none(), "{receipt:?}");
        assert!(!receipt.deleted.contains(&2), "{receipt:?}");
    }
    assert_eq!(sequences(&store, "migrating"), set(&[2, 5]));
    // The newest loads cleanly; generation 2 is still there, intact, for a fixed migration.
    let loaded = store.load::<MigV2>().expect("load");
    assert_eq!((loaded.report.sequence, loaded.value.value), (5, 12));
    assert!(loaded.report.is_clean(), "{}", loaded.report);
    let still = store.load::<MigV1>();
    assert!(
        matches!(
            &still,
            Err(LoadError::Blocked {
                kind: RejectKind::TooNew,
                ..
            })
        ),
        "v1 sees v2 generation 5 as too new: {still:?}"
    );
    let g2 = store
        .generations("migrating")
        .unwrap()
        .into_iter()
        .find(|g| g.sequence == 2)
        .unwrap();
    let value = store
        .check(&persist_core::Schema::of::<MigV1>(), &g2)
        .expect("generation 2 is authentic and intact");
    assert_eq!(value.header.schema_version, 1);
}
