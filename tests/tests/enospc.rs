//! A full disk on a real (tiny tmpfs) filesystem: the save fails with `NoSpace`, the previous
//! generation still loads, no temp file is left, and the next save after space returns works.
//!
//! Needs root to mount the tmpfs; otherwise prints `SKIPPED enospc` (and fails under `CI=true`).
//! The pre-flight refusal (`InsufficientSpace`) is tested without root in `store.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use persist_core::{Backend, BackendError, NewObject, ObjectBytes, ObjectMeta};
use persist_core::{Persist, SaveError, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_tests::sandbox::{self, Mount};
use persist_tests::{AgentState, test_keyring};

/// Bytes the neighbour leaves free: the generation's write gets that far, then hits ENOSPC.
const LEFT_FREE: u64 = 8 << 10;

/// An `FsBackend` with a noisy neighbour: once armed, the neighbour fills the disk right after
/// the store's free-space pre-flight, leaving only [`LEFT_FREE`] bytes. The pre-flight passes
/// and the real write runs out of space half-way, as when another process fills the disk
/// between the check and the write.
#[derive(Debug)]
struct NeighbourFillsDisk {
    inner: FsBackend,
    filler: PathBuf,
    armed: Arc<AtomicBool>,
}

impl NeighbourFillsDisk {
    fn fill(&self) {
        let mut file = std::fs::File::create(&self.filler).expect("create the filler");
        let chunk = vec![0xA5u8; 64 << 10];
        let err = loop {
            if let Err(e) = file.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::StorageFull,
            "filling: {err}"
        );
        let len = file.metadata().expect("filler size").len();
        file.set_len(len.saturating_sub(LEFT_FREE))
            .expect("give a little back");
    }
}

impl Backend for NeighbourFillsDisk {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        self.inner.begin_put(key)
    }
    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key)
    }
    fn free_space(&self) -> Result<Option<u64>, BackendError> {
        let free = self.inner.free_space()?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.fill();
        }
        Ok(free)
    }
}

fn config() -> StoreConfig {
    StoreConfig::default().with_retain(4).with_space_reserve(0)
}

/// Every file in the state's directory: generations and (there must be none) temp files.
fn files_in(store_root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store_root.join(AgentState::NAME))
        .expect("list the state's directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_no_space(result: Result<persist_core::SaveReceipt, SaveError>, sequence: u64) {
    let expected_key = persist_core::format::generation_key(AgentState::NAME, sequence);
    match result {
        Err(SaveError::Backend(BackendError::NoSpace { key, .. })) => assert_eq!(key, expected_key),
        other => panic!("expected NoSpace writing {expected_key}, got {other:?}"),
    }
}

#[test]
fn enospc_during_the_write_fails_cleanly() {
    if !sandbox::privileged_or_skip("enospc", &["umount"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _tmpfs = Mount::tmpfs(dir.path(), "size=1m").expect("mount a 1 MiB tmpfs");
    let root = dir.path().join("store");
    let armed = Arc::new(AtomicBool::new(false));
    let backend = NeighbourFillsDisk {
        inner: FsBackend::open(&root).unwrap(),
        filler: dir.path().join("neighbour.bin"),
        armed: Arc::clone(&armed),
    };
    let store = Store::new(Box::new(backend), test_keyring(), config());
    let first = AgentState::sample(16, 1);
    assert_eq!(store.save(&first).unwrap().sequence, 1);

    // 2000 entries: ~48 KiB, far below the free space the pre-flight sees, far above LEFT_FREE.
    let big = AgentState::sample(2000, 2);
    armed.store(true, Ordering::SeqCst);
    assert_no_space(store.save(&big), 2);

    assert_eq!(
        files_in(&root),
        ["00000000000000000001.pst"],
        "temp file left"
    );
    let loaded = store.load::<AgentState>().unwrap();
    assert_eq!(loaded.value, first);
    assert!(loaded.report.is_clean());

    // Space comes back: the next save works, under a fresh sequence number. (The kernel may
    // free the neighbour's blocks a moment after the unlink, e.g. while a process another test
    // thread forked still holds the descriptor until its exec: wait until statvfs shows them.)
    std::fs::remove_file(dir.path().join("neighbour.bin")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.backend().free_space().unwrap().unwrap_or(u64::MAX) < 256 << 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the neighbour's space never came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(store.save(&big).unwrap().sequence, 3);
    assert_eq!(store.load::<AgentState>().unwrap().value, big);
}

#[test]
fn enospc_when_inodes_run_out_fails_cleanly() {
    if !sandbox::privileged_or_skip("enospc", &["umount"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _tmpfs = Mount::tmpfs(dir.path(), "size=1m,nr_inodes=64").expect("mount a tiny tmpfs");
    let root = dir.path().join("store");
    let store = Store::new(
        Box::new(FsBackend::open(&root).unwrap()),
        test_keyring(),
        config(),
    );
    let first = AgentState::sample(16, 1);
    assert_eq!(store.save(&first).unwrap().sequence, 1);

    // Another program uses up every inode; blocks stay free, so the pre-flight passes and the
    // temp file's creation fails with ENOSPC.
    let hog = dir.path().join("hog");
    std::fs::create_dir(&hog).unwrap();
    let mut created = 0;
    let err = loop {
        match std::fs::File::create(hog.join(created.to_string())) {
            Ok(_) => created += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
    assert_no_space(store.save(&AgentState::sample(16, 2)), 2);

    assert_eq!(files_in(&root), ["00000000000000000001.pst"]);
    assert_eq!(store.load::<AgentState>().unwrap().value, first);

    std::fs::remove_file(hog.join("0")).unwrap();
    assert_eq!(store.save(&AgentState::sample(16, 3)).unwrap().sequence, 3);
}
