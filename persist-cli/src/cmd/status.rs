//! `persist status DIR [--json]`: per snapshot set, the newest whole snapshot and its age (the
//! data-loss window if the program stopped now) and how many snapshots are kept; and the bytes
//! the store holds, per state and in total.
//!
//! It reads the store from outside: what only the running program knows (background saves
//! pending, when its policy saves next, its last error) is in its `Checkpointer`'s status.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use persist_core::format::parse_generation_key;
use persist_core::recovery_log::LOG_PREFIX;
use serde::Serialize;

use super::snapshots::{self, SetListing};
use crate::error::{CliError, Status, write_json};
use crate::{keys, open, outln};

/// How the recovery log's objects are listed among the states.
const LOG_STATE: &str = "(recovery log)";

/// Arguments of `persist status`.
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

/// The status of a store, read from outside.
#[derive(Debug, Serialize)]
struct StoreStatus {
    root: String,
    /// True when every set's newest snapshot is whole.
    ok: bool,
    sets: Vec<SetStatus>,
    /// Bytes of every object in the store.
    bytes_total: u64,
    /// Per state (manifests as `snapshot.<set>`; objects that are not generations as
    /// `(other)`), by name.
    states: Vec<StateBytes>,
}

#[derive(Debug, Serialize)]
struct SetStatus {
    set: String,
    /// Snapshots kept, whole or not.
    snapshots: usize,
    /// The newest snapshot's id.
    newest: Option<u64>,
    /// The newest whole snapshot's id: what a restart restores.
    newest_whole: Option<u64>,
    /// When it was committed (RFC 3339, UTC).
    newest_whole_created_at: Option<String>,
    /// Its age in seconds: the data-loss window if the program stopped now.
    newest_whole_age_seconds: Option<u64>,
    /// Why the newest snapshot is not whole, if it is not.
    newest_problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct StateBytes {
    name: String,
    /// Generations (or objects) kept.
    generations: usize,
    bytes: u64,
}

impl SetStatus {
    fn new(l: &SetListing) -> Self {
        let whole = l.newest_whole.and_then(|id| l.get(id));
        SetStatus {
            set: l.set.clone(),
            snapshots: l.snapshots.len(),
            newest: l.newest,
            newest_whole: l.newest_whole,
            newest_whole_created_at: whole.and_then(|s| s.created_at.clone()),
            newest_whole_age_seconds: whole.and_then(|s| s.age_seconds),
            newest_problem: l
                .newest()
                .and_then(|s| s.problem.as_ref())
                .map(|p| format!("snapshot {}: {p}", l.newest.unwrap_or_default())),
        }
    }
}

/// Prints the status.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = keys::require(key_file)?;
    let store = open::read_only(&args.dir, key)?;
    let list_err = |source| CliError::ListStore {
        path: args.dir.clone(),
        source,
    };
    let sets = snapshots::listing(&store, &args.dir)?;
    let mut per_state: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut bytes_total = 0;
    for object in store.backend().list("").map_err(list_err)? {
        let name = match parse_generation_key(&object.key) {
            Some((name, _)) => name,
            None if object.key.starts_with(LOG_PREFIX) => LOG_STATE,
            None => "(other)",
        };
        let entry = per_state.entry(name.to_string()).or_default();
        entry.0 += 1;
        entry.1 += object.size;
        bytes_total += object.size;
    }
    let status = StoreStatus {
        root: args.dir.display().to_string(),
        ok: sets.iter().all(|s| s.ok),
        sets: sets.iter().map(SetStatus::new).collect(),
        bytes_total,
        states: per_state
            .into_iter()
            .map(|(name, (generations, bytes))| StateBytes {
                name,
                generations,
                bytes,
            })
            .collect(),
    };
    let code = if status.ok {
        Status::Ok
    } else {
        Status::VerificationFailed
    };
    if args.json {
        write_json(out, &status)?;
        return Ok(code);
    }
    outln!(
        out,
        "store {} (read from outside: pending background saves and the next policy save are \
         in the running program's Checkpointer status)",
        status.root
    )?;
    if sets.is_empty() {
        outln!(out, "no snapshot set")?;
    }
    for (l, s) in sets.iter().zip(&status.sets) {
        let whole = match l.newest_whole.and_then(|id| l.get(id)) {
            Some(w) => format!(
                "newest whole snapshot {}, committed {} ago ({}): the data-loss window if the \
                 program stopped now",
                w.id,
                w.age(),
                w.created_at.as_deref().unwrap_or("-")
            ),
            None => "NO whole snapshot".to_string(),
        };
        outln!(
            out,
            "snapshot set {}: {whole}; {} snapshot{} kept",
            s.set,
            s.snapshots,
            if s.snapshots == 1 { "" } else { "s" }
        )?;
        if let Some(problem) = &s.newest_problem {
            outln!(out, "  FAILED: newest {problem}; {}", l.fallback())?;
        }
    }
    outln!(out, "bytes on disk: {} in total", status.bytes_total)?;
    for st in &status.states {
        let unit = if st.name == LOG_STATE {
            "record"
        } else {
            "generation"
        };
        outln!(
            out,
            "  {:<28} {:>14} bytes in {} {unit}{}",
            st.name,
            st.bytes,
            st.generations,
            if st.generations == 1 { "" } else { "s" }
        )?;
    }
    Ok(code)
}
