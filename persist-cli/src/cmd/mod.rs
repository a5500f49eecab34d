//! The command line (clap) and one module per command.

mod db;
mod demo;
mod inspect;
mod keygen;
mod list;
mod log;
mod prune;
mod push;
mod restore;
mod snapshots;
mod status;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{CliError, Status};

/// Signed, versioned, crash-safe generations of program state: operator's tool.
///
/// Exit codes: 0 success, 1 a verification failure, 2 a usage or setup error.
#[derive(Debug, Parser)]
#[command(name = "persist", version)]
pub struct Cli {
    /// Key file (the raw key, mode 0600). Without it, PERSIST_KEY may hold the key in hex.
    #[arg(long, global = true, env = "PERSIST_KEY_FILE", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new random 32-byte key to a file with mode 0600.
    Keygen(keygen::Args),
    /// Run (or resume) a small Q-learning trading agent that checkpoints its state.
    Demo(demo::Args),
    /// List every state and its generations, verifying each header.
    List(list::Args),
    /// Show a generation file's header and, given a key, whether it verifies.
    Inspect(inspect::Args),
    /// Check that every state's newest generation and every snapshot set's newest snapshot
    /// verify (exit 1 if not).
    Verify(verify::Args),
    /// List every snapshot set's snapshots: id, age, members, whether each is whole
    ///
    /// Whole means the manifest and every member's envelope verify (tag, name, generation); the
    /// newest whole snapshot is what a load restores. Exit 1 if a set's newest snapshot is not
    /// whole.
    Snapshots(snapshots::Args),
    /// Per snapshot set, the newest whole snapshot and its age; bytes on disk (read from outside)
    ///
    /// Per snapshot set: the newest whole snapshot's id and age (the data-loss window if the
    /// program stopped now) and the number of snapshots kept; and the store's bytes on disk, per
    /// state and in total. It reads the store from outside: what only the running program knows
    /// (pending background saves, when its policy saves next, its last error) is in its
    /// Checkpointer's status. Exit 1 if a set's newest snapshot is not whole.
    Status(status::Args),
    /// Copy every generation of a store directory missing off-site to s3://bucket/prefix.
    Push(push::Args),
    /// Copy verified generations, or a whole snapshot, from s3://bucket/prefix into a store
    /// directory.
    Restore(restore::Args),
    /// Apply off-site retention (last N plus hourly and daily buckets) to s3://bucket/prefix.
    Prune(prune::Args),
    /// The table layout of a PostgreSQL backend: status, migrate (up), down.
    Db(db::Args),
    /// Show the recovery log: what each load recovered, walked past or failed on
    ///
    /// A program writes it with StoreConfig::with_recovery_log(true): one record per load, on
    /// the store's own backend (a directory, s3://bucket/prefix, or postgres://…, where it is
    /// the table persist_recovery_log). Exit 1 if an entry is not a readable record.
    Log(log::Args),
}

/// Runs the parsed command, writing its output to stdout.
pub fn run(cli: Cli, schemas: &[persist_core::Schema]) -> Result<Status, CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let key = cli.key.as_deref();
    match cli.command {
        Command::Keygen(args) => keygen::run(&args, &mut out),
        Command::Demo(args) => demo::run(&args, key, &mut out),
        Command::List(args) => list::run(&args, key, &mut out),
        Command::Inspect(args) => inspect::run(&args, key, &mut out),
        Command::Verify(args) => verify::run(&args, key, schemas, &mut out),
        Command::Snapshots(args) => snapshots::run(&args, key, &mut out),
        Command::Status(args) => status::run(&args, key, &mut out),
        Command::Push(args) => push::run(&args, &mut out),
        Command::Restore(args) => restore::run(&args, key, &mut out),
        Command::Prune(args) => prune::run(&args, key, &mut out),
        Command::Db(args) => db::run(&args, &mut out),
        Command::Log(args) => log::run(&args, &mut out),
    }
}
