//! The filesystem backend's large-object paths the benches rely on: writes split into
//! writeback chunks and reads straight into (huge-page backed) uninitialised memory must return
//! every byte exactly, at every size around the chunk boundaries.

use persist_core::Backend;
use persist_fs::FsBackend;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 13) as u8)
        .collect()
}

#[test]
fn objects_around_the_chunk_sizes_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FsBackend::open(dir.path()).unwrap();
    let mib = 1 << 20;
    for (i, len) in [
        0,
        1,
        4 * mib - 1,
        4 * mib,
        8 * mib,
        8 * mib + 17,
        21 * mib + 3,
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = pattern(len, i as u8);
        let key = format!("s/{i:020}.pst");
        // Odd part sizes, so chunk boundaries fall inside parts.
        let (a, rest) = bytes.split_at(len.min(160));
        let (b, c) = rest.split_at(rest.len() / 3);
        backend.put_new(&key, &[a, b, c]).unwrap();
        let got = backend.get(&key).unwrap();
        assert_eq!(got.len(), len, "length of {key}");
        assert!(*got == *bytes, "content of {key}");
        if len > 0 {
            assert_eq!(got.as_ptr() as usize % 16, 0, "alignment of {key}");
        }
    }
}

#[test]
fn a_missing_object_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FsBackend::open(dir.path()).unwrap();
    let err = backend.get("s/00000000000000000001.pst").unwrap_err();
    assert!(
        matches!(err, persist_core::BackendError::NotFound { .. }),
        "{err}"
    );
}
