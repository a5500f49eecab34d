//! The PostgreSQL backend beside the raw database doing the same work, in one criterion run:
//! `cargo bench -p persist-bench --bench postgres`, against the cluster of `PERSIST_PG_URL`
//! (`eval "$(ci/pg-server.sh)"`; without it the bench prints `SKIPPED` and measures nothing).
//!
//! - `pg_save_4k`: a save of the 4 KB `EntryAgentState` through the store (`store_save`, its
//!   retention deleting the generation that falls out of the newest 4) beside one `INSERT` of
//!   the same envelope bytes in its own transaction, as a `bytea` row (`raw_insert_bytea`) and
//!   as a large object (`raw_insert_lo`), and beside the same work as the save in raw SQL
//!   (`raw_insert_list_delete`: the insert, the listing and the delete retention does).
//! - `pg_save_200mb` / `pg_load_200mb`: a save and a load of a 200 MB state through the store
//!   beside `COPY ... FROM STDIN` / `COPY ... TO STDOUT` of the same bytes as one `bytea` value
//!   (binary format, the fastest way in and out), and beside the raw large-object protocol the
//!   backend uses (`lo_create` + 1 MiB `lowrite`s; 1 MiB `loread`s): the measurement behind
//!   large objects over `bytea`.
//!
//! Only the operation is timed: the untimed tail of each iteration deletes what it wrote, so
//! every iteration writes into the same table sizes.

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use persist_bench::agent::EntryAgentState;
use persist_bench::bench_keyring;
use persist_core::format::generation_key;
use persist_core::{Backend, Persist, Store, StoreConfig, persist};
use persist_postgres::PgBackend;
use postgres::{Client, NoTls};

/// A large state of raw bytes: its encoding is one copy, so the store's work beside COPY is
/// the envelope, the signing and the backend's protocol.
#[persist(name = "pg_blob", version = 1)]
#[derive(Clone, Debug)]
struct Blob {
    bytes: Vec<u8>,
}

const LARGE: usize = 200 << 20;
/// Bytes per `lowrite`/`loread`/COPY chunk, as in the backend.
const CHUNK: usize = 1 << 20;

/// A database of its own for one bench, dropped afterwards.
struct Db {
    admin: String,
    url: String,
    name: String,
}

impl Db {
    fn create(hint: &str) -> Option<Db> {
        let Some(admin) = std::env::var("PERSIST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            println!("SKIPPED postgres bench {hint}: PERSIST_PG_URL unset (ci/pg-server.sh)");
            return None;
        };
        let name = format!("bench_{hint}_{}", std::process::id());
        let mut client = Client::connect(&admin, NoTls).expect("connect to the cluster");
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .expect("drop a leftover bench database");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the bench database");
        let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
        let url = format!("{base}/{name}");
        let db = Db { admin, url, name };
        db.client()
            .batch_execute(
                "CREATE TABLE raw_bytea (key text PRIMARY KEY, data bytea NOT NULL);
                 ALTER TABLE raw_bytea ALTER COLUMN data SET STORAGE EXTERNAL;
                 CREATE TABLE raw_lo (key text PRIMARY KEY, object oid NOT NULL)",
            )
            .expect("create the raw tables");
        Some(db)
    }

    fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connect to the bench database")
    }

    fn store(&self, retain: usize) -> (Store, Arc<PgBackend>) {
        let backend = Arc::new(PgBackend::open(&self.url).expect("open the backend"));
        let config = StoreConfig::default()
            .with_space_reserve(0)
            .with_retain(retain);
        let store = Store::new(Box::new(Arc::clone(&backend)), bench_keyring(), config);
        (store, backend)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.admin, NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    samples: usize,
    time: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(samples)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(time));
    group
}

fn save_4k(c: &mut Criterion) {
    let Some(db) = Db::create("save_4k") else {
        return;
    };
    let state = EntryAgentState::four_kb(1);
    let (store, backend) = db.store(4);
    let first = store.save(&state).expect("save");
    let envelope = backend
        .get(&generation_key(EntryAgentState::NAME, first.sequence))
        .expect("read the envelope back")
        .to_vec();
    println!("pg_save_4k: envelope of {} bytes", envelope.len());
    let mut group = group(c, "pg_save_4k", 50, 8);
    group.bench_function("store_save", |b| {
        b.iter(|| black_box(store.save(&state).expect("save")));
    });
    let mut client = db.client();
    let insert = client
        .prepare("INSERT INTO raw_bytea (key, data) VALUES ($1, $2)")
        .expect("prepare");
    let mut n = 0u64;
    group.bench_function("raw_insert_bytea", |b| {
        b.iter(|| {
            n += 1;
            client
                .execute(&insert, &[&format!("k{n}"), &envelope])
                .expect("insert")
        });
    });
    let insert_lo = client
        .prepare("INSERT INTO raw_lo (key, object) VALUES ($1, lo_from_bytea(0, $2))")
        .expect("prepare");
    group.bench_function("raw_insert_lo", |b| {
        b.iter(|| {
            n += 1;
            client
                .execute(&insert_lo, &[&format!("k{n}"), &envelope])
                .expect("insert")
        });
    });
    // The same work as a save with retention, in raw SQL: the row, the listing of the state's
    // rows, the delete of the one that fell out of the newest 4 (committed without waiting
    // for the WAL flush, as the backend does).
    client
        .batch_execute("CREATE TABLE raw_work (key text PRIMARY KEY, data bytea NOT NULL)")
        .expect("create the table of the same-work floor");
    let insert_work = client
        .prepare("INSERT INTO raw_work (key, data) VALUES ($1, $2)")
        .expect("prepare");
    let list = client
        .prepare("SELECT key FROM raw_work WHERE starts_with(key, $1)")
        .expect("prepare");
    group.bench_function("raw_insert_list_delete", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("w/{n:020}");
            client
                .execute(&insert_work, &[&key, &envelope])
                .expect("insert");
            let rows = client.query(&list, &[&"w/"]).expect("list");
            if rows.len() > 4 {
                let old = format!("w/{:020}", n - 4);
                client
                    .batch_execute(&format!(
                        "BEGIN; SET LOCAL synchronous_commit TO off; \
                         DELETE FROM raw_work WHERE key = '{old}'; COMMIT"
                    ))
                    .expect("delete");
            }
        });
    });
    group.finish();
}

/// `COPY raw_bytea FROM STDIN` of one row (`key`, `bytes`) in PostgreSQL's binary format.
fn copy_in(client: &mut Client, key: &str, bytes: &[u8]) {
    let mut w = client
        .copy_in("COPY raw_bytea (key, data) FROM STDIN (FORMAT binary)")
        .expect("start COPY");
    w.write_all(b"PGCOPY\n\xff\r\n\0").expect("copy");
    w.write_all(&[0; 8]).expect("copy"); // flags, header extension length
    w.write_all(&2i16.to_be_bytes()).expect("copy");
    w.write_all(&(key.len() as i32).to_be_bytes())
        .expect("copy");
    w.write_all(key.as_bytes()).expect("copy");
    w.write_all(&(bytes.len() as i32).to_be_bytes())
        .expect("copy");
    for chunk in bytes.chunks(CHUNK) {
        w.write_all(chunk).expect("copy");
    }
    w.write_all(&(-1i16).to_be_bytes()).expect("copy");
    w.finish().expect("finish COPY");
}

/// `COPY ... TO STDOUT` of one row's `bytea` in binary format: the bytes of the value.
fn copy_out(client: &mut Client, key: &str, len: usize) -> Vec<u8> {
    let query =
        format!("COPY (SELECT data FROM raw_bytea WHERE key = '{key}') TO STDOUT (FORMAT binary)");
    let mut r = client.copy_out(&query).expect("start COPY");
    let mut out = Vec::with_capacity(len + 64);
    r.read_to_end(&mut out).expect("copy out");
    out
}

/// The backend's protocol, raw: one transaction, `lo_create`, 1 MiB `lowrite`s, the row.
fn lo_in(client: &mut Client, key: &str, bytes: &[u8]) {
    let mut tx = client.transaction().expect("begin");
    let oid: u32 = tx
        .query_one("SELECT lo_create(0)", &[])
        .expect("create")
        .get(0);
    let fd: i32 = tx
        .query_one("SELECT lo_open($1, 131072)", &[&oid])
        .expect("open")
        .get(0);
    let write = tx.prepare("SELECT lowrite($1, $2)").expect("prepare");
    for chunk in bytes.chunks(CHUNK) {
        tx.execute(&write, &[&fd, &chunk]).expect("lowrite");
    }
    tx.execute(
        "INSERT INTO raw_lo (key, object) VALUES ($1, $2)",
        &[&key, &oid],
    )
    .expect("insert");
    tx.commit().expect("commit");
}

fn lo_out(client: &mut Client, key: &str, len: usize) -> Vec<u8> {
    let mut tx = client.transaction().expect("begin");
    let oid: u32 = tx
        .query_one("SELECT object FROM raw_lo WHERE key = $1", &[&key])
        .expect("row")
        .get(0);
    let fd: i32 = tx
        .query_one("SELECT lo_open($1, 262144)", &[&oid])
        .expect("open")
        .get(0);
    let read = tx.prepare("SELECT loread($1, $2)").expect("prepare");
    let mut out = Vec::with_capacity(len);
    loop {
        let chunk: Vec<u8> = tx
            .query_one(&read, &[&fd, &(CHUNK as i32)])
            .expect("loread")
            .get(0);
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    tx.commit().expect("commit");
    out
}

fn drop_raw(client: &mut Client) {
    client
        .batch_execute(
            "DELETE FROM raw_bytea;
             SELECT lo_unlink(object) FROM raw_lo; DELETE FROM raw_lo",
        )
        .expect("clean up");
}

/// Times `op` per iteration; `cleanup` runs untimed after each, with what `op` returned.
fn timed<R>(iters: u64, mut op: impl FnMut() -> R, mut cleanup: impl FnMut(R)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let done = op();
        total += start.elapsed();
        cleanup(done);
    }
    total
}

fn large(c: &mut Criterion) {
    let Some(db) = Db::create("large") else {
        return;
    };
    let blob = Blob {
        bytes: random_bytes(LARGE),
    };
    let (store, backend) = db.store(usize::MAX);
    let first = store.save(&blob).expect("save");
    let envelope = backend
        .get(&generation_key(Blob::NAME, first.sequence))
        .expect("read back")
        .to_vec();
    let mut client = db.client();
    let mut n = 0u64;
    {
        let mut group = group(c, "pg_save_200mb", 10, 30);
        group.bench_function("store_save", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || store.save(&blob).expect("save").sequence,
                    |sequence| {
                        let key = generation_key(Blob::NAME, sequence);
                        backend.delete(&key).expect("delete");
                    },
                )
            });
        });
        group.bench_function("raw_copy_in_bytea", |b| {
            b.iter_custom(|iters| {
                let mut c2 = db.client();
                timed(
                    iters,
                    || {
                        n += 1;
                        copy_in(&mut client, &format!("k{n}"), &envelope);
                    },
                    |()| drop_raw(&mut c2),
                )
            });
        });
        group.bench_function("raw_lo_in", |b| {
            b.iter_custom(|iters| {
                let mut c2 = db.client();
                timed(
                    iters,
                    || {
                        n += 1;
                        lo_in(&mut client, &format!("k{n}"), &envelope);
                    },
                    |()| drop_raw(&mut c2),
                )
            });
        });
        group.finish();
    }
    // One generation and one row of each kind to read.
    copy_in(&mut client, "read", &envelope);
    lo_in(&mut client, "read", &envelope);
    let mut group = group(c, "pg_load_200mb", 10, 30);
    group.bench_function("store_load", |b| {
        b.iter(|| black_box(store.load::<Blob>().expect("load").value.bytes.len()));
    });
    group.bench_function("raw_copy_out_bytea", |b| {
        b.iter(|| black_box(copy_out(&mut client, "read", envelope.len()).len()));
    });
    group.bench_function("raw_lo_out", |b| {
        b.iter(|| black_box(lo_out(&mut client, "read", envelope.len()).len()));
    });
    group.finish();
}

criterion_group!(benches, save_4k, large);
criterion_main!(benches);
