//! The `persist` command-line tool as a library: make a key, run the demo agent, and list,
//! inspect and verify generations, list snapshot sets' snapshots and a store's status, and
//! push, restore (a generation or a whole snapshot) and prune off-site copies on S3.
//!
//! The `persist` binary is [`main`] with our users' schemas. A downstream crate builds its own
//! `persist` binary, whose `verify` decodes *its* states (matched by name and layout
//! fingerprint; any other state is checked as far as its envelope), in a few lines:
//!
//! ```no_run
//! // src/bin/persist.rs of a downstream crate
//! # #[persist_core::persist(name = "my_state", version = 1)]
//! # struct MyState { counter: u64 }
//! fn main() -> std::process::ExitCode {
//!     persist_cli::main(vec![persist_core::Schema::of::<MyState>()])
//! }
//! ```

mod cmd;
mod demo;
mod error;
mod keys;
mod open;
mod time;

use std::process::ExitCode;

use clap::Parser;
use error::outln;
use persist_core::Schema;

/// Parses the command line, runs the command and returns the process's exit code: 0 when it
/// succeeded, 1 when a verification failed, 2 when the command could not do its job. `schemas`
/// are the states this program's `verify` (and `list`) decode: [`Schema::of`] of each state's
/// current type (it knows the older versions its migration chain reads).
pub fn main(schemas: Vec<Schema>) -> ExitCode {
    let cli = cmd::Cli::parse();
    init_tracing();
    match cmd::run(cli, &schemas) {
        Ok(status) => status.exit_code(),
        Err(err) => {
            error::print_error(&err);
            err.exit_code()
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings and errors), coloured only on a
/// terminal.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
