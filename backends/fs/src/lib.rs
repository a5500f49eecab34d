//! The local filesystem backend of persist.
//!
//! Layout: `<root>/<state name>/<sequence, 20 digits>.pst`, plus `<root>/.lock`.
//!
//! A new object is written in the protocol that makes it durable and atomic:
//!
//! 1. write to a unique temp file `.<file>.<pid>.<n>.tmp` in the target directory;
//! 2. `fsync` the temp file;
//! 3. `rename` it to its final name without replacing anything (`RENAME_NOREPLACE`);
//! 4. `fsync` the directory, so the new name itself survives a power cut.
//!
//! Only then does [`persist_core::NewObject::commit`] return `Ok`. A failed `fsync` is returned
//! as an error and never retried: after a failed `fsync` Linux may have dropped the dirty pages
//! and marked them clean, so a retry could "succeed" over lost data (PostgreSQL's fsyncgate).
//! The temp file is removed and the next save writes a fresh one.
//!
//! While a large object is written, each full 8 MiB is handed to writeback at once
//! (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, Linux only), so that the disk works while
//! the rest is written and signed, and the `fsync` of step 2 has little left to do. That call is
//! advisory: it waits for nothing and guarantees nothing, its errors are ignored, and the `fsync`
//! still covers every byte and reports any writeback error since the file was opened (Linux
//! records those per open file, and `sync_file_range` does not consume them).
//!
//! A writable backend holds an exclusive advisory lock on the store directory itself for its
//! lifetime (one writer per store directory; a lock file could be deleted out from under a
//! running writer, the directory cannot while it holds generations), and also on `<root>/.lock`
//! so that older releases, which lock only that file, are excluded too. It removes the temp
//! files that aborted saves left behind when it opens.
//!
//! Reading: an object must be a regular file. Anything else at a generation's name (a directory,
//! FIFO, device or symbolic link) is listed, so the store's sequence numbers skip it, but
//! reading it fails with [`BackendError::NotAnObject`] without opening it for more than an
//! `fstat` (`O_NOFOLLOW | O_NONBLOCK`: no symbolic link is followed, no FIFO blocks).
//! [`Backend::get_head`] reads only the first bytes, so the store checks a generation's header
//! against its size before reading the rest; a buffer is allocated with `try_reserve`, so even
//! a size the header authorises cannot abort the process.
//!
//! New files are created with mode `0600` (they hold the program's private state);
//! [`FsOptions::file_mode`] changes that.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use persist_core::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};

mod fault;
mod mmap;
mod read;

use fault::Faults;
pub use fault::{Fault, Op};

const LOCK_FILE: &str = ".lock";
const TEMP_SUFFIX: &str = ".tmp";
/// Written bytes are handed to writeback in chunks of this size.
const WRITEBACK_CHUNK: usize = 8 << 20;

/// Why a filesystem store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Another process holds the store's write lock.
    #[error("{root} is locked by another writer (a lock on the directory and on {root}/.lock)")]
    Locked {
        /// The store's root.
        root: PathBuf,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// A store directory on the local filesystem.
///
/// ```no_run
/// let backend = persist_fs::FsBackend::open("./state")?;
/// # Ok::<(), persist_fs::FsError>(())
/// ```
#[derive(Debug)]
pub struct FsBackend {
    root: PathBuf,
    writable: bool,
    /// The locked store directory and lock file, held for the backend's lifetime.
    _locks: Vec<File>,
    removed_temps: Vec<PathBuf>,
    counter: AtomicU64,
    options: FsOptions,
    faults: Faults,
}

/// How a writable [`FsBackend`] creates files.
///
/// ```no_run
/// use persist_fs::{FsBackend, FsOptions};
/// let shared = FsOptions { file_mode: 0o640, ..FsOptions::default() };
/// let backend = FsBackend::open_with("./state", shared)?;
/// # Ok::<(), persist_fs::FsError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsOptions {
    /// The permission bits of new generation files (default `0o600`: readable by the owner
    /// only, since they hold the program's private state). The process umask still applies.
    pub file_mode: u32,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions { file_mode: 0o600 }
    }
}

impl FsBackend {
    /// Opens (creating if needed) a store directory for writing: takes its lock and removes
    /// stale temp files of aborted saves (each one is logged, and listed by
    /// [`FsBackend::removed_temps`]).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, FsError> {
        FsBackend::open_with(root, FsOptions::default())
    }

    /// [`FsBackend::open`] with options.
    pub fn open_with(root: impl AsRef<Path>, options: FsOptions) -> Result<Self, FsError> {
        let root = root.as_ref().to_path_buf();
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| FsError::Io { op, path, source }
        };
        if ensure_dir(&root).map_err(io("create", &root))?
            && let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty())
        {
            sync_dir(parent).map_err(io("fsync", parent))?;
        }
        let dir = File::open(&root).map_err(io("open", &root))?;
        let lock_path = root.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        for (file, path) in [(&dir, root.clone()), (&lock_file, lock_path)] {
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Err(FsError::Locked { root }),
                Err(fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
            }
        }
        let mut backend = FsBackend {
            writable: true,
            _locks: vec![dir, lock_file],
            options,
            ..FsBackend::unlocked(root)
        };
        backend.removed_temps = backend.remove_stale_temps()?;
        Ok(backend)
    }

    /// Opens a store directory for reading only: no lock, no clean-up, and every write or delete
    /// is refused. For inspection tools running beside a live writer.
    pub fn open_read_only(root: impl AsRef<Path>) -> Result<Self, FsError> {
        let root = root.as_ref().to_path_buf();
        fs::metadata(&root).map_err(|source| FsError::Io {
            op: "open",
            path: root.clone(),
            source,
        })?;
        Ok(FsBackend::unlocked(root))
    }

    fn unlocked(root: PathBuf) -> Self {
        FsBackend {
            root,
            writable: false,
            _locks: Vec::new(),
            removed_temps: Vec::new(),
            counter: AtomicU64::new(0),
            options: FsOptions::default(),
            faults: Faults::default(),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stale temp files removed when the store was opened.
    pub fn removed_temps(&self) -> &[PathBuf] {
        &self.removed_temps
    }

    /// Test-only: skips the directory fsync after the rename, which makes acknowledged saves
    /// losable in a power cut. Exists to prove the power-cut test can fail.
    #[cfg(feature = "fault-injection")]
    pub fn set_skip_dir_fsync(&self, skip: bool) {
        self.faults.set_skip_dir_fsync(skip);
    }

    /// Test-only: makes one operation fail with an error number (see [`Fault`]); `None` clears
    /// it.
    #[cfg(feature = "fault-injection")]
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.faults.set(fault);
    }

    fn remove_stale_temps(&self) -> Result<Vec<PathBuf>, FsError> {
        let mut removed = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(|source| FsError::Io {
            op: "read directory",
            path: self.root.clone(),
            source,
        })?;
        for dir in entries.flatten().filter(|e| e.path().is_dir()) {
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
                    let path = file.path();
                    fs::remove_file(&path).map_err(|source| FsError::Io {
                        op: "remove stale temp file",
                        path: path.clone(),
                        source,
                    })?;
                    tracing::warn!(path = %path.display(), "removed stale temp file of an aborted save");
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }

    /// Maps a key onto a path under the root, refusing anything that could leave it.
    fn resolve(&self, key: &str) -> Result<PathBuf, BackendError> {
        let bad = key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\\') || c.contains('\0'));
        if bad || key.starts_with('/') {
            return Err(BackendError::Other {
                location: self.location(),
                source: format!("invalid key {key:?}").into(),
            });
        }
        Ok(self.root.join(key))
    }

    fn io_error(&self, op: &'static str, key: &str, source: io::Error) -> BackendError {
        if source.raw_os_error() == Some(libc_enospc())
            || matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            )
        {
            return BackendError::NoSpace {
                location: self.location(),
                key: key.to_string(),
            };
        }
        match source.kind() {
            io::ErrorKind::NotFound => BackendError::NotFound {
                location: self.location(),
                key: key.to_string(),
            },
            io::ErrorKind::AlreadyExists => BackendError::AlreadyExists {
                location: self.location(),
                key: key.to_string(),
            },
            io::ErrorKind::PermissionDenied => BackendError::AccessDenied {
                location: self.location(),
                source: Box::new(OpError {
                    op,
                    key: key.to_string(),
                    source,
                }),
            },
            _ => BackendError::Io {
                op,
                location: self.location(),
                key: key.to_string(),
                source,
            },
        }
    }

    fn not_an_object(&self, key: &str, what: &'static str) -> BackendError {
        BackendError::NotAnObject {
            location: self.location(),
            key: key.to_string(),
            what,
        }
    }

    fn refuse_read_only(&self) -> Result<(), BackendError> {
        if self.writable {
            return Ok(());
        }
        Err(BackendError::AccessDenied {
            location: self.location(),
            source: "opened read-only".into(),
        })
    }
}

/// An operating system error with the operation and key it happened to: the source of a
/// [`BackendError::AccessDenied`], whose message then names both (the `io::Error` is this
/// error's own source).
#[derive(Debug, thiserror::Error)]
#[error("{op} {key}: {source}")]
struct OpError {
    op: &'static str,
    key: String,
    source: io::Error,
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

/// Creates `dir` (and its parents) unless it exists; returns whether it was created.
///
/// Only a `NotFound` from `stat` means "create it": any other error (an `EIO` after a filesystem
/// shutdown, say) is returned as it is, never mistaken for a missing directory.
fn ensure_dir(dir: &Path) -> io::Result<bool> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(false),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir).map(|()| true),
        Err(e) => Err(e),
    }
}

/// `fsync` of a directory, which makes the names in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames without replacing. Falls back to `link` + `unlink` (also create-only) on
/// filesystems without `RENAME_NOREPLACE`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk now, without
/// waiting. Advisory: errors are ignored because the `fsync` of the commit reports any writeback
/// failure (see the crate docs).
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: `sync_file_range` takes only integers, and the descriptor stays open for the call
    // because `file` is borrowed; it touches no memory of this process.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "sync_file_range failed; fsync will do the work");
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// An object being written to a temp file.
struct FsObject<'a> {
    backend: &'a FsBackend,
    key: String,
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    /// Bytes written so far.
    written: u64,
    /// Bytes already handed to writeback.
    submitted: u64,
}

impl NewObject for FsObject<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        let file = self.file.as_mut().expect("file is open until commit");
        for chunk in bytes.chunks(WRITEBACK_CHUNK) {
            let written = self.backend.faults.check(Op::Write);
            written
                .and_then(|()| file.write_all(chunk))
                .map_err(|e| self.backend.io_error("write", &self.key, e))?;
            self.written += chunk.len() as u64;
            if self.written - self.submitted >= WRITEBACK_CHUNK as u64 {
                start_writeback(file, self.submitted, self.written - self.submitted);
                self.submitted = self.written;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), BackendError> {
        let file = self.file.take().expect("file is open until commit");
        let b = self.backend;
        // Never retried: see the crate docs (fsyncgate).
        b.faults
            .check(Op::FsyncFile)
            .and_then(|()| file.sync_all())
            .map_err(|e| b.io_error("fsync", &self.key, e))?;
        drop(file);
        b.faults
            .check(Op::Rename)
            .and_then(|()| rename_noreplace(&self.temp, &self.target))
            .map_err(|e| b.io_error("rename", &self.key, e))?;
        // The temp name is gone; nothing for Drop to clean up.
        self.temp = PathBuf::new();
        if !b.faults.skip_dir_fsync() {
            b.faults
                .check(Op::FsyncDir)
                .and_then(|()| sync_dir(&self.dir))
                .map_err(|e| b.io_error("fsync directory of", &self.key, e))?;
        }
        Ok(())
    }
}

impl Drop for FsObject<'_> {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            self.file = None;
            if let Err(e) = fs::remove_file(&self.temp) {
                tracing::warn!(path = %self.temp.display(), error = %e, "cannot remove temp file");
            }
        }
    }
}

impl Backend for FsBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        self.refuse_read_only()?;
        let target = self.resolve(key)?;
        let dir = target
            .parent()
            .expect("a resolved key has a parent")
            .to_path_buf();
        let created =
            ensure_dir(&dir).map_err(|e| self.io_error("create directory for", key, e))?;
        if created {
            // The new directory's own name must be durable too.
            let parent = dir.parent().unwrap_or(&self.root);
            sync_dir(parent).map_err(|e| self.io_error("fsync directory of", key, e))?;
        }
        let file_name = target.file_name().expect("a key ends in a file name");
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(
            ".{}.{}.{n}{TEMP_SUFFIX}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let file = self
            .faults
            .check(Op::CreateTemp)
            .and_then(|()| {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(self.options.file_mode)
                    .open(&temp)
            })
            .map_err(|e| self.io_error("create temp file for", key, e))?;
        Ok(Box::new(FsObject {
            backend: self,
            key: key.to_string(),
            file: Some(file),
            temp,
            target,
            dir,
            written: 0,
            submitted: 0,
        }))
    }

    /// A read-only memory map of the generation file (see `mmap.rs` for why that is sound).
    fn get_mapped(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let path = self.resolve(key)?;
        match read::open_regular(&path).map_err(|e| self.io_error("open", key, e))? {
            read::Opened::Regular(file, len) => match mmap::map_file(&file, len) {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => self.get(key),
                Err(e) => Err(self.io_error("map", key, e)),
            },
            read::Opened::Not(what) => Err(self.not_an_object(key, what)),
        }
    }

    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let path = self.resolve(key)?;
        let (file, len) =
            match read::open_regular(&path).map_err(|e| self.io_error("open", key, e))? {
                read::Opened::Regular(file, len) => (file, len),
                read::Opened::Not(what) => return Err(self.not_an_object(key, what)),
            };
        let len = usize::try_from(len).map_err(|_| BackendError::Other {
            location: self.location(),
            source: format!("{key} is too large for this platform").into(),
        })?;
        let buf = read::read_all(&file, len).map_err(|e| self.io_error("read", key, e))?;
        Ok(ObjectBytes::new(buf))
    }

    fn get_head(&self, key: &str, len: usize) -> Result<ObjectHead, BackendError> {
        let path = self.resolve(key)?;
        match read::open_regular(&path).map_err(|e| self.io_error("open", key, e))? {
            read::Opened::Regular(file, size) => Ok(ObjectHead::new(
                read::read_head(&file, len).map_err(|e| self.io_error("read", key, e))?,
                size,
            )),
            read::Opened::Not(what) => Err(self.not_an_object(key, what)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        let dirs: Vec<String> = if prefix.is_empty() {
            match fs::read_dir(&self.root) {
                Ok(entries) => entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect(),
                Err(e) => return Err(self.io_error("list", "", e)),
            }
        } else {
            vec![prefix.trim_end_matches('/').to_string()]
        };
        let mut out = Vec::new();
        for dir in dirs {
            let path = self.resolve(&dir)?;
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_error("list", &dir, e)),
            };
            // Everything but the temp files, regular or not: a directory or FIFO at a
            // generation's name must count for the next sequence number (reading it fails with
            // NotAnObject, which the store reports).
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let key = format!("{dir}/{name}");
                if !key.starts_with(prefix) {
                    continue;
                }
                // DirEntry::metadata does not follow a symbolic link.
                let size = entry
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .map_or(0, |m| m.len());
                out.push(ObjectMeta::new(key, size));
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.refuse_read_only()?;
        let path = self.resolve(key)?;
        self.faults
            .check(Op::Delete)
            .and_then(|()| fs::remove_file(&path))
            .map_err(|e| self.io_error("delete", key, e))
    }

    fn free_space(&self) -> Result<Option<u64>, BackendError> {
        let st =
            rustix::fs::statvfs(&self.root).map_err(|e| self.io_error("statvfs", "", e.into()))?;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }
}
