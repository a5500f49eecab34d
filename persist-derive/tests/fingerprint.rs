//! Fingerprint properties: every layout change the issue lists changes the fingerprint; equal
//! layouts (even under other Rust names) give equal fingerprints; one fingerprint is pinned so a
//! change of the descriptor format or of rkyv's layout cannot slip by unnoticed.

use persist_core::layout::{Describer, Field, Shape, descriptor};
use persist_core::{Fingerprint, Persist, persist};
use proptest::prelude::*;

mod base {
    use super::persist;
    #[persist(name = "probe", version = 1)]
    pub struct Probe {
        pub a: u64,
        pub b: u64,
        pub c: f32,
    }
}

mod same_again {
    use super::persist;
    /// The same layout under another Rust name (as when a version is frozen as `ProbeV1`).
    #[persist(name = "probe", version = 1)]
    pub struct ProbeV1 {
        pub a: u64,
        pub b: u64,
        pub c: f32,
    }
}

mod renamed {
    use super::persist;
    #[persist(name = "probe", version = 1)]
    pub struct Probe {
        pub a: u64,
        pub bb: u64,
        pub c: f32,
    }
}

mod reordered {
    use super::persist;
    #[persist(name = "probe", version = 1)]
    pub struct Probe {
        pub a: u64,
        pub c: f32,
        pub b: u64,
    }
}

mod swapped {
    use super::persist;
    /// `a` and `b` swapped: same types at the same offsets, so rkyv's validation cannot tell.
    #[persist(name = "probe", version = 1)]
    pub struct Probe {
        pub b: u64,
        pub a: u64,
        pub c: f32,
    }
}

mod alias_f32 {
    use super::persist;
    pub type Px = f32;
    #[persist(name = "probe", version = 1)]
    pub struct Probe {
        pub a: u64,
        pub b: u64,
        pub c: Px,
    }
}

mod alias_f64 {
    use super::persist;
    pub type Px = f64;
    #[persist(name = "probe", version = 1)]
    pub struct Probe {
        pub a: u64,
        pub b: u64,
        pub c: Px,
    }
}

mod nested_a {
    use super::persist;
    #[persist(nested)]
    pub struct Inner {
        pub qty: u32,
    }
    #[persist(name = "outer", version = 1)]
    pub struct Outer {
        pub inner: Vec<Inner>,
    }
}

mod nested_b {
    use super::persist;
    /// Only the nested type changed (`u32` to `i32`): the outer struct's tokens are identical.
    #[persist(nested)]
    pub struct Inner {
        pub qty: i32,
    }
    #[persist(name = "outer", version = 1)]
    pub struct Outer {
        pub inner: Vec<Inner>,
    }
}

mod enum_ab {
    use super::persist;
    #[persist(nested)]
    pub enum Side {
        Buy,
        Sell,
    }
    #[persist(name = "sided", version = 1)]
    pub struct Sided {
        pub side: Side,
    }
}

mod enum_ba {
    use super::persist;
    #[persist(nested)]
    pub enum Side {
        Sell,
        Buy,
    }
    #[persist(name = "sided", version = 1)]
    pub struct Sided {
        pub side: Side,
    }
}

mod enum_discriminant {
    use super::persist;
    #[persist(nested)]
    pub enum Side {
        Buy = 4,
        Sell,
    }
    #[persist(name = "sided", version = 1)]
    pub struct Sided {
        pub side: Side,
    }
}

mod rich {
    use std::collections::{BTreeMap, HashMap};

    use super::persist;
    #[persist(nested)]
    pub enum Event {
        Tick,
        Fill { price: f64, qty: i32 },
        Note(String),
    }
    #[persist(name = "rich", version = 7)]
    pub struct Rich {
        pub small: (u8, i16, char, bool),
        pub big: [u128; 2],
        pub boxed: Box<str>,
        pub maybe: Option<Box<Event>>,
        pub ordered: BTreeMap<String, Vec<f32>>,
        pub hashed: HashMap<u64, Event>,
        pub events: Vec<Event>,
        pub size: usize,
    }
}

#[test]
fn each_layout_change_changes_the_fingerprint() {
    let base = base::Probe::fingerprint();
    for (what, other) in [
        ("renaming a field", renamed::Probe::fingerprint()),
        ("reordering fields", reordered::Probe::fingerprint()),
        (
            "swapping two same-typed fields",
            swapped::Probe::fingerprint(),
        ),
    ] {
        assert_ne!(base, other, "{what} must change the fingerprint");
    }
    assert_ne!(
        alias_f32::Probe::fingerprint(),
        alias_f64::Probe::fingerprint(),
        "changing a type alias's target must change the fingerprint"
    );
    assert_ne!(
        nested_a::Outer::fingerprint(),
        nested_b::Outer::fingerprint(),
        "changing a nested type must change the fingerprint"
    );
    assert_ne!(
        enum_ab::Sided::fingerprint(),
        enum_ba::Sided::fingerprint(),
        "changing an enum's variant order must change the fingerprint"
    );
    assert_ne!(
        enum_ab::Sided::fingerprint(),
        enum_discriminant::Sided::fingerprint(),
        "changing an enum's discriminants must change the fingerprint"
    );
}

#[test]
fn equal_layouts_have_equal_fingerprints() {
    assert_eq!(
        base::Probe::fingerprint(),
        same_again::ProbeV1::fingerprint()
    );
    assert_eq!(
        alias_f32::Probe::fingerprint(),
        base::Probe::fingerprint(),
        "an alias is its target"
    );
}

#[test]
fn name_and_version_are_part_of_the_fingerprint() {
    let d = base::Probe::descriptor_of(1).expect("v1");
    assert!(d.starts_with("state probe v1 (rkyv 0.8 (LE, aligned, 32-bit offsets)): "));
    assert_eq!(base::Probe::fingerprint(), Fingerprint::of_descriptor(&d));
}

#[test]
fn descriptors_record_offsets_sizes_variants_and_discriminants() {
    assert_eq!(
        descriptor::<base::Probe>(),
        "struct:24/8{a@0:u64:8/8,b@8:u64:8/8,c@16:f32:4/4}"
    );
    assert_eq!(
        descriptor::<reordered::Probe>(),
        "struct:24/8{a@0:u64:8/8,c@8:f32:4/4,b@16:u64:8/8}"
    );
    assert_eq!(
        descriptor::<enum_discriminant::Side>(),
        "enum:1/1{Buy#4,Sell#5}"
    );
    assert_eq!(
        descriptor::<rich::Event>(),
        "enum:24/8{Tick#0,Fill#1(price:f64:8/8,qty:i32:4/4),Note#2(0:String:8/4)}"
    );
}

/// Pinned: the same struct compiled by any later build gives this fingerprint. If this fails,
/// every stored generation of every state would be rejected: bump the descriptor format on
/// purpose, never by accident.
#[test]
fn fingerprint_snapshot_is_stable_across_builds() {
    assert_eq!(
        descriptor::<rich::Rich>(),
        "struct:96/16{small@0:Tuple:12/4<u8:1/1,i16:2/2,char:4/4,bool:1/1>,\
         big@16:Array2:32/16<u128:16/16>,boxed@48:Box:8/4<str:?>,\
         maybe@56:Option:8/4<Box:4/4<enum:24/8{Tick#0,Fill#1(price:f64:8/8,qty:i32:4/4),Note#2(0:String:8/4)}>>,\
         ordered@64:BTreeMap:8/4<String:8/4,Vec:8/4<f32:4/4>>,\
         hashed@72:HashMap:12/4<u64:8/8,enum:24/8{Tick#0,Fill#1(price:f64:8/8,qty:i32:4/4),Note#2(0:String:8/4)}>,\
         events@84:Vec:8/4<enum:24/8{Tick#0,Fill#1(price:f64:8/8,qty:i32:4/4),Note#2(0:String:8/4)}>,\
         size@92:usize:4/4}"
    );
    assert_eq!(
        rich::Rich::fingerprint().to_string(),
        "634b18e3f5efbb4db5ae5e6cd75b966e8f9ab77cc600d1ec835ce95f97d11581"
    );
}

/// A field list for the property test: identifier-like names and a choice of types.
fn field_specs() -> impl Strategy<Value = Vec<(String, u8)>> {
    prop::collection::vec(("[a-z_][a-z0-9_]{0,6}", 0u8..6), 0..6)
}

/// The describe functions a generated `Layout` impl would use for each type of the choice.
const TYPES: [fn(&mut Describer); 6] = [
    Describer::describe::<u8>,
    Describer::describe::<u64>,
    Describer::describe::<f64>,
    Describer::describe::<String>,
    Describer::describe::<Vec<u32>>,
    Describer::describe::<Option<i16>>,
];

/// The descriptor of a struct with these fields, built as generated code builds it.
fn spec_descriptor(spec: &[(String, u8)]) -> String {
    let fields: Vec<Field> = spec
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| Field {
            // `Field` wants a 'static name, as generated code has; leak the few the test makes.
            name: Box::leak(name.clone().into_boxed_str()),
            offset: Some(i * 8),
            describe: TYPES[usize::from(*ty)],
        })
        .collect();
    let mut d = Describer::default();
    d.structure(Shape::of::<u64>(), &fields);
    d.finish()
}

proptest! {
    /// Distinct field lists never share a descriptor (nor, barring SHA-256 collisions, a
    /// fingerprint): the encoding is unambiguous for identifier names.
    #[test]
    fn distinct_field_lists_have_distinct_fingerprints(a in field_specs(), b in field_specs()) {
        let (da, db) = (spec_descriptor(&a), spec_descriptor(&b));
        prop_assert_eq!(a == b, da == db);
        prop_assert_eq!(
            a == b,
            Fingerprint::of_descriptor(&da) == Fingerprint::of_descriptor(&db)
        );
    }
}
