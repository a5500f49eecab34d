//! `persist-torture`: saves an `AgentState` in a tight loop for the crash and power-cut tests.
//!
//! ```text
//! persist-torture <store dir> [--entries N] [--retain N] [--no-dir-fsync] [--snapshot]
//! ```
//!
//! Opens an `FsBackend` store at `<store dir>` with the tests' fixed key and `space_reserve: 0`,
//! loads the newest generation (if any) to continue its counter, then saves forever with an
//! incrementing `total_updates`. Right after each `save` returns `Ok` it prints and flushes
//! `ack <total_updates> <sequence> <CLOCK_MONOTONIC ns>`. The first failed save prints
//! `err <message>` and exits with status 1 (after a power cut every write fails with EIO: that is
//! expected); bad arguments exit with status 2.
//!
//! With `--snapshot` it commits snapshots of the set of `persist_tests::snapshot` instead
//! (`--entries` is ignored): it restores the newest whole snapshot (if any) to continue its
//! counter `k`, then commits the snapshot of `k + 1`, `k + 2`, … forever, printing
//! `snap <k> <id> <monotonic ns> <member sequences…>` right after each `commit` returns `Ok`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use persist_core::{LoadError, SnapshotError, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_tests::snapshot::{
    self, SnapAck, SnapAgent, SnapClock, SnapMember, SnapRegime, SnapReplay,
};
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
    snapshot: bool,
    deltas: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, ArgsError> {
    let mut dir = None;
    let mut opts = Options {
        dir: PathBuf::new(),
        entries: 64,
        retain: 3,
        no_dir_fsync: false,
        snapshot: false,
        deltas: false,
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
            "--snapshot" => opts.snapshot = true,
            "--deltas" => opts.deltas = true,
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
                "usage: persist-torture <store dir> [--entries N] [--retain N] [--no-dir-fsync] \
                 [--snapshot] [--deltas]"
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
    let mut config = StoreConfig::default()
        .with_retain(opts.retain)
        .with_retain_snapshots(opts.retain)
        .with_space_reserve(0);
    if opts.deltas {
        // Every save chunked, short chains (so fulls, deltas and chain ends all get cut), small
        // chunks (so even the small states have several).
        config = config.with_deltas(persist_tests::torture::delta_policy());
    }
    let store = Store::new(Box::new(backend), test_keyring(), config);
    if opts.snapshot {
        return run_snapshots(&store);
    }
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

/// Commits snapshots of the torture set until a commit fails (or stdout is closed).
fn run_snapshots(store: &Store) -> Result<(), String> {
    let spec = snapshot::spec();
    let mut k = match store.load_snapshot(&spec) {
        Ok(mut restored) => snapshot::check_restored(&mut restored)?.k,
        Err(SnapshotError::Load(LoadError::NoGeneration { .. })) => 0,
        Err(e) => return Err(format!("load_snapshot: {e}")),
    };
    // The members' current values; each is generated again only when its epoch changes.
    let mut members = Members::at(k);
    let mut out = std::io::stdout().lock();
    loop {
        k += 1;
        members.advance(k);
        let receipt = store
            .snapshot(&spec)
            .add(&members.clock)
            .and_then(|w| w.add(&members.regime))
            .and_then(|w| w.add(&members.agent))
            .and_then(|w| w.add(&members.replay))
            .and_then(|w| w.commit())
            .map_err(|e| format!("snapshot {k}: {e}"))?;
        let mut sequences = [0; 4];
        for (slot, name) in sequences.iter_mut().zip(snapshot::MEMBERS) {
            *slot = receipt
                .members
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.sequence)
                .ok_or_else(|| format!("snapshot {k}: the receipt lacks {name}"))?;
        }
        let ack = SnapAck {
            k,
            id: receipt.id,
            at_nanos: monotonic_nanos(),
            sequences,
        };
        if writeln!(out, "{}", ack.to_line())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}

/// The values of the set's members at one counter.
struct Members {
    clock: SnapClock,
    regime: SnapRegime,
    agent: SnapAgent,
    replay: SnapReplay,
}

impl Members {
    fn at(k: u64) -> Self {
        Members {
            clock: SnapClock::at(k),
            regime: SnapRegime::at(k),
            agent: SnapAgent::at(k),
            replay: SnapReplay::at(k),
        }
    }

    fn advance(&mut self, k: u64) {
        fn step<T: SnapMember>(value: &mut T, k: u64) {
            if value.epoch() != T::epoch_of(k) {
                *value = T::at(k);
            }
        }
        step(&mut self.clock, k);
        step(&mut self.regime, k);
        step(&mut self.agent, k);
        step(&mut self.replay, k);
    }
}
