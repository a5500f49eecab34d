//! Issue 3's benchmarks:
//!
//! - `open/replay_200mb`: `Store::open` of a 200 MB replay buffer (map, HMAC verify, header and
//!   fingerprint checks, bytecheck validation, first field read) against serde + bincode
//!   deserialisation of the same data from memory (`bincode/replay_200mb`), and against
//!   `Store::load` (verify + validate + deserialise into an owned value).
//! - `migrate/qtable_10k_v1_to_v3`: `Store::load` of a 10,000-state Q-table saved as v1, migrated
//!   across two versions to v3.
//!
//! Run with `cargo bench -p persist-derive`; `REPLAY_MB` changes the replay buffer's size.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use persist_core::{Key, Keyring, Store, StoreConfig, persist};
use persist_fs::FsBackend;

#[persist(nested)]
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transition {
    pub state: [f32; 8],
    pub action: u8,
    pub reward: f32,
    pub next_state: [f32; 8],
    pub done: bool,
}

#[persist(name = "replay", version = 1)]
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Replay {
    pub transitions: Vec<Transition>,
    pub cursor: u64,
}

fn replay(bytes: usize) -> Replay {
    let n = bytes / size_of::<Transition>();
    let transitions = (0..n)
        .map(|i| {
            let x = i as f32;
            Transition {
                state: [
                    x,
                    x + 1.0,
                    x + 2.0,
                    x + 3.0,
                    x + 4.0,
                    x + 5.0,
                    x + 6.0,
                    x + 7.0,
                ],
                action: (i % 5) as u8,
                reward: (i % 17) as f32 - 8.0,
                next_state: [x + 8.0; 8],
                done: i % 1000 == 999,
            }
        })
        .collect();
    Replay {
        transitions,
        cursor: n as u64,
    }
}

// ---- a Q-table through three versions ------------------------------------------------------

#[persist(name = "qtable", version = 1)]
pub struct QTableV1 {
    pub rows: Vec<(u64, [f32; 4])>,
}

#[persist(nested)]
pub struct QRowV2 {
    pub state: u64,
    pub q: [f64; 4],
}

#[persist(name = "qtable", version = 2, from = QTableV1)]
pub struct QTableV2 {
    pub rows: Vec<QRowV2>,
}

impl From<QTableV1> for QTableV2 {
    fn from(old: QTableV1) -> Self {
        let rows = old
            .rows
            .into_iter()
            .map(|(state, q)| QRowV2 {
                state,
                q: q.map(f64::from),
            })
            .collect();
        QTableV2 { rows }
    }
}

#[persist(nested)]
pub struct QRow {
    pub q: [f64; 4],
    pub visits: u32,
}

#[persist(name = "qtable", version = 3, from = QTableV2)]
pub struct QTable {
    pub rows: HashMap<u64, QRow>,
}

impl From<QTableV2> for QTable {
    fn from(old: QTableV2) -> Self {
        let rows = old
            .rows
            .into_iter()
            .map(|r| (r.state, QRow { q: r.q, visits: 0 }))
            .collect();
        QTable { rows }
    }
}

fn store(dir: &std::path::Path) -> Store {
    let ring = Keyring::new(Key::from_bytes(vec![3; 32]).expect("key"));
    let config = StoreConfig::default().with_space_reserve(0);
    Store::new(Box::new(FsBackend::open(dir).expect("open")), ring, config)
}

fn open_vs_bincode(c: &mut Criterion) {
    let mb: usize = std::env::var("REPLAY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let value = replay(mb << 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    store.save(&value).expect("save");
    let encoded = bincode::serialize(&value).expect("bincode");

    let mut g = c.benchmark_group("open");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(format!("replay_{mb}mb"), |b| {
        b.iter(|| {
            let view = store.open::<Replay>().expect("open");
            black_box(view.transitions[0].reward.to_native())
        })
    });
    // The part of `open` that is not the HMAC: validation of the payload in place.
    let payload = persist_core::Persist::encode(&value).expect("encode");
    g.bench_function(format!("validate_only_replay_{mb}mb"), |b| {
        b.iter(|| {
            let archived =
                persist_core::codec::access::<Replay>(black_box(&payload)).expect("valid");
            black_box(archived.transitions[0].reward.to_native())
        })
    });
    g.bench_function(format!("bincode_replay_{mb}mb"), |b| {
        b.iter(|| {
            let value: Replay = bincode::deserialize(black_box(&encoded)).expect("deserialize");
            black_box(value.transitions[0].reward)
        })
    });
    g.bench_function(format!("load_replay_{mb}mb"), |b| {
        b.iter(|| {
            let loaded = store.load::<Replay>().expect("load");
            black_box(loaded.value.transitions[0].reward)
        })
    });
    g.finish();
    drop(value);
}

fn migrate_qtable(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let v1 = QTableV1 {
        rows: (0..10_000u64)
            .map(|s| {
                (
                    s.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    [0.1, 0.2, 0.3, s as f32],
                )
            })
            .collect(),
    };
    store.save(&v1).expect("save v1");
    let mut g = c.benchmark_group("migrate");
    g.bench_function("qtable_10k_v1_to_v3", |b| {
        b.iter(|| {
            let loaded = store.load::<QTable>().expect("load");
            assert_eq!(loaded.report.migrations.len(), 2);
            black_box(loaded.value.rows.len())
        })
    });
    g.finish();
}

criterion_group!(benches, open_vs_bincode, migrate_qtable);
criterion_main!(benches);
