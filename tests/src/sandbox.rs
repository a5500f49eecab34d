//! Root-only test rigs: tmpfs and loop mounts that are always cleaned up, and the power cut.
//!
//! A test that needs root, loop devices or `mkfs.*` first calls [`privileged_or_skip`]: without
//! them it prints `SKIPPED <test>: <reason>` and returns, except under `CI=true`, where a missing
//! rig is a failure (CI must run these tests).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `FS_IOC_SHUTDOWN` = `_IOR('X', 125, __u32)`: shuts a filesystem down (ext4, XFS).
const FS_IOC_SHUTDOWN: u32 = 0x8004_587d;
/// Shut down without flushing the journal: what a power cut does.
const FS_GOING_DOWN_NOLOGFLUSH: u32 = 2;

/// Why a rig could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// A command could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A command exited with a failure.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file operation failed.
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

/// Runs a command to completion; returns its stdout, or an error with its stderr.
pub fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String, RigError> {
    let command = std::iter::once(program.to_string())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| RigError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(RigError::Failed {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why the privileged rig is unavailable, or `None` if it is: needs root, `mount`, and each of
/// `tools` on the `PATH`; `needs_loop` also needs `/dev/loop-control`.
pub fn missing_rig(tools: &[&str], needs_loop: bool) -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not running as root".into());
    }
    if needs_loop && !Path::new("/dev/loop-control").exists() {
        return Some("no loop devices (/dev/loop-control is missing)".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in std::iter::once(&"mount").chain(tools) {
        if !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// `true` if the privileged rig is available. Otherwise prints `SKIPPED <test>: <reason>` to
/// stderr and returns `false`, or panics if the environment variable `CI` is `true`.
pub fn privileged_or_skip(test: &str, tools: &[&str], needs_loop: bool) -> bool {
    let Some(reason) = missing_rig(tools, needs_loop) else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run under CI=true: {reason}");
    }
    crate::torture::report(&format!("SKIPPED {test}: {reason}"));
    false
}

/// A mounted filesystem, unmounted (lazily if busy) when dropped; a loop mount's loop devices are
/// detached too.
#[derive(Debug)]
pub struct Mount {
    target: PathBuf,
    image: Option<PathBuf>,
    mounted: bool,
}

impl Mount {
    /// Mounts a tmpfs at `target` with `options` (e.g. `size=1m`).
    pub fn tmpfs(target: &Path, options: &str) -> Result<Mount, RigError> {
        run(
            "mount",
            &[
                OsStr::new("-t"),
                OsStr::new("tmpfs"),
                OsStr::new("-o"),
                OsStr::new(options),
                OsStr::new("tmpfs"),
                target.as_os_str(),
            ],
        )?;
        Ok(Mount {
            target: target.to_path_buf(),
            image: None,
            mounted: true,
        })
    }

    /// Loop-mounts the filesystem image `image` of type `fstype` at `target`.
    pub fn loop_image(image: &Path, target: &Path, fstype: &str) -> Result<Mount, RigError> {
        let mut mount = Mount {
            target: target.to_path_buf(),
            image: Some(image.to_path_buf()),
            mounted: false,
        };
        run(
            "mount",
            &[
                OsStr::new("-t"),
                OsStr::new(fstype),
                OsStr::new("-o"),
                OsStr::new("loop"),
                image.as_os_str(),
                target.as_os_str(),
            ],
        )?;
        mount.mounted = true;
        Ok(mount)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting a failure (which `Drop` can only log).
    pub fn unmount(mut self) -> Result<(), RigError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), RigError> {
        if self.mounted {
            if let Err(e) = run("umount", &[&self.target]) {
                eprintln!(
                    "umount {} failed ({e}); unmounting lazily",
                    self.target.display()
                );
                run("umount", &[OsStr::new("-l"), self.target.as_os_str()])?;
            }
            self.mounted = false;
        }
        if let Some(image) = self.image.take() {
            // `mount -o loop` sets autoclear; detach whatever is still attached to the image.
            let attached = run("losetup", &[OsStr::new("-j"), image.as_os_str()])?;
            for device in attached.lines().filter_map(|l| l.split(':').next()) {
                run("losetup", &["-d", device])?;
            }
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("cleaning up the mount at {}: {e}", self.target.display());
        }
    }
}

/// Creates a sparse image of `bytes` at `image` and formats it with `mkfs.<fstype>`.
pub fn make_filesystem(image: &Path, fstype: &str, bytes: u64) -> Result<(), RigError> {
    let io = |op, source| RigError::Io {
        op,
        path: image.to_path_buf(),
        source,
    };
    File::create(image)
        .map_err(|e| io("create", e))?
        .set_len(bytes)
        .map_err(|e| io("size", e))?;
    let force = if fstype == "xfs" { "-f" } else { "-F" };
    run(
        &format!("mkfs.{fstype}"),
        &[OsStr::new("-q"), OsStr::new(force), image.as_os_str()],
    )?;
    Ok(())
}

/// Cuts the power of the filesystem mounted at `mount_point`: `FS_IOC_SHUTDOWN` with
/// `FS_GOING_DOWN_NOLOGFLUSH`. Every later write fails with EIO, and whatever the journal had not
/// committed is gone once the filesystem is mounted again.
pub fn cut_power(mount_point: &Path) -> io::Result<()> {
    let dir = File::open(mount_point)?;
    let flags: u32 = FS_GOING_DOWN_NOLOGFLUSH;
    // SAFETY: `dir` is an open descriptor for the duration of the call, and FS_IOC_SHUTDOWN
    // reads exactly one `u32` through the pointer, which points at a live local `u32`.
    let rc = unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            FS_IOC_SHUTDOWN as _,
            std::ptr::from_ref(&flags),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
