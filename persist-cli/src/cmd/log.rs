//! `persist log LOCATION`: the recovery log a store keeps with
//! `StoreConfig::with_recovery_log(true)`: what each load recovered (the generation, its age,
//! the generations walked past and why), found nothing, or failed on. LOCATION is a store
//! directory, `s3://bucket/prefix` or `postgres://user@host:port/database`. No key is needed:
//! the log is diagnostics and is not signed.

use std::io::Write;
use std::path::PathBuf;

use persist_core::Backend;
use persist_core::recovery_log::{LogRecord, Outcome};
use persist_fs::FsBackend;

use crate::error::{CliError, Status};
use crate::time::{human_age, rfc3339};
use crate::{open, outln};

/// Arguments of `persist log`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A store directory, s3://bucket/prefix or postgres://user@host:port/database.
    location: PathBuf,
    /// Only the records of this state.
    #[arg(long, value_name = "NAME")]
    state: Option<String>,
    /// How many of the newest records to show.
    #[arg(long, default_value_t = 20, value_name = "N")]
    last: usize,
    /// One JSON object per line (the records as stored), for scripts.
    #[arg(long)]
    json: bool,
}

/// Prints the log. Exit 1 if an entry is not a readable record.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Status, CliError> {
    let backend: Box<dyn Backend> = match open::remote_url(&args.location) {
        Some(url) => open::remote(url, open::Migrate::Check)?,
        None => {
            if !args.location.is_dir() {
                return Err(CliError::NotADirectory {
                    path: args.location.clone(),
                });
            }
            let fs = FsBackend::open_read_only(&args.location).map_err(|source| {
                CliError::OpenStore {
                    path: args.location.clone(),
                    source,
                }
            })?;
            Box::new(fs)
        }
    };
    let entries = backend
        .read_log(args.state.as_deref(), args.last)
        .map_err(|source| CliError::Storage {
            op: format!("read the recovery log of {}", backend.location()),
            source,
        })?;
    if entries.records.is_empty() && entries.unreadable.is_empty() && !args.json {
        outln!(
            out,
            "no recovery records in {} (a store writes them with StoreConfig::with_recovery_log)",
            backend.location()
        )?;
    }
    for record in &entries.records {
        if args.json {
            outln!(out, "{}", record.to_json())?;
        } else {
            print_record(out, record)?;
        }
    }
    for (entry, why) in &entries.unreadable {
        eprintln!("persist: unreadable recovery log entry {entry}: {why}");
    }
    Ok(if entries.unreadable.is_empty() {
        Status::Ok
    } else {
        Status::VerificationFailed
    })
}

fn print_record(out: &mut dyn Write, record: &LogRecord) -> Result<(), CliError> {
    let at = rfc3339(record.at_ms.saturating_mul(1_000_000));
    let who = format!(
        "{at}  {} {} (pid {})",
        record.operation, record.state, record.pid
    );
    match &record.outcome {
        Outcome::Recovered {
            source,
            sequence,
            schema_version,
            age_ms,
            base,
            migrations,
            rejected,
            restored_from,
        } => {
            let age = match *age_ms {
                ms @ 0..60_000 => format!("{:.3} s", ms as f64 / 1000.0),
                ms => human_age(std::time::Duration::from_millis(ms)),
            };
            let delta = base.map_or(String::new(), |b| format!(", a delta of {b}"));
            outln!(
                out,
                "{who}: recovered generation {sequence} (schema v{schema_version}{delta}) from \
                 {source}, {age} old"
            )?;
            if let Some(off_site) = restored_from {
                outln!(out, "    restored from off-site {off_site}")?;
            }
            for (from, to) in migrations {
                outln!(out, "    migrated v{from} -> v{to}")?;
            }
            for r in rejected {
                outln!(
                    out,
                    "    walked past {} ({}): {}",
                    r.sequence,
                    r.kind,
                    r.reason
                )?;
            }
        }
        Outcome::NoGeneration { location } => {
            outln!(out, "{who}: no generation in {location}: started fresh")?;
        }
        Outcome::Failed { kind, error } => {
            outln!(out, "{who}: FAILED ({kind})")?;
            for line in error.lines() {
                outln!(out, "    {line}")?;
            }
        }
        _ => outln!(out, "{who}: {}", record.outcome.name())?,
    }
    Ok(())
}
