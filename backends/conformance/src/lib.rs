//! The conformance suite of persist's backends: the contract of [`persist_core::Backend`] as
//! check functions, which every backend runs (in the spirit of `object_store`'s
//! `integration.rs`).
//!
//! Each check takes a backend and panics with a message saying which guarantee failed. Most
//! want a fresh, empty backend; two want a backend in a failing situation:
//! [`no_space`] a backend that is full, [`access_denied`] one that refuses writes. The
//! [`suite!`] macro turns the checks into one `#[test]` per check, named after it, so every
//! backend's test list reads the same:
//!
//! ```
//! use persist_conformance::Subject;
//! use persist_core::MemoryBackend;
//!
//! persist_conformance::suite! {
//!     // A fresh, empty backend, for a test of the given name.
//!     fresh: |_test| Subject::new(MemoryBackend::new()),
//!     // A backend that is full.
//!     no_space: |_test| Subject::new(MemoryBackend::with_quota(1024)),
//!     // A backend that cannot produce the error opts out, saying why: the test is ignored
//!     // with the reason, never silently missing.
//!     access_denied: unsupported("an example of opting out"),
//! }
//! # fn main() {}
//! ```
//!
//! Each closure gets the test's name (for a skip message) and returns a [`Subject`], or an
//! `Option<Subject>` that is `None` when the backend cannot run here (an S3 test without a
//! server); the test then passes after the closure said why.
//!
//! What the checks hold a backend to is what the trait documents: create-only puts (also under
//! a race), all-or-nothing visibility, no litter from a dropped object, listings of the
//! objects under a prefix with their sizes (in no particular order: the trait promises none),
//! `NotFound` for missing keys (delete included), and the error kinds `NoSpace` and
//! `AccessDenied`. Keys are two or more `/`-separated components, as the store's are
//! (`state/sequence.pst`); listings use prefixes that are directories ending in `/`.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Barrier;

use persist_core::recovery_log::{LogRecord, LoggedRejection, Outcome};
use persist_core::{Backend, BackendError, ObjectMeta};

/// A backend under test, with whatever must live as long as it does (a temporary directory,
/// a server process). The backend is dropped first.
pub struct Subject {
    backend: Box<dyn Backend>,
    _guard: Box<dyn Any>,
}

impl Subject {
    /// A backend that needs nothing else.
    pub fn new(backend: impl Backend + 'static) -> Self {
        Subject::with_guard(backend, ())
    }

    /// A backend and something to keep until after it is dropped.
    pub fn with_guard(backend: impl Backend + 'static, guard: impl Any) -> Self {
        Subject {
            backend: Box::new(backend),
            _guard: Box::new(guard),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Subject").field(&self.backend).finish()
    }
}

/// The size of the large object of [`streamed_writes_of_many_chunks`] and
/// [`dropped_objects_leave_nothing`]: 11 MiB, above the 8 MiB from which the S3 backend uploads
/// in parts, so its multipart path (and its abort) is exercised too.
pub const LARGE_OBJECT: usize = 11 << 20;

/// How many threads race in [`concurrent_put_new_one_wins`] and
/// [`concurrent_streamed_commits_one_wins`].
pub const RACERS: usize = 8;

/// Deterministic, key-dependent bytes: no two objects of a check share content.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn describe(result: &Result<(), BackendError>) -> String {
    match result {
        Ok(()) => "Ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

fn get(backend: &dyn Backend, key: &str) -> Vec<u8> {
    match backend.get(key) {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => panic!("get({key:?}) of a committed object failed: {e}"),
    }
}

/// The listing under `prefix` as key → size, ordered by key (the trait promises no order).
fn listed(backend: &dyn Backend, prefix: &str) -> BTreeMap<String, u64> {
    let list = backend
        .list(prefix)
        .unwrap_or_else(|e| panic!("list({prefix:?}) failed: {e}"));
    let n = list.len();
    let map: BTreeMap<String, u64> = list.into_iter().map(|m| (m.key, m.size)).collect();
    assert_eq!(map.len(), n, "list({prefix:?}) reported a key twice");
    map
}

fn expect(entries: &[(&str, usize)]) -> BTreeMap<String, u64> {
    entries
        .iter()
        .map(|(key, size)| (key.to_string(), *size as u64))
        .collect()
}

fn assert_not_found(what: &str, result: Result<impl std::fmt::Debug, BackendError>) {
    match result {
        Err(BackendError::NotFound { .. }) => {}
        other => panic!("{what}: expected BackendError::NotFound, got {other:?}"),
    }
}

fn assert_absent(backend: &dyn Backend, key: &str, why: &str) {
    assert_not_found(&format!("get({key:?}) {why}"), backend.get(key));
    let prefix = &key[..=key.rfind('/').expect("keys have a directory")];
    assert!(
        !listed(backend, prefix).contains_key(key),
        "list({prefix:?}) shows {key:?} {why}"
    );
}

/// `put_new` of several parts, then `get`, `get_mapped`, `get_head` and `list` agree on the
/// bytes and the size; `location()` is not empty.
pub fn round_trip(backend: &dyn Backend) {
    assert!(!backend.location().is_empty(), "location() is empty");
    let bytes = pattern(1, 1000);
    let (a, b) = bytes.split_at(300);
    backend
        .put_new("s/00000000000000000001.pst", &[a, b])
        .unwrap_or_else(|e| panic!("put_new of a new key failed: {e}"));
    let key = "s/00000000000000000001.pst";
    assert_eq!(
        get(backend, key),
        bytes,
        "get returned other bytes than put"
    );
    let mapped = backend
        .get_mapped(key)
        .unwrap_or_else(|e| panic!("get_mapped failed: {e}"));
    assert_eq!(
        &*mapped,
        &bytes[..],
        "get_mapped returned other bytes than put"
    );
    assert_eq!(listed(backend, "s/"), expect(&[(key, 1000)]));
}

/// An empty object is an object: stored, listed with size 0, read back empty.
pub fn empty_object(backend: &dyn Backend) {
    backend
        .put_new("s/empty", &[])
        .unwrap_or_else(|e| panic!("put_new of an empty object failed: {e}"));
    assert_eq!(
        get(backend, "s/empty"),
        b"",
        "an empty object read back non-empty"
    );
    let head = backend
        .get_head("s/empty", 16)
        .unwrap_or_else(|e| panic!("get_head of an empty object failed: {e}"));
    assert_eq!(
        (head.bytes.len(), head.size),
        (0, 0),
        "get_head of an empty object"
    );
    assert_eq!(listed(backend, "s/"), expect(&[("s/empty", 0)]));
    assert!(
        matches!(
            backend.put_new("s/empty", &[b"x"]),
            Err(BackendError::AlreadyExists { .. })
        ),
        "an empty object does not count as existing for put_new"
    );
}

/// Keys of three components (`a/b/c`) are written, read and listed under their directory.
pub fn nested_keys(backend: &dyn Backend) {
    backend
        .put_new("a/b/c", &[b"deep"])
        .unwrap_or_else(|e| panic!("put_new(\"a/b/c\") failed: {e}"));
    backend
        .put_new("a/b/d", &[b"deeper"])
        .unwrap_or_else(|e| panic!("put_new(\"a/b/d\") failed: {e}"));
    assert_eq!(get(backend, "a/b/c"), b"deep");
    assert_eq!(
        listed(backend, "a/b/"),
        expect(&[("a/b/c", 4), ("a/b/d", 6)])
    );
    backend.delete("a/b/c").unwrap();
    assert_absent(backend, "a/b/c", "after delete");
}

/// `put_new` onto an existing key fails with `AlreadyExists` and leaves the object as it was.
pub fn put_new_is_create_only(backend: &dyn Backend) {
    let key = "s/00000000000000000001.pst";
    let first = pattern(1, 500);
    backend.put_new(key, &[&first]).unwrap();
    let second = pattern(2, 700);
    let again = backend.put_new(key, &[&second]);
    assert!(
        matches!(&again, Err(BackendError::AlreadyExists { key: k, .. }) if k == key),
        "put_new onto an existing key: expected AlreadyExists naming the key, got {}",
        describe(&again)
    );
    assert_eq!(
        get(backend, key),
        first,
        "a refused put_new changed the object"
    );
    assert_eq!(listed(backend, "s/"), expect(&[(key, 500)]));
}

/// A streamed write onto an existing key fails with `AlreadyExists` (at `begin_put` or at
/// `commit`); of two writers that began on a free key, the second to commit fails at `commit`.
/// Either way the stored object is the first committed one, whole.
pub fn streamed_put_is_create_only(backend: &dyn Backend) {
    let key = "s/00000000000000000001.pst";
    let first = pattern(1, 500);
    backend.put_new(key, &[&first]).unwrap();
    let attempt = backend.begin_put(key).and_then(|mut obj| {
        obj.write(&pattern(2, 100))?;
        obj.write(&pattern(3, 100))?;
        obj.commit()
    });
    assert!(
        matches!(attempt, Err(BackendError::AlreadyExists { .. })),
        "a streamed write onto an existing key: expected AlreadyExists, got {}",
        describe(&attempt)
    );
    assert_eq!(
        get(backend, key),
        first,
        "a refused streamed write changed the object"
    );

    let key = "s/00000000000000000002.pst";
    let mut early = backend.begin_put(key).unwrap();
    let mut late = backend.begin_put(key).unwrap();
    early.write(b"early writer").unwrap();
    late.write(b"late writer, committed first").unwrap();
    late.commit().unwrap();
    let lost = early.commit();
    assert!(
        matches!(lost, Err(BackendError::AlreadyExists { .. })),
        "the second commit of one key: expected AlreadyExists, got {}",
        describe(&lost)
    );
    assert_eq!(get(backend, key), b"late writer, committed first");
    assert_eq!(listed(backend, "s/").len(), 2);
}

/// Checks the outcome of one race: exactly one winner, every loser `AlreadyExists`, the stored
/// bytes the winner's.
fn judge_race(
    backend: &dyn Backend,
    key: &str,
    outcomes: Vec<(Vec<u8>, Result<(), BackendError>)>,
) {
    let mut winners = Vec::new();
    for (bytes, outcome) in &outcomes {
        match outcome {
            Ok(()) => winners.push(bytes),
            Err(BackendError::AlreadyExists { key: k, .. }) if k == key => {}
            Err(e) => panic!(
                "a racing writer of {key:?} failed with {e:?}, not AlreadyExists naming the key"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{} of {} racing writers of {key:?} succeeded; exactly one must",
        winners.len(),
        outcomes.len()
    );
    assert!(
        get(backend, key) == *winners[0],
        "the stored object of {key:?} is not exactly the winner's bytes"
    );
}

/// [`RACERS`] threads `put_new` the same key at once, each with its own bytes (three keys in
/// turn): exactly one wins, the others get `AlreadyExists`, and the object is the winner's.
pub fn concurrent_put_new_one_wins(backend: &dyn Backend) {
    for round in 0..3u64 {
        let key = format!("race/{round:020}.pst");
        let barrier = Barrier::new(RACERS);
        let outcomes = std::thread::scope(|s| {
            let racers: Vec<_> = (0..RACERS as u64)
                .map(|i| {
                    let (key, barrier) = (&key, &barrier);
                    s.spawn(move || {
                        let bytes = pattern(round * 100 + i, 1000 + i as usize * 37);
                        barrier.wait();
                        let outcome = backend.put_new(key, &[&bytes]);
                        (bytes, outcome)
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().expect("a racing thread panicked"))
                .collect::<Vec<_>>()
        });
        judge_race(backend, &key, outcomes);
    }
    assert_eq!(listed(backend, "race/").len(), 3);
}

/// [`RACERS`] threads each begin a streamed write of the same key, write two chunks, wait for
/// each other, and commit at once: exactly one commit succeeds, the others get
/// `AlreadyExists`, and the object is exactly the winner's.
pub fn concurrent_streamed_commits_one_wins(backend: &dyn Backend) {
    let key = "race/00000000000000000001.pst";
    let barrier = Barrier::new(RACERS);
    let outcomes = std::thread::scope(|s| {
        let racers: Vec<_> = (0..RACERS as u64)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    let bytes = pattern(i, 2000 + i as usize * 13);
                    let mut obj = match backend.begin_put(key) {
                        Ok(obj) => obj,
                        Err(e) => panic!("begin_put of a free key failed: {e}"),
                    };
                    let (a, b) = bytes.split_at(700);
                    let written = obj.write(a).and_then(|()| obj.write(b));
                    barrier.wait();
                    let outcome = written.and_then(|()| obj.commit());
                    (bytes, outcome)
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("a racing thread panicked"))
            .collect::<Vec<_>>()
    });
    judge_race(backend, key, outcomes);
    assert_eq!(listed(backend, "race/").len(), 1);
}

/// `list(prefix)` returns exactly the committed objects whose keys start with the prefix (a
/// directory ending in `/`), each once with its size; `a/` does not list `ab/…`; an unknown
/// prefix lists nothing; the empty prefix lists everything. Order is not checked: the trait
/// documents none.
pub fn list_filters_by_prefix_with_sizes(backend: &dyn Backend) {
    let objects = [
        ("a/1", 1),
        ("a/2", 22),
        ("a/10", 3),
        ("a/x.pst", 0),
        ("ab/1", 5),
        ("b/1", 6),
    ];
    for (i, (key, size)) in objects.iter().enumerate() {
        backend.put_new(key, &[&pattern(i as u64, *size)]).unwrap();
    }
    assert_eq!(
        listed(backend, "a/"),
        expect(&[("a/1", 1), ("a/2", 22), ("a/10", 3), ("a/x.pst", 0)]),
        "list(\"a/\")"
    );
    assert_eq!(
        listed(backend, "ab/"),
        expect(&[("ab/1", 5)]),
        "list(\"ab/\")"
    );
    assert_eq!(listed(backend, "b/"), expect(&[("b/1", 6)]), "list(\"b/\")");
    assert_eq!(
        listed(backend, "c/"),
        expect(&[]),
        "list of an unknown prefix"
    );
    assert_eq!(listed(backend, ""), expect(&objects), "list(\"\")");
    let list: Vec<ObjectMeta> = backend.list("ab/").unwrap();
    assert_eq!(list, vec![ObjectMeta::new("ab/1", 5)]);
}

/// `get_head(key, len)` returns the first `min(len, size)` bytes and the whole size, for `len`
/// 0, shorter than, equal to and longer than the object.
pub fn get_head_of_any_length(backend: &dyn Backend) {
    let key = "s/head";
    let bytes = pattern(7, 1000);
    backend.put_new(key, &[&bytes]).unwrap();
    for len in [0, 1, 160, 999, 1000, 1001, 1 << 20] {
        let head = backend
            .get_head(key, len)
            .unwrap_or_else(|e| panic!("get_head({key:?}, {len}) failed: {e}"));
        assert_eq!(head.size, 1000, "get_head({len}) reported the wrong size");
        assert!(
            head.bytes == bytes[..len.min(1000)],
            "get_head({len}) returned {} bytes, not the first {}",
            head.bytes.len(),
            len.min(1000)
        );
    }
}

/// `get`, `get_mapped`, `get_head` and `delete` of a missing key are `NotFound`, also in a
/// directory that has other objects.
pub fn missing_keys_are_not_found(backend: &dyn Backend) {
    for key in ["nothing/here", "s/00000000000000000009.pst"] {
        assert_not_found(&format!("get({key:?})"), backend.get(key));
        assert_not_found(&format!("get_mapped({key:?})"), backend.get_mapped(key));
        assert_not_found(&format!("get_head({key:?})"), backend.get_head(key, 16));
        assert_not_found(&format!("delete({key:?})"), backend.delete(key));
        backend.put_new("s/00000000000000000001.pst", &[b"x"]).ok();
    }
    assert_eq!(listed(backend, "nothing/"), expect(&[]));
}

/// A deleted object is gone from `get` and `list`, its neighbours stay, deleting it again is
/// `NotFound` (as the trait documents), and its key can be written anew.
pub fn delete_removes_only_the_object(backend: &dyn Backend) {
    backend.put_new("s/1", &[b"one"]).unwrap();
    backend.put_new("s/2", &[b"two"]).unwrap();
    backend
        .delete("s/1")
        .unwrap_or_else(|e| panic!("delete of an existing object failed: {e}"));
    assert_absent(backend, "s/1", "after delete");
    assert_eq!(get(backend, "s/2"), b"two", "delete touched another object");
    assert_eq!(listed(backend, "s/"), expect(&[("s/2", 3)]));
    assert_not_found("a second delete", backend.delete("s/1"));
    backend
        .put_new("s/1", &[b"anew"])
        .unwrap_or_else(|e| panic!("put_new of a deleted key failed: {e}"));
    assert_eq!(get(backend, "s/1"), b"anew");
}

/// A streamed write of many chunks of odd sizes (single bytes, a few KiB, whole MiB) makes one
/// object of exactly those bytes, small and of [`LARGE_OBJECT`] bytes.
pub fn streamed_writes_of_many_chunks(backend: &dyn Backend) {
    for (key, len) in [("s/small", 10_000), ("s/large", LARGE_OBJECT)] {
        let bytes = pattern(len as u64, len);
        let mut obj = backend.begin_put(key).unwrap();
        let sizes = [1, 1, 4096, 7, 1 << 20, 3000, 65_536, 3 << 20];
        let mut at = 0;
        let mut i = 0;
        while at < len {
            let n = sizes[i % sizes.len()].min(len - at);
            obj.write(&bytes[at..at + n])
                .unwrap_or_else(|e| panic!("write of a chunk of {key:?} failed: {e}"));
            at += n;
            i += 1;
        }
        obj.commit()
            .unwrap_or_else(|e| panic!("commit of {key:?} ({len} bytes) failed: {e}"));
        let back = get(backend, key);
        assert_eq!(back.len(), len, "{key:?} read back with the wrong length");
        assert!(
            back == bytes,
            "{key:?} read back with other bytes than written"
        );
        let head = backend.get_head(key, 160).unwrap();
        assert_eq!((head.size, &head.bytes[..]), (len as u64, &bytes[..160]));
    }
    assert_eq!(
        listed(backend, "s/"),
        expect(&[("s/small", 10_000), ("s/large", LARGE_OBJECT)])
    );
}

/// An object being written is invisible until committed; a dropped one (small, or
/// [`LARGE_OBJECT`] bytes) leaves no object and no listing entry, and its key can be written
/// afterwards.
pub fn dropped_objects_leave_nothing(backend: &dyn Backend) {
    for (key, len) in [("s/small", 1000), ("s/large", LARGE_OBJECT)] {
        let bytes = pattern(3, len);
        let mut obj = backend.begin_put(key).unwrap();
        for chunk in bytes.chunks(1 << 20) {
            obj.write(chunk).unwrap();
        }
        assert_absent(backend, key, "before commit");
        drop(obj);
        assert_absent(backend, key, "after its writer was dropped");
        assert_eq!(
            listed(backend, ""),
            expect(&[]),
            "a dropped writer left litter"
        );
    }
    for key in ["s/small", "s/large"] {
        backend
            .put_new(key, &[b"written after the drop"])
            .unwrap_or_else(|e| panic!("put_new after a dropped writer of {key:?} failed: {e}"));
        assert_eq!(get(backend, key), b"written after the drop");
    }
}

/// The recovery log ([`Backend::append_log`], [`Backend::read_log`]): empty at first; records
/// come back equal (every field, rejections included), oldest first, filtered by state, the
/// newest `last` of them; and no state's listing sees them.
pub fn recovery_log_keeps_records(backend: &dyn Backend) {
    let empty = backend
        .read_log(None, 10)
        .expect("read an empty recovery log");
    assert!(empty.records.is_empty() && empty.unreadable.is_empty());
    let record = |state: &str, at_ms: u64, outcome: Outcome| {
        let mut r = LogRecord::new(state, "load", outcome);
        r.at_ms = at_ms;
        r
    };
    let failed = Outcome::Failed {
        kind: "blocked: foreign".into(),
        error: "cannot load a: generation 3 is foreign\n  To fix: …".into(),
    };
    let fresh = Outcome::NoGeneration {
        location: "here".into(),
    };
    let written = [
        record("a", 1_700_000_000_000, fresh),
        record("b-2.x", 1_700_000_001_000, failed),
        record("a", 1_700_000_002_000, recovered()),
    ];
    for r in &written {
        backend
            .append_log(r)
            .unwrap_or_else(|e| panic!("append_log failed: {e}"));
    }
    let all = backend.read_log(None, 10).expect("read the recovery log");
    assert_eq!(all.records, written, "records changed or out of order");
    assert!(all.unreadable.is_empty(), "{:?}", all.unreadable);
    let a = backend.read_log(Some("a"), 10).unwrap().records;
    assert_eq!(a, [written[0].clone(), written[2].clone()]);
    let newest = backend.read_log(Some("a"), 1).unwrap().records;
    assert_eq!(newest, [written[2].clone()], "last = 1 is the newest");
    assert!(backend.read_log(Some("c"), 10).unwrap().records.is_empty());
    for state in ["a/", "b-2.x/"] {
        assert_eq!(listed(backend, state), expect(&[]), "{state} lists the log");
    }
}

/// A recovery with every optional part set.
fn recovered() -> Outcome {
    let mut rejections = Vec::new();
    for (sequence, kind) in [(9, "corrupt"), (8, "too new")] {
        let r = LoggedRejection::new(sequence, kind, "tag mismatch: \"quoted\" ✓");
        rejections.push(r);
    }
    Outcome::Recovered {
        source: "/var/lib/agent".into(),
        sequence: 7,
        schema_version: 3,
        age_ms: 1234,
        base: Some(5),
        migrations: vec![(2, 3)],
        rejected: rejections,
        restored_from: Some("s3://bucket/p".into()),
    }
}

/// A write of 1 MiB to a full backend fails with `NoSpace` naming the key (at `begin_put`,
/// a `write` or `commit`), and leaves nothing visible.
pub fn no_space(full: &dyn Backend) {
    let key = "full/00000000000000000001.pst";
    let bytes = pattern(9, 1 << 20);
    let attempt = full.begin_put(key).and_then(|mut obj| {
        for chunk in bytes.chunks(64 << 10) {
            obj.write(chunk)?;
        }
        obj.commit()
    });
    match &attempt {
        Err(BackendError::NoSpace { key: k, location }) => {
            assert_eq!(k, key, "NoSpace names another key");
            assert_eq!(location, &full.location(), "NoSpace names another location");
        }
        _ => panic!(
            "a write to a full backend: expected NoSpace, got {}",
            describe(&attempt)
        ),
    }
    assert_absent(full, key, "after a failed write");
}

/// A write to a backend that refuses writes fails with `AccessDenied` (at any step), whose
/// message names the location and which carries the underlying error as its `source`; the
/// object is not there afterwards (`get` is `NotFound`, or itself `AccessDenied`).
pub fn access_denied(denied: &dyn Backend) {
    let key = "denied/00000000000000000001.pst";
    let attempt = denied.put_new(key, &[b"refused"]);
    let Err(error @ BackendError::AccessDenied { .. }) = &attempt else {
        panic!(
            "a write to a backend that refuses writes: expected AccessDenied, got {}",
            describe(&attempt)
        );
    };
    let message = error.to_string();
    assert!(
        message.contains(&denied.location()),
        "the AccessDenied message {message:?} does not name the location"
    );
    assert!(
        std::error::Error::source(error).is_some(),
        "AccessDenied carries no source error"
    );
    match denied.get(key) {
        Err(BackendError::NotFound { .. } | BackendError::AccessDenied { .. }) => {}
        other => panic!("a refused write left something readable: {other:?}"),
    }
}

/// Turns a fixture closure's answer into an optional [`Subject`] (for [`suite!`]).
#[doc(hidden)]
pub fn __subject(subject: impl Into<Option<Subject>>) -> Option<Subject> {
    subject.into()
}

/// One `#[test]` per check of this crate, named after the check, for the backend the closures
/// make. See the crate docs for an example.
///
/// ```text
/// persist_conformance::suite! {
///     fresh: |test| -> Subject or Option<Subject>,          // a fresh, empty backend
///     no_space: |test| -> …,      or unsupported("reason"),  // a full backend
///     access_denied: |test| -> …, or unsupported("reason"),  // one that refuses writes
/// }
/// ```
///
/// An `unsupported` situation becomes an ignored test whose ignore message is the reason.
#[macro_export]
macro_rules! suite {
    (
        fresh: $fresh:expr,
        no_space: unsupported($no_space:literal),
        access_denied: unsupported($denied:literal) $(,)?
    ) => {
        $crate::__suite_checks!($fresh);
        $crate::__suite_unsupported!(no_space, $no_space);
        $crate::__suite_unsupported!(access_denied, $denied);
    };
    (
        fresh: $fresh:expr,
        no_space: unsupported($no_space:literal),
        access_denied: $denied:expr $(,)?
    ) => {
        $crate::__suite_checks!($fresh);
        $crate::__suite_unsupported!(no_space, $no_space);
        $crate::__suite_situation!(access_denied, $denied);
    };
    (
        fresh: $fresh:expr,
        no_space: $no_space:expr,
        access_denied: unsupported($denied:literal) $(,)?
    ) => {
        $crate::__suite_checks!($fresh);
        $crate::__suite_situation!(no_space, $no_space);
        $crate::__suite_unsupported!(access_denied, $denied);
    };
    (
        fresh: $fresh:expr,
        no_space: $no_space:expr,
        access_denied: $denied:expr $(,)?
    ) => {
        $crate::__suite_checks!($fresh);
        $crate::__suite_situation!(no_space, $no_space);
        $crate::__suite_situation!(access_denied, $denied);
    };
}

/// The checks that want a fresh backend (for [`suite!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_checks {
    ($fresh:expr) => {
        $crate::__suite_situation!(
            $fresh;
            round_trip,
            empty_object,
            nested_keys,
            put_new_is_create_only,
            streamed_put_is_create_only,
            concurrent_put_new_one_wins,
            concurrent_streamed_commits_one_wins,
            list_filters_by_prefix_with_sizes,
            get_head_of_any_length,
            missing_keys_are_not_found,
            delete_removes_only_the_object,
            streamed_writes_of_many_chunks,
            dropped_objects_leave_nothing,
            recovery_log_keeps_records
        );
    };
}

/// One test per check, each with a backend from the closure (for [`suite!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_situation {
    ($check:ident, $make:expr) => {
        $crate::__suite_situation!($make; $check);
    };
    ($make:expr; $($check:ident),+) => {
        $(
            #[test]
            fn $check() {
                if let Some(subject) = $crate::__subject(($make)(stringify!($check))) {
                    $crate::$check(subject.backend());
                }
            }
        )+
    };
}

/// An ignored test for a situation the backend cannot produce (for [`suite!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_unsupported {
    ($check:ident, $reason:literal) => {
        #[test]
        #[ignore = $reason]
        fn $check() {
            println!("unsupported: {}", $reason);
        }
    };
}
