//! Snapshot sets (issue 10) beside the saves and loads they are made of, in one criterion run:
//! the nine `persist-schemas` states at the specification's sizes (those of `persist demo
//! --schemas`: 10,000 Q-table states per agent, a 10,000-experience replay buffer, a
//! 64-128-64-1 risk network, …).
//!
//! - `snapshot_commit_9`: a snapshot where all nine changed, against saving the nine one by one
//!   plus one 4 KB save (the manifest's floor). Target ≤ 1.1×; spec: full save < 500 ms.
//! - `snapshot_restore_9`: `load_snapshot` against the nine `load`s. Target ≤ 1.1×; spec:
//!   `OnInit` < 5 s.
//! - `snapshot_position_only`: a snapshot where only the position changed (one member written,
//!   eight referenced, the manifest) against one 4 KB save. Target ≤ 2×.
//!
//! Each comparison is also measured *paired* before criterion runs (both sides back to back,
//! median of the per-round ratios, printed to stderr), which cancels fsync-latency drift between
//! criterion's measuring windows on a shared disk. `snapshot_parts` measures what a commit does
//! for every member, changed or not: serialising it and hashing its payload.
//!
//! `cargo bench -p persist-bench --bench snapshot`; figures in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use persist_bench::agent::EntryAgentState as FourKb;
use persist_bench::open_store;
use persist_core::{Encoded, Persist, SnapshotSpec, Store, StoreConfig};
use persist_schemas::{
    EntryAgentState, ExitAgentState, LearningMetricsState, MdpEsState, PortfolioRiskState,
    PositionState, ReplayBufferState, RiskAdversaryState, ShadowAgentsState,
};
use sha2::{Digest, Sha256};

/// Stores live under the target directory, on the filesystem being measured.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch directory")
}

/// The nine states of the specification, generated from `seed`.
struct Nine {
    entry: EntryAgentState,
    exit: ExitAgentState,
    replay: ReplayBufferState,
    risk: RiskAdversaryState,
    metrics: LearningMetricsState,
    portfolio: PortfolioRiskState,
    shadows: ShadowAgentsState,
    position: PositionState,
    mdp_es: MdpEsState,
}

impl Nine {
    /// At the sizes of `persist demo --schemas` (persist-cli `demo/schemas.rs`).
    fn generate(seed: u64) -> Self {
        Nine {
            entry: EntryAgentState::generate(10_000, seed),
            exit: ExitAgentState::generate(10_000, seed),
            replay: ReplayBufferState::generate(10_000, seed),
            risk: RiskAdversaryState::generate_network(&[64, 128, 64, 1], 10_000, seed),
            metrics: LearningMetricsState::generate(1_000, seed),
            portfolio: PortfolioRiskState::generate(20, 1_000, seed),
            shadows: ShadowAgentsState::generate(5, 2_000, seed),
            position: PositionState::generate(seed),
            mdp_es: MdpEsState::generate(1_000, 50, 100, 1_000, seed),
        }
    }

    /// The set, with the dependencies of the agent system (the exit agent and the shadows after
    /// the entry agent, the portfolio risk after the risk adversary and the position).
    fn spec() -> SnapshotSpec {
        SnapshotSpec::builder("agent_system")
            .member::<EntryAgentState>()
            .member_after::<ExitAgentState>(&["entry_agent"])
            .member::<ReplayBufferState>()
            .member::<RiskAdversaryState>()
            .member::<LearningMetricsState>()
            .member::<PositionState>()
            .member_after::<PortfolioRiskState>(&["risk_adversary", "position"])
            .member_after::<ShadowAgentsState>(&["entry_agent"])
            .member::<MdpEsState>()
            .build()
            .expect("valid set")
    }

    /// Commits the nine (with `position` for the position); returns the members written anew.
    fn commit(&self, store: &Store, spec: &SnapshotSpec, position: &PositionState) -> usize {
        let receipt = store
            .snapshot(spec)
            .add(&self.entry)
            .and_then(|w| w.add(&self.exit))
            .and_then(|w| w.add(&self.replay))
            .and_then(|w| w.add(&self.risk))
            .and_then(|w| w.add(&self.metrics))
            .and_then(|w| w.add(&self.portfolio))
            .and_then(|w| w.add(&self.shadows))
            .and_then(|w| w.add(position))
            .and_then(|w| w.add(&self.mdp_es))
            .and_then(|w| w.commit())
            .expect("commit");
        receipt.written().count()
    }

    /// Only the position added; the eight others listed unchanged with `reuse` (the program
    /// knows they did not change), so they are neither serialised nor hashed.
    fn commit_reusing(store: &Store, spec: &SnapshotSpec, position: &PositionState) -> usize {
        let mut writer = store.snapshot(spec);
        writer
            .reuse::<EntryAgentState>()
            .and_then(|w| w.reuse::<ExitAgentState>())
            .and_then(|w| w.reuse::<ReplayBufferState>())
            .and_then(|w| w.reuse::<RiskAdversaryState>())
            .and_then(|w| w.reuse::<LearningMetricsState>())
            .and_then(|w| w.reuse::<PortfolioRiskState>())
            .and_then(|w| w.reuse::<ShadowAgentsState>())
            .and_then(|w| w.add(position))
            .and_then(|w| w.reuse::<MdpEsState>())
            .expect("members");
        writer.commit().expect("commit").written().count()
    }

    fn save_each(&self, store: &Store) {
        store.save(&self.entry).expect("save");
        store.save(&self.exit).expect("save");
        store.save(&self.replay).expect("save");
        store.save(&self.risk).expect("save");
        store.save(&self.metrics).expect("save");
        store.save(&self.portfolio).expect("save");
        store.save(&self.shadows).expect("save");
        store.save(&self.position).expect("save");
        store.save(&self.mdp_es).expect("save");
    }

    /// Serialises the nine as a snapshot commit does (`Encoded::new` each).
    fn encode_each(&self) -> Vec<Encoded> {
        vec![
            Encoded::new(&self.entry).expect("encode"),
            Encoded::new(&self.exit).expect("encode"),
            Encoded::new(&self.replay).expect("encode"),
            Encoded::new(&self.risk).expect("encode"),
            Encoded::new(&self.metrics).expect("encode"),
            Encoded::new(&self.portfolio).expect("encode"),
            Encoded::new(&self.shadows).expect("encode"),
            Encoded::new(&self.position).expect("encode"),
            Encoded::new(&self.mdp_es).expect("encode"),
        ]
    }

    /// The nine payloads (`Persist::encode`).
    fn payloads(&self) -> Vec<Vec<u8>> {
        vec![
            self.entry.encode().expect("encode").to_vec(),
            self.exit.encode().expect("encode").to_vec(),
            self.replay.encode().expect("encode").to_vec(),
            self.risk.encode().expect("encode").to_vec(),
            self.metrics.encode().expect("encode").to_vec(),
            self.portfolio.encode().expect("encode").to_vec(),
            self.shadows.encode().expect("encode").to_vec(),
            self.position.encode().expect("encode").to_vec(),
            self.mdp_es.encode().expect("encode").to_vec(),
        ]
    }

    fn load_each(store: &Store) -> usize {
        fn one<T: Persist>(store: &Store) -> usize {
            drop(black_box(store.load::<T>().expect("load")));
            1
        }
        one::<EntryAgentState>(store)
            + one::<ExitAgentState>(store)
            + one::<ReplayBufferState>(store)
            + one::<RiskAdversaryState>(store)
            + one::<LearningMetricsState>(store)
            + one::<PortfolioRiskState>(store)
            + one::<ShadowAgentsState>(store)
            + one::<PositionState>(store)
            + one::<MdpEsState>(store)
    }
}

/// Times `measured` over `iters` iterations and runs `other`, untimed, before each one (as in
/// `benches/store.rs`: both sides see the same disk).
fn interleaved(iters: u64, mut other: impl FnMut(), mut measured: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        other();
        let start = Instant::now();
        measured();
        total += start.elapsed();
    }
    total
}

/// Runs `store_side` and `floor_side` alternately `rounds` times and prints the median of each
/// and the median of the per-round ratios. On a machine whose disk is shared with other work,
/// criterion's groups measure each side over its own seconds, so drift in fsync latency between
/// them shows as a ratio; pairs taken a few milliseconds apart cancel it.
fn paired(group: &str, rounds: usize, mut store_side: impl FnMut(), mut floor_side: impl FnMut()) {
    let (mut store, mut floor, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        store_side();
        let s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        floor_side();
        let f = start.elapsed().as_secs_f64();
        store.push(s);
        floor.push(f);
        ratios.push(s / f);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!(
        "paired {group}: {rounds} rounds, store side median {:.2} ms, floor side median {:.2} ms, \
         median ratio {:.2}×",
        median(&mut store) * 1e3,
        median(&mut floor) * 1e3,
        median(&mut ratios)
    );
}

fn snapshots(c: &mut Criterion) {
    let dir = scratch();
    let spec = Nine::spec();
    let snap_store = open_store(&dir.path().join("snapshots"), StoreConfig::default()).unwrap();
    let each_store = open_store(&dir.path().join("each"), StoreConfig::default()).unwrap();
    let small_store = open_store(&dir.path().join("small"), StoreConfig::default()).unwrap();
    // Two versions of every state, alternated, so that every member changes at every commit.
    let sets = [Nine::generate(1), Nine::generate(2)];
    let turn = std::cell::Cell::new(0usize);
    assert_eq!(sets[0].commit(&snap_store, &spec, &sets[0].position), 9);
    sets[0].save_each(&each_store);
    let sizes: Vec<(&str, u64)> = spec
        .members()
        .map(|name| {
            let newest = snap_store.generations(name).expect("list").pop();
            (name, newest.expect("saved").size)
        })
        .collect();
    let total: u64 = sizes.iter().map(|(_, size)| size).sum();
    eprintln!("snapshot of the nine: {total} bytes of members: {sizes:?}");

    let mut group = c.benchmark_group("snapshot_commit_9");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    // Each commit writes the other version of the nine than the last one, so every member is
    // written anew; the saves alternate the same way.
    let commit_all = || {
        turn.set(turn.get() + 1);
        let nine = &sets[turn.get() % 2];
        assert_eq!(
            black_box(nine.commit(&snap_store, &spec, &nine.position)),
            9
        );
    };
    let small = std::cell::RefCell::new(FourKb::four_kb(0));
    let save_turn = std::cell::Cell::new(0usize);
    let save_all = || {
        save_turn.set(save_turn.get() + 1);
        sets[save_turn.get() % 2].save_each(&each_store);
        let mut small = small.borrow_mut();
        small.total_updates += 1;
        black_box(small_store.save(&*small).expect("save"));
    };
    paired("snapshot_commit_9", 30, commit_all, save_all);
    group.bench_function("snapshot_commit", |b| {
        b.iter_custom(|iters| interleaved(iters, save_all, commit_all))
    });
    group.bench_function("nine_saves_plus_4kb_save", |b| {
        b.iter_custom(|iters| interleaved(iters, commit_all, save_all))
    });
    group.finish();

    paired(
        "snapshot_restore_9",
        30,
        || drop(black_box(snap_store.load_snapshot(&spec).expect("restore"))),
        || {
            black_box(Nine::load_each(&each_store));
        },
    );
    let mut group = c.benchmark_group("snapshot_restore_9");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("load_snapshot", |b| {
        b.iter_with_large_drop(|| snap_store.load_snapshot(&spec).expect("restore"))
    });
    group.bench_function("nine_loads", |b| b.iter(|| Nine::load_each(&each_store)));
    group.finish();

    // Only the position changes: one member written, eight referenced, and the manifest.
    let nine = &sets[0];
    let positions = [PositionState::generate(3), PositionState::generate(4)];
    nine.commit(&snap_store, &spec, &positions[0]);
    // One turn counter for both commit variants, so each commit's position differs from the
    // last one committed, whichever variant committed it.
    let turn = std::cell::Cell::new(0usize);
    let next_position = || {
        turn.set(turn.get() + 1);
        &positions[turn.get() % 2]
    };
    let mut commit_position = || {
        assert_eq!(
            black_box(nine.commit(&snap_store, &spec, next_position())),
            1
        );
    };
    let mut save_small = || {
        let mut small = small.borrow_mut();
        small.total_updates += 1;
        black_box(small_store.save(&*small).expect("save"));
    };
    paired(
        "snapshot_position_only",
        200,
        &mut commit_position,
        &mut save_small,
    );
    // The same, with the eight unchanged members declared so (`SnapshotWriter::reuse`).
    let mut commit_reusing = || {
        assert_eq!(
            black_box(Nine::commit_reusing(&snap_store, &spec, next_position())),
            1
        );
    };
    paired(
        "snapshot_position_only_reuse",
        200,
        &mut commit_reusing,
        &mut save_small,
    );
    let mut group = c.benchmark_group("snapshot_position_only");
    group.sample_size(30);
    group.bench_function("snapshot_commit", |b| {
        b.iter_custom(|iters| interleaved(iters, &mut save_small, &mut commit_position))
    });
    group.bench_function("snapshot_commit_reuse", |b| {
        b.iter_custom(|iters| interleaved(iters, &mut save_small, &mut commit_reusing))
    });
    group.bench_function("save_4kb", |b| {
        b.iter_custom(|iters| interleaved(iters, &mut commit_position, &mut save_small))
    });
    group.finish();
}

/// What a snapshot commit does for every member, changed or not, before it can tell that a
/// member is unchanged: serialise it, and hash its payload (SHA-256 of the 1 MiB chunks, as
/// `payload_digest` does; here one plain SHA-256 pass per payload on one core).
fn parts(c: &mut Criterion) {
    let nine = Nine::generate(1);
    let payloads = nine.payloads();
    let mut group = c.benchmark_group("snapshot_parts");
    group.sample_size(20);
    group.bench_function("encode_nine", |b| {
        b.iter_with_large_drop(|| nine.encode_each())
    });
    group.bench_function("xxh3_nine_payloads", |b| {
        b.iter(|| {
            payloads
                .iter()
                .map(|p| xxhash_rust::xxh3::xxh3_128(black_box(p)) as u8)
                .fold(0u8, |a, x| a ^ x)
        })
    });
    group.bench_function("sha256_nine_payloads", |b| {
        b.iter(|| {
            payloads
                .iter()
                .map(|p| Sha256::digest(black_box(p))[0])
                .fold(0u8, |a, x| a ^ x)
        })
    });
    group.finish();
}

criterion_group!(benches, snapshots, parts);
criterion_main!(benches);
