//! The conformance suite on [`MemoryBackend`]: fresh backends, one with a quota for `NoSpace`,
//! one set read-only for `AccessDenied`.

use persist_conformance::Subject;
use persist_core::MemoryBackend;

persist_conformance::suite! {
    fresh: |_| Subject::new(MemoryBackend::new()),
    // 64 KiB of room: the check's 1 MiB write cannot fit.
    no_space: |_| Subject::new(MemoryBackend::with_quota(64 << 10)),
    access_denied: |_| {
        let backend = MemoryBackend::new();
        backend.set_read_only(true);
        Subject::new(backend)
    },
}

/// The suite again through the blanket impls: a `Box<dyn Backend>` and an `Arc` of one are
/// backends that behave exactly as the backend inside.
mod through_box_and_arc {
    use std::sync::Arc;

    use persist_conformance::Subject;
    use persist_core::{Backend, MemoryBackend};

    fn boxed() -> Box<dyn Backend> {
        Box::new(MemoryBackend::new())
    }

    persist_conformance::suite! {
        fresh: |_| Subject::new(Arc::new(boxed())),
        no_space: |_| Subject::new(Box::new(MemoryBackend::with_quota(1024))),
        access_denied: unsupported("covered above; this module checks the forwarding of Box and Arc"),
    }
}
