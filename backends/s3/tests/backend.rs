//! The S3 backend against a real S3-compatible server (see `common`).

mod common;

use std::sync::{Arc, Barrier};

use common::{Blob, keyring, s3_env};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use persist_core::format::generation_key;
use persist_core::{Backend, BackendError, LoadError, RejectReason, Store, StoreConfig};

fn config(retain: usize) -> StoreConfig {
    StoreConfig::default()
        .with_retain(retain)
        .with_space_reserve(0)
}

#[test]
fn store_round_trip_and_retention_on_s3() {
    let Some(env) = s3_env("store_round_trip_and_retention_on_s3") else {
        return;
    };
    let bucket = env.fresh_bucket("roundtrip");
    let store = Store::new(
        Box::new(env.backend(&bucket, "agents/exit")),
        keyring(),
        config(3),
    );
    for i in 1..=6 {
        let receipt = store.save(&Blob::new(i, 1000)).unwrap();
        assert_eq!(receipt.sequence, i);
        assert!(receipt.retention_error.is_none());
    }
    let loaded = store.load::<Blob>().unwrap();
    assert_eq!(loaded.value, Blob::new(6, 1000));
    assert!(loaded.report.is_clean());
    assert!(
        loaded.report.source.contains(&bucket),
        "{}",
        loaded.report.source
    );
    let seqs: Vec<u64> = store
        .generations("blob")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect();
    assert_eq!(seqs, vec![4, 5, 6]);
    assert_eq!(store.names().unwrap(), vec!["blob".to_string()]);

    // The keys live under the prefix in the bucket.
    let raw = env.backend(&bucket, "");
    let keys: Vec<String> = raw.list("").unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(
        keys,
        (4..=6)
            .map(|s| format!("agents/exit/{}", generation_key("blob", s)))
            .collect::<Vec<_>>()
    );

    // A second store on the same prefix continues the numbering.
    let again = Store::new(
        Box::new(env.backend(&bucket, "agents/exit")),
        keyring(),
        config(3),
    );
    assert_eq!(again.save(&Blob::new(7, 10)).unwrap().sequence, 7);
}

#[test]
fn load_falls_back_past_an_object_overwritten_through_the_raw_api() {
    let Some(env) = s3_env("load_falls_back_past_an_object_overwritten_through_the_raw_api") else {
        return;
    };
    let bucket = env.fresh_bucket("corrupt");
    let backend = env.backend(&bucket, "p");
    let raw = backend.object_store();
    let path = backend.path_of(&generation_key("blob", 3)).unwrap();
    let store = Store::new(Box::new(backend), keyring(), config(5));
    for i in 1..=3 {
        store.save(&Blob::new(i, 500)).unwrap();
    }
    let mut bytes = store
        .backend()
        .get(&generation_key("blob", 3))
        .unwrap()
        .to_vec();
    bytes[200] ^= 0x40;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(raw.put(&path, PutPayload::from(bytes)))
        .unwrap();

    let loaded = store.load::<Blob>().unwrap();
    assert_eq!(loaded.value, Blob::new(2, 500));
    assert_eq!(loaded.report.sequence, 2);
    assert_eq!(loaded.report.rejected.len(), 1);
    assert_eq!(loaded.report.rejected[0].sequence, 3);
    assert!(
        matches!(loaded.report.rejected[0].reason, RejectReason::Envelope(_)),
        "{}",
        loaded.report.rejected[0]
    );
    assert!(
        loaded.report.to_string().contains("rejected generation 3"),
        "{}",
        loaded.report
    );
}

fn small_multipart_backend(env: &common::S3Env, bucket: &str) -> persist_s3::S3Backend {
    env.builder()
        .bucket(bucket)
        .prefix("mp")
        .multipart_threshold(6 << 20)
        .part_size(5 << 20)
        .build()
        .unwrap()
}

#[test]
fn large_generations_go_multipart_and_stay_create_only() {
    let Some(env) = s3_env("large_generations_go_multipart_and_stay_create_only") else {
        return;
    };
    let bucket = env.fresh_bucket("multipart");
    let store = Store::new(
        Box::new(small_multipart_backend(&env, &bucket)),
        keyring(),
        config(2),
    );
    let big = Blob::new(1, 17 << 20);
    let receipt = store.save(&big).unwrap();
    assert!(receipt.bytes > 17 << 20);
    assert_eq!(store.load::<Blob>().unwrap().value, big);

    // A second multipart write of the same key is refused, and the first object is intact.
    let key = generation_key("blob", 1);
    let other = vec![7u8; 12 << 20];
    let err = store.backend().put_new(&key, &[&other]).unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err}");
    assert_eq!(store.load::<Blob>().unwrap().value, big);
    // The refused upload was aborted, not left behind.
    assert_eq!(common::incomplete_uploads(&env, &bucket), 0);

    // Nothing but the generation is in the bucket.
    let all = raw_keys(&env, &bucket);
    assert_eq!(all, vec![format!("mp/{key}")]);
}

/// Multipart uploads keep every byte in place whatever the write sizes: a threshold above the
/// part size (the buffered bytes leave as several parts at once), an object ending exactly on a
/// part boundary, a threshold below the part size, and writes that straddle parts.
#[test]
fn multipart_objects_are_byte_exact_for_any_write_pattern() {
    let Some(env) = s3_env("multipart_objects_are_byte_exact_for_any_write_pattern") else {
        return;
    };
    let bucket = env.fresh_bucket("mpexact");
    let part = 5 << 20;
    let cases: [(usize, usize, usize); 3] = [
        // (multipart threshold, object size, write size)
        (12 << 20, 3 * part, (1 << 20) + 3),
        (1 << 20, 2 * part + 1, 7 << 20),
        (6 << 20, 4 * part - 17, part),
    ];
    for (i, (threshold, size, write)) in cases.into_iter().enumerate() {
        let backend = env
            .builder()
            .bucket(&bucket)
            .prefix(format!("case{i}"))
            .multipart_threshold(threshold)
            .part_size(part)
            .build()
            .unwrap();
        let body: Vec<u8> = (0..size).map(|j| (j % 251) as u8 ^ i as u8).collect();
        let key = generation_key("blob", 1);
        let mut obj = backend.begin_put(&key).unwrap();
        for chunk in body.chunks(write) {
            obj.write(chunk).unwrap();
        }
        obj.commit().unwrap();
        let back = backend.get(&key).unwrap();
        assert_eq!(back.len(), size, "case {i}");
        assert!(back[..] == body[..], "case {i}: bytes differ");
    }
    assert_eq!(common::incomplete_uploads(&env, &bucket), 0);
}

/// Concurrent multipart writers of one new key: exactly one completes. Ignored by default:
/// moto checks `If-None-Match` on `CompleteMultipartUpload` before assembling the object,
/// without a lock, so concurrent completions all succeed there (a moto quirk; real S3 and MinIO
/// apply the condition atomically). Run it against such a server with `--ignored`.
#[test]
#[ignore = "moto's conditional CompleteMultipartUpload is not atomic under concurrency"]
fn concurrent_multipart_writers_exactly_one_wins() {
    let Some(env) = s3_env("concurrent_multipart_writers_exactly_one_wins") else {
        return;
    };
    let bucket = env.fresh_bucket("mprace");
    let backend = Arc::new(small_multipart_backend(&env, &bucket));
    let key2 = generation_key("blob", 2);
    let barrier = Arc::new(Barrier::new(4));
    let results: Vec<Result<(), BackendError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u8)
            .map(|w| {
                let (backend, barrier, key2) = (Arc::clone(&backend), Arc::clone(&barrier), &key2);
                s.spawn(move || {
                    let body = vec![w; 11 << 20];
                    barrier.wait();
                    backend.put_new(key2, &[&body])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..4).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(r, BackendError::AlreadyExists { .. }), "{r}");
    }
    let stored = backend.get(&key2).unwrap();
    assert_eq!(stored.len(), 11 << 20);
    assert!(stored.iter().all(|&b| b == winners[0] as u8));
}

#[test]
fn an_interrupted_multipart_upload_leaves_nothing_visible() {
    let Some(env) = s3_env("an_interrupted_multipart_upload_leaves_nothing_visible") else {
        return;
    };
    let bucket = env.fresh_bucket("interrupt");
    let backend = small_multipart_backend(&env, &bucket);
    let key = generation_key("blob", 1);
    {
        let mut obj = backend.begin_put(&key).unwrap();
        // Three parts' worth: the multipart upload has started and parts are in flight.
        obj.write(&vec![1u8; 16 << 20]).unwrap();
        assert_eq!(common::incomplete_uploads(&env, &bucket), 1);
        // Dropped without commit: aborted mid-way.
    }
    assert_eq!(common::incomplete_uploads(&env, &bucket), 0);
    assert!(backend.list("").unwrap().is_empty());
    assert!(matches!(
        backend.get(&key),
        Err(BackendError::NotFound { .. })
    ));
    assert!(raw_keys(&env, &bucket).is_empty());
    // The key is still free.
    backend.put_new(&key, &[b"after"]).unwrap();
    assert_eq!(&backend.get(&key).unwrap()[..], b"after");
}

#[test]
fn wrong_credentials_are_a_typed_error_naming_endpoint_and_bucket() {
    let Some(env) = s3_env("wrong_credentials_are_a_typed_error_naming_endpoint_and_bucket") else {
        return;
    };
    let bucket = env.fresh_bucket("creds");
    let backend = env
        .builder()
        .credentials(&env.key_id, "not-the-secret")
        .bucket(&bucket)
        .build()
        .unwrap();
    for err in [
        backend
            .put_new("blob/00000000000000000001.pst", &[b"x"])
            .unwrap_err(),
        backend.list("").unwrap_err(),
        backend.get("blob/00000000000000000001.pst").unwrap_err(),
    ] {
        let BackendError::AccessDenied { location, .. } = &err else {
            panic!("expected AccessDenied, got {err:?}");
        };
        assert!(location.contains(&bucket), "{err}");
        assert!(location.contains(&env.endpoint), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&bucket) && text.contains(&env.endpoint),
            "{text}"
        );
    }
    let store = Store::new(Box::new(backend), keyring(), config(2));
    let err = store.load::<Blob>().unwrap_err();
    assert!(
        matches!(err, LoadError::Backend(BackendError::AccessDenied { .. })),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_from_inside_a_tokio_runtime() {
    let Some(env) = s3_env("usable_from_inside_a_tokio_runtime") else {
        return;
    };
    let bucket = env.fresh_bucket("tokio");
    // Built, used and dropped on a runtime worker thread: no nested block_on, no panic.
    let store = Store::new(Box::new(env.backend(&bucket, "t")), keyring(), config(2));
    store.save(&Blob::new(1, 100)).unwrap();
    assert_eq!(store.load::<Blob>().unwrap().value, Blob::new(1, 100));
    drop(store);
    let mut current = tokio::runtime::Builder::new_current_thread();
    let rt = current.enable_all().build().unwrap();
    let env2 = env.clone();
    // And from a current-thread runtime, the hardest case for block_on.
    std::thread::spawn(move || {
        rt.block_on(async {
            let backend = env2.backend(&bucket, "t");
            assert_eq!(backend.list("").unwrap().len(), 1);
        })
    })
    .join()
    .unwrap();
}

/// Every object key in the bucket, staging objects included, through the raw API.
fn raw_keys(env: &common::S3Env, bucket: &str) -> Vec<String> {
    use futures_util::TryStreamExt;
    let store = env.backend(bucket, "").object_store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut keys: Vec<String> = rt
        .block_on(store.list(None).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    keys.sort();
    keys
}
