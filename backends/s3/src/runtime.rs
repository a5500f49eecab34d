//! The backend's own small tokio runtime, so that the synchronous [`persist_core::Backend`]
//! trait can be served from plain threads and from inside a caller's tokio runtime alike.
//!
//! A future is spawned on this runtime and the calling thread waits for its result on a
//! `std::sync::mpsc` channel: no `block_on` is ever called, so calling from an async context
//! does not panic (it blocks that worker thread for the duration of the request, as any
//! synchronous I/O would; async callers should use `spawn_blocking`).

use std::future::Future;
use std::sync::mpsc;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::priority::ThreadPriority;

/// An owned runtime, shut down in the background on drop (dropping a runtime inside an async
/// context would otherwise panic).
#[derive(Debug)]
pub(crate) struct OwnedRuntime {
    runtime: Option<Runtime>,
}

impl OwnedRuntime {
    /// A multi-threaded runtime with `threads` workers and I/O and time drivers; every thread
    /// it starts (workers and blocking threads) runs at `priority`.
    pub(crate) fn new(threads: usize, priority: ThreadPriority) -> std::io::Result<Self> {
        let mut builder = Builder::new_multi_thread();
        builder
            .worker_threads(threads.max(1))
            .thread_name("persist-s3")
            .enable_all();
        if priority != ThreadPriority::Normal {
            builder.on_thread_start(move || priority.apply_to_current_thread());
        }
        let runtime = builder.build()?;
        Ok(OwnedRuntime {
            runtime: Some(runtime),
        })
    }

    /// The runtime's handle.
    pub(crate) fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .map(Runtime::handle)
            .expect("the runtime is present until drop")
    }

    /// Runs `future` on this runtime and waits for its output on the calling thread.
    pub(crate) fn run<F>(&self, future: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(future.await);
        });
        // `None` only if the task was cancelled: the runtime is shutting down.
        rx.recv().ok()
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::priority::{BACKGROUND_NICE, current_thread_nice, current_thread_policy};

    #[test]
    fn background_runtime_threads_run_at_idle_priority_and_others_keep_theirs() {
        let caller = current_thread_nice();
        let background = OwnedRuntime::new(1, ThreadPriority::Idle).unwrap();
        let blocking = background.handle().clone();
        let seen = background
            .run(async move {
                let worker = (current_thread_nice(), current_thread_policy());
                let blocking = blocking
                    .spawn_blocking(|| (current_thread_nice(), current_thread_policy()))
                    .await
                    .unwrap();
                (worker, blocking)
            })
            .unwrap();
        let background = (BACKGROUND_NICE, libc::SCHED_IDLE);
        assert_eq!(seen, (background, background));
        let low = OwnedRuntime::new(1, ThreadPriority::Low).unwrap();
        let seen = low.run(async { (current_thread_nice(), current_thread_policy()) });
        assert_eq!(seen, Some((BACKGROUND_NICE, libc::SCHED_OTHER)));
        let normal = OwnedRuntime::new(1, ThreadPriority::Normal).unwrap();
        assert_eq!(normal.run(async { current_thread_nice() }), Some(caller));
        assert_eq!(
            current_thread_nice(),
            caller,
            "the caller's priority is untouched"
        );
    }
}
