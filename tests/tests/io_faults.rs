//! An I/O error at every operation of a save (and of its retention), with every error number a
//! disk gives: EIO, ENOSPC and EDQUOT. No failure may acknowledge a save that is not durable,
//! leave a temp file behind, lose an acknowledged generation, or stop the next save.

use std::path::Path;
use std::sync::Arc;

use persist_core::BackendError;
use persist_core::{SaveError, Store, StoreConfig};
use persist_fs::{Fault, FsBackend, Op};
use persist_tests::{AgentState, test_keyring};

const ERRNOS: [(i32, &str); 3] = [
    (libc::EIO, "EIO"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::EDQUOT, "EDQUOT"),
];

fn temp_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(temp_files(&path));
        } else {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Whether the error is what the errno must map to: `NoSpace` for ENOSPC and EDQUOT (a quota is
/// a full disk to the program), and an error carrying the errno otherwise.
fn maps_right(err: &SaveError, errno: i32) -> bool {
    match err {
        SaveError::Backend(BackendError::NoSpace { .. }) => {
            errno == libc::ENOSPC || errno == libc::EDQUOT
        }
        SaveError::Backend(BackendError::Io { source, .. }) => {
            errno == libc::EIO && source.raw_os_error() == Some(libc::EIO)
        }
        _ => false,
    }
}

/// One case: a store with generations 1-3 saved (retain 2, so 2 and 3 remain), the fault set,
/// one save, checks, the fault cleared, one more save. Returns what went wrong, if anything,
/// and whether the faulted save returned `Err`.
fn run_case(op: Op, nth: u32, errno: i32, payload_entries: usize) -> (Vec<String>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FsBackend::open(dir.path()).unwrap());
    let store = Store::new(
        // A second handle on the backend, for `set_fault`.
        Box::new(Arc::clone(&backend)),
        test_keyring(),
        StoreConfig::default().with_retain(2).with_space_reserve(0),
    );
    let mut problems = Vec::new();
    for i in 1..=3u64 {
        assert_eq!(store.save(&AgentState::sample(20, i)).unwrap().sequence, i);
    }
    let before: Vec<u64> = store
        .generations("agent")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect();
    assert_eq!(before, vec![2, 3]);

    backend.set_fault(Some(Fault { op, nth, errno }));
    let value = AgentState::sample(payload_entries, 4);
    let result = store.save(&value);
    backend.set_fault(None);
    let failed = result.is_err();

    let temps = temp_files(dir.path());
    if !temps.is_empty() {
        problems.push(format!("temp files left: {temps:?}"));
    }
    let seqs: Vec<u64> = store
        .generations("agent")
        .unwrap()
        .iter()
        .map(|g| g.sequence)
        .collect();
    let loaded = store.load::<AgentState>();

    match op {
        Op::CreateTemp | Op::Write | Op::FsyncFile | Op::Rename => {
            match &result {
                Ok(receipt) => problems.push(format!("save acknowledged: {receipt:?}")),
                Err(e) if !maps_right(e, errno) => {
                    problems.push(format!("error {e:?} does not map errno {errno}"))
                }
                Err(_) => {}
            }
            if seqs != before {
                problems.push(format!("generations changed: {before:?} -> {seqs:?}"));
            }
            match &loaded {
                Ok(l) if l.report.sequence == 3 && l.value == AgentState::sample(20, 3) => {}
                Ok(l) => problems.push(format!("load after the failure: {}", l.report)),
                Err(e) => problems.push(format!("load after the failure: {e}")),
            }
        }
        Op::FsyncDir => {
            // Renamed but not durable: not acknowledged, though the file may be visible.
            match &result {
                Ok(receipt) => problems.push(format!("save acknowledged: {receipt:?}")),
                Err(e) if !maps_right(e, errno) => {
                    problems.push(format!("error {e:?} does not map errno {errno}"))
                }
                Err(_) => {}
            }
            match &loaded {
                Ok(l) if l.report.sequence == 4 && l.value == value => {}
                Ok(l) if l.report.sequence == 3 && l.value == AgentState::sample(20, 3) => {}
                Ok(l) => problems.push(format!("load after the failure: {}", l.report)),
                Err(e) => problems.push(format!("load after the failure: {e}")),
            }
            if !seqs.contains(&3) {
                problems.push(format!("generation 3 lost: {seqs:?}"));
            }
        }
        Op::Delete => {
            // Retention's unlink failed: the save itself is durable and acknowledged.
            match &result {
                Ok(receipt) => {
                    if receipt.sequence != 4 {
                        problems.push(format!("sequence {}", receipt.sequence));
                    }
                    if receipt.retention_error.is_none() {
                        problems.push(format!("retention error not reported: {receipt:?}"));
                    }
                }
                Err(e) => problems.push(format!("save failed though it was durable: {e}")),
            }
            if !(seqs.contains(&3) && seqs.contains(&4)) {
                problems.push(format!("an acknowledged generation was lost: {seqs:?}"));
            }
            match &loaded {
                Ok(l) if l.report.sequence == 4 && l.value == value => {}
                Ok(l) => problems.push(format!("load after the failure: {}", l.report)),
                Err(e) => problems.push(format!("load after the failure: {e}")),
            }
        }
    }

    // The fault is gone: the next save works, above anything the failed one may have left.
    let highest = seqs.iter().copied().max().unwrap_or(0);
    let next = AgentState::sample(20, 5);
    match store.save(&next) {
        Ok(receipt) => {
            if receipt.sequence <= highest {
                problems.push(format!(
                    "next save took {} though {highest} exists",
                    receipt.sequence
                ));
            }
            if let Some(e) = &receipt.retention_error {
                problems.push(format!("retention after the fault cleared: {e}"));
            }
            match store.load::<AgentState>() {
                Ok(l) if l.report.sequence == receipt.sequence && l.value == next => {}
                Ok(l) => problems.push(format!("load after the next save: {}", l.report)),
                Err(e) => problems.push(format!("load after the next save: {e}")),
            }
            let left: Vec<u64> = store
                .generations("agent")
                .unwrap()
                .iter()
                .map(|g| g.sequence)
                .collect();
            if left.len() != 2 {
                problems.push(format!("retention left {left:?} after the next save"));
            }
        }
        Err(e) => problems.push(format!("next save failed: {e}")),
    }
    let temps = temp_files(dir.path());
    if !temps.is_empty() {
        problems.push(format!("temp files left after the next save: {temps:?}"));
    }
    (problems, failed)
}

/// Guards against any I/O failure of a save being acknowledged as success, leaving a temp file
/// or a half-written generation, losing the previous generations, being reported as something
/// other than a full disk for ENOSPC/EDQUOT, or wedging the store so the next save fails; and
/// against a failed retention unlink turning a durable save into an error.
#[test]
fn every_operation_fails_with_every_errno() {
    let mut failures = Vec::new();
    let (mut cases, mut save_errors, mut acknowledged) = (0, 0, 0);
    for op in Op::ALL {
        // Write: the header (0), the payload (1) and the tag (2) are separate writes; a payload
        // of more than 8 MiB (500 000 entries: about 12 MiB, signed on a second thread) is
        // written in 8 MiB chunks, so its write 2 is the payload's second chunk.
        let plans: &[(u32, usize)] = if op == Op::Write {
            &[(0, 20), (1, 20), (2, 20), (2, 500_000)]
        } else {
            &[(0, 20)]
        };
        for &(nth, entries) in plans {
            for (errno, errno_name) in ERRNOS {
                cases += 1;
                let (problems, failed) = run_case(op, nth, errno, entries);
                if failed {
                    save_errors += 1;
                } else {
                    acknowledged += 1;
                }
                for p in problems {
                    failures.push(format!(
                        "{op:?} nth {nth} {errno_name} ({entries} entries): {p}"
                    ));
                }
            }
        }
    }
    println!(
        "io_faults: {cases} cases, {save_errors} saves failed, {acknowledged} acknowledged \
         (retention faults), {} problems",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
