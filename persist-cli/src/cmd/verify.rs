//! `persist verify DIR [--json]`: exit 0 only if every state's newest generation verifies.
//!
//! Verification covers the envelope (tag, structure, name and sequence); the payload's own
//! validation needs its type, which only the program that owns the state has.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{CliError, Status, write_json};
use crate::{keys, open, outln};

/// Arguments of `persist verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store's root directory, or s3://bucket/prefix (configured from the AWS_*
    /// environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP).
    dir: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

/// The verdict on a store.
#[derive(Debug, Serialize)]
struct Verdict {
    root: String,
    /// True when there is at least one state and every state's newest generation verifies.
    ok: bool,
    states: Vec<StateVerdict>,
    /// Set when the store holds no state at all.
    error: Option<String>,
}

/// The verdict on one state.
#[derive(Debug, Serialize)]
struct StateVerdict {
    name: String,
    ok: bool,
    generations: usize,
    newest: u64,
    /// The newest generation that verifies (what a load would use), if any.
    newest_valid: Option<u64>,
    /// The generations newer than `newest_valid` that fail, newest first.
    failed: Vec<FailedGeneration>,
}

#[derive(Debug, Serialize)]
struct FailedGeneration {
    sequence: u64,
    key: String,
    error: String,
}

/// Verifies the store.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = keys::require(key_file)?;
    let store = open::read_only(&args.dir, key)?;
    let list_err = |source| CliError::ListStore {
        path: args.dir.clone(),
        source,
    };
    let mut states = Vec::new();
    for name in store.names().map_err(list_err)? {
        let generations = store.generations(&name).map_err(list_err)?;
        let Some(newest) = generations.last().map(|g| g.sequence) else {
            continue;
        };
        let mut failed = Vec::new();
        let mut newest_valid = None;
        for g in generations.iter().rev() {
            match store.verify_generation(&name, g) {
                Ok(_) => {
                    newest_valid = Some(g.sequence);
                    break;
                }
                Err(e) => failed.push(FailedGeneration {
                    sequence: g.sequence,
                    key: g.key.clone(),
                    error: e.to_string(),
                }),
            }
        }
        states.push(StateVerdict {
            ok: failed.is_empty(),
            name,
            generations: generations.len(),
            newest,
            newest_valid,
            failed,
        });
    }
    let error = states.is_empty().then(|| {
        let hint = open::empty_store_hint(&args.dir)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        format!("no state found in {}{hint}", args.dir.display())
    });
    let verdict = Verdict {
        root: args.dir.display().to_string(),
        ok: error.is_none() && states.iter().all(|s| s.ok),
        states,
        error,
    };
    if args.json {
        write_json(out, &verdict)?;
    } else {
        print(&verdict, out)?;
    }
    Ok(if verdict.ok {
        Status::Ok
    } else {
        Status::VerificationFailed
    })
}

fn print(verdict: &Verdict, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(error) = &verdict.error {
        outln!(out, "FAILED: {error}")?;
        return Ok(());
    }
    for s in &verdict.states {
        if s.ok {
            outln!(
                out,
                "{}: ok (newest generation {} verifies; {} generation{} kept)",
                s.name,
                s.newest,
                s.generations,
                if s.generations == 1 { "" } else { "s" }
            )?;
            continue;
        }
        outln!(out, "{}: FAILED", s.name)?;
        for f in &s.failed {
            outln!(out, "  generation {} ({}): {}", f.sequence, f.key, f.error)?;
        }
        match s.newest_valid {
            Some(seq) => outln!(
                out,
                "  newest valid generation: {seq} ({} newer generation{} failed); a load falls \
                 back to it",
                s.failed.len(),
                if s.failed.len() == 1 { "" } else { "s" }
            )?,
            None => outln!(out, "  no valid generation left: a load would fail")?,
        }
    }
    let ok = verdict.states.iter().filter(|s| s.ok).count();
    outln!(
        out,
        "{}: {ok} of {} state{} verified",
        if verdict.ok { "OK" } else { "FAILED" },
        verdict.states.len(),
        if verdict.states.len() == 1 { "" } else { "s" }
    )
}
