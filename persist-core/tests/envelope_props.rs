//! Property tests of the envelope: random headers and payloads round-trip, and the decoder is
//! safe on arbitrary bytes.

use persist_core::format;
use persist_core::{EnvelopeError, Expect, Header};
use persist_core::{Fingerprint, Key, KeyId, Keyring, ObjectBytes, RkyvFormat};
use proptest::prelude::*;

fn ring() -> Keyring {
    Keyring::new(Key::from_bytes(vec![0x5A; 48]).unwrap())
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}"
}

prop_compose! {
    fn header()(
        name in name(),
        schema_version in any::<u32>(),
        fingerprint in any::<[u8; 32]>(),
        sequence in any::<u64>(),
        created_at_nanos in any::<u64>(),
    ) -> Header {
        Header {
            key_id: KeyId([0; 8]),
            name,
            schema_version,
            fingerprint: Fingerprint(fingerprint),
            rkyv_format: RkyvFormat::CURRENT,
            sequence,
            created_at_nanos,
            payload_len: 0,
        }
    }
}

proptest! {
    #[test]
    fn seal_then_open_round_trips(header in header(), payload in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let ring = ring();
        let bytes = format::seal(&ring, header.clone(), &payload).unwrap();
        prop_assert_eq!(bytes.len(), format::HEADER_LEN + payload.len() + format::TAG_LEN);
        let aligned = ObjectBytes::copy_from(&bytes);
        let expect = Expect {
            name: Some(&header.name),
            sequence: Some(header.sequence),
            min_version: Some(header.schema_version),
            max_version: Some(header.schema_version),
        };
        let opened = format::open(&ring, &aligned, &expect).unwrap();
        prop_assert_eq!(opened.payload, &payload[..]);
        prop_assert_eq!(opened.payload.as_ptr() as usize % 16, 0);
        let mut want = header;
        want.key_id = ring.current().id();
        want.payload_len = payload.len() as u64;
        prop_assert_eq!(opened.header, want);
    }

    #[test]
    fn open_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let aligned = ObjectBytes::copy_from(&bytes);
        prop_assert!(format::open(&ring(), &aligned, &Expect::default()).is_err());
        let _ = Header::decode_unverified(&aligned);
    }

    #[test]
    fn open_never_panics_on_arbitrary_bytes_behind_a_valid_magic(
        mut bytes in proptest::collection::vec(any::<u8>(), 192..600),
    ) {
        bytes[..8].copy_from_slice(&format::MAGIC);
        let aligned = ObjectBytes::copy_from(&bytes);
        let err = format::open(&ring(), &aligned, &Expect::default()).unwrap_err();
        prop_assert!(matches!(err, EnvelopeError::UnknownKey(_) | EnvelopeError::BadTag));
    }

    #[test]
    fn mismatched_expectations_are_rejected(header in header(), other_seq in any::<u64>()) {
        prop_assume!(other_seq != header.sequence);
        let ring = ring();
        let bytes = format::seal(&ring, header.clone(), b"payload").unwrap();
        let expect = Expect { sequence: Some(other_seq), ..Expect::default() };
        let is_wrong_sequence = matches!(
            format::open(&ring, &bytes, &expect),
            Err(EnvelopeError::WrongSequence { .. })
        );
        prop_assert!(is_wrong_sequence);
    }
}

#[test]
fn future_and_too_old_versions_are_typed() {
    let ring = ring();
    let header = Header {
        key_id: KeyId([0; 8]),
        name: "s".into(),
        schema_version: 5,
        fingerprint: Fingerprint([1; 32]),
        rkyv_format: RkyvFormat::CURRENT,
        sequence: 1,
        created_at_nanos: 0,
        payload_len: 0,
    };
    let bytes = format::seal(&ring, header, b"").unwrap();
    let future = Expect {
        max_version: Some(4),
        ..Expect::default()
    };
    assert_eq!(
        format::open(&ring, &bytes, &future).unwrap_err(),
        EnvelopeError::FutureVersion {
            found: 5,
            newest_known: 4
        }
    );
    let old = Expect {
        min_version: Some(6),
        ..Expect::default()
    };
    assert_eq!(
        format::open(&ring, &bytes, &old).unwrap_err(),
        EnvelopeError::VersionTooOld {
            found: 5,
            oldest_known: 6
        }
    );
}

#[test]
fn invalid_names_are_refused_when_sealing() {
    for bad in ["", ".hidden", "a/b", "..", "x".repeat(65).as_str(), "é"] {
        let header = Header {
            key_id: KeyId([0; 8]),
            name: bad.to_string(),
            schema_version: 1,
            fingerprint: Fingerprint([0; 32]),
            rkyv_format: RkyvFormat::CURRENT,
            sequence: 1,
            created_at_nanos: 0,
            payload_len: 0,
        };
        assert!(
            matches!(
                format::seal(&ring(), header, b""),
                Err(EnvelopeError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_foreign_rkyv_format_is_rejected_after_the_tag() {
    let ring = ring();
    let header = Header {
        key_id: KeyId([0; 8]),
        name: "s".into(),
        schema_version: 1,
        fingerprint: Fingerprint([0; 32]),
        rkyv_format: RkyvFormat {
            version: 8,
            flags: 0b1000,
        },
        sequence: 1,
        created_at_nanos: 0,
        payload_len: 0,
    };
    let bytes = format::seal(&ring, header, b"x").unwrap();
    assert!(matches!(
        format::open(&ring, &bytes, &Expect::default()),
        Err(EnvelopeError::RkyvFormat { .. })
    ));
}

proptest! {
    /// A chunked envelope (format 3) whose chunk header and table are arbitrary but signed with
    /// the ring's key (a buggy or hostile writer holding the key): opening it never panics, and
    /// whatever opens has a table that accounts for every byte.
    #[test]
    fn signed_arbitrary_chunk_tables_never_panic(
        header in header(),
        base_sequence in any::<u64>(),
        depth in any::<u32>(),
        payload_len in 0u64..5000,
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        entries in proptest::collection::vec((0u32..3000, any::<u32>(), any::<[u8; 32]>()), 0..12),
        literal_len_delta in -2i64..=2,
    ) {
        let ring = ring();
        let entries: Vec<format::Entry> = entries
            .into_iter()
            .map(|(len, source, digest)| {
                // Half literal, half references to one of 16 base chunks.
                let source = if source & 1 == 0 { format::LITERAL } else { source % 16 };
                format::Entry { len, source, digest }
            })
            .collect();
        let literal_len = (data.len() as i64 + literal_len_delta).max(0) as u64;
        let chunk = format::ChunkHeader {
            base_sequence,
            base_tag: [7; 32],
            depth,
            chunk_count: entries.len() as u32,
            literal_len,
        };
        let header = Header { key_id: ring.current().id(), payload_len, ..header };
        let head = header.encode_chunked(&chunk).unwrap();
        let table = format::encode_table(&entries);
        let tag = format::chunked_tag(ring.current(), &head, &table);
        let bytes = [&head[..], &data, &table, &tag].concat();
        let aligned = ObjectBytes::copy_from(&bytes);
        prop_assert!(format::check_head(&aligned[..format::HEAD_LEN.min(aligned.len())], aligned.len() as u64).is_ok() == (literal_len == data.len() as u64));
        if let Ok(format::Sealed::Chunked(opened)) = format::open_sealed(&ring, &aligned, &Expect::default()) {
            let total: u64 = opened.chunks.entries.iter().map(|e| u64::from(e.len)).sum();
            prop_assert_eq!(total, opened.header.payload_len);
            prop_assert_eq!(opened.data.len() as u64, literal_len);
            prop_assert!(opened.chunks.header.depth <= format::MAX_DEPTH);
        }
        let _ = format::open(&ring, &aligned, &Expect::default());
    }
}
