//! Read-only memory maps of generation files, for zero-copy loads (`Store::open`).

use std::fs::File;

use persist_core::ObjectBytes;

/// Maps the whole file at `path` read-only. `Ok(None)` for an empty file, which cannot be
/// mapped (the caller reads it instead).
pub(crate) fn map_file(file: &File, len: u64) -> std::io::Result<Option<ObjectBytes>> {
    if len == 0 {
        return Ok(None);
    }
    // `populate`: every page is read anyway (the HMAC covers the whole file), so fault them in
    // with one call rather than one page fault at a time.
    //
    // SAFETY: a memory map is sound only while nobody modifies or truncates the file under it.
    // The file is a committed generation of a persist store: it was written to a temp file,
    // fsynced and renamed into place with RENAME_NOREPLACE, and the store never opens it for
    // writing again; it is only ever read, then deleted by retention (unlinking a mapped file
    // keeps its pages alive until the map is dropped, so deletion is harmless). The map is
    // read-only (PROT_READ), so this process cannot write through it either.
    //
    // What is outside our control: another process with write access to the store directory
    // could modify the file in place or truncate it. A truncation makes reads of the lost pages
    // raise SIGBUS (the process dies; no wrong value is returned). An in-place modification
    // after validation could change bytes under a reference rkyv has validated, which is
    // undefined behaviour in principle; it requires deliberate tampering with files that the
    // store's own protocol never writes twice, and the HMAC and validation checks make it
    // visible to the next open. Deployments that cannot trust other writers to the directory
    // should use `Store::load` (which copies) instead of `Store::open`.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
    Ok(Some(ObjectBytes::mapped(Box::new(map))))
}
