//! The two envelope formats, checked against a straightforward implementation of `FORMAT.md`
//! written here with hmac and sha2 directly: format 2 is what `seal` writes, format 1 (from
//! older builds) still opens, and neither tag verifies as the other.

use hmac::{Hmac, Mac};
use persist_core::format;
use persist_core::format::{CHUNK_LEN, HEADER_LEN, TAG_LEN};
use persist_core::{EnvelopeError, Expect, Header};
use persist_core::{Fingerprint, Key, KeyId, Keyring, ObjectBytes, RkyvFormat};
use sha2::{Digest, Sha256};

const SECRET: [u8; 32] = [0x42; 32];

fn ring() -> Keyring {
    Keyring::new(Key::from_bytes(SECRET.to_vec()).unwrap())
}

fn header() -> Header {
    Header {
        key_id: KeyId([0; 8]),
        name: "formats".into(),
        schema_version: 3,
        fingerprint: Fingerprint([7; 32]),
        rkyv_format: RkyvFormat::CURRENT,
        sequence: 11,
        created_at_nanos: 1_700_000_000_000_000_000,
        payload_len: 0,
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 253) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// Format 1's tag, as FORMAT.md describes it.
fn oracle_v1(signed: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(&SECRET).unwrap();
    mac.update(b"persist/envelope/v1\0");
    mac.update(signed);
    mac.finalize().into_bytes().into()
}

/// Format 2's tag, as FORMAT.md describes it: one thread, chunk by chunk.
fn oracle_v2(signed: &[u8]) -> [u8; 32] {
    let (head, payload) = signed.split_at(HEADER_LEN);
    let mut mac = Hmac::<Sha256>::new_from_slice(&SECRET).unwrap();
    mac.update(b"persist/envelope/v2\0");
    mac.update(head);
    for chunk in payload.chunks(1 << 20) {
        mac.update(&Sha256::digest(chunk));
    }
    mac.finalize().into_bytes().into()
}

/// A format-1 envelope, as an older build wrote it.
fn seal_v1(payload: &[u8]) -> Vec<u8> {
    let mut h = header();
    h.key_id = ring().current().id();
    h.payload_len = payload.len() as u64;
    let mut bytes = h.encode().unwrap().to_vec();
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(payload);
    let tag = oracle_v1(&bytes);
    bytes.extend_from_slice(&tag);
    bytes
}

#[test]
fn seal_writes_format_2_with_the_documented_tag() {
    assert_eq!(CHUNK_LEN, 1 << 20);
    // Empty, one partial chunk, exact chunks, and enough chunks to be hashed in parallel.
    for len in [0, 1, 4096, CHUNK_LEN, 2 * CHUNK_LEN + 17, 9 * CHUNK_LEN + 5] {
        let p = payload(len);
        let bytes = format::seal(&ring(), header(), &p).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 2);
        let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        assert_eq!(tag, oracle_v2(signed), "payload of {len} bytes");
        let aligned = ObjectBytes::copy_from(&bytes);
        let opened = format::open(&ring(), &aligned, &Expect::default()).unwrap();
        assert_eq!(opened.payload, &p[..]);
    }
}

#[test]
fn format_1_generations_of_older_builds_still_open() {
    for len in [0, 100, 5 * CHUNK_LEN + 1] {
        let p = payload(len);
        let aligned = ObjectBytes::copy_from(&seal_v1(&p));
        let expect = Expect {
            name: Some("formats"),
            sequence: Some(11),
            ..Expect::default()
        };
        let opened = format::open(&ring(), &aligned, &expect).unwrap();
        assert_eq!(opened.payload, &p[..]);
        assert_eq!(opened.header.schema_version, 3);
    }
}

#[test]
fn relabelling_the_format_never_verifies() {
    let p = payload(3 * CHUNK_LEN);
    // A format-2 envelope relabelled as format 1, and the reverse.
    let mut v2 = format::seal(&ring(), header(), &p).unwrap();
    v2[8..10].copy_from_slice(&1u16.to_le_bytes());
    let mut v1 = seal_v1(&p);
    v1[8..10].copy_from_slice(&2u16.to_le_bytes());
    for bytes in [v2, v1] {
        let aligned = ObjectBytes::copy_from(&bytes);
        assert_eq!(
            format::open(&ring(), &aligned, &Expect::default()).unwrap_err(),
            EnvelopeError::BadTag
        );
    }
}

#[test]
fn a_chunk_swap_or_a_flip_in_any_chunk_is_caught() {
    let p = payload(6 * CHUNK_LEN);
    let good = format::seal(&ring(), header(), &p).unwrap();
    // Two chunks exchanged: every chunk digest is still a valid digest, in the wrong place.
    let mut swapped = good.clone();
    let (a, b) = (HEADER_LEN, HEADER_LEN + CHUNK_LEN);
    let first = swapped[a..a + CHUNK_LEN].to_vec();
    swapped.copy_within(b..b + CHUNK_LEN, a);
    swapped[b..b + CHUNK_LEN].copy_from_slice(&first);
    assert_ne!(swapped, good);
    let mut tampered = vec![swapped];
    for chunk in 0..6 {
        let mut flipped = good.clone();
        flipped[HEADER_LEN + chunk * CHUNK_LEN + 12_345] ^= 0x10;
        tampered.push(flipped);
    }
    for bytes in tampered {
        let aligned = ObjectBytes::copy_from(&bytes);
        assert_eq!(
            format::open(&ring(), &aligned, &Expect::default()).unwrap_err(),
            EnvelopeError::BadTag
        );
    }
}

#[test]
fn an_unknown_format_is_typed() {
    let sealed = format::seal(&ring(), header(), b"x").unwrap();
    for format in [0u16, 4, 0xFFFF] {
        // A format this build does not know, whose tag no known format explains: a newer
        // program's envelope, typed as such (a load stops on it rather than walk past).
        let mut bytes = sealed.clone();
        bytes[8..10].copy_from_slice(&format.to_le_bytes());
        let n = bytes.len();
        bytes[n - 32..].copy_from_slice(&[0x5A; 32]);
        let aligned = ObjectBytes::copy_from(&bytes);
        let err = format::open(&ring(), &aligned, &Expect::default()).unwrap_err();
        assert_eq!(err, EnvelopeError::UnsupportedFormat { found: format });
        assert!(err.to_string().contains("reads 1 to 3"), "{err}");
        // The same field altered in an envelope of a known format: the tag verifies with the
        // format restored, so it is damage, not a newer format.
        let mut damaged = sealed.clone();
        damaged[8..10].copy_from_slice(&format.to_le_bytes());
        let aligned = ObjectBytes::copy_from(&damaged);
        let err = format::open(&ring(), &aligned, &Expect::default()).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::DamagedHeader {
                field: "format version"
            }
        );
    }
}
