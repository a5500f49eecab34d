//! The CLI's typed errors, its exit statuses, and how an error is printed.
//!
//! Exit codes: 0 success, 1 a verification failure (a generation or file that does not verify),
//! 2 a usage or setup error (bad arguments, missing key, unreadable directory, …). clap exits with
//! 2 on its own usage errors.

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use persist_core::{BackendError, KeyError, LoadError, SaveError};
use persist_fs::FsError;
use persist_s3::S3Error;

/// How a command that ran to completion ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything checked out: exit 0.
    Ok,
    /// Something did not verify; the command printed why: exit 1.
    VerificationFailed,
}

impl Status {
    /// The process exit code of this status.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Status::Ok => ExitCode::SUCCESS,
            Status::VerificationFailed => ExitCode::from(1),
        }
    }
}

/// A usage or setup error: the command could not do its job (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Verifying a state failed for a reason that is not a generation's.
    #[error("cannot verify {name}: {message}")]
    Verify {
        /// The state.
        name: String,
        /// Why.
        message: String,
    },
    /// No key was given by any of the accepted means.
    #[error(
        "no key given: pass --key FILE, or set PERSIST_KEY_FILE to a key file or PERSIST_KEY to \
         the key in hex"
    )]
    MissingKey,
    /// The key could not be loaded from where it was given.
    #[error("cannot load the key from {from}")]
    Key {
        /// Where the key was to come from (a file or an environment variable).
        from: String,
        /// Why it failed.
        source: KeyError,
    },
    /// The operating system's random source failed.
    #[error("cannot generate a key")]
    GenerateKey(#[source] KeyError),
    /// `keygen` would overwrite an existing file.
    #[error("{path} already exists; pass --force to replace it")]
    KeyExists {
        /// The file that exists.
        path: PathBuf,
    },
    /// A filesystem operation on a path failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A store directory path names something else.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A file path names a directory, a device or a FIFO.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The store could not be opened.
    #[error("cannot open the store in {path}")]
    OpenStore {
        /// The store's root.
        path: PathBuf,
        /// Why.
        source: FsError,
    },
    /// The store could not be listed.
    #[error("cannot list the store in {path}")]
    ListStore {
        /// The store's root.
        path: PathBuf,
        /// Why.
        source: BackendError,
    },
    /// The demo could not load its state for a reason other than invalid generations.
    #[error("cannot load the demo state")]
    Load(#[source] LoadError),
    /// The demo could not save its state.
    #[error("cannot save the demo state")]
    Save(#[source] SaveError),
    /// An `s3://` URL or the S3 configuration is unusable.
    #[error("cannot use {url}")]
    S3Config {
        /// The URL given.
        url: String,
        /// Why.
        source: S3Error,
    },
    /// A `postgres://` location is unusable (unreachable, refused, missing, or at another
    /// table layout). Never holds the password.
    #[error("cannot use the database")]
    Postgres(#[source] persist_postgres::PgError),
    /// A `postgres://` URL on the command line holds a password.
    #[error(
        "{url}: put the password in PGPASSWORD (or ~/.pgpass), not in the URL: a command line is \
         visible to every user of the machine"
    )]
    PasswordInUrl {
        /// The URL, its password removed.
        url: String,
    },
    /// A storage operation of `push`, `restore` or `prune` failed.
    #[error("cannot {op}")]
    Storage {
        /// What was being done, with the location.
        op: String,
        /// Why.
        source: BackendError,
    },
    /// `prune` could not delete some generations (the others were deleted).
    #[error("{failed} of {planned} deletes failed (see above)")]
    PruneFailed {
        /// Deletes that failed.
        failed: usize,
        /// Deletes planned.
        planned: usize,
    },
    /// `restore --snapshot` found no snapshot set, or not the one named.
    #[error(
        "{} in {location}{}",
        wanted.as_ref().map_or("no snapshot set".to_string(), |w| format!("no snapshot set {w}")),
        if sets.is_empty() { String::new() } else { format!(" (it has: {})", sets.join(", ")) }
    )]
    NoSnapshotSet {
        /// Where.
        location: String,
        /// The set asked for.
        wanted: Option<String>,
        /// The sets there are.
        sets: Vec<String>,
    },
    /// `restore --snapshot` found several sets and no `--set`.
    #[error("several snapshot sets in {location} ({}): choose one with --set NAME", sets.join(", "))]
    AmbiguousSnapshotSet {
        /// Where.
        location: String,
        /// The sets there are.
        sets: Vec<String>,
    },
    /// `restore --state` named a snapshot set's manifests.
    #[error(
        "snapshot.{set} holds the manifests of snapshot set {set}: restore a whole snapshot with \
         --snapshot ID|newest --set {set}"
    )]
    ManifestState {
        /// The set.
        set: String,
    },
    /// A snapshot set's definition is invalid (a cycle, an unknown dependency).
    #[error("invalid snapshot set definition")]
    Spec(#[source] persist_core::SpecError),
    /// The demo could not restore or commit its snapshot set.
    #[error("cannot {op} snapshot set {set}")]
    Snapshot {
        /// `restore` or `commit`.
        op: &'static str,
        /// The set.
        set: String,
        /// Why.
        source: Box<persist_core::SnapshotError>,
    },
    /// `restore` was asked for a generation without naming the state.
    #[error("--generation needs --state")]
    GenerationWithoutState,
    /// Standard output could not be written (a closed pipe, a full disk).
    #[error("cannot write to standard output")]
    Output(#[source] std::io::Error),
    /// The JSON output could not be produced.
    #[error("cannot produce JSON output")]
    Json(#[source] serde_json::Error),
}

impl CliError {
    /// The process exit code of this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(2)
    }
}

/// Writes a line to a `Write`, mapping a failure to [`CliError::Output`].
macro_rules! outln {
    ($out:expr) => {
        writeln!($out).map_err($crate::error::CliError::Output)
    };
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err($crate::error::CliError::Output)
    };
}
pub(crate) use outln;

/// Prints `error: <message>` and then each cause on its own line, skipping a cause whose text
/// the previous message already contains (many errors quote their source).
pub fn print_error(err: &dyn Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    let mut last = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !last.contains(&text) {
            let _ = writeln!(stderr, "  caused by: {text}");
        }
        last = text;
        cause = c.source();
    }
}

/// Serialises `value` as pretty JSON followed by a newline.
pub fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(CliError::Json)?;
    outln!(out, "{text}")
}
