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
//! A writable backend holds an exclusive advisory lock on `<root>/.lock` for its lifetime (one
//! writer per store directory), and removes the temp files that aborted saves left behind when it
//! opens.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use persist_core::backend::{Backend, BackendError, NewObject, ObjectBytes, ObjectMeta};
use persist_core::rkyv::util::AlignedVec;

mod mmap;

const LOCK_FILE: &str = ".lock";
const TEMP_SUFFIX: &str = ".tmp";
/// Written bytes are handed to writeback in chunks of this size.
const WRITEBACK_CHUNK: usize = 8 << 20;

/// Why a filesystem store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Another process holds the store's write lock.
    #[error("{root} is locked by another writer (lock file {root}/.lock)")]
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
    _lock: Option<File>,
    removed_temps: Vec<PathBuf>,
    counter: AtomicU64,
    #[cfg(feature = "fault-injection")]
    skip_dir_fsync: std::sync::atomic::AtomicBool,
}

impl FsBackend {
    /// Opens (creating if needed) a store directory for writing: takes its lock and removes
    /// stale temp files of aborted saves (each one is logged, and listed by
    /// [`FsBackend::removed_temps`]).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, FsError> {
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
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(FsError::Locked { root }),
            Err(fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        let mut backend = FsBackend {
            writable: true,
            _lock: Some(lock),
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
            _lock: None,
            removed_temps: Vec::new(),
            counter: AtomicU64::new(0),
            #[cfg(feature = "fault-injection")]
            skip_dir_fsync: std::sync::atomic::AtomicBool::new(false),
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
        self.skip_dir_fsync.store(skip, Ordering::Relaxed);
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
                message: format!("invalid key {key:?}"),
            });
        }
        Ok(self.root.join(key))
    }

    fn io_error(&self, op: &'static str, key: &str, source: io::Error) -> BackendError {
        if source.raw_os_error() == Some(libc_enospc())
            || source.kind() == io::ErrorKind::StorageFull
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
                message: format!("{op} {key}: {source}"),
            },
            _ => BackendError::Io {
                op,
                location: self.location(),
                key: key.to_string(),
                source,
            },
        }
    }

    fn refuse_read_only(&self) -> Result<(), BackendError> {
        if self.writable {
            return Ok(());
        }
        Err(BackendError::AccessDenied {
            location: self.location(),
            message: "opened read-only".into(),
        })
    }

    fn skip_dir_fsync(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        {
            self.skip_dir_fsync.load(Ordering::Relaxed)
        }
        #[cfg(not(feature = "fault-injection"))]
        {
            false
        }
    }
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

/// Objects at least this large are read into memory backed by transparent huge pages where the
/// kernel allows it: page faults, not copying, dominate reading a large object from the page
/// cache, and huge pages take 512 times fewer.
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// Fills the empty `buf` (capacity at least `len`) with the first `len` bytes of `file`, reading
/// straight into its uninitialised capacity so that no byte is written twice. A file shorter than
/// `len` is an [`io::ErrorKind::UnexpectedEof`] error.
fn read_into_capacity(file: &File, buf: &mut AlignedVec, len: usize) -> io::Result<()> {
    assert!(
        buf.is_empty() && buf.capacity() >= len,
        "caller reserves the capacity"
    );
    // SAFETY: the buffer owns an allocation of at least `len` bytes (asserted above), and
    // `MaybeUninit<u8>` has the layout of `u8` and claims nothing about initialisation. `buf` is
    // not touched while `spare` lives.
    let spare = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<std::mem::MaybeUninit<u8>>(), len)
    };
    let mut filled = 0;
    while filled < len {
        match rustix::io::pread(file, &mut spare[filled..], filled as u64) {
            Ok(([], _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok((read, _)) => filled += read.len(),
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(e.into()),
        }
    }
    // SAFETY: the loop ended with `filled == len`: `pread` initialised all `len` bytes.
    unsafe { buf.set_len(len) };
    Ok(())
}

/// Asks the kernel to back the capacity of `buf` with transparent huge pages (`MADV_HUGEPAGE`,
/// Linux only). A hint: it changes no byte, and failure is harmless.
#[cfg(target_os = "linux")]
fn advise_huge_pages(buf: &mut AlignedVec) {
    const PAGE: usize = 4096;
    let start = buf.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(PAGE);
    let end = (start + buf.capacity()) / PAGE * PAGE;
    if end <= aligned {
        return;
    }
    // SAFETY: `[aligned, end)` lies inside the buffer's own allocation and is page aligned;
    // MADV_HUGEPAGE only changes how the kernel backs those pages, never their contents.
    let rc = unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            end - aligned,
            libc::MADV_HUGEPAGE,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "madvise(MADV_HUGEPAGE) refused");
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buf: &mut AlignedVec) {}

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
            file.write_all(chunk)
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
        file.sync_all()
            .map_err(|e| b.io_error("fsync", &self.key, e))?;
        drop(file);
        rename_noreplace(&self.temp, &self.target)
            .map_err(|e| b.io_error("rename", &self.key, e))?;
        // The temp name is gone; nothing for Drop to clean up.
        self.temp = PathBuf::new();
        if !b.skip_dir_fsync() {
            sync_dir(&self.dir).map_err(|e| b.io_error("fsync directory of", &self.key, e))?;
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
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
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
        match mmap::map_file(&path) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => self.get(key),
            Err(e) => Err(self.io_error("map", key, e)),
        }
    }

    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let path = self.resolve(key)?;
        let file = File::open(&path).map_err(|e| self.io_error("open", key, e))?;
        let len = file
            .metadata()
            .map_err(|e| self.io_error("stat", key, e))?
            .len();
        let len = usize::try_from(len).map_err(|_| BackendError::Other {
            location: self.location(),
            message: format!("{key} is too large for this platform"),
        })?;
        let mut buf = AlignedVec::with_capacity(len);
        if len >= HUGE_PAGE_THRESHOLD {
            advise_huge_pages(&mut buf);
        }
        read_into_capacity(&file, &mut buf, len).map_err(|e| self.io_error("read", key, e))?;
        Ok(ObjectBytes::new(buf))
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
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if name.starts_with('.') || !is_file {
                    continue;
                }
                let key = format!("{dir}/{name}");
                if !key.starts_with(prefix) {
                    continue;
                }
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(ObjectMeta { key, size });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.refuse_read_only()?;
        let path = self.resolve(key)?;
        fs::remove_file(&path).map_err(|e| self.io_error("delete", key, e))
    }

    fn free_space(&self) -> Result<Option<u64>, BackendError> {
        let st =
            rustix::fs::statvfs(&self.root).map_err(|e| self.io_error("statvfs", "", e.into()))?;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }
}
