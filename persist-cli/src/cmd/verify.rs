//! `persist verify DIR [--json]`: exit 0 only if every state's newest generation verifies.
//!
//! Verification covers the envelope (tag, structure, name and sequence) of every state. For the
//! states this build knows (the users' schemas of `persist-schemas`), it goes as far as a load
//! would: the layout fingerprint of the generation's version, rkyv validation of the payload,
//! decoding and every migration step up to the current version. Other states' payloads need
//! their program's types; the verdict says so.

use std::io::Write;
use std::path::{Path, PathBuf};

use persist_compat::SchemaEntry;
use persist_core::envelope::{HEADER_LEN, TAG_LEN};
use persist_core::generation::GenerationInfo;
use persist_core::{BackendError, RejectKind, Store};
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
    /// How far the newest valid generation's payload was checked.
    payload: Option<String>,
}

#[derive(Debug, Serialize)]
struct FailedGeneration {
    sequence: u64,
    key: String,
    error: String,
    /// `corrupt` (a load walks past it), or `foreign`, `too new`, `undecodable`, `unreadable`
    /// (a load stops at it).
    kind: String,
}

/// Verifies the store.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = keys::require(key_file)?;
    let store = open::read_only(&args.dir, key)?;
    let list_err = |source| CliError::ListStore {
        path: args.dir.clone(),
        source,
    };
    let schemas = persist_schemas::all();
    let mut states = Vec::new();
    for name in store.names().map_err(list_err)? {
        let generations = store.generations(&name).map_err(list_err)?;
        let Some(newest) = generations.last().map(|g| g.sequence) else {
            continue;
        };
        let mut failed = Vec::new();
        let mut newest_valid = None;
        let mut payload = None;
        for g in generations.iter().rev() {
            match check_generation(&store, &name, g, &schemas) {
                Ok(checked) => {
                    newest_valid = Some(g.sequence);
                    payload = Some(checked);
                    break;
                }
                // Deleted by a live writer's retention since the listing: superseded.
                Err((_, RejectKind::Unreadable)) if !exists(&store, g) => {}
                Err((error, kind)) => {
                    failed.push(FailedGeneration {
                        sequence: g.sequence,
                        key: g.key.clone(),
                        error,
                        kind: kind.to_string(),
                    });
                    // A load stops at an authentic generation it cannot use: so does verify.
                    if kind != RejectKind::Corrupt {
                        break;
                    }
                }
            }
        }
        states.push(StateVerdict {
            ok: failed.is_empty(),
            name,
            generations: generations.len(),
            newest,
            newest_valid,
            failed,
            payload,
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

/// Whether a generation is still there (a vanished one was superseded, not failed).
fn exists(store: &Store, generation: &GenerationInfo) -> bool {
    !matches!(
        store.backend().get_head(&generation.key, 0),
        Err(BackendError::NotFound { .. })
    )
}

/// Verifies one generation as a load of this build would, as far as its types allow; `Ok`
/// says how far that was, `Err` why the generation fails and what kind of failure it is.
fn check_generation(
    store: &Store,
    name: &str,
    generation: &GenerationInfo,
    schemas: &[SchemaEntry],
) -> Result<String, (String, RejectKind)> {
    let header = store
        .verify_generation(name, generation)
        .map_err(|e| (e.to_string(), e.kind()))?;
    let version = header.schema_version;
    let Some(entry) = schemas
        .iter()
        .find(|e| e.name == name && e.version == version)
    else {
        return Ok(match schemas.iter().find(|e| e.name == name) {
            Some(e) if version > e.current_version => format!(
                "envelope only: v{version} is newer than this build's v{}",
                e.current_version
            ),
            Some(_) => format!("envelope only: this build has no v{version} of {name}"),
            None => "envelope only: this build has no schema for this state".to_string(),
        });
    };
    if entry.chain_fingerprint != Some(header.fingerprint) {
        return Err((
            format!(
                "layout fingerprint mismatch for {name} v{version}: the generation has {}, this \
             build expects {} (changed without a version bump?)",
                header.fingerprint,
                entry
                    .chain_fingerprint
                    .map_or_else(|| "none".to_string(), |f| f.to_string())
            ),
            RejectKind::TooNew,
        ));
    }
    let bytes = store
        .backend()
        .get(&generation.key)
        .map_err(|e| (e.to_string(), RejectKind::Unreadable))?;
    let payload = bytes
        .get(HEADER_LEN..bytes.len().saturating_sub(TAG_LEN))
        .ok_or_else(|| {
            (
                "changed while being verified".to_string(),
                RejectKind::Corrupt,
            )
        })?;
    let migrations = (entry.load)(version, payload)
        .map_err(|e| (format!("payload: {e}"), RejectKind::Undecodable))?;
    Ok(match migrations.len() {
        0 => format!("decoded as {name} v{version}"),
        n => format!(
            "decoded as {name} v{version} and migrated to v{} ({n} step{})",
            entry.current_version,
            if n == 1 { "" } else { "s" }
        ),
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
                "{}: ok (newest generation {} verifies; {} generation{} kept; {})",
                s.name,
                s.newest,
                s.generations,
                if s.generations == 1 { "" } else { "s" },
                s.payload.as_deref().unwrap_or("")
            )?;
            continue;
        }
        outln!(out, "{}: FAILED", s.name)?;
        for f in &s.failed {
            outln!(
                out,
                "  generation {} ({}) [{}]: {}",
                f.sequence,
                f.key,
                f.kind,
                f.error
            )?;
        }
        let blocking = s.failed.last().filter(|f| f.kind != "corrupt");
        match (blocking, s.newest_valid) {
            (Some(f), _) => outln!(
                out,
                "  a load stops at generation {} ({}, not corrupt) rather than fall back to \
                 older state",
                f.sequence,
                f.kind
            )?,
            (None, newest_valid) => match newest_valid {
                Some(seq) => outln!(
                    out,
                    "  newest valid generation: {seq} ({} newer generation{} failed; {}); a load \
                 falls back to it",
                    s.failed.len(),
                    if s.failed.len() == 1 { "" } else { "s" },
                    s.payload.as_deref().unwrap_or("")
                )?,
                None => outln!(out, "  no valid generation left: a load would fail")?,
            },
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
