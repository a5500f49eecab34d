//! Every supported shape round-trips through a real store: named, tuple and unit structs, enums
//! as fields and as states, and every supported field type.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use persist_core::{Key, Keyring, Persist, Store, StoreConfig, persist};
use persist_fs::FsBackend;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FsBackend::open(dir.path()).expect("open");
    let ring = Keyring::new(Key::from_bytes(vec![7; 32]).expect("key"));
    (
        dir,
        Store::new(Box::new(backend), ring, StoreConfig::default()),
    )
}

#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Marker;

#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Price(pub i64, pub u8);

#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub enum Order {
    Cancel,
    Limit { price: Price, qty: u32 },
    Market(u32, bool),
}

#[persist(name = "everything", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct Everything {
    pub u: (u8, u16, u32, u64, u128, usize),
    pub i: (i8, i16, i32, i64, i128, isize),
    pub f: (f32, f64),
    pub b: bool,
    pub c: char,
    pub s: String,
    pub v: Vec<Order>,
    pub o: Option<Box<Order>>,
    pub boxed_str: Box<str>,
    pub boxed_slice: Box<[u16]>,
    pub a: [Price; 2],
    pub bm: BTreeMap<String, Vec<f64>>,
    pub bs: BTreeSet<i32>,
    pub hm: HashMap<u64, Order>,
    pub hs: HashSet<char>,
    pub unit: (),
    pub marker: Marker,
}

#[persist(name = "tuple_state", version = 3)]
#[derive(Clone, Debug, PartialEq)]
pub struct TupleState(pub u64, pub Vec<Price>);

#[persist(name = "mode", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Idle,
    Trading { since: u64 },
}

fn everything() -> Everything {
    Everything {
        u: (1, 2, 3, 4, 5, 6),
        i: (-1, -2, -3, -4, -5, -6),
        f: (1.5, -2.25),
        b: true,
        c: 'λ',
        s: "a string longer than the eight inline bytes".into(),
        v: vec![
            Order::Cancel,
            Order::Limit {
                price: Price(-100, 2),
                qty: 9,
            },
            Order::Market(3, false),
        ],
        o: Some(Box::new(Order::Market(1, true))),
        boxed_str: "boxed".into(),
        boxed_slice: vec![1, 2, 3].into_boxed_slice(),
        a: [Price(1, 0), Price(2, 1)],
        bm: [("k".to_string(), vec![0.5])].into_iter().collect(),
        bs: [3, 1, 2].into_iter().collect(),
        hm: [(42, Order::Cancel)].into_iter().collect(),
        hs: ['x', 'y'].into_iter().collect(),
        unit: (),
        marker: Marker,
    }
}

#[test]
fn every_supported_field_type_round_trips() {
    let (_dir, store) = store();
    store.save(&everything()).expect("save");
    assert_eq!(
        store.load::<Everything>().expect("load").value,
        everything()
    );
    let view = store.open::<Everything>().expect("open");
    assert_eq!(
        view.s.as_str(),
        "a string longer than the eight inline bytes"
    );
    assert_eq!(view.v.len(), 3);
}

#[test]
fn tuple_struct_state_round_trips() {
    let (_dir, store) = store();
    let value = TupleState(9, vec![Price(5, 1)]);
    store.save(&value).expect("save");
    let loaded = store.load::<TupleState>().expect("load");
    assert_eq!(loaded.value, value);
    assert_eq!(loaded.report.schema_version, 3);
}

#[test]
fn enum_state_round_trips() {
    let (_dir, store) = store();
    store.save(&Mode::Idle).expect("save");
    store.save(&Mode::Trading { since: 77 }).expect("save");
    assert_eq!(
        store.load::<Mode>().expect("load").value,
        Mode::Trading { since: 77 }
    );
}

#[test]
fn tuple_struct_fields_are_described_by_index() {
    assert_eq!(
        persist_core::layout::descriptor::<Price>(),
        "struct:16/8{0@0:i64:8/8,1@8:u8:1/1}"
    );
    assert_eq!(persist_core::layout::descriptor::<Marker>(), "struct:0/1{}");
    assert!(
        Mode::descriptor_of(1)
            .expect("v1")
            .contains("Idle#0,Trading#1(since:u64:8/8)")
    );
}
