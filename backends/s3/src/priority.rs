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
