//! `persist prune s3://bucket/prefix [--dry-run]`: applies off-site retention — the last N
//! valid generations, plus the newest of each hour for 24 h and of each day for 7 days; never
//! the newest valid one — and lists every generation with the reason it is kept or deleted.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use persist_core::{Backend, Keyring};
use persist_s3::retention::{self, RetentionPolicy};

use crate::error::{CliError, Status};
use crate::{keys, open, outln};

/// Arguments of `persist prune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The off-site store: s3://bucket/prefix (configured from the AWS_* environment) or
    /// postgres://user@host:port/database (password from PGPASSWORD).
    url: String,
    /// Only list what would be kept and deleted, and why.
    #[arg(long)]
    dry_run: bool,
    /// Valid generations always kept per state.
    #[arg(long, default_value_t = 4, value_name = "N")]
    keep_last: usize,
    /// Keep the newest generation of each hour for this many hours.
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    hourly: u64,
    /// Keep the newest generation of each day for this many days.
    #[arg(long, default_value_t = 7, value_name = "DAYS")]
    daily: u64,
}

/// Prunes (or plans to).
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = keys::require(key_file)?;
    let backend: Arc<dyn persist_core::Backend> =
        Arc::from(open::remote(&args.url, open::Migrate::Check)?);
    let policy = RetentionPolicy {
        keep_last: args.keep_last.max(1),
        hourly_for: Duration::from_secs(args.hourly.saturating_mul(3600)),
        daily_for: Duration::from_secs(args.daily.saturating_mul(86_400)),
    };
    let plan = retention::plan(
        backend.clone(),
        &Keyring::new(key),
        &policy,
        SystemTime::now(),
    )
    .map_err(|source| CliError::Storage {
        op: format!("plan retention in {}", backend.location()),
        source,
    })?;
    for entry in &plan {
        outln!(out, "{entry}")?;
    }
    let planned = plan.iter().filter(|e| !e.keep).count();
    if args.dry_run {
        outln!(
            out,
            "dry run: {planned} of {} generations would be deleted from {}",
            plan.len(),
            backend.location()
        )?;
        return Ok(Status::Ok);
    }
    let report = retention::apply(&backend, &plan);
    for (key, e) in &report.failed {
        outln!(out, "FAILED to delete {key}: {e}")?;
    }
    outln!(
        out,
        "deleted {} of {} generations from {}",
        report.deleted.len(),
        plan.len(),
        backend.location()
    )?;
    if report.failed.is_empty() {
        Ok(Status::Ok)
    } else {
        Err(CliError::PruneFailed {
            failed: report.failed.len(),
            planned,
        })
    }
}
