//! `persist-torture`: saves an `AgentState` in a tight loop for the crash and power-cut tests.
//!
//! ```text
//! persist-torture <store dir> [--entries N] [--retain N] [--no-dir-fsync]
//! ```
//!
//! Opens an `FsBackend` store at `<store dir>` with the tests' fixed key and `space_reserve: 0`,
//! loads the newest generation (if any) to continue its counter, then saves forever with an
//! incrementing `total_updates`. Right after each `save` returns `Ok` it prints and flushes
//! `ack <total_updates> <sequence> <CLOCK_MONOTONIC ns>`. The first failed save prints
//! `err <message>` and exits with status 1 (after a power cut every write fails with EIO: that is
//! expected); bad arguments exit with status 2.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use persist_core::{LoadError, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_tests::torture::{Ack, monotonic_nanos, torture_state};
use persist_tests::{AgentState, test_keyring};

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("missing the store directory")]
    MissingDir,
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
    #[error("{flag}: {value:?} is not a number")]
    NotANumber { flag: String, value: String },
    #[error("unknown argument {0:?}")]
    Unknown(String),
}

/// The parsed command line.
#[derive(Debug)]
struct Options {
    dir: PathBuf,
    entries: usize,
    retain: usize,
    no_dir_fsync: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, ArgsError> {
    let mut dir = None;
    let mut opts = Options {
        dir: PathBuf::new(),
        entries: 64,
        retain: 3,
        no_dir_fsync: false,
    };
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| {
            let value = args.next().ok_or_else(|| ArgsError::MissingValue {
                flag: flag.to_string(),
            })?;
            value.parse::<usize>().map_err(|_| ArgsError::NotANumber {
                flag: flag.to_string(),
                value,
            })
        };
        match arg.as_str() {
            "--entries" => opts.entries = number("--entries")?,
            "--retain" => opts.retain = number("--retain")?,
            "--no-dir-fsync" => opts.no_dir_fsync = true,
            s if s.starts_with("--") || dir.is_some() => return Err(ArgsError::Unknown(arg)),
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    opts.dir = dir.ok_or(ArgsError::MissingDir)?;
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("persist-torture: {e}");
            eprintln!(
                "usage: persist-torture <store dir> [--entries N] [--retain N] [--no-dir-fsync]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            // stdout may be gone too; nothing more to do then.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "err {msg}").and_then(|()| out.flush());
            ExitCode::from(1)
        }
    }
}

/// Saves until a save fails (or stdout is closed). Returns the failure's message.
fn run(opts: &Options) -> Result<(), String> {
    let backend = FsBackend::open(&opts.dir).map_err(|e| e.to_string())?;
    if opts.no_dir_fsync {
        backend.set_skip_dir_fsync(true);
    }
    let store = Store::new(
        Box::new(backend),
        test_keyring(),
        StoreConfig::default()
            .with_retain(opts.retain)
            .with_space_reserve(0),
    );
    let mut total = match store.load::<AgentState>() {
        Ok(loaded) => loaded.value.total_updates,
        Err(LoadError::NoGeneration { .. }) => 0,
        Err(e) => return Err(format!("load: {e}")),
    };
    let mut state = torture_state(opts.entries, total);
    let mut out = std::io::stdout().lock();
    loop {
        total += 1;
        state.total_updates = total;
        let receipt = store
            .save(&state)
            .map_err(|e| format!("save {total}: {e}"))?;
        let ack = Ack {
            total_updates: total,
            sequence: receipt.sequence,
            at_nanos: monotonic_nanos(),
        };
        if writeln!(out, "{}", ack.to_line())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader is gone: nobody can be told about further saves.
            return Ok(());
        }
    }
}
