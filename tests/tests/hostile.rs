//! Hostile state directories and key files: odd names, huge sparse files, non-files at a
//! generation's name, FIFOs and devices as key files, a reader beside a live writer, a deleted
//! lock file, and the permissions of new files.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use persist_core::BackendError;
use persist_core::EnvelopeError;
use persist_core::Schema;
use persist_core::format::{MAX_SEQUENCE, generation_key};
use persist_core::{Key, KeyError, LoadError, RejectKind, RejectReason, Store, StoreConfig};
use persist_fs::{FsBackend, FsError, FsOptions};
use persist_tests::{AgentState, test_keyring};

fn config(retain: usize) -> StoreConfig {
    StoreConfig::default()
        .with_retain(retain)
        .with_space_reserve(0)
}

fn store_in(dir: &Path, retain: usize) -> Store {
    Store::new(
        Box::new(FsBackend::open(dir).expect("open store")),
        test_keyring(),
        config(retain),
    )
}

fn path_of(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(generation_key("agent", sequence))
}

fn sequences(store: &Store) -> Vec<u64> {
    store
        .generations("agent")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

// ---- a. a sequence number no store writes ---------------------------------------------------

/// Guards against a file named with sequence u64::MAX (or anything above MAX_SEQUENCE) making
/// the next sequence number wrap to 0 or overflow (a panic, or saves that sort below every
/// existing generation and so are never loaded), and against retention deleting it.
#[test]
fn out_of_range_sequence_is_reported_never_counted_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agent")).unwrap();
    let odd = [
        "agent/18446744073709551615.pst".to_string(),
        generation_key("agent", MAX_SEQUENCE + 1),
    ];
    for key in &odd {
        std::fs::File::create(dir.path().join(key)).unwrap();
    }
    let store = store_in(dir.path(), 2);
    for i in 1..=5u64 {
        let receipt = store.save(&AgentState::sample(10, i)).expect("save");
        assert_eq!(receipt.sequence, i, "normal sequence numbers");
        assert!(receipt.retention_error.is_none(), "{receipt:?}");
    }
    let listing = store.listing("agent").unwrap();
    let mut beyond = listing.beyond.clone();
    beyond.sort();
    let mut expected = odd.to_vec();
    expected.sort();
    assert_eq!(beyond, expected);
    assert_eq!(sequences(&store), vec![4, 5]);

    let loaded = store.load::<AgentState>().expect("load");
    assert_eq!(loaded.report.sequence, 5);
    assert_eq!(loaded.value, AgentState::sample(10, 5));
    for key in &odd {
        let r = loaded
            .report
            .rejected
            .iter()
            .find(|r| &r.key == key)
            .unwrap_or_else(|| panic!("{key} not reported: {}", loaded.report));
        assert!(matches!(r.reason, RejectReason::SequenceOutOfRange), "{r}");
        assert_eq!(r.kind(), RejectKind::Corrupt);
        assert!(dir.path().join(key).exists(), "{key} was deleted");
    }
    // A fresh writer (sequence from the listing) continues normally too.
    drop(store);
    let store = store_in(dir.path(), 2);
    assert_eq!(store.save(&AgentState::sample(10, 6)).unwrap().sequence, 6);
    for key in &odd {
        assert!(dir.path().join(key).exists(), "{key} was deleted");
    }
}

// ---- b. huge sparse files ---------------------------------------------------------------------

/// Guards against a reader allocating or reading a file's whole (claimed) size before checking
/// the header against it: a 64 GiB sparse file at the newest generation's name must be rejected
/// from its first bytes, in well under a second, not read (minutes) or allocated (an abort).
#[test]
fn sparse_64_gib_files_are_rejected_from_their_head_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 4);
    store.save(&AgentState::sample(50, 1)).unwrap();
    store.save(&AgentState::sample(50, 2)).unwrap();
    let head: Vec<u8> = std::fs::read(path_of(dir.path(), 2)).unwrap()[..160].to_vec();

    // Generation 3: zeros (bad magic). Generation 4: a real header whose lengths lie.
    let zeros = std::fs::File::create(path_of(dir.path(), 3)).unwrap();
    zeros.set_len(64 << 30).unwrap();
    drop(zeros);
    let lying = path_of(dir.path(), 4);
    std::fs::write(&lying, &head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lying)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();

    let start = Instant::now();
    let reader = Store::new(
        Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
        test_keyring(),
        config(4),
    );
    let loaded = reader
        .load::<AgentState>()
        .expect("falls back to generation 2");
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "load took {elapsed:?}");
    assert_eq!(loaded.report.sequence, 2);
    assert_eq!(loaded.value, AgentState::sample(50, 2));
    let rejected: Vec<(u64, RejectKind)> = loaded
        .report
        .rejected
        .iter()
        .map(|r| (r.sequence, r.kind()))
        .collect();
    assert_eq!(
        rejected,
        vec![(4, RejectKind::Corrupt), (3, RejectKind::Corrupt)],
        "{}",
        loaded.report
    );
    assert!(
        matches!(
            loaded.report.rejected[0].reason,
            RejectReason::Envelope(EnvelopeError::LengthMismatch { .. })
        ),
        "{}",
        loaded.report.rejected[0]
    );
    assert!(
        matches!(
            loaded.report.rejected[1].reason,
            RejectReason::Envelope(EnvelopeError::BadMagic)
        ),
        "{}",
        loaded.report.rejected[1]
    );

    // The zero-copy path, the verify path and the writer's retention check them quickly too.
    let start = Instant::now();
    let view = reader.open::<AgentState>().expect("open falls back");
    assert_eq!(view.report().sequence, 2);
    let newest = reader
        .newest_valid(&Schema::of::<AgentState>())
        .expect("newest valid");
    assert_eq!(newest.generation.sequence, 2);
    let receipt = store.save(&AgentState::sample(50, 5)).expect("save");
    assert_eq!(receipt.sequence, 5);
    assert!(receipt.retention_error.is_none(), "{receipt:?}");
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "open+verify+save took {elapsed:?}"
    );
}

// ---- c. non-files at the next generation's name ---------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Odd {
    Directory,
    Fifo,
    Symlink,
}

impl Odd {
    fn place(self, at: &Path, target: &Path) {
        match self {
            Odd::Directory => std::fs::create_dir(at).unwrap(),
            Odd::Fifo => mkfifo(at),
            Odd::Symlink => symlink(target, at).unwrap(),
        }
    }
}

/// Guards against a directory, FIFO or symbolic link at a generation's name blocking a load (a
/// FIFO opened for reading blocks forever), being followed (a symlink to another generation or
/// file), stopping saves (the key is taken) or being taken for authentic state that stops a
/// load. It is corrupt: reported, walked past, skipped by the sequence numbers.
#[test]
fn directory_fifo_and_symlink_at_the_next_generation_name() {
    for odd in [Odd::Directory, Odd::Fifo, Odd::Symlink] {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path(), 2);
        store.save(&AgentState::sample(10, 1)).unwrap();
        store.save(&AgentState::sample(10, 2)).unwrap();
        // The store's own next number is 3: put the odd entry there (a symlink points at the
        // valid generation 2).
        odd.place(&path_of(dir.path(), 3), &path_of(dir.path(), 2));

        // A load from a reader (run on a thread: a FIFO must not block it).
        let root = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let reader = Store::new(
                Box::new(FsBackend::open_read_only(&root).unwrap()),
                test_keyring(),
                config(2),
            );
            let loaded = reader.load::<AgentState>();
            let newest = reader.newest_valid(&Schema::of::<AgentState>());
            let _ = tx.send((loaded, newest));
        });
        let (loaded, newest) = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{odd:?}: load blocked"));
        let loaded = loaded.unwrap_or_else(|e| panic!("{odd:?}: load failed: {e}"));
        assert_eq!(loaded.report.sequence, 2, "{odd:?}");
        assert_eq!(
            loaded.report.rejected.len(),
            1,
            "{odd:?}: {}",
            loaded.report
        );
        let r = &loaded.report.rejected[0];
        assert_eq!(
            (r.sequence, r.kind()),
            (3, RejectKind::Corrupt),
            "{odd:?}: {r}"
        );
        assert!(
            matches!(
                r.reason,
                RejectReason::Read(BackendError::NotAnObject { .. })
            ),
            "{odd:?}: {r}"
        );
        let newest = newest.unwrap_or_else(|e| panic!("{odd:?}: verify failed: {e}"));
        assert_eq!(newest.generation.sequence, 2, "{odd:?}");
        assert_eq!(newest.report.rejected.len(), 1, "{odd:?}");

        // The writer's next save finds its number taken and takes the one after.
        let receipt = store
            .save(&AgentState::sample(10, 4))
            .unwrap_or_else(|e| panic!("{odd:?}: save failed: {e}"));
        assert_eq!(receipt.sequence, 4, "{odd:?}");
        assert!(receipt.retention_error.is_none(), "{odd:?}: {receipt:?}");
        let loaded = store.load::<AgentState>().unwrap();
        assert_eq!(loaded.report.sequence, 4, "{odd:?}");
        assert!(loaded.report.is_clean(), "{odd:?}: {}", loaded.report);

        // A fresh writer counts it too.
        drop(store);
        let store = store_in(dir.path(), 2);
        let receipt = store.save(&AgentState::sample(10, 5)).unwrap();
        assert_eq!(receipt.sequence, 5, "{odd:?}");
        // The symlink's target was never written through.
        assert_eq!(
            Store::new(
                Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
                test_keyring(),
                config(2)
            )
            .load::<AgentState>()
            .unwrap()
            .value,
            AgentState::sample(10, 5)
        );
    }
}

/// Guards against an entry at a generation's name that retention cannot delete (a directory:
/// `unlink` fails with EISDIR) failing retention on every later save forever, so that the
/// generations below it are never deleted and the disk fills up.
#[test]
fn retention_goes_on_past_a_non_file_at_a_generation_name() {
    let mut failures = Vec::new();
    for odd in [Odd::Directory, Odd::Fifo, Odd::Symlink] {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path(), 2);
        store.save(&AgentState::sample(10, 1)).unwrap();
        store.save(&AgentState::sample(10, 2)).unwrap();
        odd.place(&path_of(dir.path(), 3), &path_of(dir.path(), 2));
        let mut errors = Vec::new();
        for i in 0..5 {
            let receipt = store.save(&AgentState::sample(10, 10 + i)).unwrap();
            if let Some(e) = receipt.retention_error {
                errors.push(format!("save {}: {e}", receipt.sequence));
            }
        }
        let seqs = sequences(&store);
        if !errors.is_empty() || seqs.contains(&1) || seqs.contains(&2) {
            failures.push(format!(
                "{odd:?}: retention errors {errors:#?}; generations left {seqs:?}"
            ));
        }
        assert_eq!(
            store.load::<AgentState>().unwrap().value,
            AgentState::sample(10, 14)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- d. hostile key files ---------------------------------------------------------------------

fn from_file_within(path: PathBuf, limit: Duration) -> Result<Key, KeyError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let shown = path.display().to_string();
    std::thread::spawn(move || {
        let _ = tx.send(Key::from_file(&path));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("Key::from_file({shown}) blocked for over {limit:?}"))
}

/// Guards against a key file path that is a FIFO hanging the program at start-up (a blocking
/// open or read), a symlink to `/dev/zero` reading forever (or being refused with a misleading
/// chmod hint), and the checks refusing a legitimate symlink to a good key file.
#[test]
fn key_file_fifo_device_symlink_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("key.fifo");
    mkfifo(&fifo);
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o600)).unwrap();
    match from_file_within(fifo.clone(), Duration::from_secs(1)) {
        Err(KeyError::NotRegular { what, .. }) => assert_eq!(what, "FIFO"),
        other => panic!("FIFO key file: expected NotRegular, got {other:?}"),
    }

    let zero = dir.path().join("key.zero");
    symlink("/dev/zero", &zero).unwrap();
    match from_file_within(zero, Duration::from_secs(1)) {
        Err(KeyError::NotRegular { what, .. }) => assert_eq!(what, "device"),
        other => panic!("/dev/zero key file: expected NotRegular{{device}}, got {other:?}"),
    }

    let directory = dir.path().join("key.dir");
    std::fs::create_dir(&directory).unwrap();
    std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o700)).unwrap();
    match from_file_within(directory, Duration::from_secs(1)) {
        Err(KeyError::NotRegular { what, .. }) => assert_eq!(what, "directory"),
        other => panic!("directory key file: expected NotRegular, got {other:?}"),
    }

    let secret = b"a good key file: thirty-two or more bytes long".to_vec();
    let good = dir.path().join("key.good");
    std::fs::write(&good, &secret).unwrap();
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("key.link");
    symlink(&good, &link).unwrap();
    let key = from_file_within(link, Duration::from_secs(1)).expect("symlink to a good key");
    assert_eq!(key.id(), Key::from_bytes(secret).unwrap().id());

    let big = dir.path().join("key.big");
    std::fs::write(&big, vec![b'k'; 4097]).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
    match from_file_within(big, Duration::from_secs(1)) {
        Err(KeyError::TooLarge { len, .. }) => assert_eq!(len, 4097),
        other => panic!("4097-byte key file: expected TooLarge, got {other:?}"),
    }

    let open = dir.path().join("key.open");
    std::fs::write(&open, vec![b'k'; 40]).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    match from_file_within(open, Duration::from_secs(1)) {
        Err(KeyError::InsecurePermissions { mode, .. }) => assert_eq!(mode, 0o644),
        other => panic!("0644 key file: expected InsecurePermissions, got {other:?}"),
    }
}

// ---- e. a reader beside a live writer -------------------------------------------------------

/// Guards against a reader beside a writer (a `persist verify`, a monitoring tool) failing or
/// reporting rejections because retention deleted a generation between its listing and its
/// read: a vanished generation is superseded, not corrupt, and never a reason to stop.
#[test]
fn reader_beside_a_live_writer_never_fails() {
    let dir = tempfile::tempdir().unwrap();
    let writer = store_in(dir.path(), 1);
    writer.save(&AgentState::sample(500, 0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let saves = Arc::new(AtomicU64::new(1));
    let handle = {
        let (stop, saves) = (Arc::clone(&stop), Arc::clone(&saves));
        std::thread::spawn(move || {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                let receipt = writer
                    .save(&AgentState::sample(500, i))
                    .expect("writer save");
                assert!(receipt.retention_error.is_none(), "{receipt:?}");
                saves.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let reader = Store::new(
        Box::new(FsBackend::open_read_only(dir.path()).unwrap()),
        test_keyring(),
        config(1),
    );
    let mut failures = Vec::new();
    let mut last = 0;
    let mut n = 0;
    // At least 200 loads, and on until the writer has saved (and retention deleted) 50 times,
    // so the loads overlap many deletions (a save's fsyncs are slower than a load).
    while n < 200 || (saves.load(Ordering::Relaxed) < 50 && n < 20_000) {
        n += 1;
        match reader.load::<AgentState>() {
            Ok(loaded) => {
                if !loaded.report.rejected.is_empty() {
                    failures.push(format!("load {n}: {}", loaded.report));
                }
                assert_eq!(
                    loaded.value,
                    AgentState::sample(500, loaded.value.total_updates)
                );
                last = last.max(loaded.report.sequence);
            }
            Err(e) => failures.push(format!("load {n}: {e}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("writer");
    let saves = saves.load(Ordering::Relaxed);
    println!("reader beside writer: {n} loads, {saves} saves, newest seen {last}");
    assert!(saves >= 50, "the writer barely ran ({saves} saves)");
    // Any rejection here is of a generation that was never corrupt: a vanished one.
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---- f. a deleted lock file -------------------------------------------------------------------

/// Guards against a second writer getting in once someone deletes `.lock` (a clean-up script,
/// an operator): two writers would allocate the same sequence numbers and delete each other's
/// generations.
#[test]
fn deleting_the_lock_file_does_not_let_a_second_writer_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 2);
    store.save(&AgentState::sample(10, 1)).unwrap();
    std::fs::remove_file(dir.path().join(".lock")).unwrap();
    match FsBackend::open(dir.path()) {
        Err(FsError::Locked { .. }) => {}
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second writer opened the store after .lock was deleted"),
    }
    // Twice: the failed open re-created .lock; it still must not get in.
    assert!(matches!(
        FsBackend::open(dir.path()),
        Err(FsError::Locked { .. })
    ));
    for i in 2..=4 {
        assert_eq!(store.save(&AgentState::sample(10, i)).unwrap().sequence, i);
    }
    assert_eq!(
        store.load::<AgentState>().unwrap().value,
        AgentState::sample(10, 4)
    );
    drop(store);
    let store = store_in(dir.path(), 2);
    assert_eq!(store.save(&AgentState::sample(10, 5)).unwrap().sequence, 5);
}

// ---- g. file modes --------------------------------------------------------------------------

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
        .unwrap_or(0o022)
}

/// Guards against generation files (the program's private state) being created readable by
/// group or others, and against `FsOptions::file_mode` being ignored.
#[test]
fn generation_files_are_private_by_default_and_follow_file_mode() {
    let mask = umask();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 2);
    store.save(&AgentState::sample(10, 1)).unwrap();
    let mode = std::fs::metadata(path_of(dir.path(), 1))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o077, 0, "default mode {mode:04o}");
    assert_eq!(
        mode,
        0o600 & !mask,
        "default mode {mode:04o} (umask {mask:04o})"
    );
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(
        Box::new(FsBackend::open_with(dir.path(), FsOptions { file_mode: 0o640 }).unwrap()),
        test_keyring(),
        config(2),
    );
    store.save(&AgentState::sample(10, 1)).unwrap();
    let mode = std::fs::metadata(path_of(dir.path(), 1))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode,
        0o640 & !mask,
        "file_mode 0640 gave {mode:04o} (umask {mask:04o})"
    );
    if mask & 0o040 == 0 {
        assert_ne!(mode & 0o040, 0, "group read missing: {mode:04o}");
    }
    assert_eq!(
        store.load::<AgentState>().unwrap().value,
        AgentState::sample(10, 1)
    );
}

#[test]
fn load_of_nothing_is_no_generation() {
    // Sanity for the fixtures above: an empty store is NoGeneration, not AllInvalid.
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 2);
    assert!(matches!(
        store.load::<AgentState>(),
        Err(LoadError::NoGeneration { .. })
    ));
}
