//! `persist push DIR --to s3://bucket/prefix`: copies every generation of a store directory
//! that is missing off-site, byte for byte, oldest first (what the background replicator does,
//! once, in the foreground). Large generations show a progress bar on a terminal.

use std::io::Write;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use persist_core::Backend;
use persist_fs::FsBackend;

use crate::error::{CliError, Status};
use crate::{open, outln};

/// Generations at least this large get a progress bar.
const BAR_THRESHOLD: u64 = 8 << 20;

/// Arguments of `persist push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The local store's root directory.
    dir: PathBuf,
    /// Where to: s3://bucket/prefix (configured from the AWS_* environment) or
    /// postgres://user@host:port/database (password from PGPASSWORD; tables created if missing).
    #[arg(long, value_name = "S3_URL")]
    to: String,
}

/// Pushes the store.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Status, CliError> {
    if !args.dir.is_dir() {
        return Err(CliError::NotADirectory {
            path: args.dir.clone(),
        });
    }
    let local = FsBackend::open_read_only(&args.dir).map_err(|source| CliError::OpenStore {
        path: args.dir.clone(),
        source,
    })?;
    let remote = open::remote(&args.to, open::Migrate::Apply)?;
    let mut bar: Option<(String, ProgressBar)> = None;
    let report = persist_s3::replicate_once(&local, remote.as_ref(), |key, size, sent| {
        if size < BAR_THRESHOLD {
            return;
        }
        if bar.as_ref().is_none_or(|(k, _)| k != key) {
            if let Some((_, old)) = bar.take() {
                old.finish_and_clear();
            }
            let pb = ProgressBar::new(size);
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.set_message(key.to_string());
            bar = Some((key.to_string(), pb));
        }
        if let Some((_, pb)) = &bar {
            pb.set_position(sent);
        }
    });
    if let Some((_, pb)) = bar.take() {
        pb.finish_and_clear();
    }
    let report = report.map_err(|source| CliError::Storage {
        op: format!("push {} to {}", args.dir.display(), remote.location()),
        source,
    })?;
    for key in &report.uploaded {
        outln!(out, "pushed {key}")?;
    }
    for key in &report.vanished {
        outln!(out, "skipped {key}: deleted locally during the push")?;
    }
    outln!(
        out,
        "{} generation{} ({} bytes) pushed to {}; {} already there",
        report.uploaded.len(),
        if report.uploaded.len() == 1 { "" } else { "s" },
        report.bytes,
        remote.location(),
        report.already_present
    )?;
    Ok(Status::Ok)
}
