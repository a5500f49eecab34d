//! The conformance suite on [`FsBackend`] in a temporary directory. `NoSpace` comes from the
//! `fault-injection` feature (`ENOSPC` on the first write, as a full disk gives it);
//! `AccessDenied` from a store opened read-only, and, when not running as root, from a
//! directory without write permission (root writes there regardless).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use persist_conformance::Subject;
use persist_fs::{Fault, FsBackend, Op};
use tempfile::TempDir;

fn fresh(_test: &str) -> Subject {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = FsBackend::open(dir.path().join("store")).expect("open a fresh store");
    Subject::with_guard(backend, dir)
}

fn full(_test: &str) -> Subject {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = FsBackend::open(dir.path().join("store")).expect("open a fresh store");
    backend.set_fault(Some(Fault {
        op: Op::Write,
        nth: 0,
        errno: rustix::io::Errno::NOSPC.raw_os_error(),
    }));
    Subject::with_guard(backend, dir)
}

fn read_only(_test: &str) -> Subject {
    let dir = tempfile::tempdir().expect("a temporary directory");
    drop(FsBackend::open(dir.path().join("store")).expect("create the store"));
    let backend = FsBackend::open_read_only(dir.path().join("store")).expect("open read-only");
    Subject::with_guard(backend, dir)
}

persist_conformance::suite! {
    fresh: fresh,
    no_space: full,
    access_denied: read_only,
}

/// Gives a directory its write permission back before the temporary directory is removed.
struct RestoreWritable(PathBuf);

impl Drop for RestoreWritable {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

fn write_protected(dir: &Path) -> RestoreWritable {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
        .expect("make the directory read-only");
    RestoreWritable(dir.to_path_buf())
}

/// `EACCES` from the operating system: a writable store whose directory of the written key
/// has no write permission. Root ignores permissions, so as root this cannot be produced.
#[test]
fn access_denied_by_directory_permissions() {
    if rustix::process::geteuid().is_root() {
        println!("SKIPPED: running as root, which writes into a read-only directory regardless");
        eprintln!("SKIPPED: running as root, which writes into a read-only directory regardless");
        return;
    }
    let dir: TempDir = tempfile::tempdir().expect("a temporary directory");
    let backend = FsBackend::open(dir.path().join("store")).expect("open a fresh store");
    // The check writes under `denied/`: create that directory, then take its write bit away.
    std::fs::create_dir(dir.path().join("store/denied")).unwrap();
    let restore = write_protected(&dir.path().join("store/denied"));
    persist_conformance::access_denied(&backend);
    drop(restore);
}
