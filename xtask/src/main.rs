//! `cargo xtask`: workspace tasks.
//!
//! - `cargo xtask schema check`: checks the layouts of every state in `persist-schemas` against
//!   the committed snapshots in `schemas/snapshots/` (exit 0 clean, 100 violations, 101 tool
//!   failure, including a shallow clone or no git history: add `--self-consistency-only` to
//!   accept checking each snapshot against itself only). See `docs/SCHEMAS.md`.
//! - `cargo xtask schema bless`: writes the snapshot and golden files of new versions; never
//!   changes an existing one.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("schema") => {
            let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
            let snapshots = xtask.parent().unwrap_or(xtask).join("schemas/snapshots");
            persist_compat::main(&persist_schemas::all(), &snapshots, args)
        }
        other => {
            eprintln!(
                "usage: cargo xtask schema (check | bless) [--self-consistency-only], got {other:?}"
            );
            ExitCode::from(persist_compat::EXIT_TOOL_FAILURE)
        }
    }
}
