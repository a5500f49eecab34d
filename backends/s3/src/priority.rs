//! Background CPU priority for the threads that write off-site, so that a program's own
//! threads (the one saving a generation above all) always win the CPU from them.
//!
//! On Linux a thread's nice value is its own (`setpriority(PRIO_PROCESS, tid, …)` applies to
//! that one thread), so the replicator's thread and an S3 backend's runtime workers can run at
//! [`BACKGROUND_NICE`] while the rest of the process keeps its priority. A nice-19 thread gets
//! about 1.5% of a core against one nice-0 thread that wants it, and all the idle CPU
//! otherwise: the upload runs at full speed on an idle machine and yields on a busy one.
//! Elsewhere this is a no-op (there the call would renice the whole process).

/// The nice value of background threads: the lowest priority a normal process can choose.
pub(crate) const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread's CPU priority to [`BACKGROUND_NICE`]. Lowering needs no
/// privilege; a failure (a seccomp filter, say) is logged once per thread and otherwise
/// ignored, since the thread works correctly at any priority.
pub(crate) fn lower_current_thread() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
            tracing::warn!(error = %e, "could not lower an off-site thread's CPU priority");
        }
    }
}

/// The calling thread's nice value (Linux; 0 elsewhere), for tests.
#[cfg(test)]
pub(crate) fn current_thread_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use persist_core::BackendError;

    use super::*;
    use crate::runtime::OwnedRuntime;
    use crate::{Replicator, ReplicatorConfig, SharedBackend};

    #[test]
    fn background_runtime_threads_run_at_nice_19_and_others_keep_theirs() {
        let caller = current_thread_nice();
        let background = OwnedRuntime::new(1, true).unwrap();
        let blocking = background.handle().clone();
        let seen = background
            .run(async move {
                let worker = current_thread_nice();
                let blocking = blocking.spawn_blocking(current_thread_nice).await.unwrap();
                (worker, blocking)
            })
            .unwrap();
        assert_eq!(seen, (BACKGROUND_NICE, BACKGROUND_NICE));
        let normal = OwnedRuntime::new(1, false).unwrap();
        assert_eq!(normal.run(async { current_thread_nice() }), Some(caller));
        assert_eq!(
            current_thread_nice(),
            caller,
            "the caller's priority is untouched"
        );
    }

    /// A backend that is always empty and records the nice value of the thread listing it.
    #[derive(Debug, Default)]
    struct NiceProbe(std::sync::Mutex<Vec<i32>>);

    impl persist_core::Backend for NiceProbe {
        fn location(&self) -> String {
            "nice probe".into()
        }
        fn begin_put(
            &self,
            key: &str,
        ) -> Result<Box<dyn persist_core::backend::NewObject + '_>, BackendError> {
            Err(self.missing(key))
        }
        fn get(&self, key: &str) -> Result<persist_core::backend::ObjectBytes, BackendError> {
            Err(self.missing(key))
        }
        fn list(&self, _: &str) -> Result<Vec<persist_core::backend::ObjectMeta>, BackendError> {
            self.0.lock().unwrap().push(current_thread_nice());
            Ok(Vec::new())
        }
        fn delete(&self, key: &str) -> Result<(), BackendError> {
            Err(self.missing(key))
        }
    }

    impl NiceProbe {
        fn missing(&self, key: &str) -> BackendError {
            BackendError::NotFound {
                location: "nice probe".into(),
                key: key.into(),
            }
        }
    }

    fn replicator_thread_nice(background: bool) -> i32 {
        let probe = Arc::new(NiceProbe::default());
        let replicator = Replicator::start(
            Box::new(SharedBackend(
                Arc::clone(&probe) as Arc<dyn persist_core::Backend>
            )),
            Arc::new(NiceProbe::default()),
            ReplicatorConfig {
                background_priority: background,
                ..ReplicatorConfig::default()
            },
        );
        let status = replicator.wait_caught_up(Duration::from_secs(10));
        assert!(status.is_caught_up(), "{status:?}");
        replicator.stop();
        let seen = probe.0.lock().unwrap();
        assert!(!seen.is_empty(), "the replicator listed the local backend");
        seen[0]
    }

    #[test]
    fn the_replicator_thread_runs_at_background_priority_unless_configured_otherwise() {
        assert_eq!(replicator_thread_nice(true), BACKGROUND_NICE);
        assert_eq!(replicator_thread_nice(false), current_thread_nice());
    }
}
