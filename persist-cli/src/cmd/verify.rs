//! `persist verify DIR [--json]`: exit 0 only if every state's newest generation verifies.
//!
//! Verification covers the envelope (tag, structure, name and sequence) of every state. For the
//! states this program knows (the [`Schema`]s it was built with: our users' schemas in the
//! `persist` binary, a downstream crate's own in its binary; see [`crate::main`]), matched by
//! name *and* layout fingerprint, it goes as far as a load would: rkyv validation of the
//! payload, decoding and every migration step up to the current version. Other states' payloads
//! need their program's types; the verdict says "envelope only".
//!
//! Snapshot sets are verified as a whole: the newest snapshot must be whole (its manifest and
//! every member's envelope verify, see `persist snapshots`); if it is not, a load falls back to
//! an older one (or stops), and verify fails naming the member. The manifests (states
//! `snapshot.<set>`) are reported under their set, not as states.

use std::io::Write;
use std::path::{Path, PathBuf};

use persist_core::format::generation_key;
use persist_core::{
    BackendError, GenerationInfo, LoadError, NewestValid, RejectReason, Schema, Store,
};
use serde::Serialize;

use super::snapshots::{self, SetListing};
use crate::error::{CliError, Status, write_json};
use crate::{keys, open, outln};

/// Arguments of `persist verify`.
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

/// The verdict on a store.
#[derive(Debug, Serialize)]
struct Verdict {
    root: String,
    /// True when there is at least one state and every state's newest generation verifies.
    ok: bool,
    states: Vec<StateVerdict>,
    /// Every snapshot set: ok when its newest snapshot is whole.
    snapshots: Vec<SetVerdict>,
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

/// The verdict on one snapshot set.
#[derive(Debug, Serialize)]
struct SetVerdict {
    set: String,
    /// True when the newest snapshot is whole.
    ok: bool,
    /// Snapshots kept.
    snapshots: usize,
    /// The newest snapshot's id.
    newest: Option<u64>,
    /// The newest whole snapshot's id (what a load restores, if it falls back).
    newest_whole: Option<u64>,
    /// Why the newest snapshot is not whole (naming the member), if it is not.
    error: Option<String>,
    /// What that failure means: `corrupt` (a load falls back) or another kind (a load stops).
    kind: Option<String>,
    /// What a load does, when the newest snapshot is not whole.
    load: Option<String>,
    /// How far the newest snapshot's members were checked: decoded (those whose schema this
    /// program has, matched by name and fingerprint) or envelope only.
    payload: Option<String>,
}

impl SetVerdict {
    fn new(l: &SetListing) -> Self {
        let failed = l.newest().filter(|s| !s.whole);
        SetVerdict {
            set: l.set.clone(),
            ok: l.ok,
            snapshots: l.snapshots.len(),
            newest: l.newest,
            newest_whole: l.newest_whole,
            error: failed.and_then(|s| s.problem.clone()),
            kind: failed.and_then(|s| s.kind.clone()),
            load: failed.map(|_| l.fallback()),
            payload: None,
        }
    }

    /// Decodes the members of the newest snapshot, when it is whole, whose schema this program
    /// has (matched by name and layout fingerprint), as a restore would; a failure makes the
    /// set fail with the member's reason.
    fn decode_members(&mut self, store: &Store, schemas: &[Schema]) -> Result<(), BackendError> {
        let Some(id) = self.newest.filter(|_| self.ok) else {
            return Ok(());
        };
        let Some(snapshot) = store.snapshots(&self.set)?.into_iter().find(|s| s.id == id) else {
            return Ok(());
        };
        let (mut decoded, total) = (0, snapshot.members.len());
        for member in &snapshot.members {
            let Some(schema) = schemas.iter().find(|s| {
                s.name() == member.name
                    && s.fingerprint_of(member.schema_version) == Some(member.fingerprint)
            }) else {
                continue;
            };
            let generation = GenerationInfo {
                sequence: member.sequence,
                key: generation_key(&member.name, member.sequence),
                size: 0,
            };
            if let Err(reason) = store.check(schema, &generation) {
                self.ok = false;
                self.kind = Some(reason.kind().to_string());
                self.error = Some(format!(
                    "member {} (generation {}): {reason}",
                    member.name, member.sequence
                ));
                self.load = Some(if reason.kind() == persist_core::RejectKind::Corrupt {
                    "a load falls back to an older whole snapshot".to_string()
                } else {
                    "a load stops at this snapshot rather than fall back".to_string()
                });
                return Ok(());
            }
            decoded += 1;
        }
        self.payload = Some(match decoded {
            0 => "members: envelope only (this program has none of their schemas)".to_string(),
            n if n == total => format!("all {n} members decoded"),
            n => format!("{n} of {total} members decoded, the others envelope only"),
        });
        Ok(())
    }
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

/// Verifies the store, decoding the states `schemas` knows (matched by name and layout
/// fingerprint) and checking only the envelope of the others.
pub fn run(
    args: &Args,
    key_file: Option<&Path>,
    schemas: &[Schema],
    out: &mut dyn Write,
) -> Result<Status, CliError> {
    let key = keys::require(key_file)?;
    let store = open::read_only(&args.dir, key)?;
    let list_err = |source| CliError::ListStore {
        path: args.dir.clone(),
        source,
    };
    let mut states = Vec::new();
    for name in store.names().map_err(list_err)? {
        if snapshots::manifest_set(&name).is_some() {
            continue; // Verified with its set below.
        }
        let generations = store.generations(&name).map_err(list_err)?;
        let Some(newest) = generations.last().map(|g| g.sequence) else {
            continue;
        };
        let schema = schemas.iter().find(|s| s.name() == name);
        let (found, payload) = match verify_state(&store, &name, schema) {
            Ok(found) => found,
            // Every generation vanished since the listing (a live writer's retention).
            Err(LoadError::NoGeneration { .. }) => continue,
            Err(e) => (Err(e), None),
        };
        let (newest_valid, failed) = match found {
            Ok(valid) => (Some(valid.generation.sequence), valid.report.rejected),
            Err(LoadError::AllInvalid { rejected, .. }) => (None, rejected),
            Err(LoadError::Blocked {
                generation,
                mut rejected,
                ..
            }) => {
                rejected.push(*generation);
                (None, rejected)
            }
            Err(LoadError::Backend(source)) => return Err(list_err(source)),
            Err(e) => {
                return Err(CliError::Verify {
                    name,
                    message: e.to_string(),
                });
            }
        };
        let failed: Vec<FailedGeneration> = failed
            .into_iter()
            // Keys beyond the sequence range are not generations: a load ignores them too.
            .filter(|r| !matches!(r.reason, RejectReason::SequenceOutOfRange))
            .map(|r| FailedGeneration {
                kind: r.kind().to_string(),
                error: r.reason.to_string(),
                sequence: r.sequence,
                key: r.key,
            })
            .collect();
        states.push(StateVerdict {
            ok: failed.is_empty() && newest_valid.is_some(),
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
    let mut sets: Vec<SetVerdict> = snapshots::listing(&store, &args.dir)?
        .iter()
        .map(SetVerdict::new)
        .collect();
    for set in &mut sets {
        set.decode_members(&store, schemas).map_err(list_err)?;
    }
    let verdict = Verdict {
        root: args.dir.display().to_string(),
        ok: error.is_none() && states.iter().all(|s| s.ok) && sets.iter().all(|s| s.ok),
        states,
        snapshots: sets,
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

/// What a load of state `name` would use, found by the store's own walk
/// ([`Store::newest_valid`]) when `schema` is this state's type, else by its envelope alone
/// ([`Store::newest_sealed`]); with a sentence saying how far the payload was checked.
///
/// `schema` is this state's type only if it knows the layout fingerprint of the newest sealed
/// generation's version: another program's state of the same name is checked as far as its
/// envelope, not reported as a fingerprint mismatch against our type.
type Found = (Result<NewestValid, LoadError>, Option<String>);

fn verify_state(store: &Store, name: &str, schema: Option<&Schema>) -> Result<Found, LoadError> {
    let sealed = store.newest_sealed(name)?;
    let version = sealed.report.schema_version;
    let fingerprint = sealed.report.fingerprint;
    let Some(schema) = schema else {
        let why = "envelope only: this program has no schema for this state".to_string();
        return Ok((Ok(sealed), Some(why)));
    };
    if version > schema.version() {
        let why = format!(
            "envelope only: v{version} is newer than this program's v{}",
            schema.version()
        );
        return Ok((Ok(sealed), Some(why)));
    }
    if version >= schema.oldest_version() && schema.fingerprint_of(version) != Some(fingerprint) {
        let why = format!(
            "envelope only: this program's {name} v{version} has another layout than the \
             generation's ({fingerprint}): a state of another program with the same name?"
        );
        return Ok((Ok(sealed), Some(why)));
    }
    let found = store.newest_valid(schema);
    let payload = found.as_ref().ok().map(|valid| {
        let r = &valid.report;
        let decoded = match r.migrations.len() {
            0 => format!("decoded as {name} v{}", r.schema_version),
            n => format!(
                "decoded as {name} v{} and migrated to v{} ({n} step{})",
                r.schema_version,
                schema.version(),
                if n == 1 { "" } else { "s" }
            ),
        };
        match r.base {
            Some(base) => format!(
                "a delta of generation {base}: its chain down to a full generation verified, \
                 the payload rebuilt and {decoded}"
            ),
            None => decoded,
        }
    });
    Ok((found, payload))
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
    for s in &verdict.snapshots {
        let n = s.snapshots;
        let kept = format!("{n} snapshot{} kept", if n == 1 { "" } else { "s" });
        match (&s.error, s.newest) {
            (None, Some(id)) => outln!(
                out,
                "snapshot set {}: ok (newest snapshot {id} is whole: manifest and every member \
                 verify; {}; {kept})",
                s.set,
                s.payload.as_deref().unwrap_or("members: envelope only")
            )?,
            (error, newest) => {
                outln!(out, "snapshot set {}: FAILED", s.set)?;
                outln!(
                    out,
                    "  newest snapshot {} is not whole [{}]: {}",
                    newest.map_or("-".to_string(), |id| id.to_string()),
                    s.kind.as_deref().unwrap_or("?"),
                    error.as_deref().unwrap_or("no snapshot")
                )?;
                outln!(
                    out,
                    "  {}; {kept}",
                    s.load.as_deref().unwrap_or("a load fails")
                )?;
            }
        }
    }
    let ok = verdict.states.iter().filter(|s| s.ok).count();
    let sets = if verdict.snapshots.is_empty() {
        String::new()
    } else {
        let n = verdict.snapshots.len();
        format!(
            " and {} of {n} snapshot set{}",
            verdict.snapshots.iter().filter(|s| s.ok).count(),
            if n == 1 { "" } else { "s" }
        )
    };
    outln!(
        out,
        "{}: {ok} of {} state{}{sets} verified",
        if verdict.ok { "OK" } else { "FAILED" },
        verdict.states.len(),
        if verdict.states.len() == 1 { "" } else { "s" }
    )
}
