//! Incremental generations of the 200 MB replay buffer, beside full saves and their floors, in
//! one criterion run: `cargo bench -p persist-bench --bench delta`.
//!
//! For each workload of [`Workload`] (ring buffer, append, random records):
//!
//! - `delta_save_<w>`: a delta save after one 1% step (`store_delta_save`) beside a whole save
//!   of the same state by a store without deltas (`store_full_save`), and the floor of a delta
//!   save: the encode into a reused buffer (`floor_encode_reused`), the SHA-256 of the changed
//!   records (`floor_hash_changed`) and the durable write of as many bytes as the delta
//!   (`floor_write_delta`);
//! - `load_chain_<w>` (ring and append): a load of a full generation plus 10 deltas beside a
//!   load of one whole generation of the same state, and the same for zero-copy `open`.
//!
//! Bytes are not time: the bytes written per delta, the bytes a replicator uploads for 10 delta
//! saves against 10 whole saves, and the chunk-size comparison behind the default chunking are
//! printed and written to `target/criterion/delta-bytes.txt`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use persist_bench::floor::ProtocolFloor;
use persist_bench::replay::{LARGE_EXPERIENCES, ReplayBuffer, XorShift};
use persist_bench::workload::Workload;
use persist_bench::{bench_keyring, open_store};
use persist_core::{ChunkSizes, DeltaPolicy, MemoryBackend, Persist, Store, StoreConfig};
use sha2::{Digest, Sha256};

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch directory")
}

/// Where the byte counts go, beside criterion's estimates.
fn bytes_report() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("criterion")
        .join("delta-bytes.txt")
}

fn record(line: &str) {
    println!("{line}");
    let path = bytes_report();
    let _ = std::fs::create_dir_all(path.parent().expect("dir"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = writeln!(text, "{line}");
    let _ = std::fs::write(&path, text);
}

/// Chains never close during a measurement: the save measured is always a delta.
fn long_chains() -> DeltaPolicy {
    DeltaPolicy::default()
        .with_max_chain(64)
        .with_max_chain_percent(10_000)
}

fn config() -> StoreConfig {
    StoreConfig::default().with_space_reserve(0).with_retain(2)
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group
}

/// The state of one workload as the benches drive it: steps applied, a reset when an appending
/// buffer has grown by a fifth (so both sides keep measuring a 200 MB state).
struct Driver {
    workload: Workload,
    base: ReplayBuffer,
    state: ReplayBuffer,
    rng: XorShift,
}

impl Driver {
    fn new(workload: Workload, base: &ReplayBuffer) -> Self {
        Driver {
            workload,
            base: base.clone(),
            state: base.clone(),
            rng: XorShift::new(99),
        }
    }

    /// One step; true when the state was reset to the base first (the next save is no 1% step).
    fn step(&mut self) -> bool {
        let reset = self.state.experiences.len() > self.base.experiences.len() * 6 / 5;
        if reset {
            self.state = self.base.clone();
        }
        self.workload.step(&mut self.state, &mut self.rng);
        reset
    }
}

fn saves(c: &mut Criterion) {
    let base = ReplayBuffer::sample(LARGE_EXPERIENCES, 1);
    for workload in Workload::ALL {
        let dir = scratch();
        let deltas = open_store(
            &dir.path().join("deltas"),
            config().with_deltas(long_chains()),
        )
        .expect("store");
        let whole = open_store(&dir.path().join("whole"), config()).expect("store");
        let mut floor = ProtocolFloor::new(&dir.path().join("floor"), 2).expect("floor");
        let mut driver = Driver::new(workload, &base);
        deltas.save(&driver.state).expect("save");
        let payload_len = driver.state.encode().expect("encode").len() as u64;
        let mut delta_bytes: Vec<u64> = Vec::new();
        let mut since_full = 0;
        let mut fulls = 0usize;

        let mut group = group(c, &format!("delta_save_{}", workload.name()));
        group.bench_function("store_delta_save", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if driver.step() || since_full >= 60 {
                        deltas.save_full(&driver.state).expect("save");
                        since_full = 0;
                        driver.step();
                    }
                    let start = Instant::now();
                    let receipt = deltas.save(&driver.state).expect("save");
                    total += start.elapsed();
                    since_full += 1;
                    // The random workload changes every chunk: the store writes it full.
                    fulls += usize::from(receipt.base.is_none());
                    delta_bytes.push(receipt.bytes);
                }
                total
            })
        });
        group.bench_function("store_full_save", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    driver.step();
                    let start = Instant::now();
                    black_box(whole.save(&driver.state).expect("save"));
                    total += start.elapsed();
                }
                total
            })
        });
        let mut buffer = driver.state.encode().expect("encode");
        group.bench_function("floor_encode_reused", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    buffer = driver
                        .state
                        .encode_into(std::mem::take(&mut buffer))
                        .expect("encode");
                    total += start.elapsed();
                }
                total
            })
        });
        // The changed records: 1% of 96-byte experiences and 8-byte priorities.
        let changed = vec![7u8; LARGE_EXPERIENCES / 100 * (96 + 8)];
        group.bench_function("floor_hash_changed", |b| {
            b.iter(|| Sha256::digest(black_box(&changed)))
        });
        if delta_bytes.is_empty() {
            // Filtered out (`cargo bench ... -- <filter>`).
            group.finish();
            continue;
        }
        delta_bytes.sort_unstable();
        let median = delta_bytes[delta_bytes.len() / 2];
        let delta_sized = vec![3u8; median as usize];
        group.bench_function("floor_write_delta", |b| {
            b.iter(|| drop(floor.write(&delta_sized).expect("floor")))
        });
        group.finish();
        record(&format!(
            "delta bytes, {}: median {} of a {} payload ({:.2}%), min {}, max {}, {} saves \
             ({fulls} written full)",
            workload.name(),
            median,
            payload_len,
            median as f64 * 100.0 / payload_len as f64,
            delta_bytes[0],
            delta_bytes[delta_bytes.len() - 1],
            delta_bytes.len()
        ));
    }
}

fn loads(c: &mut Criterion) {
    let base = ReplayBuffer::sample(LARGE_EXPERIENCES, 1);
    for workload in [Workload::Ring, Workload::Append] {
        let dir = scratch();
        let chain_dir = dir.path().join("chain");
        let whole_dir = dir.path().join("whole");
        let mut driver = Driver::new(workload, &base);
        {
            let writer = open_store(
                &chain_dir,
                StoreConfig::default()
                    .with_space_reserve(0)
                    .with_deltas(DeltaPolicy::default()),
            )
            .expect("store");
            writer.save(&driver.state).expect("save");
            for _ in 0..10 {
                driver.step();
                assert!(writer.save(&driver.state).expect("save").base.is_some());
            }
            let whole = open_store(&whole_dir, config()).expect("store");
            whole.save(&driver.state).expect("save");
        }
        // Readers without a delta policy: the cost of reading, not of keeping a base.
        let chain = open_store(&chain_dir, config()).expect("store");
        let whole = open_store(&whole_dir, config()).expect("store");
        let loaded = chain.load::<ReplayBuffer>().expect("load");
        assert_eq!(loaded.value, driver.state);
        assert_eq!(loaded.report.base, Some(10));

        let mut group = group(c, &format!("load_chain_{}", workload.name()));
        group.bench_function("store_load_full_plus_10_deltas", |b| {
            b.iter_with_large_drop(|| chain.load::<ReplayBuffer>().expect("load"))
        });
        group.bench_function("store_load_one_whole", |b| {
            b.iter_with_large_drop(|| whole.load::<ReplayBuffer>().expect("load"))
        });
        group.bench_function("store_open_full_plus_10_deltas", |b| {
            b.iter_with_large_drop(|| chain.open::<ReplayBuffer>().expect("open"))
        });
        group.bench_function("store_open_one_whole", |b| {
            b.iter_with_large_drop(|| whole.open::<ReplayBuffer>().expect("open"))
        });
        group.finish();
    }
}

/// Whether the byte counts (which take minutes and no criterion filter selects) are skipped:
/// `DELTA_BENCH_TIMES_ONLY=1`.
fn times_only() -> bool {
    std::env::var_os("DELTA_BENCH_TIMES_ONLY").is_some()
}

/// Bytes a replicator uploads for 10 saves, each after a 1% step, with and without deltas.
fn replication(_: &mut Criterion) {
    if times_only() {
        return;
    }
    let base = ReplayBuffer::sample(LARGE_EXPERIENCES, 1);
    for workload in Workload::ALL {
        let mut line = format!("replicator bytes for 10 saves, {}:", workload.name());
        for (label, policy) in [("deltas", Some(DeltaPolicy::default())), ("whole", None)] {
            let dir = scratch();
            let mut cfg = config();
            if let Some(policy) = policy {
                cfg = cfg.with_deltas(policy);
            }
            let store = open_store(&dir.path().join("local"), cfg).expect("store");
            let off_site = persist_fs::FsBackend::open(dir.path().join("off-site")).expect("fs");
            let mut driver = Driver::new(workload, &base);
            store.save(&driver.state).expect("save");
            persist_s3::replicate_once(store.backend(), &off_site, |_, _, _| {}).expect("push");
            let mut uploaded = 0;
            for _ in 0..10 {
                driver.step();
                store.save(&driver.state).expect("save");
                uploaded += persist_s3::replicate_once(store.backend(), &off_site, |_, _, _| {})
                    .expect("push")
                    .bytes;
            }
            let _ = write!(line, " {label} {uploaded}");
        }
        record(&line);
    }
}

/// The chunking choice: bytes per delta and save time (memory backend: no disk) for chunk sizes
/// around 4 KiB to 1 MiB, and fixed 1 MiB chunks (format 2's tag chunking).
fn chunking(_: &mut Criterion) {
    if times_only() {
        return;
    }
    let base = ReplayBuffer::sample(LARGE_EXPERIENCES, 1);
    let fixed = ChunkSizes {
        min: 1 << 20,
        avg: 1 << 20,
        max: 1 << 20,
    };
    let sizes = [
        ("cdc 4 KiB", ChunkSizes::around(4 << 10)),
        ("cdc 16 KiB", ChunkSizes::around(16 << 10)),
        ("cdc 64 KiB", ChunkSizes::around(64 << 10)),
        ("cdc 256 KiB", ChunkSizes::around(256 << 10)),
        ("cdc 1 MiB", ChunkSizes::around(1 << 20)),
        ("fixed 1 MiB", fixed),
    ];
    for workload in Workload::ALL {
        for (label, sizes) in sizes {
            let policy = long_chains().with_chunk_sizes(sizes);
            let store = Store::new(
                Box::new(MemoryBackend::new()),
                bench_keyring(),
                config().with_deltas(policy),
            );
            let mut driver = Driver::new(workload, &base);
            store.save(&driver.state).expect("save");
            let (mut bytes, mut time) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                driver.step();
                let start = Instant::now();
                let receipt = store.save(&driver.state).expect("save");
                time.push(start.elapsed());
                bytes.push(receipt.bytes);
            }
            bytes.sort_unstable();
            time.sort_unstable();
            record(&format!(
                "chunking, {}, {label}: median delta {} bytes, median save {:.1} ms (memory)",
                workload.name(),
                bytes[2],
                time[2].as_secs_f64() * 1e3
            ));
        }
    }
}

criterion_group!(benches, chunking, replication, saves, loads);
criterion_main!(benches);
