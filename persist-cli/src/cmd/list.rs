//! `persist list DIR [--json]`: every state and its generations, each header verified.
//!
//! The manifests of a snapshot set (state `snapshot.<set>`) are listed apart, under their set;
//! `persist snapshots` shows what each one holds.

use std::io::Write;
use std::path::{Path, PathBuf};

use persist_core::format;
use persist_core::{BackendError, Header, RejectReason, Store};
use serde::Serialize;

use super::snapshots::manifest_set;
use crate::error::{CliError, Status, write_json};
use crate::{keys, open, outln, time};

/// Arguments of `persist list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store's root directory, s3://bucket/prefix (configured from the AWS_*
    /// environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP), or postgres://user@host:port/database (password from PGPASSWORD).
    dir: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

/// The listing of a store.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The store's root.
    pub root: String,
    /// Its states, by name.
    pub states: Vec<StateListing>,
    /// The manifests of its snapshot sets, by set name (`name` is the set's).
    pub snapshot_sets: Vec<StateListing>,
}

/// One state and its generations.
#[derive(Debug, Serialize)]
pub struct StateListing {
    /// The state's schema name.
    pub name: String,
    /// Its generations, oldest first.
    pub generations: Vec<GenerationListing>,
}

/// One generation. The header fields are present only when it verifies.
#[derive(Debug, Serialize)]
pub struct GenerationListing {
    /// Its sequence number.
    pub sequence: u64,
    /// Its key (path) inside the store.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether its envelope verifies (tag, structure, name and sequence).
    pub verified: bool,
    /// When it was sealed (RFC 3339, UTC).
    pub created_at: Option<String>,
    /// When it was sealed (nanoseconds since the Unix epoch).
    pub created_at_unix_nanos: Option<u64>,
    /// Its schema version.
    pub schema_version: Option<u32>,
    /// The id of the key that signed it.
    pub key_id: Option<String>,
    /// Why it does not verify.
    pub error: Option<String>,
    /// What the failure means (`corrupt`, `foreign`, `too new`, `undecodable`, `unreadable`):
    /// only corrupt generations are walked past by a load.
    pub kind: Option<String>,
    /// `full` (a whole generation) or `delta` (only the chunks that changed since its base),
    /// when it verifies.
    pub generation_kind: Option<&'static str>,
    /// A delta's base generation (the previous link of its chain).
    pub base: Option<u64>,
    /// A delta's depth: how many deltas lead back to a full generation.
    pub depth: Option<u32>,
    /// The payload's length (for a delta, what it rebuilds to; `size` is what it stores).
    pub payload_bytes: Option<u64>,
}

impl GenerationListing {
    fn new(
        store: &Store,
        info: &persist_core::GenerationInfo,
        verdict: Result<Header, RejectReason>,
    ) -> Self {
        let (header, error, kind) = match verdict {
            Ok(h) => (Some(h), None, None),
            Err(e) => (None, Some(e.to_string()), Some(e.kind().to_string())),
        };
        // Authentic once the generation verified (its chain included).
        let chunk = header
            .as_ref()
            .and_then(|_| store.backend().get_head(&info.key, format::HEAD_LEN).ok())
            .filter(|head| format::is_delta_unverified(&head.bytes))
            .and_then(|head| format::ChunkHeader::decode_unverified(&head.bytes));
        GenerationListing {
            generation_kind: header
                .as_ref()
                .map(|_| if chunk.is_some() { "delta" } else { "full" }),
            base: chunk.map(|c| c.base_sequence),
            depth: header.as_ref().map(|_| chunk.map_or(0, |c| c.depth)),
            payload_bytes: header.as_ref().map(|h| h.payload_len),
            sequence: info.sequence,
            key: info.key.clone(),
            size: info.size,
            verified: header.is_some(),
            created_at: header.as_ref().map(|h| time::rfc3339(h.created_at_nanos)),
            created_at_unix_nanos: header.as_ref().map(|h| h.created_at_nanos),
            schema_version: header.as_ref().map(|h| h.schema_version),
            key_id: header.as_ref().map(|h| h.key_id.to_string()),
            error,
            kind,
        }
    }
}

/// Lists every state of `store` with each generation verified.
pub fn listing(store: &Store, dir: &Path) -> Result<Listing, CliError> {
    let list_err = |source| CliError::ListStore {
        path: dir.to_path_buf(),
        source,
    };
    let mut states = Vec::new();
    let mut snapshot_sets = Vec::new();
    for name in store.names().map_err(list_err)? {
        let generations = store
            .generations(&name)
            .map_err(list_err)?
            .iter()
            .filter_map(|g| match store.verify_generation(&name, g) {
                // Deleted by a live writer's retention since the listing: superseded, not failed.
                Err(RejectReason::Read(BackendError::NotFound { .. })) => None,
                verdict => Some(GenerationListing::new(store, g, verdict)),
            })
            .collect();
        match manifest_set(&name) {
            Some(set) => snapshot_sets.push(StateListing {
                name: set.to_string(),
                generations,
            }),
            None => states.push(StateListing { name, generations }),
        }
    }
    Ok(Listing {
        root: dir.display().to_string(),
        states,
        snapshot_sets,
    })
}

/// Lists the store.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = keys::require(key_file)?;
    let store = open::read_only(&args.dir, key)?;
    let listing = listing(&store, &args.dir)?;
    // A state none of whose generations verifies cannot be loaded: the exit code says so.
    let status = if listing
        .states
        .iter()
        .chain(&listing.snapshot_sets)
        .all(|s| s.generations.iter().any(|g| g.verified))
    {
        Status::Ok
    } else {
        Status::VerificationFailed
    };
    if args.json {
        write_json(out, &listing)?;
        return Ok(status);
    }
    let n = listing.states.len();
    outln!(
        out,
        "store {}: {n} state{}",
        listing.root,
        if n == 1 { "" } else { "s" }
    )?;
    if n == 0
        && let Some(hint) = open::empty_store_hint(&args.dir)
    {
        outln!(out, "  ({hint})")?;
    }
    for state in &listing.states {
        outln!(
            out,
            "\n{} ({} generation{})",
            state.name,
            state.generations.len(),
            if state.generations.len() == 1 {
                ""
            } else {
                "s"
            }
        )?;
        print_generations(state, out)?;
    }
    for set in &listing.snapshot_sets {
        let n = set.generations.len();
        outln!(
            out,
            "\nsnapshot set {} ({n} manifest{}, state snapshot.{}; `persist snapshots` shows \
             their members)",
            set.name,
            if n == 1 { "" } else { "s" },
            set.name
        )?;
        print_generations(set, out)?;
    }
    Ok(status)
}

/// Prints one state's generations, newest first.
fn print_generations(state: &StateListing, out: &mut dyn Write) -> Result<(), CliError> {
    outln!(
        out,
        "  {:>8}  {:>12}  {:<18}  {:<24}  {:>6}  verified",
        "sequence",
        "bytes",
        "kind",
        "created at (UTC)",
        "schema"
    )?;
    for g in state.generations.iter().rev() {
        let verdict = match (&g.error, g.kind.as_deref()) {
            (None, _) => "ok".to_string(),
            (Some(e), Some("corrupt")) => format!("FAILED (corrupt): {e}"),
            (Some(e), kind) => format!(
                "FAILED ({}, NOT corrupt: a load stops here): {e}",
                kind.unwrap_or("?")
            ),
        };
        let kind = match (g.generation_kind, g.base) {
            (Some("delta"), Some(base)) => format!("delta of {base}"),
            (Some(kind), _) => kind.to_string(),
            (None, _) => "-".to_string(),
        };
        outln!(
            out,
            "  {:>8}  {:>12}  {kind:<18}  {:<24}  {:>6}  {verdict}",
            g.sequence,
            g.size,
            g.created_at.as_deref().unwrap_or("-"),
            g.schema_version.map_or("-".into(), |v| format!("v{v}")),
        )?;
    }
    if !state.generations.iter().any(|g| g.verified) {
        outln!(out, "  NO VALID GENERATION: a load of {} fails", state.name)?;
    }
    Ok(())
}
