//! The logic of the persist-core fuzz targets (`header`, `envelope`, `store_load`, `store_open`)
//! and their seed generator, in one file shared by two builds:
//!
//! - `fuzz/fuzz_targets/*.rs` (cargo-fuzz, nightly) include it with `#[path]`;
//! - `persist-core/tests/fuzz_corpus.rs` (stable, ordinary `cargo test`) includes it the same
//!   way and replays every committed corpus file through it.
//!
//! So it uses only `persist_core` and the standard library (and `hmac`/`sha2`, dependencies of
//! persist-core, for the format-1 seed), and nothing nightly-only. Each target function returns
//! normally for any input; a panic or a failed assertion is a finding.
#![allow(dead_code)]

use std::sync::OnceLock;

use persist_core::format;
use persist_core::format::generation_key;
use persist_core::format::{
    HEADER_LEN, MAX_NAME_LEN, TAG_LEN, open, open_with, seal, validate_name,
};
use persist_core::{
    Backend, Key, Keyring, LoadError, MemoryBackend, OpenError, Persist, RejectKind, RkyvFormat,
    Store, StoreConfig, persist,
};
use persist_core::{Expect, Header};

/// The fixed key every target signs and verifies with.
pub fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::new(Key::from_bytes(vec![7; 32]).expect("32 bytes is enough")))
}

// ---------------------------------------------------------------------------------------------
// The test state the store-level targets load: two versions, a migration, nested types, an
// enum, strings, options and vectors, so that rkyv validation has something to walk.

/// A nested record.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: u64,
    pub tag: Option<String>,
    pub weights: Vec<f32>,
}

/// A nested enum.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Idle,
    Trading { since: u64, symbol: String },
    Halted(u32),
}

/// Version 1 of the fuzzed state.
#[persist(name = "fuzz_state", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct FuzzStateV1 {
    pub counter: u64,
    pub label: String,
    pub items: Vec<Item>,
}

/// Version 2 (current): adds `mode` and `history`.
#[persist(name = "fuzz_state", version = 2, from = FuzzStateV1)]
#[derive(Clone, Debug, PartialEq)]
pub struct FuzzState {
    pub counter: u64,
    pub label: String,
    pub items: Vec<Item>,
    pub mode: Mode,
    pub history: Vec<(u32, f64)>,
}

impl From<FuzzStateV1> for FuzzState {
    fn from(old: FuzzStateV1) -> Self {
        FuzzState {
            counter: old.counter,
            label: old.label,
            items: old.items,
            mode: Mode::Idle,
            history: Vec::new(),
        }
    }
}

fn item(i: u64) -> Item {
    Item {
        id: i,
        tag: (!i.is_multiple_of(3)).then(|| format!("item-{i}")),
        weights: (0..i % 7).map(|w| w as f32 * 0.25).collect(),
    }
}

/// A deterministic v1 value with `n` items.
pub fn sample_v1(n: u64) -> FuzzStateV1 {
    FuzzStateV1 {
        counter: n * 1000 + 1,
        label: format!("v1 sample of {n} items"),
        items: (0..n).map(item).collect(),
    }
}

/// A deterministic v2 value with `n` items.
pub fn sample_v2(n: u64) -> FuzzState {
    FuzzState {
        counter: n * 1000 + 2,
        label: format!("v2 sample of {n} items"),
        items: (0..n).map(item).collect(),
        mode: match n % 3 {
            0 => Mode::Idle,
            1 => Mode::Trading {
                since: n,
                symbol: "EURUSD".into(),
            },
            _ => Mode::Halted(n as u32),
        },
        history: (0..n).map(|i| (i as u32, i as f64 / 3.0)).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// header

/// `Header::decode_unverified` on arbitrary bytes; when it decodes, the invariants of `encode`,
/// and a seal/open round trip of the decoded fields.
pub fn header(data: &[u8]) {
    let Ok(h) = Header::decode_unverified(data) else {
        return;
    };
    assert!(data.len() >= HEADER_LEN + TAG_LEN);
    let _ = h.to_string();
    let _ = h.created_at();
    let Ok(encoded) = h.encode() else {
        // `encode` fails only on an invalid name.
        assert!(validate_name(&h.name).is_err(), "encode refused {h:?}");
        return;
    };
    assert!(validate_name(&h.name).is_ok());
    // A valid name is ASCII, so the lossy decoding kept it byte for byte.
    let n = h.name.len();
    assert!(n <= MAX_NAME_LEN);
    assert_eq!(&encoded[..8], &format::MAGIC);
    assert_eq!(&encoded[8..10], &format::FORMAT_VERSION.to_le_bytes());
    assert_eq!(&encoded[12..16], &(HEADER_LEN as u32).to_le_bytes());
    assert_eq!(encoded[30] as usize, n);
    // The fields sit where the input had them (bytes 8..16, 30, 31 and the padding after the
    // name may legitimately differ: encode writes this build's constants and zeros).
    assert_eq!(&encoded[16..30], &data[16..30]);
    assert_eq!(&encoded[32..88], &data[32..88]);
    assert_eq!(&encoded[88..88 + n], &data[88..88 + n]);
    assert!(encoded[88 + n..].iter().all(|&b| b == 0));
    // Decoding the encoding gives the same header.
    let mut again = encoded.to_vec();
    again.extend_from_slice(&[0; TAG_LEN]);
    assert_eq!(Header::decode_unverified(&again).as_ref(), Ok(&h));
    // Sealing the decoded fields over the input's payload opens with exactly those fields.
    if h.rkyv_format == RkyvFormat::CURRENT {
        let payload = &data[HEADER_LEN..data.len() - TAG_LEN];
        let sealed = seal(ring(), h.clone(), payload).expect("the name is valid");
        let expect = Expect {
            name: Some(&h.name),
            sequence: Some(h.sequence),
            min_version: Some(h.schema_version),
            max_version: Some(h.schema_version),
        };
        let opened = open(ring(), &sealed, &expect).expect("a sealed envelope opens");
        let want = Header {
            key_id: ring().current().id(),
            payload_len: payload.len() as u64,
            ..h
        };
        assert_eq!(opened.header, want);
        assert_eq!(opened.payload, payload);
    }
}

// ---------------------------------------------------------------------------------------------
// envelope

/// The prefix that switches the `envelope` target to its structured variant.
pub const MUTATE_PREFIX: &[u8] = b"mut:";

/// The prefix that makes a target sign the rest (header, then payload) with the fuzz key before
/// using it: the input plays a writer that holds the key but may write a malformed header or
/// payload, which reaches every check behind the tag.
pub const SIGN_PREFIX: &[u8] = b"sign:";

/// `open` and `open_with` on arbitrary bytes; or, for an input starting with [`MUTATE_PREFIX`],
/// a script of mutations applied to a valid envelope (see [`envelope_mutate`]); or, for one
/// starting with [`SIGN_PREFIX`], the rest signed (see [`envelope_signed`]).
pub fn envelope(data: &[u8]) {
    if let Some(script) = data.strip_prefix(MUTATE_PREFIX) {
        envelope_mutate(script);
    } else if let Some(unsigned) = data.strip_prefix(SIGN_PREFIX) {
        envelope_signed(unsigned);
    } else {
        envelope_raw(data);
    }
}

/// Appends a valid tag to `unsigned` (a header, then a payload): format 1 if the header's
/// format field says 1, else format 2. Shorter than a header: returned as it is.
pub fn sign(unsigned: &[u8]) -> Vec<u8> {
    let Some((head, payload)) = unsigned.split_first_chunk::<HEADER_LEN>() else {
        return unsigned.to_vec();
    };
    let tag = if head[8..10] == [1, 0] {
        tag_v1(head, payload)
    } else {
        format::tag(ring().current(), head, payload)
    };
    [unsigned, &tag[..]].concat()
}

/// The structured variant behind the tag: the input signed with the ring's key. Whatever
/// `open` accepts must be canonical: its header re-encodes to exactly the signed header bytes
/// (the format field aside, which `encode` sets to the current format).
pub fn envelope_signed(unsigned: &[u8]) {
    let signed = sign(unsigned);
    if open_all_ways(&signed) {
        let opened = open(ring(), &signed, &Expect::default()).expect("accepted above");
        let encoded = opened.header.encode().expect("an accepted name is valid");
        assert_eq!(&encoded[..8], &signed[..8]);
        assert_eq!(&encoded[10..], &signed[10..HEADER_LEN]);
        assert!(format::is_readable_format(u16::from_le_bytes([
            signed[8], signed[9]
        ])));
    }
}

fn expect_fuzz_state() -> Expect<'static> {
    Expect {
        name: Some(FuzzState::NAME),
        sequence: Some(1),
        min_version: Some(FuzzState::OLDEST_VERSION),
        max_version: Some(FuzzState::VERSION),
    }
}

/// Opens `bytes` with no expectations and with every one, with `open` and `open_with`, checks
/// they agree, and returns whether the envelope was accepted without expectations.
fn open_all_ways(bytes: &[u8]) -> bool {
    let ring = ring();
    let loose = open(ring, bytes, &Expect::default());
    let strict = open(ring, bytes, &expect_fuzz_state());
    let strict_with = open_with(ring, bytes, &expect_fuzz_state(), |p| p.as_ptr());
    let loose_with = open_with(ring, bytes, &Expect::default(), |p| p.len());
    // Expectations only take away.
    if strict.is_ok() {
        assert!(loose.is_ok());
    }
    // `open_with` is `open` plus a side computation on the same payload slice.
    match (&strict, &strict_with) {
        (Ok(a), Ok((b, ptr))) => {
            assert_eq!(a.header, b.header);
            assert_eq!(a.payload, b.payload);
            assert_eq!(*ptr, a.payload.as_ptr());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("open and open_with disagree: {a:?} / {b:?}"),
    }
    match (&loose, &loose_with) {
        (Ok(a), Ok((b, len))) => {
            assert_eq!(a.header, b.header);
            assert_eq!(*len, a.payload.len());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("open and open_with disagree: {a:?} / {b:?}"),
    }
    if let Ok(opened) = &loose {
        // What an accepted envelope guarantees.
        assert_eq!(opened.payload.len() as u64, opened.header.payload_len);
        assert_eq!(bytes.len(), HEADER_LEN + opened.payload.len() + TAG_LEN);
        assert!(validate_name(&opened.header.name).is_ok());
        assert_eq!(opened.header.rkyv_format, RkyvFormat::CURRENT);
        assert_eq!(
            Header::decode_unverified(bytes).as_ref(),
            Ok(&opened.header)
        );
    }
    loose.is_ok()
}

fn envelope_raw(data: &[u8]) {
    let _ = open_all_ways(data);
    // The same bytes 16-byte aligned, as a backend hands them out.
    let mut aligned = persist_core::rkyv::util::AlignedVec::<16>::with_capacity(data.len());
    aligned.extend_from_slice(data);
    let _ = open_all_ways(&aligned);
}

/// The valid envelopes the mutation scripts start from: format 2 with payloads of several
/// sizes (one a real `FuzzState`), and format 1.
pub fn originals() -> &'static [Vec<u8>] {
    static ORIGINALS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ORIGINALS.get_or_init(|| {
        let payload = sample_v2(3).encode().expect("encodes");
        vec![
            seal_header(1, b"hello"),
            seal_header(1, b""),
            seal_header(1, &payload),
            seal_v1(1, b"format one payload"),
        ]
    })
}

fn fuzz_header(sequence: u64) -> Header {
    Header {
        key_id: ring().current().id(),
        name: FuzzState::NAME.into(),
        schema_version: FuzzState::VERSION,
        fingerprint: FuzzState::fingerprint(),
        rkyv_format: RkyvFormat::CURRENT,
        sequence,
        created_at_nanos: 1_700_000_000_000_000_000,
        payload_len: 0,
    }
}

fn seal_header(sequence: u64, payload: &[u8]) -> Vec<u8> {
    seal(ring(), fuzz_header(sequence), payload).expect("valid name")
}

/// A format-1 envelope (`HMAC(key, DOMAIN_V1 ‖ header ‖ payload)`, format field 1), as an older
/// build wrote it.
pub fn seal_v1(sequence: u64, payload: &[u8]) -> Vec<u8> {
    let mut h = fuzz_header(sequence);
    h.payload_len = payload.len() as u64;
    let mut head = h.encode().expect("valid name");
    head[8..10].copy_from_slice(&1u16.to_le_bytes());
    let tag = tag_v1(&head, payload);
    [&head[..], payload, &tag[..]].concat()
}

/// The format-1 tag: `HMAC-SHA256(key, DOMAIN_V1 ‖ header ‖ payload)`.
fn tag_v1(head: &[u8], payload: &[u8]) -> [u8; TAG_LEN] {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(ring().current().secret()).expect("any key length");
    mac.update(format::DOMAIN_V1);
    mac.update(head);
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// Applies one mutation (4 script bytes: op, position low, position high, value) to `bytes`.
fn apply(bytes: &mut Vec<u8>, op: &[u8]) {
    let [kind, lo, hi, value] = [op[0], op[1], op[2], op[3]];
    let len = bytes.len();
    let pos = usize::from(u16::from_le_bytes([lo, hi]));
    match kind % 8 {
        // Overwrite a byte.
        0 if len > 0 => bytes[pos % len] = value,
        // Flip bits (never a no-op).
        1 if len > 0 => bytes[pos % len] ^= value.max(1),
        // Insert a byte.
        2 => bytes.insert(pos % (len + 1), value),
        // Remove a byte.
        3 if len > 0 => {
            bytes.remove(pos % len);
        }
        // Truncate.
        4 => bytes.truncate(pos % (len + 1)),
        // Append `value` copies of a byte.
        5 => bytes.extend(std::iter::repeat_n(lo, usize::from(value))),
        // Overwrite a little-endian u64 field (lengths, sequence, …) with a small value.
        6 if len >= 8 => {
            let at = pos % (len - 7);
            bytes[at..at + 8].copy_from_slice(&u64::from(value).to_le_bytes());
        }
        // Swap two bytes.
        7 if len > 0 => bytes.swap(pos % len, usize::from(value) % len),
        _ => {}
    }
}

/// The structured variant: `script[0]` picks an original from [`originals`], each following
/// 4 bytes are one mutation. Any mutated envelope that opens must be the original, byte for
/// byte: anything else would be a forgery.
pub fn envelope_mutate(script: &[u8]) {
    let Some((&pick, ops)) = script.split_first() else {
        return;
    };
    let originals = originals();
    let original = &originals[usize::from(pick) % originals.len()];
    let mut bytes = original.clone();
    for op in ops.chunks_exact(4).take(64) {
        apply(&mut bytes, op);
    }
    if open_all_ways(&bytes) {
        assert_eq!(&bytes, original, "a mutated envelope was accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// store_load and store_open

/// Separates the generations in a store target's input: piece `i` (from 0) becomes generation
/// `i + 1` of `fuzz_state`; a piece starting with [`SIGN_PREFIX`] is signed first (see
/// [`sign`]), so the fuzzer reaches the fingerprint check, validation and migration of
/// payloads it wrote.
pub const SEPARATOR: &[u8] = b"\n--persist-fuzz-next-generation--\n";
/// The most generations one input makes.
pub const MAX_GENERATIONS: usize = 8;

/// Splits a store target's input into generations.
pub fn split_generations(data: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while pieces.len() + 1 < MAX_GENERATIONS {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                pieces.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    pieces.push(rest);
    pieces
}

/// Joins generations into a store target's input.
pub fn join_generations(generations: &[Vec<u8>]) -> Vec<u8> {
    generations.join(SEPARATOR)
}

fn store_with(data: &[u8]) -> (Store, usize) {
    let backend = MemoryBackend::new();
    let pieces = split_generations(data);
    for (i, piece) in pieces.iter().enumerate() {
        let bytes = match piece.strip_prefix(SIGN_PREFIX) {
            Some(unsigned) => sign(unsigned),
            None => piece.to_vec(),
        };
        backend
            .insert_raw(&generation_key(FuzzState::NAME, i as u64 + 1), &bytes)
            .expect("fresh keys");
    }
    let store = Store::new(Box::new(backend), ring().clone(), StoreConfig::default());
    (store, pieces.len())
}

fn check_load_error(error: &LoadError, generations: usize) {
    let _ = error.to_string();
    match error {
        // Every generation corrupt: each one walked past and reported.
        LoadError::AllInvalid { rejected, .. } => {
            assert_eq!(rejected.len(), generations);
            assert!(rejected.iter().all(|r| r.kind() == RejectKind::Corrupt));
        }
        // Stopped at an authentic generation it cannot use, after walking past corrupt ones.
        LoadError::Blocked {
            kind,
            generation,
            rejected,
            ..
        } => {
            assert_ne!(*kind, RejectKind::Corrupt);
            assert_eq!(generation.kind(), *kind);
            assert!(rejected.len() < generations);
            assert!(rejected.iter().all(|r| r.kind() == RejectKind::Corrupt));
        }
        other => panic!("unexpected load error with {generations} generations: {other:?}"),
    }
}

/// `Store::load::<FuzzState>` over the input's generations: a value or a typed error.
pub fn store_load(data: &[u8]) {
    let (store, generations) = store_with(data);
    match store.load::<FuzzState>() {
        Ok(loaded) => {
            let _ = loaded.report.to_string();
            assert!((1..=generations as u64).contains(&loaded.report.sequence));
            assert!(loaded.value.encode().is_ok());
        }
        Err(error) => check_load_error(&error, generations),
    }
}

/// `Store::open::<FuzzState>` over the input's generations: a view (every field readable) or a
/// typed error, and consistent with `Store::load`.
pub fn store_open(data: &[u8]) {
    let (store, generations) = store_with(data);
    let opened = store.open::<FuzzState>();
    let loaded = store.load::<FuzzState>();
    match opened {
        Ok(view) => {
            let _ = view.report().to_string();
            let archived = view.archived();
            let mut sum = archived.counter.to_native() as f64 + archived.label.len() as f64;
            for item in archived.items.iter() {
                sum += item.id.to_native() as f64;
                sum += item.tag.as_ref().map_or(0, |t| t.len()) as f64;
                sum += item
                    .weights
                    .iter()
                    .map(|w| f64::from(w.to_native()))
                    .sum::<f64>();
            }
            for (step, value) in archived.history.iter().map(|p| (&p.0, &p.1)) {
                sum += f64::from(step.to_native()) + value.to_native();
            }
            std::hint::black_box(sum);
            // `load` picks the same generation and decodes it to the same value.
            let loaded = loaded.expect("open found a valid generation, load must too");
            assert_eq!(loaded.report.sequence, view.report().sequence);
            assert!(loaded.report.migrations.is_empty());
            let deserialised: FuzzState =
                persist_core::codec::decode::<FuzzState>(archived_bytes(&view)).expect("valid");
            assert_eq!(format!("{deserialised:?}"), format!("{:?}", loaded.value));
        }
        Err(OpenError::OlderVersion {
            sequence, found, ..
        }) => {
            assert!(found < FuzzState::VERSION);
            // `open` stops at an authentic older generation without validating its payload;
            // `load` decodes it and may pass over it to an older one.
            if let Ok(loaded) = loaded {
                assert!(loaded.report.sequence <= sequence);
                if loaded.report.sequence == sequence {
                    assert_eq!(loaded.report.migrations.len(), 1);
                }
            }
        }
        Err(OpenError::Load(error)) => {
            check_load_error(&error, generations);
            let _ = OpenError::Load(error).to_string();
            assert!(loaded.is_err());
        }
        Err(other) => panic!("an open error this target does not know: {other}"),
    }
}

fn archived_bytes<T: persist_core::rkyv::Archive + 'static>(view: &persist_core::View<T>) -> &[u8] {
    let bytes = view.generation_bytes();
    &bytes[HEADER_LEN..bytes.len() - TAG_LEN]
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Generations `1..` of `fuzz_state` as a real store writes them, one per value.
pub fn saved_generations(values: &[&dyn Fn(&Store)]) -> Vec<Vec<u8>> {
    let backend = MemoryBackend::new();
    let store = Store::new(
        Box::new(backend.clone()),
        ring().clone(),
        StoreConfig::default().with_retain(usize::MAX),
    );
    for save in values {
        save(&store);
    }
    backend
        .list(&format!("{}/", FuzzState::NAME))
        .expect("lists")
        .iter()
        .map(|meta| backend.get(&meta.key).expect("reads").to_vec())
        .collect()
}

fn v1(n: u64) -> impl Fn(&Store) {
    move |s: &Store| {
        s.save(&sample_v1(n)).expect("saves");
    }
}

fn v2(n: u64) -> impl Fn(&Store) {
    move |s: &Store| {
        s.save(&sample_v2(n)).expect("saves");
    }
}

/// The seed corpus of every persist-core target: `(target, file name, bytes)`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, format!("seed-{name}"), bytes));
    };

    // Single valid generations of several sizes and both versions.
    let singles: Vec<(String, Vec<u8>)> = [0u64, 1, 3, 20, 200]
        .iter()
        .flat_map(|&n| {
            [
                (format!("v1-{n}"), saved_generations(&[&v1(n)]).remove(0)),
                (format!("v2-{n}"), saved_generations(&[&v2(n)]).remove(0)),
            ]
        })
        .collect();
    for (name, bytes) in &singles {
        add("header", name, bytes.clone());
        add("envelope", name, bytes.clone());
        add("store_load", name, bytes.clone());
        add("store_open", name, bytes.clone());
    }
    // Format 1, and edge cases of the envelope layout.
    let format1 = seal_v1(1, &sample_v2(2).encode().expect("encodes"));
    let empty = seal_header(1, b"");
    let mut long_name = empty.clone();
    long_name[30] = 255;
    let mut bad_utf8 = empty.clone();
    bad_utf8[88] = 0xff;
    let edge: Vec<(&str, Vec<u8>)> = vec![
        ("format1", format1.clone()),
        ("empty-payload", empty.clone()),
        ("empty", Vec::new()),
        ("magic-only", format::MAGIC.to_vec()),
        ("zero-header", {
            let mut b = vec![0; HEADER_LEN + TAG_LEN];
            b[..8].copy_from_slice(&format::MAGIC);
            b
        }),
        ("name-len-255", long_name),
        ("name-not-utf8", bad_utf8),
        ("one-short", empty[..empty.len() - 1].to_vec()),
    ];
    for (name, bytes) in &edge {
        add("header", name, bytes.clone());
        add("envelope", name, bytes.clone());
        add("store_load", name, bytes.clone());
        add("store_open", name, bytes.clone());
    }
    // Unsigned envelopes for the signing variant, and signed pieces for the store targets.
    let unsigned = |sealed: &[u8]| sealed[..sealed.len() - TAG_LEN].to_vec();
    for (name, bytes) in singles.iter().take(6).chain(
        &edge[..2]
            .iter()
            .map(|(n, b)| (n.to_string(), b.clone()))
            .collect::<Vec<_>>(),
    ) {
        let signed_seed = [SIGN_PREFIX, &unsigned(bytes)].concat();
        add("envelope", &format!("sign-{name}"), signed_seed.clone());
        add("store_load", &format!("sign-{name}"), signed_seed.clone());
        add("store_open", &format!("sign-{name}"), signed_seed);
    }
    // Mutation scripts for the structured envelope variant.
    for pick in 0..originals().len() as u8 {
        add(
            "envelope",
            &format!("mut-none-{pick}"),
            [MUTATE_PREFIX, &[pick]].concat(),
        );
        // Flip a payload byte, rewrite the payload length, truncate the tag, swap header bytes.
        let script: Vec<u8> = [
            MUTATE_PREFIX,
            &[pick],
            &[1, 170, 0, 1],
            &[6, 80, 0, 3],
            &[4, 0xff, 0xff, 0],
            &[7, 8, 0, 9],
        ]
        .concat();
        add("envelope", &format!("mut-some-{pick}"), script);
    }

    // Several generations: migrations, walking back over bad ones, older-version views.
    let mixed = saved_generations(&[&v1(2), &v2(5), &v2(40)]);
    add("store_load", "v1-v2-v2", join_generations(&mixed));
    add("store_open", "v1-v2-v2", join_generations(&mixed));
    let mut corrupt_newest = saved_generations(&[&v2(3), &v2(4)]);
    let last = corrupt_newest.last_mut().expect("two");
    let at = HEADER_LEN + 4;
    last[at] ^= 0x55;
    add(
        "store_load",
        "v2-corrupt",
        join_generations(&corrupt_newest),
    );
    add(
        "store_open",
        "v2-corrupt",
        join_generations(&corrupt_newest),
    );
    let mut truncated_newest = saved_generations(&[&v1(7), &v1(8)]);
    let last = truncated_newest.last_mut().expect("two");
    last.truncate(last.len() / 2);
    add(
        "store_load",
        "v1-truncated",
        join_generations(&truncated_newest),
    );
    add(
        "store_open",
        "v1-truncated",
        join_generations(&truncated_newest),
    );
    let renamed = saved_generations(&[&v2(1), &v2(2)]);
    let swapped = vec![renamed[1].clone(), renamed[0].clone()];
    add("store_load", "swapped", join_generations(&swapped));
    add("store_open", "swapped", join_generations(&swapped));
    out
}

/// Sanity of the seeds: each valid single generation loads and opens.
pub fn check_seeds_are_valid() {
    for n in [0, 3, 20] {
        let data = saved_generations(&[&v2(n)]).remove(0);
        let (store, _) = store_with(&data);
        assert_eq!(
            store.load::<FuzzState>().expect("loads").value,
            sample_v2(n)
        );
        assert!(store.open::<FuzzState>().is_ok());
        let data = saved_generations(&[&v1(n)]).remove(0);
        let (store, _) = store_with(&data);
        assert_eq!(
            store.load::<FuzzState>().expect("loads").value,
            FuzzState::from(sample_v1(n))
        );
    }
    for original in originals() {
        assert!(open(ring(), original, &Expect::default()).is_ok());
        // Signing an envelope's unsigned part gives it back.
        let unsigned = &original[..original.len() - TAG_LEN];
        assert_eq!(&sign(unsigned), original);
    }
    let data = saved_generations(&[&v1(4)]).remove(0);
    let signed = [SIGN_PREFIX, &data[..data.len() - TAG_LEN]].concat();
    let (store, _) = store_with(&signed);
    assert_eq!(
        store.load::<FuzzState>().expect("loads").value,
        FuzzState::from(sample_v1(4))
    );
}
