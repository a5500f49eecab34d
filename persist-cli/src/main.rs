//! `persist`: the operator's tool for persist stores — make a key, run the demo agent, and list,
//! inspect and verify generations, and push, restore and prune off-site copies on S3.

mod cmd;
mod demo;
mod error;
mod keys;
mod open;
mod time;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    init_tracing();
    match cmd::run(cli) {
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
