//! Off-site benchmarks against a real S3-compatible server (the variables of
//! `ci/s3-server.sh`; skipped with a `SKIPPED s3:` line without them):
//!
//! - `upload_200mb/replicator`: a 200 MB generation saved locally, from `Replicator::start`
//!   until it reports the generation uploaded (multipart to a staging key, create-only copy);
//! - `upload_200mb/raw_multipart`: the same bytes with `object_store`'s own `WriteMultipart`
//!   (8 MiB parts, overwrite mode) to the same server;
//! - `save_1mb/{without,with}_replicator`: local save latency of a 1 MB state, alone and with
//!   a replicator notified after every save.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use object_store::{ObjectStoreExt, WriteMultipart};
use persist_core::rkyv::util::AlignedVec;
use persist_core::{
    Backend, CodecError, Decoded, Fingerprint, Key, Keyring, Persist, Store, StoreConfig, codec,
    rkyv,
};
use persist_fs::FsBackend;
use persist_s3::{Replicator, ReplicatorConfig, S3Backend, S3BackendBuilder, SharedBackend};

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = persist_core::rkyv)]
struct Blob {
    data: Vec<u8>,
}

impl Persist for Blob {
    const NAME: &'static str = "blob";
    const VERSION: u32 = 1;
    fn fingerprint() -> Fingerprint {
        Fingerprint::of_descriptor("Blob{data:Vec<u8>}")
    }
    fn encode(&self) -> Result<AlignedVec, CodecError> {
        codec::encode(self)
    }
    fn decode(version: u32, payload: &[u8]) -> Result<Decoded<Self>, CodecError> {
        codec::decode_current::<Self>(version, payload)
    }
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
    fn backend(&self, bucket: &str, prefix: &str) -> S3Backend {
        S3BackendBuilder::new()
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // One local store holding one ~200 MB generation.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(
        Box::new(FsBackend::open(dir.path()).unwrap()),
        keyring(),
        StoreConfig {
            space_reserve: 0,
            ..StoreConfig::default()
        },
    );
    store.save(&blob(200_000_000)).unwrap();
    let key = store.generations("blob").unwrap()[0].key.clone();
    let bytes = store.backend().get(&key).unwrap().to_vec();
    let mut group = c.benchmark_group("upload_200mb");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60));
    group.throughput(criterion::Throughput::Bytes(bytes.len() as u64));
    let mut round = 0u64;
    group.bench_function("replicator", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let remote = SharedBackend::new(server.backend(&bucket, &format!("r{round}")));
                let start = Instant::now();
                let replicator = Replicator::start(
                    Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
                    Arc::new(remote.clone()),
                    ReplicatorConfig {
                        poll_interval: Duration::from_millis(5),
                        ..ReplicatorConfig::default()
                    },
                );
                while replicator.status().uploaded_generations < 1 {
                    assert!(
                        replicator.status().last_error.is_none(),
                        "{:?}",
                        replicator.status()
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
                total += start.elapsed();
                replicator.stop();
                remote.delete(&key).unwrap();
            }
            total
        })
    });
    let raw = server.backend(&bucket, "").object_store();
    group.bench_function("raw_multipart", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let path = object_store::path::Path::from(format!("raw{round}/{key}"));
                let start = Instant::now();
                rt.block_on(async {
                    let upload = raw.put_multipart(&path).await.unwrap();
                    let mut w = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
                    for chunk in bytes.chunks(8 << 20) {
                        w.wait_for_capacity(4).await.unwrap();
                        w.write(chunk);
                    }
                    w.finish().await.unwrap();
                });
                total += start.elapsed();
                rt.block_on(raw.delete(&path)).unwrap();
            }
            total
        })
    });
    group.finish();
    drop(store);

    // Save latency with and without a replicator running.
    let mut group = c.benchmark_group("save_1mb");
    group.sample_size(50);
    let value = blob(1_000_000);
    let local = tempfile::tempdir().unwrap();
    let store = Store::new(
        Box::new(FsBackend::open(local.path()).unwrap()),
        keyring(),
        StoreConfig {
            space_reserve: 0,
            ..StoreConfig::default()
        },
    );
    group.bench_function("without_replicator", |b| {
        b.iter(|| store.save(&value).unwrap())
    });
    let replicator = Replicator::start(
        Box::new(FsBackend::open_read_only(local.path()).unwrap()),
        Arc::new(SharedBackend::new(server.backend(&bucket, "saves"))),
        ReplicatorConfig::default(),
    );
    group.bench_function("with_replicator", |b| {
        b.iter(|| {
            store.save(&value).unwrap();
            replicator.notify();
        })
    });
    group.finish();
    let status = replicator.wait_caught_up(Duration::from_secs(60));
    println!(
        "replicator after the save benchmark: {} uploaded, {} pending, last error {:?}",
        status.uploaded_generations, status.pending_generations, status.last_error
    );
}

criterion_group!(offsite, benches);
criterion_main!(offsite);
