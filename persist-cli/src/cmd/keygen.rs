//! `persist keygen --out FILE [--force]`.

use std::io::Write;
use std::path::PathBuf;

use persist_core::Key;
use serde::Serialize;

use crate::error::{CliError, Status, write_json};
use crate::{keys, outln};

/// Arguments of `persist keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file to create (mode 0600).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace the file if it exists (atomically).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    path: &'a std::path::Path,
    key_id: String,
    bytes: usize,
}

/// Generates a key and writes it.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = Key::generate().map_err(CliError::GenerateKey)?;
    keys::write_key_file(&args.out, &key, args.force)?;
    if args.json {
        write_json(
            out,
            &Output {
                path: &args.out,
                key_id: key.id().to_string(),
                bytes: key.secret().len(),
            },
        )?;
    } else {
        outln!(
            out,
            "wrote a {}-byte key to {} (mode 0600, key id {})",
            key.secret().len(),
            args.out.display(),
            key.id()
        )?;
    }
    Ok(Status::Ok)
}
