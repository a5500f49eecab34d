//! `#[derive(Persist)]` with `#[persist(...)]` as its helper attribute, on types that derive
//! rkyv's traits themselves: the same impls as the attribute form, fingerprint included.

// Both macros in scope: the helper below the derive is not ambiguous.
use persist_core::rkyv::{Archive, Deserialize, Serialize};
use persist_core::{MemoryBackend, Persist, Store, StoreConfig, persist};

mod attribute {
    use persist_core::persist;

    #[persist(nested)]
    #[derive(Clone, Debug, PartialEq)]
    pub struct Position {
        pub ticket: u64,
        pub entry: f64,
    }

    #[persist(name = "book", version = 1)]
    #[derive(Clone, Debug, PartialEq)]
    pub struct Book {
        pub positions: Vec<Position>,
        pub note: String,
    }
}

#[derive(Archive, Serialize, Deserialize, Persist, Clone, Debug, PartialEq)]
#[persist(nested)]
#[rkyv(crate = persist_core::rkyv)]
pub struct Position {
    pub ticket: u64,
    pub entry: f64,
}

#[derive(Archive, Serialize, Deserialize, Persist, Clone, Debug, PartialEq)]
#[persist(name = "book", version = 1)]
#[rkyv(crate = persist_core::rkyv)]
pub struct BookV1 {
    pub positions: Vec<Position>,
    pub note: String,
}

#[derive(Archive, Serialize, Deserialize, Persist, Clone, Debug, PartialEq)]
#[persist(name = "book", version = 2, from = BookV1)]
#[rkyv(crate = persist_core::rkyv)]
pub struct Book {
    pub positions: Vec<Position>,
    pub note: String,
    pub limit: u32,
}

impl From<BookV1> for Book {
    fn from(old: BookV1) -> Self {
        Book {
            positions: old.positions,
            note: old.note,
            limit: 10,
        }
    }
}

/// A crate with its own rkyv 0.8 dependency: rkyv's derives at their default `::rkyv` path.
mod own_rkyv {
    use persist_core::Persist;

    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Persist, Debug, PartialEq)]
    #[persist(name = "book", version = 1)]
    pub struct Book {
        pub positions: Vec<super::Position>,
        pub note: String,
    }
}

// The attribute form still works beside the derive in the same module.
#[persist(name = "other", version = 1)]
pub struct Other {
    pub a: u8,
}

#[test]
fn derive_and_attribute_give_the_same_fingerprint() {
    assert_eq!(BookV1::fingerprint(), attribute::Book::fingerprint());
    assert_eq!(BookV1::descriptor_of(1), attribute::Book::descriptor_of(1));
    assert_eq!(own_rkyv::Book::fingerprint(), BookV1::fingerprint());
    assert_eq!(<BookV1 as Persist>::NAME, "book");
    assert_eq!(Book::OLDEST_VERSION, 1);
    assert_eq!(Book::fingerprint_of(1), Some(BookV1::fingerprint()));
    assert_ne!(Book::fingerprint(), BookV1::fingerprint());
    assert_eq!(Other::VERSION, 1);
}

#[test]
fn derived_states_save_load_and_migrate() {
    let store = Store::new(
        Box::new(MemoryBackend::new()),
        persist_core::Keyring::new(
            persist_core::Key::from_bytes(b"persist derive test key, 32+ bytes long".to_vec())
                .unwrap(),
        ),
        StoreConfig::default(),
    );
    let old = BookV1 {
        positions: vec![Position {
            ticket: 7,
            entry: 1.5,
        }],
        note: "v1".into(),
    };
    store.save(&old).unwrap();
    let loaded = store.load::<Book>().unwrap();
    assert_eq!(loaded.value.limit, 10);
    assert_eq!(loaded.value.positions, old.positions);
    // The attribute's state of the same name and layout reads the v1 generation as its own.
    assert_eq!(store.load::<attribute::Book>().unwrap().value.note, "v1");
}
