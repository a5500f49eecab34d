//! Off-site benchmarks against a real S3-compatible server (the variables of
//! `ci/s3-server.sh`; skipped with a `SKIPPED s3:` line without them). Each comparison is one
//! criterion group whose two sides alternate: every sample of one side is taken right after an
//! untimed run of the other (see [`alternate`]), so drift in the machine's load and in the
//! server's state (moto is CPU-bound and shares the 2 cores) falls on both sides alike.
//!
//! - `upload_200mb/replicator`: a 200 MB generation in a local store, from `Replicator::start`
//!   until it reports the generation uploaded (the local file memory-mapped, 8 MiB parts, 4 in
//!   flight, create-only completion);
//! - `upload_200mb/raw_multipart`: the same bytes with `object_store`'s own `WriteMultipart`
//!   (8 MiB parts, at most 4 in flight, overwrite mode) to the same server through the same
//!   client settings. Both sides at normal CPU priority: this compares the replicator's code
//!   path with the raw API, not scheduling;
//! - `save_1mb/{without,with}_replicator`: `Store::save` of a 1 MB state, alone and with a
//!   replicator (idle priority, as deployed) started for the sample and notified after
//!   every save, uploading each generation to the server.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use object_store::{ObjectStoreExt, WriteMultipart};
use persist_core::{Backend, Key, Keyring, Store, StoreConfig, persist};
use persist_fs::FsBackend;
use persist_s3::{
    DEFAULT_PART_SIZE, Replicator, ReplicatorConfig, S3Backend, S3BackendBuilder, ThreadPriority,
};

#[persist(name = "blob", version = 1)]
struct Blob {
    data: Vec<u8>,
}

fn blob(len: usize) -> Blob {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    Blob {
        data: (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect(),
    }
}

fn keyring() -> Keyring {
    Keyring::new(
        Key::from_bytes(b"persist s3 bench key: 32+ bytes, not for production".to_vec()).unwrap(),
    )
}

struct Server {
    endpoint: String,
    key_id: String,
    secret: String,
    region: String,
}

fn server() -> Option<Server> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("PERSIST_S3_ENDPOINT"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(endpoint), Some(key_id), Some(secret)) => Some(Server {
            endpoint,
            key_id,
            secret,
            region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        }),
        _ => {
            println!("SKIPPED s3: offsite benchmarks: PERSIST_S3_ENDPOINT and credentials unset");
            None
        }
    }
}

impl Server {
    /// A backend on the bench bucket whose threads run at `priority`.
    fn backend(&self, bucket: &str, prefix: &str, priority: ThreadPriority) -> S3Backend {
        S3BackendBuilder::new()
            .thread_priority(priority)
            .endpoint(&self.endpoint)
            .region(&self.region)
            .credentials(&self.key_id, &self.secret)
            .allow_http(true)
            .bucket(bucket)
            .prefix(prefix)
            .build()
            .unwrap()
    }
}

/// Times `measured` after an untimed run of `other`: every sample of either side of a
/// comparison follows the other side, so neither inherits a quieter or busier machine.
fn alternate(
    mut other: impl FnMut() -> Duration,
    mut measured: impl FnMut() -> Duration,
) -> Duration {
    let _untimed = other();
    measured()
}

fn benches(c: &mut Criterion) {
    let Some(server) = server() else { return };
    let bucket = format!("bench-{}", std::process::id());
    persist_s3::testing::create_bucket(
        &server.endpoint,
        &server.region,
        &server.key_id,
        &server.secret,
        &bucket,
    )
    .unwrap();
    println!("s3 server: {}", server_priority());
    upload(c, &server, &bucket);
    save(c, &server, &bucket);
}

/// The server's CPU priority, when it runs on this machine (`PERSIST_S3_SERVER_PID`): the
/// save comparison depends on it (see docs/BENCHMARKS.md).
fn server_priority() -> String {
    let Ok(pid) = std::env::var("PERSIST_S3_SERVER_PID") else {
        return "not a local process (PERSIST_S3_SERVER_PID unset)".into();
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return format!("pid {pid} not readable in /proc");
    };
    // Fields after the command name: state is field 3, nice 19, policy 41.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let (nice, policy) = (fields.get(16), fields.get(38));
    let policy = match policy.copied() {
        Some("0") => "SCHED_OTHER",
        Some("3") => "SCHED_BATCH",
        Some("5") => "SCHED_IDLE",
        Some(other) => other,
        None => "?",
    };
    format!("pid {pid}, nice {}, {policy}", nice.copied().unwrap_or("?"))
}

/// A local store holding one ~200 MB generation, uploaded by a replicator and by the raw API.
fn upload(c: &mut Criterion, server: &Server, bucket: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    store.save(&blob(200_000_000)).unwrap();
    let key = store.generations("blob").unwrap()[0].key.clone();
    let bytes = store.backend().get(&key).unwrap().to_vec();
    drop(store);
    let round = Cell::new(0u64);
    let next = || {
        round.set(round.get() + 1);
        round.get()
    };
    let via_replicator = || {
        let remote =
            Arc::new(server.backend(bucket, &format!("r{}", next()), ThreadPriority::Normal));
        let start = Instant::now();
        let replicator = Replicator::start(
            Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
            remote.clone(),
            ReplicatorConfig {
                poll_interval: Duration::from_millis(5),
                priority: ThreadPriority::Normal,
                ..ReplicatorConfig::default()
            },
        );
        while replicator.status().uploaded_generations < 1 {
            let status = replicator.status();
            assert!(status.last_error.is_none(), "{status:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = start.elapsed();
        replicator.stop();
        remote.delete(&key).unwrap();
        took
    };
    let raw = server
        .backend(bucket, "", ThreadPriority::Normal)
        .object_store();
    let raw_multipart = || {
        let path = object_store::path::Path::from(format!("raw{}/{key}", next()));
        let start = Instant::now();
        rt.block_on(async {
            let upload = raw.put_multipart(&path).await.unwrap();
            let mut w = WriteMultipart::new_with_chunk_size(upload, DEFAULT_PART_SIZE);
            for chunk in bytes.chunks(DEFAULT_PART_SIZE) {
                w.wait_for_capacity(4).await.unwrap();
                w.write(chunk);
            }
            w.finish().await.unwrap();
        });
        let took = start.elapsed();
        rt.block_on(raw.delete(&path)).unwrap();
        took
    };

    let mut group = c.benchmark_group("upload_200mb");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("replicator", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| alternate(raw_multipart, via_replicator))
                .sum()
        })
    });
    group.bench_function("raw_multipart", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| alternate(via_replicator, raw_multipart))
                .sum()
        })
    });
    group.finish();
}

/// Latencies collected by one side of a comparison.
type Times = RefCell<Vec<Duration>>;

/// Save latency of a 1 MB state with and without a replicator uploading every generation.
fn save(c: &mut Criterion, server: &Server, bucket: &str) {
    let value = blob(1_000_000);
    let local = tempfile::tempdir().unwrap();
    let store = local_store(local.path());
    let off_site = Arc::new(server.backend(bucket, "saves", ThreadPriority::Idle));
    // Every timed save of each side, for per-save medians besides criterion's per-sample ones.
    let (alone, beside) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
    let saves = |iters: u64, replicator: Option<&Replicator>, record: Option<&Times>| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            store.save(&value).unwrap();
            if let Some(r) = replicator {
                r.notify();
            }
            let took = start.elapsed();
            total += took;
            if let Some(record) = record {
                record.borrow_mut().push(took);
            }
        }
        total
    };
    let uploaded = Cell::new(0u64);
    // A replicator started for `iters` saves; after it stops, the server is emptied again
    // (untimed) so its memory does not grow over the run.
    let with_replicator = |iters: u64, record: Option<&Times>| {
        let replicator = Replicator::start(
            Box::new(FsBackend::open_read_only(local.path()).unwrap()),
            off_site.clone(),
            ReplicatorConfig::default(),
        );
        let took = saves(iters, Some(&replicator), record);
        uploaded.set(uploaded.get() + replicator.status().uploaded_generations);
        replicator.stop();
        for meta in off_site.list("").unwrap() {
            off_site.delete(&meta.key).unwrap();
        }
        took
    };

    let mut group = c.benchmark_group("save_1mb");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("without_replicator", |b| {
        b.iter_custom(|iters| {
            alternate(
                || with_replicator(iters, None),
                || saves(iters, None, Some(&alone)),
            )
        })
    });
    group.bench_function("with_replicator", |b| {
        b.iter_custom(|iters| {
            alternate(
                || saves(iters, None, None),
                || with_replicator(iters, Some(&beside)),
            )
        })
    });
    group.finish();
    println!(
        "save_1mb: the replicators uploaded {} generations while running",
        uploaded.get()
    );
    let (alone, beside) = (alone.into_inner(), beside.into_inner());
    let (a, b) = (percentiles(alone), percentiles(beside));
    println!("save_1mb per save (all timed saves, warm-up included):");
    println!("  without_replicator: {a}");
    println!("  with_replicator:    {b}");
}

/// `n`, median and 90th percentile of some latencies, in ms.
fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    format!(
        "n {}, median {:.3} ms, p90 {:.3} ms",
        v.len(),
        at(0.5),
        at(0.9)
    )
}

fn local_store(dir: &std::path::Path) -> Store {
    Store::new(
        Box::new(FsBackend::open(dir).unwrap()),
        keyring(),
        StoreConfig::default().with_space_reserve(0),
    )
}

criterion_group!(offsite, benches);
criterion_main!(offsite);
