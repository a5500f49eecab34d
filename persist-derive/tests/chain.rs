//! A three-version chain (v1 → v2 → v3) of one state, loaded from committed golden files written
//! by the v1 and v2 code, plus future-version and fingerprint-mismatch rejection.
//!
//! The golden files are regenerated only on purpose, with
//! `cargo test -p persist-derive --test chain -- --ignored write_golden_files`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use persist_core::Header;
use persist_core::format;
use persist_core::format::generation_key;
use persist_core::{
    CodecError, EnvelopeError, Key, Keyring, LoadError, MigrationStep, Persist, RejectKind,
    RejectReason, RkyvFormat, Store, StoreConfig, persist,
};
use persist_fs::FsBackend;

/// The signing key of the golden files (the workspace's fixed test key; never use a constant key
/// in a program).
fn test_keyring() -> Keyring {
    Keyring::new(
        Key::from_bytes(b"persist test key: 32+ bytes, never for production".to_vec())
            .expect("long enough"),
    )
}

// ---- version 1, frozen -------------------------------------------------------------------

#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct PositionV1 {
    pub ticket: u64,
    pub entry: f64,
}

#[persist(name = "exit_agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ExitAgentV1 {
    pub positions: Vec<PositionV1>,
    pub epsilon: f32,
}

// ---- version 2, frozen: epsilon widened to f64, a side added ------------------------------

#[persist(nested)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    Long,
    Short,
}

#[persist(name = "exit_agent", version = 2, from = ExitAgentV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct ExitAgentV2 {
    pub positions: Vec<PositionV1>,
    pub epsilon: f64,
    pub side: Side,
}

impl From<ExitAgentV1> for ExitAgentV2 {
    fn from(old: ExitAgentV1) -> Self {
        ExitAgentV2 {
            positions: old.positions,
            epsilon: f64::from(old.epsilon),
            side: Side::Long,
        }
    }
}

// ---- version 3, current: positions get an optional stop, per-ticket stats -----------------

#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub ticket: u64,
    pub entry: f64,
    pub stop: Option<f64>,
}

#[persist(name = "exit_agent", version = 3, try_from = ExitAgentV2)]
#[derive(Clone, Debug, PartialEq)]
pub struct ExitAgent {
    pub positions: Vec<Position>,
    pub epsilon: f64,
    pub side: Side,
    pub stats: BTreeMap<u64, (u32, f64)>,
}

/// The v2 → v3 step refuses an exploration rate outside [0, 1].
#[derive(Debug, PartialEq)]
pub struct BadEpsilon(pub f64);

impl std::fmt::Display for BadEpsilon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "epsilon {} is outside [0, 1]", self.0)
    }
}

impl std::error::Error for BadEpsilon {}

impl TryFrom<ExitAgentV2> for ExitAgent {
    type Error = BadEpsilon;
    fn try_from(old: ExitAgentV2) -> Result<Self, BadEpsilon> {
        if !(0.0..=1.0).contains(&old.epsilon) {
            return Err(BadEpsilon(old.epsilon));
        }
        let stats = old.positions.iter().map(|p| (p.ticket, (0, 0.0))).collect();
        let positions = old
            .positions
            .into_iter()
            .map(|p| Position {
                ticket: p.ticket,
                entry: p.entry,
                stop: None,
            })
            .collect();
        Ok(ExitAgent {
            positions,
            epsilon: old.epsilon,
            side: old.side,
            stats,
        })
    }
}

// ---- fixtures ------------------------------------------------------------------------------

fn v1_value() -> ExitAgentV1 {
    ExitAgentV1 {
        positions: vec![
            PositionV1 {
                ticket: 101,
                entry: 1.0825,
            },
            PositionV1 {
                ticket: 102,
                entry: 1.0911,
            },
        ],
        epsilon: 0.25,
    }
}

fn v2_value() -> ExitAgentV2 {
    ExitAgentV2 {
        positions: vec![PositionV1 {
            ticket: 7,
            entry: 151.5,
        }],
        epsilon: 0.125,
        side: Side::Short,
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn store_at(dir: &Path) -> Store {
    let backend = FsBackend::open(dir).expect("open store");
    Store::new(Box::new(backend), test_keyring(), StoreConfig::default())
}

/// A store holding one golden file as generation `sequence` (the sequence it was written with).
fn store_with_golden(file: &str, sequence: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join(generation_key("exit_agent", sequence));
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::fs::copy(golden_dir().join(file), &target).expect("copy golden file");
    let store = store_at(dir.path());
    (dir, store)
}

#[test]
#[ignore = "writes golden files; the committed ones are format 1 and must stay (see below)"]
fn write_golden_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    assert_eq!(store.save(&v1_value()).expect("save v1").sequence, 1);
    assert_eq!(store.save(&v2_value()).expect("save v2").sequence, 2);
    std::fs::create_dir_all(golden_dir()).expect("mkdir");
    for (seq, file) in [(1, "exit_agent_v1.pst"), (2, "exit_agent_v2.pst")] {
        let from = dir.path().join(generation_key("exit_agent", seq));
        std::fs::copy(from, golden_dir().join(file)).expect("copy");
    }
}

/// The golden files were written by an earlier build in envelope format 1 (one HMAC pass);
/// this build writes format 2. Loading them is the test that an upgrade still reads old
/// generations, so they must not be regenerated by a newer build: add new files instead.
#[test]
fn golden_files_are_envelope_format_1_from_an_earlier_build() {
    for file in ["exit_agent_v1.pst", "exit_agent_v2.pst"] {
        let bytes = std::fs::read(golden_dir().join(file)).expect("golden file");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1, "{file}");
    }
    assert_eq!(persist_core::format::FORMAT_VERSION, 2);
}

#[test]
fn golden_v1_loads_as_v3() {
    let (_dir, store) = store_with_golden("exit_agent_v1.pst", 1);
    let loaded = store.load::<ExitAgent>().expect("load v1 as v3");
    assert_eq!(loaded.report.schema_version, 1);
    assert_eq!(
        loaded.report.migrations,
        vec![
            MigrationStep { from: 1, to: 2 },
            MigrationStep { from: 2, to: 3 }
        ]
    );
    let expected = ExitAgent {
        positions: vec![
            Position {
                ticket: 101,
                entry: 1.0825,
                stop: None,
            },
            Position {
                ticket: 102,
                entry: 1.0911,
                stop: None,
            },
        ],
        epsilon: 0.25,
        side: Side::Long,
        stats: [(101, (0, 0.0)), (102, (0, 0.0))].into_iter().collect(),
    };
    assert_eq!(loaded.value, expected);
}

#[test]
fn golden_v2_loads_as_v3() {
    let (_dir, store) = store_with_golden("exit_agent_v2.pst", 2);
    let loaded = store.load::<ExitAgent>().expect("load v2 as v3");
    assert_eq!(loaded.report.schema_version, 2);
    assert_eq!(
        loaded.report.migrations,
        vec![MigrationStep { from: 2, to: 3 }]
    );
    let expected = ExitAgent {
        positions: vec![Position {
            ticket: 7,
            entry: 151.5,
            stop: None,
        }],
        epsilon: 0.125,
        side: Side::Short,
        stats: [(7, (0, 0.0))].into_iter().collect(),
    };
    assert_eq!(loaded.value, expected);
}

#[test]
fn golden_files_are_the_current_code_of_their_versions() {
    // The frozen types still read their own golden files without migration, and the files'
    // signed fingerprints are the ones the frozen types compute today.
    let (_d1, s1) = store_with_golden("exit_agent_v1.pst", 1);
    assert_eq!(s1.load::<ExitAgentV1>().expect("v1").value, v1_value());
    let (_d2, s2) = store_with_golden("exit_agent_v2.pst", 2);
    let v2 = s2.load::<ExitAgentV2>().expect("v2");
    assert_eq!(v2.value, v2_value());
    assert!(v2.report.migrations.is_empty());
}

#[test]
fn current_version_round_trips_without_migration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    let mut value = ExitAgent::try_from(v2_value()).expect("valid");
    value.positions[0].stop = Some(150.0);
    store.save(&value).expect("save");
    let loaded = store.load::<ExitAgent>().expect("load");
    assert_eq!(loaded.value, value);
    assert!(loaded.report.is_clean());
}

#[test]
fn chain_constants_and_fingerprints() {
    assert_eq!(ExitAgent::NAME, "exit_agent");
    assert_eq!(ExitAgent::VERSION, 3);
    assert_eq!(ExitAgent::OLDEST_VERSION, 1);
    assert_eq!(ExitAgentV2::OLDEST_VERSION, 1);
    assert_eq!(
        ExitAgent::fingerprint_of(1),
        Some(ExitAgentV1::fingerprint())
    );
    assert_eq!(
        ExitAgent::fingerprint_of(2),
        Some(ExitAgentV2::fingerprint())
    );
    assert_eq!(ExitAgent::fingerprint_of(3), Some(ExitAgent::fingerprint()));
    assert_eq!(ExitAgent::fingerprint_of(4), None);
    assert_eq!(ExitAgent::fingerprint_of(0), None);
    let fps = [1, 2, 3].map(|v| ExitAgent::fingerprint_of(v).expect("known"));
    assert!(fps[0] != fps[1] && fps[1] != fps[2] && fps[0] != fps[2]);
    assert_eq!(
        ExitAgent::descriptor_of(1),
        ExitAgentV1::descriptor_of(1),
        "each version's descriptor comes from its frozen type"
    );
}

#[test]
fn failing_try_from_step_is_a_typed_migration_error() {
    let bad = ExitAgentV2 {
        epsilon: 3.5,
        ..v2_value()
    };
    let payload = bad.encode().expect("encode");
    match ExitAgent::decode(2, &payload).expect_err("step refuses") {
        CodecError::Migration {
            from,
            to,
            reason,
            error,
        } => {
            assert_eq!((from, to), (2, 3));
            assert_eq!(reason, "epsilon 3.5 is outside [0, 1]");
            assert_eq!(error.downcast_ref::<BadEpsilon>(), Some(&BadEpsilon(3.5)));
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
}

#[test]
fn decode_refuses_unknown_versions() {
    let payload = ExitAgent::try_from(v2_value())
        .expect("valid")
        .encode()
        .expect("encode");
    assert!(matches!(
        ExitAgent::decode(4, &payload).expect_err("future"),
        CodecError::UnsupportedVersion(4)
    ));
    assert!(matches!(
        ExitAgent::decode(0, &payload).expect_err("before v1"),
        CodecError::UnsupportedVersion(0)
    ));
}

/// Writes an authentic generation of `exit_agent` with any version and fingerprint.
fn write_raw(
    store: &Store,
    sequence: u64,
    version: u32,
    fingerprint: persist_core::Fingerprint,
    payload: &[u8],
) {
    let header = Header {
        key_id: store.keyring().current().id(),
        name: "exit_agent".into(),
        schema_version: version,
        fingerprint,
        rkyv_format: RkyvFormat::CURRENT,
        sequence,
        created_at_nanos: 0,
        payload_len: 0,
    };
    let bytes = format::seal(store.keyring(), header, payload).expect("seal");
    store
        .backend()
        .put_new(&generation_key("exit_agent", sequence), &[&bytes])
        .expect("write");
}

#[test]
fn future_version_is_rejected_not_misread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    // Version 4 written by a newer binary, with a v3-shaped payload: it must not be read as v3.
    let payload = ExitAgent::try_from(v2_value())
        .expect("valid")
        .encode()
        .expect("encode");
    write_raw(&store, 1, 4, ExitAgent::fingerprint(), &payload);
    match store.load::<ExitAgent>() {
        Err(LoadError::Blocked {
            kind: RejectKind::TooNew,
            generation,
            rejected,
            ..
        }) => {
            assert!(rejected.is_empty());
            assert!(
                matches!(
                    generation.reason,
                    RejectReason::Envelope(EnvelopeError::FutureVersion {
                        found: 4,
                        newest_known: 3
                    })
                ),
                "{}",
                generation.reason
            );
        }
        other => panic!("expected FutureVersion, got {other:?}"),
    }
}

#[test]
fn layout_change_without_version_bump_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    // A "v3" written by a binary whose v3 had another layout (here: the v2 layout).
    let payload = v2_value().encode().expect("encode");
    write_raw(&store, 1, 3, ExitAgentV2::fingerprint(), &payload);
    match store.load::<ExitAgent>() {
        Err(LoadError::Blocked {
            kind: RejectKind::TooNew,
            generation,
            ..
        }) => match &generation.reason {
            RejectReason::FingerprintMismatch {
                name,
                version,
                expected,
                found,
            } => {
                assert_eq!((name.as_str(), *version), ("exit_agent", 3));
                assert_eq!(*expected, ExitAgent::fingerprint());
                assert_eq!(*found, ExitAgentV2::fingerprint());
            }
            other => panic!("expected a fingerprint mismatch, got {other}"),
        },
        other => panic!("expected rejection, got {other:?}"),
    }
}
