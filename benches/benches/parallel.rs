//! Saves of different states do not wait on each other (issue 9): nine threads, each saving its
//! own 4 KB state once, against the same nine saves one after another, in one criterion run.
//!
//! `cargo bench -p persist-bench --bench parallel`. Target: the parallel round takes at most
//! 0.6× the serial one on 2 cores (each save is mostly waiting on its fsyncs, which overlap).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use persist_bench::open_store;
use persist_core::{Encoded, Persist, Store, StoreConfig, persist};

macro_rules! states {
    ($($ty:ident = $name:literal),* $(,)?) => {
        $(
            /// One of the nine 4 KB states.
            #[persist(name = $name, version = 1)]
            pub struct $ty {
                /// The state's bytes.
                pub bytes: Vec<u8>,
                /// A counter that changes every save.
                pub counter: u64,
            }
        )*

        /// One value of each of the nine states, serialised.
        fn encoded(counter: u64) -> Vec<Encoded> {
            vec![$(
                Encoded::new(&$ty { bytes: vec![counter as u8; 4000], counter })
                    .expect("encode"),
            )*]
        }
    };
}

states!(
    S0 = "s0",
    S1 = "s1",
    S2 = "s2",
    S3 = "s3",
    S4 = "s4",
    S5 = "s5",
    S6 = "s6",
    S7 = "s7",
    S8 = "s8",
);

fn serial(store: &Store, states: &[Encoded]) {
    for e in states {
        black_box(store.save_encoded(e).expect("save"));
    }
}

fn parallel(store: &Store, states: &[Encoded]) {
    std::thread::scope(|s| {
        for e in states {
            s.spawn(move || black_box(store.save_encoded(e).expect("save")));
        }
    });
}

fn nine_states(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let store = open_store(&dir.path().join("store"), StoreConfig::default()).expect("store");
    assert_eq!(S0::NAME, "s0");
    let mut counter = 0u64;
    let mut group = c.benchmark_group("nine_4kb_saves");
    // Both sides alternate round by round, so they see the same disk.
    let mut round = |par: bool, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            counter += 1;
            let states = encoded(counter);
            let start = Instant::now();
            if par {
                parallel(&store, &states);
            } else {
                serial(&store, &states);
            }
            total += start.elapsed();
        }
        total
    };
    group.bench_function("serial", |b| b.iter_custom(|iters| round(false, iters)));
    group.bench_function("parallel_9_threads", |b| {
        b.iter_custom(|iters| round(true, iters))
    });
    group.finish();
}

criterion_group!(benches, nine_states);
criterion_main!(benches);
