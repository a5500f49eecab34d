//! Reading objects: only regular files, only the bytes asked for, and no allocation that could
//! abort the process.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use persist_core::rkyv::util::AlignedVec;

/// What is at a path instead of a regular file, if anything else is.
pub(crate) fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("directory")
    } else if t.is_symlink() {
        Some("symbolic link")
    } else if t.is_fifo() {
        Some("FIFO")
    } else if t.is_socket() {
        Some("socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("device")
    } else {
        Some("special file")
    }
}

/// An opened object: a regular file and its size, or what is there instead.
pub(crate) enum Opened {
    Regular(File, u64),
    Not(&'static str),
}

/// Opens `path` for reading without following a symbolic link or blocking on a FIFO, and checks
/// on the open descriptor that it is a regular file.
pub(crate) fn open_regular(path: &Path) -> io::Result<Opened> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(no_follow_no_block())
        .open(path)
    {
        Ok(file) => file,
        // O_NOFOLLOW on a symbolic link.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(Opened::Not("symbolic link"));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    Ok(match not_regular(&meta) {
        None => Opened::Regular(file, meta.len()),
        Some(what) => Opened::Not(what),
    })
}

fn no_follow_no_block() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32
}

/// Reads at most `len` bytes from the start of `file`.
pub(crate) fn read_head(file: &File, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match rustix::io::pread(file, &mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Reads the first `len` bytes of `file` into a new 16-byte aligned buffer. Fails with
/// [`io::ErrorKind::OutOfMemory`] rather than abort when `len` bytes cannot be allocated.
pub(crate) fn read_all(file: &File, len: usize) -> io::Result<AlignedVec> {
    // AlignedVec aborts the process when an allocation fails; probe with one that reports
    // failure instead (a large allocation is an mmap that touches no page: two system calls).
    Vec::<u8>::new()
        .try_reserve_exact(len)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
    let mut buf = AlignedVec::with_capacity(len);
    if len >= HUGE_PAGE_THRESHOLD {
        advise_huge_pages(&mut buf);
    }
    read_into_capacity(file, &mut buf, len)?;
    Ok(buf)
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
