//! `persist restore --from s3://bucket/prefix --to DIR [--state NAME] [--generation SEQ]`:
//! copies, for each state (or the one named), the newest off-site generation that verifies
//! (or the one asked for, if it verifies) into a store directory, byte for byte under the same
//! key. A program's next `load` then finds it.

use std::io::Write;
use std::path::{Path, PathBuf};

use persist_core::{Backend, BackendError, GenerationInfo, Keyring, Store, StoreConfig};
use persist_fs::FsBackend;

use crate::error::{CliError, Status};
use crate::{keys, open, outln};

/// Arguments of `persist restore`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where from: s3://bucket/prefix (configured from the AWS_* environment).
    #[arg(long, value_name = "S3_URL")]
    from: String,
    /// The local store's root directory (created if missing).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Restore only this state.
    #[arg(long, value_name = "NAME")]
    state: Option<String>,
    /// Restore this generation instead of the newest valid one (needs --state).
    #[arg(long, value_name = "SEQ")]
    generation: Option<u64>,
}

/// Restores.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    if args.generation.is_some() && args.state.is_none() {
        return Err(CliError::GenerationWithoutState);
    }
    let key = keys::require(key_file)?;
    let remote = Store::new(
        Box::new(open::s3(&args.from)?),
        Keyring::new(key),
        StoreConfig::default(),
    );
    let storage = |op: String| move |source| CliError::Storage { op, source };
    let location = remote.backend().location();
    let names = match &args.state {
        Some(name) => vec![name.clone()],
        None => remote
            .names()
            .map_err(storage(format!("list {location}")))?,
    };
    let local = FsBackend::open(&args.to).map_err(|source| CliError::OpenStore {
        path: args.to.clone(),
        source,
    })?;
    let mut ok = !names.is_empty();
    if names.is_empty() {
        outln!(out, "FAILED: no state found in {location}")?;
    }
    for name in names {
        let generations = remote
            .generations(&name)
            .map_err(storage(format!("list {name} in {location}")))?;
        let Some(chosen) = choose(&remote, &name, &generations, args.generation, out)? else {
            ok = false;
            continue;
        };
        let bytes = remote
            .backend()
            .get(&chosen.key)
            .map_err(storage(format!("read {} from {location}", chosen.key)))?;
        match local.put_new(&chosen.key, &[&bytes]) {
            Ok(()) => outln!(
                out,
                "restored {name} generation {} ({} bytes) from {location} to {}",
                chosen.sequence,
                bytes.len(),
                args.to.display()
            )?,
            Err(BackendError::AlreadyExists { .. }) => {
                let same = local.get(&chosen.key).is_ok_and(|b| b[..] == bytes[..]);
                if same {
                    outln!(
                        out,
                        "{name} generation {} is already in {}",
                        chosen.sequence,
                        args.to.display()
                    )?;
                } else {
                    ok = false;
                    outln!(
                        out,
                        "FAILED: {name}: a different generation {} exists in {}; not replaced",
                        chosen.sequence,
                        args.to.display()
                    )?;
                }
            }
            Err(source) => {
                return Err(CliError::Storage {
                    op: format!("write {} to {}", chosen.key, args.to.display()),
                    source,
                });
            }
        }
    }
    Ok(if ok {
        Status::Ok
    } else {
        Status::VerificationFailed
    })
}

/// The generation to restore: the one asked for if it verifies, else the newest that does.
fn choose<'a>(
    remote: &Store,
    name: &str,
    generations: &'a [GenerationInfo],
    wanted: Option<u64>,
    out: &mut dyn Write,
) -> Result<Option<&'a GenerationInfo>, CliError> {
    if let Some(seq) = wanted {
        let Some(g) = generations.iter().find(|g| g.sequence == seq) else {
            outln!(out, "FAILED: {name}: no generation {seq} off-site")?;
            return Ok(None);
        };
        return match remote.verify_generation(name, g) {
            Ok(_) => Ok(Some(g)),
            Err(e) => {
                outln!(out, "FAILED: {name} generation {seq} does not verify: {e}")?;
                Ok(None)
            }
        };
    }
    for g in generations.iter().rev() {
        match remote.verify_generation(name, g) {
            Ok(_) => return Ok(Some(g)),
            Err(e) => outln!(out, "  skipped {name} generation {}: {e}", g.sequence)?,
        }
    }
    outln!(out, "FAILED: {name}: no valid generation off-site")?;
    Ok(None)
}
