//! CPU priority for the threads that write off-site, so that a program's own threads (the one
//! saving a generation above all) win the CPU from them.
//!
//! On Linux each thread has its own scheduling policy and nice value, so the replicator's
//! thread and an S3 backend's runtime workers can be lowered while the rest of the process
//! keeps its priority. Lowering needs no privilege; undoing it does. Elsewhere every setting
//! behaves as [`ThreadPriority::Normal`] (there `setpriority` would renice the whole process).

/// The nice value of lowered threads: the lowest priority a normal process can choose.
pub(crate) const BACKGROUND_NICE: i32 = 19;

/// The CPU priority of the threads that replicate off-site (see
/// [`ReplicatorConfig::priority`](crate::ReplicatorConfig::priority) and
/// [`S3BackendBuilder::thread_priority`](crate::S3BackendBuilder::thread_priority)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThreadPriority {
    /// The priority of the thread that started them (the default for a backend, whose requests
    /// the program waits for).
    #[default]
    Normal,
    /// Nice 19: about 1.5% of a core against one normal thread that wants it, all the idle CPU
    /// otherwise. A waking normal thread may still wait out the low thread's time slice.
    Low,
    /// `SCHED_IDLE` (and nice 19): runs only on CPU time nobody else wants, and a waking
    /// normal thread preempts it at once. On a machine busy with other normal work it can
    /// starve, and then replication lags (the lag is reported) instead of the program slowing.
    Idle,
}

impl ThreadPriority {
    /// Applies this priority to the calling thread. A refusal (a seccomp filter, say) is
    /// logged and otherwise ignored: the thread works correctly at any priority.
    pub(crate) fn apply_to_current_thread(self) {
        #[cfg(target_os = "linux")]
        {
            if self == ThreadPriority::Normal {
                return;
            }
            let tid = rustix::thread::gettid();
            if let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
                tracing::warn!(error = %e, "could not lower an off-site thread's nice value");
            }
            if self == ThreadPriority::Idle
                && let Err(e) = set_idle_policy()
            {
                tracing::warn!(error = %e, "could not move an off-site thread to SCHED_IDLE");
            }
        }
    }
}

/// `sched_setscheduler(0, SCHED_IDLE)`: the calling thread only.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_idle_policy() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call, which only
    // reads it; pid 0 names the calling thread, whose policy is all that changes.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's scheduling policy (Linux), for tests.
#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)]
pub(crate) fn current_thread_policy() -> i32 {
    // SAFETY: no arguments but pid 0, the calling thread; reads its policy.
    unsafe { libc::sched_getscheduler(0) }
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

    /// A backend that is always empty and records the priority of the thread listing it.
    #[derive(Debug, Default)]
    struct NiceProbe(std::sync::Mutex<Vec<(i32, i32)>>);

    impl persist_core::Backend for NiceProbe {
        fn location(&self) -> String {
            "nice probe".into()
        }
        fn begin_put(
            &self,
            key: &str,
        ) -> Result<Box<dyn persist_core::NewObject + '_>, BackendError> {
            Err(self.missing(key))
        }
        fn get(&self, key: &str) -> Result<persist_core::ObjectBytes, BackendError> {
            Err(self.missing(key))
        }
        fn list(&self, _: &str) -> Result<Vec<persist_core::ObjectMeta>, BackendError> {
            let policy = current_thread_policy();
            self.0.lock().unwrap().push((current_thread_nice(), policy));
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

    fn replicator_thread_priority(priority: ThreadPriority) -> (i32, i32) {
        let probe = Arc::new(NiceProbe::default());
        let replicator = Replicator::start(
            Box::new(SharedBackend(
                Arc::clone(&probe) as Arc<dyn persist_core::Backend>
            )),
            Arc::new(NiceProbe::default()),
            ReplicatorConfig {
                priority,
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
    fn the_replicator_thread_runs_at_idle_priority_unless_configured_otherwise() {
        assert_eq!(
            replicator_thread_priority(ReplicatorConfig::default().priority),
            (BACKGROUND_NICE, libc::SCHED_IDLE)
        );
        assert_eq!(
            replicator_thread_priority(ThreadPriority::Normal),
            (current_thread_nice(), libc::SCHED_OTHER)
        );
    }
}
