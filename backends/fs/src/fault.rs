//! Test-only fault injection (the `fault-injection` feature; never enable it in a program).
//!
//! A test can make one operation of the write protocol fail with a chosen `errno`, to prove that
//! every failure leaves no temp file and no acknowledged save behind, or skip the directory
//! `fsync` to prove the power-cut test can fail. Without the feature every check is a no-op.

use std::io;

/// An operation of the filesystem backend that a test can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Creating the temp file of a new object.
    CreateTemp,
    /// One `write` of a new object's bytes.
    Write,
    /// The `fsync` of the temp file.
    FsyncFile,
    /// The create-only rename into place.
    Rename,
    /// The `fsync` of the directory after the rename.
    FsyncDir,
    /// Deleting an object (retention's unlinks).
    Delete,
}

impl Op {
    /// Every operation, in the order a save (then its retention) performs them.
    pub const ALL: [Op; 6] = [
        Op::CreateTemp,
        Op::Write,
        Op::FsyncFile,
        Op::Rename,
        Op::FsyncDir,
        Op::Delete,
    ];
}

/// One injected failure: the `nth` (from 0) occurrence of `op` fails with `errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The operation.
    pub op: Op,
    /// Which occurrence of it fails, counting from 0 since the fault was set.
    pub nth: u32,
    /// The error number it fails with (`libc::EIO`, `ENOSPC`, `EDQUOT`, …).
    pub errno: i32,
}

/// The faults of one backend.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    #[cfg(feature = "fault-injection")]
    skip_dir_fsync: std::sync::atomic::AtomicBool,
    #[cfg(feature = "fault-injection")]
    plan: std::sync::Mutex<Option<(Fault, u32)>>,
}

impl Faults {
    /// Fails if a fault is set for this occurrence of `op`.
    pub(crate) fn check(&self, op: Op) -> io::Result<()> {
        #[cfg(feature = "fault-injection")]
        {
            let mut plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((fault, seen)) = plan.as_mut()
                && fault.op == op
            {
                *seen += 1;
                if *seen == fault.nth + 1 {
                    return Err(io::Error::from_raw_os_error(fault.errno));
                }
            }
        }
        let _ = op;
        Ok(())
    }

    pub(crate) fn skip_dir_fsync(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        {
            self.skip_dir_fsync
                .load(std::sync::atomic::Ordering::Relaxed)
        }
        #[cfg(not(feature = "fault-injection"))]
        false
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn set_skip_dir_fsync(&self, skip: bool) {
        self.skip_dir_fsync
            .store(skip, std::sync::atomic::Ordering::Relaxed);
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn set(&self, fault: Option<Fault>) {
        *self.plan.lock().unwrap_or_else(|p| p.into_inner()) = fault.map(|f| (f, 0));
    }
}
