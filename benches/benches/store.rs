//! The store beside its floors, on the same bytes, in one criterion run.
//!
//! `cargo bench -p persist-bench` (about four minutes on the 2-core development VM); `cargo run -p persist-bench --bin
//! bench-report` then prints the medians and ratios of docs/BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use persist_bench::agent::EntryAgentState;
use persist_bench::floor::{ProtocolFloor, hmac_sha256, tag_floor};
use persist_bench::replay::{LARGE_EXPERIENCES, ReplayBuffer, SPEC_EXPERIENCES};
use persist_bench::{BENCH_SECRET, bench_keyring, open_store};
use persist_core::format::{DOMAIN_V1, TAG_LEN};
use persist_core::{Persist, Store, StoreConfig};

/// Stores and floors live under the target directory, on the filesystem being measured.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch directory")
}

/// The envelope bytes of the newest generation of `T`, as the store wrote them.
fn newest_envelope<T: Persist>(store: &Store, root: &Path) -> Vec<u8> {
    let newest = store
        .generations(T::NAME)
        .expect("list")
        .pop()
        .expect("saved");
    std::fs::read(root.join(newest.key)).expect("read generation")
}

/// Times `measured` over `iters` iterations and runs `other`, untimed, before each one. Both
/// sides of a save comparison are measured this way, each after the other's write, so that they
/// see the same disk: otherwise whichever runs second inherits the first one's writeback and
/// the drift of fsync latency on a shared machine.
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

fn save_4kb(c: &mut Criterion) {
    let dir = scratch();
    let store = open_store(&dir.path().join("store"), StoreConfig::default()).expect("store");
    let mut state = EntryAgentState::four_kb(0);
    store.save(&state).expect("save");
    let bytes = newest_envelope::<EntryAgentState>(&store, &dir.path().join("store"));
    let mut floor = ProtocolFloor::new(&dir.path().join("floor"), 4).expect("floor");
    let mut save = || {
        state.total_updates += 1;
        black_box(store.save(&state).expect("save"));
    };

    let mut group = c.benchmark_group("save_4kb");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(50);
    group.bench_function("store_save", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || drop(floor.write(&bytes).expect("floor")),
                &mut save,
            )
        })
    });
    group.bench_function("protocol_floor", |b| {
        b.iter_custom(|iters| {
            interleaved(iters, &mut save, || {
                drop(floor.write(&bytes).expect("floor"))
            })
        })
    });
    group.finish();
}

fn large_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

fn large(c: &mut Criterion) {
    let dir = scratch();
    let root = dir.path().join("store");
    let buffer = ReplayBuffer::sample(LARGE_EXPERIENCES, 1);
    let store = open_store(&root, StoreConfig::default()).expect("store");
    store.save(&buffer).expect("save");
    let bytes = newest_envelope::<ReplayBuffer>(&store, &root);
    let serial = open_store(
        &dir.path().join("serial"),
        StoreConfig::default().with_parallel_sign_threshold(usize::MAX),
    )
    .expect("store");
    let mut floor = ProtocolFloor::new(&dir.path().join("floor"), 4).expect("floor");

    let mut group = large_group(c, "save_200mb");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    // Each side runs after the other's write (see `interleaved`); the serial-signing store is
    // measured after a floor write too.
    let floor_write = |floor: &mut ProtocolFloor| drop(floor.write(&bytes).expect("floor"));
    group.bench_function("store_save", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || floor_write(&mut floor),
                || drop(black_box(store.save(&buffer).expect("save"))),
            )
        })
    });
    group.bench_function("store_save_serial_sign", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || floor_write(&mut floor),
                || drop(black_box(serial.save(&buffer).expect("save"))),
            )
        })
    });
    group.bench_function("protocol_floor", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || drop(black_box(store.save(&buffer).expect("save"))),
                || floor_write(&mut floor),
            )
        })
    });
    group.bench_function("part_encode", |b| {
        b.iter_with_large_drop(|| buffer.encode().expect("encode"))
    });
    group.finish();
    drop(serial);
    drop(floor);

    let mut group = large_group(c, "load_200mb");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("store_load", |b| {
        b.iter_with_large_drop(|| store.load::<ReplayBuffer>().expect("load"))
    });
    group.bench_function("store_open", |b| {
        b.iter(|| {
            let view = store.open::<ReplayBuffer>().expect("open");
            view.experiences.len()
        })
    });
    let signed = &bytes[..bytes.len() - TAG_LEN];
    let ring = bench_keyring();
    group.bench_function("tag_floor", |b| {
        b.iter(|| tag_floor(ring.current(), black_box(signed)))
    });
    // For reference: the flat single-pass HMAC of format 1 and of the spec, on one core.
    group.bench_function("flat_hmac", |b| {
        b.iter(|| hmac_sha256(BENCH_SECRET, &[DOMAIN_V1, black_box(signed)]))
    });
    let key = store
        .generations(ReplayBuffer::NAME)
        .expect("list")
        .pop()
        .expect("saved")
        .key;
    group.bench_function("part_backend_get", |b| {
        b.iter_with_large_drop(|| store.backend().get(&key).expect("get"))
    });
    let payload = buffer.encode().expect("encode");
    group.bench_function("part_decode", |b| {
        b.iter_with_large_drop(|| ReplayBuffer::decode(1, &payload).expect("decode"))
    });
    group.finish();
}

fn spec_8_2(c: &mut Criterion) {
    let dir = scratch();
    let store = open_store(&dir.path().join("store"), StoreConfig::default()).expect("store");
    let mut state = EntryAgentState::four_kb(0);
    let buffer = ReplayBuffer::sample(SPEC_EXPERIENCES, 2);

    let mut group = c.benchmark_group("spec_8_2");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1));
    // One iteration is 1000 consecutive saves; the time reported is their average.
    group.bench_function("avg_of_1000_saves_4kb", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for i in 0..1000 {
                    state.total_updates = i;
                    black_box(store.save(&state).expect("save"));
                }
            }
            start.elapsed() / 1000
        })
    });
    group.bench_function("replay_10k_save", |b| {
        b.iter(|| black_box(store.save(&buffer).expect("save")))
    });
    group.bench_function("replay_10k_load", |b| {
        b.iter_with_large_drop(|| store.load::<ReplayBuffer>().expect("load"))
    });
    group.finish();
}

criterion_group!(benches, save_4kb, large, spec_8_2);
criterion_main!(benches);
